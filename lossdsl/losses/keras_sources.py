"""The library rows of the losses that reproduce Keras built-ins: :data:`KERAS_BUILTINS`.

Each row's source computes what the ``keras.losses`` class computes, value and
gradient. Options that change the formula rather than a number
(``from_logits``, ``apply_class_balancing``, ``axis``) select or fill in the
source, so those losses' sources are built by a function of their options.
Where Keras clips by ``keras.config.epsilon()`` (1e-7) the sources clip by the
same literal, so values and gradients match the built-ins. The public
callables are in :mod:`lossdsl.losses.keras_builtins`.

    >>> sparse_categorical_crossentropy(from_logits=True)
    '-sum(one_hot(y_true)*log_softmax(y_pred, axis=-1), axis=-1)'
    >>> axis_keyword((1, 2)), axis_keyword(-1), axis_keyword(None)
    (', axis=(1, 2)', ', axis=-1', '')
"""

from __future__ import annotations

from lossdsl.losses.spec import EPSILON, LossSpec, fixed

Axis = int | tuple[int, ...] | None
"""An ``axis`` option: one axis, several, or None for every axis of the sample."""

CLIPPED = f"clip(y_pred, {EPSILON}, 1 - {EPSILON})"
BINARY_SMOOTHING = "label_smoothing = 0; t = y_true*(1 - label_smoothing) + 0.5*label_smoothing"
CATEGORICAL_SMOOTHING = ("label_smoothing = 0; "
                         "t = y_true*(1 - label_smoothing) + label_smoothing/sum(1, axis=-1)")
HINGE_LABELS = "t = where(max(abs(y_true*(y_true - 1))) == 0, 2*y_true - 1, y_true)"
"""Keras's hinge losses turn 0/1 labels into -1/1 (and leave -1/1 labels alone)."""


def axis_keyword(axis: Axis) -> str:
    """``, axis=K`` for a reduction, or nothing for every axis of the sample."""
    if axis is None:
        return ""
    if isinstance(axis, tuple):
        return f", axis=({', '.join(map(str, axis))}{',' if len(axis) == 1 else ''})"
    return f", axis={axis}"


def binary_crossentropy(from_logits: bool) -> str:
    if from_logits:  # tf.nn.sigmoid_cross_entropy_with_logits, in its stable form
        return f"{BINARY_SMOOTHING}; mean(softplus(y_pred) - t*y_pred, axis=-1)"
    return (f"{BINARY_SMOOTHING}; p = {CLIPPED}; "
            "mean(-(t*log(p) + (1 - t)*log(1 - p)), axis=-1)")


def categorical_crossentropy(from_logits: bool) -> str:
    if from_logits:
        return f"{CATEGORICAL_SMOOTHING}; -sum(t*log_softmax(y_pred, axis=-1), axis=-1)"
    return (f"{CATEGORICAL_SMOOTHING}; p = y_pred/sum(y_pred, axis=-1); "
            f"-sum(t*log(clip(p, {EPSILON}, 1 - {EPSILON})), axis=-1)")


def sparse_categorical_crossentropy(from_logits: bool) -> str:
    logits = "y_pred" if from_logits else f"log({CLIPPED})"
    return f"-sum(one_hot(y_true)*log_softmax({logits}, axis=-1), axis=-1)"


def binary_focal_crossentropy(apply_class_balancing: bool, from_logits: bool) -> str:
    # On logits Keras's sigmoid output carries its logits, so the cross-entropy
    # takes the stable logits form rather than clipping the probability.
    if from_logits:
        probability, bce = "p = sigmoid(y_pred)", "softplus(y_pred) - t*y_pred"
    else:
        probability = f"p = y_pred; q = clip(y_pred, {EPSILON}, 1 - {EPSILON})"
        bce = "-(t*log(q) + (1 - t)*log(1 - q))"
    balance = "(t*alpha + (1 - t)*(1 - alpha))*" if apply_class_balancing else ""
    return (f"alpha = 0.25; gamma = 2; {BINARY_SMOOTHING}; {probability}; "
            f"bce = {bce}; p_t = t*p + (1 - t)*(1 - p); "
            f"mean({balance}(1 - p_t)^gamma*bce, axis=-1)")


def categorical_focal_crossentropy(from_logits: bool) -> str:
    probability = "softmax(y_pred, axis=-1)" if from_logits else "y_pred"
    return (f"alpha = 0.25; gamma = 2; {CATEGORICAL_SMOOTHING}; p = {probability}; "
            f"o = clip(p/sum(p, axis=-1), {EPSILON}, 1 - {EPSILON}); "
            "sum(alpha*(1 - o)^gamma*(-t*log(o)), axis=-1)")


def cosine_similarity(axis: Axis) -> str:
    # keras.ops.normalize: x * minimum(rsqrt(sum(x^2)), 1/epsilon)
    a = axis_keyword(axis)
    return (f"u = y_true*minimum(sum(y_true^2{a})^-0.5, 1e7); "
            f"v = y_pred*minimum(sum(y_pred^2{a})^-0.5, 1e7); -sum(u*v{a})")


def dice(axis: Axis) -> str:
    a = axis_keyword(axis)
    return (f"1 - 2*sum(y_true*y_pred{a})/(sum(y_true{a}) + sum(y_pred{a}) + {EPSILON})")


def tversky(axis: Axis) -> str:
    a = axis_keyword(axis)
    return (f"alpha = 0.5; beta = 0.5; i = sum(y_true*y_pred{a}); "
            f"fp = sum((1 - y_pred)*y_true{a}); fn = sum(y_pred*(1 - y_true){a}); "
            f"1 - i/(i + alpha*fp + beta*fn + {EPSILON})")


_LOGITS = {"from_logits": False}
_AXIS_LAST = {"axis": -1}
_SAMPLE_AXES = {"axis": None}

KERAS_BUILTINS: tuple[LossSpec, ...] = (
    LossSpec("mean_squared_error", fixed("mean((y_true - y_pred)^2, axis=-1)"),
             "mean squared error", keras="MeanSquaredError"),
    LossSpec("mean_absolute_error", fixed("mean(abs(y_true - y_pred), axis=-1)"),
             "mean absolute error", keras="MeanAbsoluteError"),
    LossSpec("mean_absolute_percentage_error", fixed(
        f"100*mean(abs((y_true - y_pred)/maximum(abs(y_true), {EPSILON})), axis=-1)"),
        "mean absolute percentage error, abs(y_true) floored at 1e-7",
        keras="MeanAbsolutePercentageError"),
    LossSpec("mean_squared_logarithmic_error", fixed(
        f"mean((log(maximum(y_pred, {EPSILON}) + 1) - log(maximum(y_true, {EPSILON}) + 1))^2,"
        " axis=-1)"),
        "mean squared error of log(1 + x), inputs floored at 1e-7",
        keras="MeanSquaredLogarithmicError"),
    LossSpec("huber", fixed(
        "delta = 1.0; e = y_pred - y_true; "
        "mean(where(abs(e) <= delta, 0.5*e^2, delta*abs(e) - 0.5*delta^2), axis=-1)"),
        "Huber loss: quadratic within delta, linear beyond", keras="Huber"),
    LossSpec("log_cosh", fixed(
        "e = y_pred - y_true; mean(e + softplus(-2*e) - log(2), axis=-1)"),
        "log(cosh(error)), in Keras's overflow-free form", keras="LogCosh"),
    LossSpec("hinge", fixed(f"{HINGE_LABELS}; mean(maximum(1 - t*y_pred, 0), axis=-1)"),
             "hinge loss; 0/1 labels become -1/1", keras="Hinge"),
    LossSpec("squared_hinge", fixed(
        f"{HINGE_LABELS}; mean(maximum(1 - t*y_pred, 0)^2, axis=-1)"),
        "squared hinge loss; 0/1 labels become -1/1", keras="SquaredHinge"),
    LossSpec("categorical_hinge", fixed(
        "pos = sum(y_true*y_pred, axis=-1); neg = max((1 - y_true)*y_pred, axis=-1); "
        "maximum(neg - pos + 1, 0)"),
        "hinge between the true class's score and the best other one",
        keras="CategoricalHinge"),
    LossSpec("binary_crossentropy", binary_crossentropy,
             "binary cross-entropy on probabilities or logits, with label smoothing",
             _LOGITS, keras="BinaryCrossentropy"),
    LossSpec("categorical_crossentropy", categorical_crossentropy,
             "cross-entropy with one-hot labels, on probabilities or logits, label smoothing",
             _LOGITS, keras="CategoricalCrossentropy"),
    LossSpec("sparse_categorical_crossentropy", sparse_categorical_crossentropy,
             "cross-entropy with integer labels (picked by one_hot(y_true))",
             _LOGITS, keras="SparseCategoricalCrossentropy"),
    LossSpec("kl_divergence", fixed(
        f"t = clip(y_true, {EPSILON}, 1); p = clip(y_pred, {EPSILON}, 1); "
        "sum(t*log(t/p), axis=-1)"),
        "Kullback-Leibler divergence of y_pred from y_true", keras="KLDivergence"),
    LossSpec("poisson", fixed(f"mean(y_pred - y_true*log(y_pred + {EPSILON}), axis=-1)"),
             "Poisson negative log-likelihood (without the log(y_true!) term)",
             keras="Poisson"),
    LossSpec("cosine_similarity", cosine_similarity,
             "minus the cosine similarity along axis", _AXIS_LAST, keras="CosineSimilarity"),
    LossSpec("binary_focal_crossentropy", binary_focal_crossentropy,
             "binary focal cross-entropy, optionally class-balanced by alpha",
             {"apply_class_balancing": False, "from_logits": False},
             keras="BinaryFocalCrossentropy"),
    LossSpec("categorical_focal_crossentropy", categorical_focal_crossentropy,
             "categorical focal cross-entropy", _LOGITS, keras="CategoricalFocalCrossentropy"),
    LossSpec("dice", dice, "soft Dice loss over each sample (or axis)", _SAMPLE_AXES,
             keras="Dice"),
    LossSpec("tversky", tversky, "Tversky loss: Dice with false positives and negatives "
             "weighted by alpha and beta", _SAMPLE_AXES, keras="Tversky"),
)
"""The losses that equal a ``keras.losses`` class, in the order the README lists them."""
