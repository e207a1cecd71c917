"""The loss library: well-known losses written in lossdsl, compiled on demand.

Every loss is one row of :data:`LIBRARY`: its name, its source text (with its
parameters' defaults bound in the source, ``alpha = 0.25; ...``), a one-line
doc, and either the Keras built-in it reproduces or the paper it comes from.
Options that change the formula rather than a number (``from_logits``,
``apply_class_balancing``, ``axis``) select or fill in the source. The public
callables (``lossdsl.losses.focal(alpha=0.25, gamma=2.0)``) are generated from
the table: keywords naming a parameter set its value, keywords naming an option
choose the source, and ``name``/``reduction``/``dtype`` go to the Keras loss.

Where Keras clips by ``keras.config.epsilon()`` (1e-7) the sources clip by the
same literal, so values and gradients match the built-ins.

    >>> import numpy as np
    >>> from lossdsl import losses
    >>> bce = losses.binary_crossentropy(from_logits=True, label_smoothing=0.1)
    >>> bce.params
    {'label_smoothing': 0.1}
    >>> round(float(bce(np.array([[1.0, 0.0]]), np.array([[2.0, -1.0]]))), 6)
    0.295095
    >>> [entry.name for entry in losses.available()][:3]
    ['mean_squared_error', 'mean_absolute_error', 'mean_absolute_percentage_error']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping

from lossdsl.errors import DSLConfigError

if TYPE_CHECKING:
    from lossdsl.keras.loss import DSLLoss

Source = Callable[..., str]
"""Builds a loss's source from its options (keyword arguments)."""

EPSILON = "1e-7"
"""``keras.config.epsilon()``, as the literal the Keras-parity sources clip by."""

_KERAS_KEYWORDS = ("name", "reduction", "dtype", "gradient")


@dataclass(frozen=True)
class LossSpec:
    """One loss of the library.

    Attributes:
        name: the callable's name in :mod:`lossdsl.losses`.
        build: the source, given the options as keywords.
        doc: one line: what the loss is.
        options: options that choose the source, with their defaults.
        keras: the ``keras.losses`` class this loss equals, if any.
        citation: the paper, for losses from the literature.
    """

    name: str
    build: Source = field(repr=False)
    doc: str
    options: Mapping[str, Any] = field(default_factory=dict)
    keras: str | None = None
    citation: str | None = None

    @property
    def source(self) -> str:
        """The source with every option at its default."""
        return self.source_for()

    def source_for(self, **options: Any) -> str:
        """The source for these options (unnamed ones take their defaults)."""
        chosen = {**self.options, **options}
        for key, value in chosen.items():
            _check_option(self.name, key, value)
        return self.build(**chosen)

    @property
    def params(self) -> dict[str, float]:
        """The parameters of the default source and their default values."""
        from lossdsl.analysis.analyze import analyze

        return dict(analyze(self.source).defaults)


def _check_option(loss: str, key: str, value: Any) -> None:
    if key == "axis":
        valid = value is None or isinstance(value, int) or (
            isinstance(value, tuple) and value and all(isinstance(a, int) for a in value))
        valid = valid and not isinstance(value, bool)
        expected = "None, an int or a tuple of ints"
    else:
        valid, expected = isinstance(value, bool), "True or False"
    if not valid:
        raise DSLConfigError(f"The option `{key}` of `{loss}` must be {expected}. "
                             f"Received: {value!r}.",
                             hint="lossdsl.losses.available() lists each loss's options")


# ------------------------------------------------------------ source fragments

def _axis(axis: int | tuple[int, ...] | None) -> str:
    """``, axis=K`` for a reduction, or nothing for every axis of the sample."""
    if axis is None:
        return ""
    if isinstance(axis, tuple):
        return f", axis=({', '.join(map(str, axis))}{',' if len(axis) == 1 else ''})"
    return f", axis={axis}"


_CLIPPED = f"clip(y_pred, {EPSILON}, 1 - {EPSILON})"
_BINARY_SMOOTHING = "label_smoothing = 0; t = y_true*(1 - label_smoothing) + 0.5*label_smoothing"
_CATEGORICAL_SMOOTHING = ("label_smoothing = 0; "
                          "t = y_true*(1 - label_smoothing) + label_smoothing/sum(1, axis=-1)")
_HINGE_LABELS = "t = where(max(abs(y_true*(y_true - 1))) == 0, 2*y_true - 1, y_true)"


def _binary_crossentropy(from_logits: bool) -> str:
    if from_logits:  # tf.nn.sigmoid_cross_entropy_with_logits, in its stable form
        return f"{_BINARY_SMOOTHING}; mean(softplus(y_pred) - t*y_pred, axis=-1)"
    return (f"{_BINARY_SMOOTHING}; p = {_CLIPPED}; "
            "mean(-(t*log(p) + (1 - t)*log(1 - p)), axis=-1)")


def _categorical_crossentropy(from_logits: bool) -> str:
    if from_logits:
        return f"{_CATEGORICAL_SMOOTHING}; -sum(t*log_softmax(y_pred, axis=-1), axis=-1)"
    return (f"{_CATEGORICAL_SMOOTHING}; p = y_pred/sum(y_pred, axis=-1); "
            f"-sum(t*log(clip(p, {EPSILON}, 1 - {EPSILON})), axis=-1)")


def _sparse_categorical_crossentropy(from_logits: bool) -> str:
    logits = "y_pred" if from_logits else f"log({_CLIPPED})"
    return f"-sum(one_hot(y_true)*log_softmax({logits}, axis=-1), axis=-1)"


def _binary_focal_crossentropy(apply_class_balancing: bool, from_logits: bool) -> str:
    # On logits Keras's sigmoid output carries its logits, so the cross-entropy
    # takes the stable logits form rather than clipping the probability.
    if from_logits:
        probability, bce = "p = sigmoid(y_pred)", "softplus(y_pred) - t*y_pred"
    else:
        probability = f"p = y_pred; q = clip(y_pred, {EPSILON}, 1 - {EPSILON})"
        bce = "-(t*log(q) + (1 - t)*log(1 - q))"
    balance = "(t*alpha + (1 - t)*(1 - alpha))*" if apply_class_balancing else ""
    return (f"alpha = 0.25; gamma = 2; {_BINARY_SMOOTHING}; {probability}; "
            f"bce = {bce}; p_t = t*p + (1 - t)*(1 - p); "
            f"mean({balance}(1 - p_t)^gamma*bce, axis=-1)")


def _categorical_focal_crossentropy(from_logits: bool) -> str:
    probability = "softmax(y_pred, axis=-1)" if from_logits else "y_pred"
    return (f"alpha = 0.25; gamma = 2; {_CATEGORICAL_SMOOTHING}; p = {probability}; "
            f"o = clip(p/sum(p, axis=-1), {EPSILON}, 1 - {EPSILON}); "
            "sum(alpha*(1 - o)^gamma*(-t*log(o)), axis=-1)")


def _cosine_similarity(axis: int | tuple[int, ...] | None) -> str:
    # keras.ops.normalize: x * minimum(rsqrt(sum(x^2)), 1/epsilon)
    a = _axis(axis)
    return (f"u = y_true*minimum(sum(y_true^2{a})^-0.5, 1e7); "
            f"v = y_pred*minimum(sum(y_pred^2{a})^-0.5, 1e7); -sum(u*v{a})")


def _dice(axis: int | tuple[int, ...] | None) -> str:
    a = _axis(axis)
    return (f"1 - 2*sum(y_true*y_pred{a})/(sum(y_true{a}) + sum(y_pred{a}) + {EPSILON})")


def _tversky(axis: int | tuple[int, ...] | None) -> str:
    a = _axis(axis)
    return (f"alpha = 0.5; beta = 0.5; i = sum(y_true*y_pred{a}); "
            f"fp = sum((1 - y_pred)*y_true{a}); fn = sum(y_pred*(1 - y_true){a}); "
            f"1 - i/(i + alpha*fp + beta*fn + {EPSILON})")


def _fixed(source: str) -> Source:
    return lambda: source


_LOGITS = {"from_logits": False}
_AXIS_LAST = {"axis": -1}
_SAMPLE_AXES = {"axis": None}


# ------------------------------------------------------------ the table

LIBRARY: tuple[LossSpec, ...] = (
    # Keras built-ins, same value and gradient.
    LossSpec("mean_squared_error", _fixed("mean((y_true - y_pred)^2, axis=-1)"),
             "mean squared error", keras="MeanSquaredError"),
    LossSpec("mean_absolute_error", _fixed("mean(abs(y_true - y_pred), axis=-1)"),
             "mean absolute error", keras="MeanAbsoluteError"),
    LossSpec("mean_absolute_percentage_error", _fixed(
        f"100*mean(abs((y_true - y_pred)/maximum(abs(y_true), {EPSILON})), axis=-1)"),
        "mean absolute percentage error, abs(y_true) floored at 1e-7",
        keras="MeanAbsolutePercentageError"),
    LossSpec("mean_squared_logarithmic_error", _fixed(
        f"mean((log(maximum(y_pred, {EPSILON}) + 1) - log(maximum(y_true, {EPSILON}) + 1))^2,"
        " axis=-1)"),
        "mean squared error of log(1 + x), inputs floored at 1e-7",
        keras="MeanSquaredLogarithmicError"),
    LossSpec("huber", _fixed(
        "delta = 1.0; e = y_pred - y_true; "
        "mean(where(abs(e) <= delta, 0.5*e^2, delta*abs(e) - 0.5*delta^2), axis=-1)"),
        "Huber loss: quadratic within delta, linear beyond", keras="Huber"),
    LossSpec("log_cosh", _fixed(
        "e = y_pred - y_true; mean(e + softplus(-2*e) - log(2), axis=-1)"),
        "log(cosh(error)), in Keras's overflow-free form", keras="LogCosh"),
    LossSpec("hinge", _fixed(f"{_HINGE_LABELS}; mean(maximum(1 - t*y_pred, 0), axis=-1)"),
             "hinge loss; 0/1 labels become -1/1", keras="Hinge"),
    LossSpec("squared_hinge", _fixed(
        f"{_HINGE_LABELS}; mean(maximum(1 - t*y_pred, 0)^2, axis=-1)"),
        "squared hinge loss; 0/1 labels become -1/1", keras="SquaredHinge"),
    LossSpec("categorical_hinge", _fixed(
        "pos = sum(y_true*y_pred, axis=-1); neg = max((1 - y_true)*y_pred, axis=-1); "
        "maximum(neg - pos + 1, 0)"),
        "hinge between the true class's score and the best other one",
        keras="CategoricalHinge"),
    LossSpec("binary_crossentropy", _binary_crossentropy,
             "binary cross-entropy on probabilities or logits, with label smoothing",
             _LOGITS, keras="BinaryCrossentropy"),
    LossSpec("categorical_crossentropy", _categorical_crossentropy,
             "cross-entropy with one-hot labels, on probabilities or logits, label smoothing",
             _LOGITS, keras="CategoricalCrossentropy"),
    LossSpec("sparse_categorical_crossentropy", _sparse_categorical_crossentropy,
             "cross-entropy with integer labels (picked by one_hot(y_true))",
             _LOGITS, keras="SparseCategoricalCrossentropy"),
    LossSpec("kl_divergence", _fixed(
        f"t = clip(y_true, {EPSILON}, 1); p = clip(y_pred, {EPSILON}, 1); "
        "sum(t*log(t/p), axis=-1)"),
        "Kullback-Leibler divergence of y_pred from y_true", keras="KLDivergence"),
    LossSpec("poisson", _fixed(f"mean(y_pred - y_true*log(y_pred + {EPSILON}), axis=-1)"),
             "Poisson negative log-likelihood (without the log(y_true!) term)",
             keras="Poisson"),
    LossSpec("cosine_similarity", _cosine_similarity,
             "minus the cosine similarity along axis", _AXIS_LAST, keras="CosineSimilarity"),
    LossSpec("binary_focal_crossentropy", _binary_focal_crossentropy,
             "binary focal cross-entropy, optionally class-balanced by alpha",
             {"apply_class_balancing": False, "from_logits": False},
             keras="BinaryFocalCrossentropy"),
    LossSpec("categorical_focal_crossentropy", _categorical_focal_crossentropy,
             "categorical focal cross-entropy", _LOGITS, keras="CategoricalFocalCrossentropy"),
    LossSpec("dice", _dice, "soft Dice loss over each sample (or axis)", _SAMPLE_AXES,
             keras="Dice"),
    LossSpec("tversky", _tversky, "Tversky loss: Dice with false positives and negatives "
             "weighted by alpha and beta", _SAMPLE_AXES, keras="Tversky"),
    # From the literature.
    LossSpec("focal", _fixed(
        "alpha = 0.25; gamma = 2; p = sigmoid(y_pred); "
        "p_t = y_true*p + (1 - y_true)*(1 - p); alpha_t = y_true*alpha + (1 - y_true)*(1 - alpha); "
        "mean(alpha_t*(1 - p_t)^gamma*(softplus(y_pred) - y_true*y_pred))"),
        "sigmoid focal loss on logits, alpha-balanced",
        citation="Lin, Goyal, Girshick, He, Dollar. Focal Loss for Dense Object Detection. "
                 "ICCV 2017"),
    LossSpec("poly1", _fixed(
        "epsilon = 1; l = log_softmax(y_pred, axis=-1); "
        "-sum(y_true*l, axis=-1) + epsilon*(1 - sum(y_true*exp(l), axis=-1))"),
        "Poly-1: softmax cross-entropy plus epsilon*(1 - p_t), on logits",
        citation="Leng et al. PolyLoss: A Polynomial Expansion Perspective of "
                 "Classification Loss Functions. ICLR 2022"),
    LossSpec("generalized_cross_entropy", _fixed(
        "q = 0.7; p_y = sum(one_hot(y_true)*y_pred, axis=-1); (1 - p_y^q)/q"),
        "generalized cross-entropy (1 - p_y^q)/q with integer labels, robust to label noise",
        citation="Zhang, Sabuncu. Generalized Cross Entropy Loss for Training Deep Neural "
                 "Networks with Noisy Labels. NeurIPS 2018"),
    LossSpec("symmetric_cross_entropy", _fixed(
        f"alpha = 0.1; beta = 1; p = clip(y_pred, {EPSILON}, 1); q = clip(y_true, 1e-4, 1); "
        "alpha*(-sum(y_true*log(p), axis=-1)) + beta*(-sum(p*log(q), axis=-1))"),
        "alpha*cross-entropy + beta*reverse cross-entropy, on probabilities",
        citation="Wang, Ma, Chen, Luo, Yi, Bailey. Symmetric Cross Entropy for Robust "
                 "Learning with Noisy Labels. ICCV 2019"),
    LossSpec("asymmetric", _fixed(
        "gamma_pos = 0; gamma_neg = 4; margin = 0.05; p = sigmoid(y_pred); "
        "p_m = maximum(p - margin, 0); "
        "-sum(y_true*(1 - p)^gamma_pos*log(maximum(p, 1e-8)) "
        "+ (1 - y_true)*p_m^gamma_neg*log(maximum(1 - p_m, 1e-8)))"),
        "asymmetric loss (ASL) for multi-label logits: focusing and shifted negatives",
        citation="Ridnik et al. Asymmetric Loss For Multi-Label Classification. ICCV 2021"),
    LossSpec("label_smoothed_cross_entropy", _fixed(
        "smoothing = 0.1; t = (1 - smoothing)*y_true + smoothing/sum(1, axis=-1); "
        "-sum(t*log_softmax(y_pred, axis=-1), axis=-1)"),
        "softmax cross-entropy against labels mixed with the uniform distribution",
        citation="Szegedy, Vanhoucke, Ioffe, Shlens, Wojna. Rethinking the Inception "
                 "Architecture for Computer Vision. CVPR 2016"),
    LossSpec("charbonnier", _fixed(
        "epsilon = 1e-3; mean(sqrt((y_pred - y_true)^2 + epsilon^2))"),
        "Charbonnier (smooth L1) penalty sqrt(e^2 + epsilon^2)",
        citation="Charbonnier, Blanc-Feraud, Aubert, Barlaud. Two deterministic half-quadratic "
                 "regularization algorithms for computed imaging. ICIP 1994"),
    LossSpec("pinball", _fixed(
        "tau = 0.5; e = y_true - y_pred; mean(maximum(tau*e, (tau - 1)*e))"),
        "pinball (quantile) loss for the tau-quantile",
        citation="Koenker, Bassett. Regression Quantiles. Econometrica 46(1), 1978"),
    LossSpec("gaussian_nll", _fixed(
        "mu = sum(one_hot(0)*y_pred, axis=-1); log_var = sum(one_hot(1)*y_pred, axis=-1); "
        "mean(0.5*(log_var + (y_true - mu)^2*exp(-log_var)), axis=-1)"),
        "Gaussian negative log-likelihood (without 0.5*log(2*pi)); y_pred's last axis "
        "is [mean, log variance]",
        citation="Nix, Weigend. Estimating the mean and variance of the target probability "
                 "distribution. ICNN 1994; Kendall, Gal. What Uncertainties Do We Need in "
                 "Bayesian Deep Learning for Computer Vision? NeurIPS 2017"),
    LossSpec("focal_tversky", _fixed(
        "alpha = 0.7; beta = 0.3; gamma = 0.75; smooth = 1; tp = sum(y_true*y_pred); "
        "fn = sum(y_true*(1 - y_pred)); fp = sum((1 - y_true)*y_pred); "
        "(1 - (tp + smooth)/(tp + alpha*fn + beta*fp + smooth))^gamma"),
        "focal Tversky loss: (1 - Tversky index)^gamma, alpha weighting false negatives",
        citation="Abraham, Khan. A Novel Focal Tversky Loss Function with Improved Attention "
                 "U-Net for Lesion Segmentation. ISBI 2019"),
    LossSpec("welsch", _fixed(
        "c = 1; mean(c^2/2*(1 - exp(-((y_pred - y_true)/c)^2/2)))"),
        "Welsch (Leclerc) robust loss, bounded by c^2/2",
        citation="Dennis, Welsch. Techniques for nonlinear least squares and robust regression. "
                 "Communications in Statistics - Simulation and Computation 7(4), 1978"),
    LossSpec("cauchy", _fixed(
        "c = 1; mean(c^2/2*log1p(((y_pred - y_true)/c)^2))"),
        "Cauchy (Lorentzian) robust loss c^2/2*log(1 + (e/c)^2)",
        citation="Black, Anandan. The Robust Estimation of Multiple Motions. CVIU 63(1), 1996; "
                 "Barron. A General and Adaptive Robust Loss Function. CVPR 2019"),
    LossSpec("pearson", _fixed(
        "a = y_true - mean(y_true); b = y_pred - mean(y_pred); "
        "1 - sum(a*b)/sqrt(sum(a^2)*sum(b^2))"),
        "1 minus the Pearson correlation of y_true and y_pred over each sample",
        citation="Pearson. Notes on regression and inheritance in the case of two parents. "
                 "Proc. Royal Society of London 58, 1895"),
)

REGISTRY: Mapping[str, LossSpec] = MappingProxyType({spec.name: spec for spec in LIBRARY})
assert len(REGISTRY) == len(LIBRARY), "duplicate loss name in LIBRARY"


def available() -> tuple[LossSpec, ...]:
    """Every loss of the library, in table order.

    Returns:
        The :class:`LossSpec` rows: ``name``, ``source``, ``doc``, ``params``,
        ``options``, and ``keras`` or ``citation``.

    Examples:

    >>> spec = {s.name: s for s in available()}["huber"]
    >>> spec.keras, spec.params
    ('Huber', {'delta': 1.0})
    """
    return LIBRARY


def make(loss: str, /, **keywords: Any) -> "DSLLoss":
    """Compile the library loss named ``loss``; keywords as for its generated callable.

    Raises:
        DSLNameError: ``name`` is not in the library, or a keyword names no
            parameter (with the nearest name suggested).
        DSLConfigError: an option has a value of the wrong kind.

    Examples:

    >>> make("focal", alpha=0.5).params
    {'alpha': 0.5, 'gamma': 2.0}
    """
    from lossdsl.keras.loss import DSLLoss

    spec = _spec(loss)
    options = {k: keywords.pop(k) for k in list(keywords) if k in spec.options}
    settings = {k: keywords.pop(k) for k in list(keywords) if k in _KERAS_KEYWORDS}
    settings.setdefault("name", spec.name)
    return DSLLoss(spec.source_for(**options), keywords, **settings)


def _spec(name: str) -> LossSpec:
    if name in REGISTRY:
        return REGISTRY[name]
    import difflib

    from lossdsl.errors import DSLNameError

    close = difflib.get_close_matches(name, list(REGISTRY), n=1)
    message = f"`{name}` is not a loss of lossdsl.losses."
    if close:
        message += f" Did you mean `{close[0]}`?"
    raise DSLNameError(message, hint="lossdsl.losses.available() lists them")


def _callable(spec: LossSpec) -> Callable[..., "DSLLoss"]:
    def loss(**keywords: Any) -> "DSLLoss":
        return make(spec.name, **keywords)

    origin = f"Same as keras.losses.{spec.keras}." if spec.keras else f"From: {spec.citation}."
    options = ", ".join(f"{k}={v!r}" for k, v in spec.options.items()) or "none"
    loss.__name__ = loss.__qualname__ = spec.name
    loss.__doc__ = (f"{spec.doc[0].upper()}{spec.doc[1:]}.\n\n{origin}\n\n"
                    f"Source: ``{spec.source}``\n\nOptions: {options}. Parameters are set by "
                    "keyword (they override the defaults in the source); ``name``, "
                    "``reduction`` and ``dtype`` go to the Keras loss.\n")
    return loss


globals().update({spec.name: _callable(spec) for spec in LIBRARY})

__all__ = ["LIBRARY", "LossSpec", "available", "make", *REGISTRY]
