"""The losses that reproduce Keras built-ins, as callables: same value and gradient.

Each callable compiles its row of :data:`~lossdsl.losses.keras_sources.KERAS_BUILTINS`
into a :class:`~lossdsl.keras.loss.DSLLoss`. Keywords naming an option (``from_logits``,
``apply_class_balancing``, ``axis``) choose the source; keywords naming a parameter
override its default in the source; :class:`~lossdsl.losses.spec.LossSettings`
(``name``, ``reduction``, ``dtype``, ``gradient``) go to the Keras loss. A keyword
that is none of these is refused with the nearest parameter name suggested.
``tests/test_losses_library.py`` checks each signature against its row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Unpack

from lossdsl.losses.keras_sources import KERAS_BUILTINS, Axis
from lossdsl.losses.spec import LossSettings

if TYPE_CHECKING:
    from lossdsl.keras.loss import DSLLoss

_ROWS = {spec.name: spec for spec in KERAS_BUILTINS}


def _loss(loss: str, /, **keywords: Any) -> "DSLLoss":
    # Positional-only: `name` is one of the keywords (the Keras loss's name).
    return _ROWS[loss].to_loss(**keywords)


def mean_squared_error(**settings: Unpack[LossSettings]) -> DSLLoss:
    """Mean squared error.

    Same as keras.losses.MeanSquaredError.

    >>> loss = mean_squared_error(reduction="sum")
    >>> loss.name, loss.reduction
    ('mean_squared_error', 'sum')
    """
    return _loss("mean_squared_error", **settings)


def mean_absolute_error(**settings: Unpack[LossSettings]) -> DSLLoss:
    """Mean absolute error.

    Same as keras.losses.MeanAbsoluteError.

    >>> loss = mean_absolute_error(reduction="sum")
    >>> loss.name, loss.reduction
    ('mean_absolute_error', 'sum')
    """
    return _loss("mean_absolute_error", **settings)


def mean_absolute_percentage_error(**settings: Unpack[LossSettings]) -> DSLLoss:
    """Mean absolute percentage error, abs(y_true) floored at 1e-7.

    Same as keras.losses.MeanAbsolutePercentageError.

    >>> loss = mean_absolute_percentage_error(reduction="sum")
    >>> loss.name, loss.reduction
    ('mean_absolute_percentage_error', 'sum')
    """
    return _loss("mean_absolute_percentage_error", **settings)


def mean_squared_logarithmic_error(**settings: Unpack[LossSettings]) -> DSLLoss:
    """Mean squared error of log(1 + x), inputs floored at 1e-7.

    Same as keras.losses.MeanSquaredLogarithmicError.

    >>> loss = mean_squared_logarithmic_error(reduction="sum")
    >>> loss.name, loss.reduction
    ('mean_squared_logarithmic_error', 'sum')
    """
    return _loss("mean_squared_logarithmic_error", **settings)


def huber(*, delta: float = 1.0, **settings: Unpack[LossSettings]) -> DSLLoss:
    """Huber loss: quadratic within delta, linear beyond.

    Same as keras.losses.Huber.

    >>> huber(delta=2.0).params
    {'delta': 2.0}
    """
    return _loss("huber", delta=delta, **settings)


def log_cosh(**settings: Unpack[LossSettings]) -> DSLLoss:
    """Log(cosh(error)), in Keras's overflow-free form.

    Same as keras.losses.LogCosh.

    >>> loss = log_cosh(reduction="sum")
    >>> loss.name, loss.reduction
    ('log_cosh', 'sum')
    """
    return _loss("log_cosh", **settings)


def hinge(**settings: Unpack[LossSettings]) -> DSLLoss:
    """Hinge loss; 0/1 labels become -1/1.

    Same as keras.losses.Hinge.

    >>> loss = hinge(reduction="sum")
    >>> loss.name, loss.reduction
    ('hinge', 'sum')
    """
    return _loss("hinge", **settings)


def squared_hinge(**settings: Unpack[LossSettings]) -> DSLLoss:
    """Squared hinge loss; 0/1 labels become -1/1.

    Same as keras.losses.SquaredHinge.

    >>> loss = squared_hinge(reduction="sum")
    >>> loss.name, loss.reduction
    ('squared_hinge', 'sum')
    """
    return _loss("squared_hinge", **settings)


def categorical_hinge(**settings: Unpack[LossSettings]) -> DSLLoss:
    """Hinge between the true class's score and the best other one.

    Same as keras.losses.CategoricalHinge.

    >>> loss = categorical_hinge(reduction="sum")
    >>> loss.name, loss.reduction
    ('categorical_hinge', 'sum')
    """
    return _loss("categorical_hinge", **settings)


def binary_crossentropy(*, from_logits: bool = False, label_smoothing: float = 0.0,
                        **settings: Unpack[LossSettings]) -> DSLLoss:
    """Binary cross-entropy on probabilities or logits, with label smoothing.

    Same as keras.losses.BinaryCrossentropy.

    >>> binary_crossentropy(label_smoothing=0.0).params
    {'label_smoothing': 0.0}
    """
    return _loss("binary_crossentropy",
                 from_logits=from_logits, label_smoothing=label_smoothing, **settings)


def categorical_crossentropy(*, from_logits: bool = False, label_smoothing: float = 0.0,
                             **settings: Unpack[LossSettings]) -> DSLLoss:
    """Cross-entropy with one-hot labels, on probabilities or logits, label smoothing.

    Same as keras.losses.CategoricalCrossentropy.

    >>> categorical_crossentropy(label_smoothing=0.0).params
    {'label_smoothing': 0.0}
    """
    return _loss("categorical_crossentropy",
                 from_logits=from_logits, label_smoothing=label_smoothing, **settings)


def sparse_categorical_crossentropy(*, from_logits: bool = False,
                                    **settings: Unpack[LossSettings]) -> DSLLoss:
    """Cross-entropy with integer labels (picked by one_hot(y_true)).

    Same as keras.losses.SparseCategoricalCrossentropy.

    >>> loss = sparse_categorical_crossentropy(reduction="sum")
    >>> loss.name, loss.reduction
    ('sparse_categorical_crossentropy', 'sum')
    """
    return _loss("sparse_categorical_crossentropy", from_logits=from_logits, **settings)


def kl_divergence(**settings: Unpack[LossSettings]) -> DSLLoss:
    """Kullback-Leibler divergence of y_pred from y_true.

    Same as keras.losses.KLDivergence.

    >>> loss = kl_divergence(reduction="sum")
    >>> loss.name, loss.reduction
    ('kl_divergence', 'sum')
    """
    return _loss("kl_divergence", **settings)


def poisson(**settings: Unpack[LossSettings]) -> DSLLoss:
    """Poisson negative log-likelihood (without the log(y_true!) term).

    Same as keras.losses.Poisson.

    >>> loss = poisson(reduction="sum")
    >>> loss.name, loss.reduction
    ('poisson', 'sum')
    """
    return _loss("poisson", **settings)


def cosine_similarity(*, axis: Axis = -1, **settings: Unpack[LossSettings]) -> DSLLoss:
    """Minus the cosine similarity along axis.

    Same as keras.losses.CosineSimilarity.

    >>> loss = cosine_similarity(reduction="sum")
    >>> loss.name, loss.reduction
    ('cosine_similarity', 'sum')
    """
    return _loss("cosine_similarity", axis=axis, **settings)


def binary_focal_crossentropy(*, apply_class_balancing: bool = False, from_logits: bool = False,
                              alpha: float = 0.25, gamma: float = 2.0,
                              label_smoothing: float = 0.0,
                              **settings: Unpack[LossSettings]) -> DSLLoss:
    """Binary focal cross-entropy, optionally class-balanced by alpha.

    Same as keras.losses.BinaryFocalCrossentropy.

    >>> binary_focal_crossentropy(alpha=0.5).params
    {'alpha': 0.5, 'gamma': 2.0, 'label_smoothing': 0.0}
    """
    return _loss("binary_focal_crossentropy",
                 apply_class_balancing=apply_class_balancing, from_logits=from_logits, alpha=alpha,
                 gamma=gamma, label_smoothing=label_smoothing, **settings)


def categorical_focal_crossentropy(*, from_logits: bool = False, alpha: float = 0.25,
                                   gamma: float = 2.0, label_smoothing: float = 0.0,
                                   **settings: Unpack[LossSettings]) -> DSLLoss:
    """Categorical focal cross-entropy.

    Same as keras.losses.CategoricalFocalCrossentropy.

    >>> categorical_focal_crossentropy(alpha=0.5).params
    {'alpha': 0.5, 'gamma': 2.0, 'label_smoothing': 0.0}
    """
    return _loss("categorical_focal_crossentropy",
                 from_logits=from_logits, alpha=alpha, gamma=gamma,
                 label_smoothing=label_smoothing, **settings)


def dice(*, axis: Axis = None, **settings: Unpack[LossSettings]) -> DSLLoss:
    """Soft Dice loss over each sample (or axis).

    Same as keras.losses.Dice.

    >>> loss = dice(reduction="sum")
    >>> loss.name, loss.reduction
    ('dice', 'sum')
    """
    return _loss("dice", axis=axis, **settings)


def tversky(*, axis: Axis = None, alpha: float = 0.5, beta: float = 0.5,
            **settings: Unpack[LossSettings]) -> DSLLoss:
    """Tversky loss: Dice with false positives and negatives weighted by alpha and beta.

    Same as keras.losses.Tversky.

    >>> tversky(alpha=1.0).params
    {'alpha': 1.0, 'beta': 0.5}
    """
    return _loss("tversky", axis=axis, alpha=alpha, beta=beta, **settings)
