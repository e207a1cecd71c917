"""Losses from the literature, each with its citation: rows (:data:`LITERATURE`) and callables.

Keywords work as for the Keras built-ins (:mod:`lossdsl.losses.keras_builtins`):
parameters override their defaults in the source, :class:`~lossdsl.losses.spec.LossSettings`
go to the Keras loss. ``tests/test_losses_library.py`` checks each signature against its row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Unpack

from lossdsl.losses.spec import EPSILON, LossSettings, LossSpec, fixed

if TYPE_CHECKING:
    from lossdsl.keras.loss import DSLLoss

LITERATURE: tuple[LossSpec, ...] = (
    LossSpec("focal", fixed(
        "alpha = 0.25; gamma = 2; p = sigmoid(y_pred); "
        "p_t = y_true*p + (1 - y_true)*(1 - p); alpha_t = y_true*alpha + (1 - y_true)*(1 - alpha); "
        "mean(alpha_t*(1 - p_t)^gamma*(softplus(y_pred) - y_true*y_pred))"),
        "sigmoid focal loss on logits, alpha-balanced",
        citation="Lin, Goyal, Girshick, He, Dollar. Focal Loss for Dense Object Detection. "
                 "ICCV 2017"),
    LossSpec("poly1", fixed(
        "epsilon = 1; l = log_softmax(y_pred, axis=-1); "
        "-sum(y_true*l, axis=-1) + epsilon*(1 - sum(y_true*exp(l), axis=-1))"),
        "Poly-1: softmax cross-entropy plus epsilon*(1 - p_t), on logits",
        citation="Leng et al. PolyLoss: A Polynomial Expansion Perspective of "
                 "Classification Loss Functions. ICLR 2022"),
    LossSpec("generalized_cross_entropy", fixed(
        "q = 0.7; p_y = sum(one_hot(y_true)*y_pred, axis=-1); (1 - p_y^q)/q"),
        "generalized cross-entropy (1 - p_y^q)/q with integer labels, robust to label noise",
        citation="Zhang, Sabuncu. Generalized Cross Entropy Loss for Training Deep Neural "
                 "Networks with Noisy Labels. NeurIPS 2018"),
    LossSpec("symmetric_cross_entropy", fixed(
        f"alpha = 0.1; beta = 1; p = clip(y_pred, {EPSILON}, 1); q = clip(y_true, 1e-4, 1); "
        "alpha*(-sum(y_true*log(p), axis=-1)) + beta*(-sum(p*log(q), axis=-1))"),
        "alpha*cross-entropy + beta*reverse cross-entropy, on probabilities",
        citation="Wang, Ma, Chen, Luo, Yi, Bailey. Symmetric Cross Entropy for Robust "
                 "Learning with Noisy Labels. ICCV 2019"),
    LossSpec("asymmetric", fixed(
        "gamma_pos = 0; gamma_neg = 4; margin = 0.05; p = sigmoid(y_pred); "
        "p_m = maximum(p - margin, 0); "
        "-sum(y_true*(1 - p)^gamma_pos*log(maximum(p, 1e-8)) "
        "+ (1 - y_true)*p_m^gamma_neg*log(maximum(1 - p_m, 1e-8)))"),
        "asymmetric loss (ASL) for multi-label logits: focusing and shifted negatives",
        citation="Ridnik et al. Asymmetric Loss For Multi-Label Classification. ICCV 2021"),
    LossSpec("label_smoothed_cross_entropy", fixed(
        "smoothing = 0.1; t = (1 - smoothing)*y_true + smoothing/sum(1, axis=-1); "
        "-sum(t*log_softmax(y_pred, axis=-1), axis=-1)"),
        "softmax cross-entropy against labels mixed with the uniform distribution",
        citation="Szegedy, Vanhoucke, Ioffe, Shlens, Wojna. Rethinking the Inception "
                 "Architecture for Computer Vision. CVPR 2016"),
    LossSpec("charbonnier", fixed(
        "epsilon = 1e-3; mean(sqrt((y_pred - y_true)^2 + epsilon^2))"),
        "Charbonnier (smooth L1) penalty sqrt(e^2 + epsilon^2)",
        citation="Charbonnier, Blanc-Feraud, Aubert, Barlaud. Two deterministic half-quadratic "
                 "regularization algorithms for computed imaging. ICIP 1994"),
    LossSpec("pinball", fixed(
        "tau = 0.5; e = y_true - y_pred; mean(maximum(tau*e, (tau - 1)*e))"),
        "pinball (quantile) loss for the tau-quantile",
        citation="Koenker, Bassett. Regression Quantiles. Econometrica 46(1), 1978"),
    LossSpec("gaussian_nll", fixed(
        "mu = sum(one_hot(0)*y_pred, axis=-1); log_var = sum(one_hot(1)*y_pred, axis=-1); "
        "mean(0.5*(log_var + (y_true - mu)^2*exp(-log_var)), axis=-1)"),
        "Gaussian negative log-likelihood (without 0.5*log(2*pi)); y_pred's last axis "
        "is [mean, log variance]",
        citation="Nix, Weigend. Estimating the mean and variance of the target probability "
                 "distribution. ICNN 1994; Kendall, Gal. What Uncertainties Do We Need in "
                 "Bayesian Deep Learning for Computer Vision? NeurIPS 2017"),
    LossSpec("focal_tversky", fixed(
        "alpha = 0.7; beta = 0.3; gamma = 0.75; smooth = 1; tp = sum(y_true*y_pred); "
        "fn = sum(y_true*(1 - y_pred)); fp = sum((1 - y_true)*y_pred); "
        "(1 - (tp + smooth)/(tp + alpha*fn + beta*fp + smooth))^gamma"),
        "focal Tversky loss: (1 - Tversky index)^gamma, alpha weighting false negatives",
        citation="Abraham, Khan. A Novel Focal Tversky Loss Function with Improved Attention "
                 "U-Net for Lesion Segmentation. ISBI 2019"),
    LossSpec("welsch", fixed(
        "c = 1; mean(c^2/2*(1 - exp(-((y_pred - y_true)/c)^2/2)))"),
        "Welsch (Leclerc) robust loss, bounded by c^2/2",
        citation="Dennis, Welsch. Techniques for nonlinear least squares and robust regression. "
                 "Communications in Statistics - Simulation and Computation 7(4), 1978"),
    LossSpec("cauchy", fixed(
        "c = 1; mean(c^2/2*log1p(((y_pred - y_true)/c)^2))"),
        "Cauchy (Lorentzian) robust loss c^2/2*log(1 + (e/c)^2)",
        citation="Black, Anandan. The Robust Estimation of Multiple Motions. CVIU 63(1), 1996; "
                 "Barron. A General and Adaptive Robust Loss Function. CVPR 2019"),
    LossSpec("pearson", fixed(
        "a = y_true - mean(y_true); b = y_pred - mean(y_pred); "
        "1 - sum(a*b)/sqrt(sum(a^2)*sum(b^2))"),
        "1 minus the Pearson correlation of y_true and y_pred over each sample",
        citation="Pearson. Notes on regression and inheritance in the case of two parents. "
                 "Proc. Royal Society of London 58, 1895"),
)
"""The losses from papers, in the order the README lists them."""

_ROWS = {spec.name: spec for spec in LITERATURE}


def _loss(loss: str, /, **keywords: Any) -> "DSLLoss":
    # Positional-only: `name` is one of the keywords (the Keras loss's name).
    return _ROWS[loss].to_loss(**keywords)


def focal(*, alpha: float = 0.25, gamma: float = 2.0, **settings: Unpack[LossSettings]) -> DSLLoss:
    """Sigmoid focal loss on logits, alpha-balanced.

    From: Lin, Goyal, Girshick, He, Dollar. Focal Loss for Dense Object Detection. ICCV 2017.

    >>> focal(alpha=0.5).params
    {'alpha': 0.5, 'gamma': 2.0}
    """
    return _loss("focal", alpha=alpha, gamma=gamma, **settings)


def poly1(*, epsilon: float = 1.0, **settings: Unpack[LossSettings]) -> DSLLoss:
    """Poly-1: softmax cross-entropy plus epsilon*(1 - p_t), on logits.

    From: Leng et al. PolyLoss: A Polynomial Expansion Perspective of Classification Loss
    Functions. ICLR 2022.

    >>> poly1(epsilon=2.0).params
    {'epsilon': 2.0}
    """
    return _loss("poly1", epsilon=epsilon, **settings)


def generalized_cross_entropy(*, q: float = 0.7, **settings: Unpack[LossSettings]) -> DSLLoss:
    """Generalized cross-entropy (1 - p_y^q)/q with integer labels, robust to label noise.

    From: Zhang, Sabuncu. Generalized Cross Entropy Loss for Training Deep Neural Networks with
    Noisy Labels. NeurIPS 2018.

    >>> generalized_cross_entropy(q=1.4).params
    {'q': 1.4}
    """
    return _loss("generalized_cross_entropy", q=q, **settings)


def symmetric_cross_entropy(*, alpha: float = 0.1, beta: float = 1.0,
                            **settings: Unpack[LossSettings]) -> DSLLoss:
    """Alpha*cross-entropy + beta*reverse cross-entropy, on probabilities.

    From: Wang, Ma, Chen, Luo, Yi, Bailey. Symmetric Cross Entropy for Robust Learning with
    Noisy Labels. ICCV 2019.

    >>> symmetric_cross_entropy(alpha=0.2).params
    {'alpha': 0.2, 'beta': 1.0}
    """
    return _loss("symmetric_cross_entropy", alpha=alpha, beta=beta, **settings)


def asymmetric(*, gamma_pos: float = 0.0, gamma_neg: float = 4.0, margin: float = 0.05,
               **settings: Unpack[LossSettings]) -> DSLLoss:
    """Asymmetric loss (ASL) for multi-label logits: focusing and shifted negatives.

    From: Ridnik et al. Asymmetric Loss For Multi-Label Classification. ICCV 2021.

    >>> asymmetric(gamma_pos=0.0).params
    {'gamma_pos': 0.0, 'gamma_neg': 4.0, 'margin': 0.05}
    """
    return _loss("asymmetric", gamma_pos=gamma_pos, gamma_neg=gamma_neg, margin=margin, **settings)


def label_smoothed_cross_entropy(*, smoothing: float = 0.1,
                                 **settings: Unpack[LossSettings]) -> DSLLoss:
    """Softmax cross-entropy against labels mixed with the uniform distribution.

    From: Szegedy, Vanhoucke, Ioffe, Shlens, Wojna. Rethinking the Inception Architecture for
    Computer Vision. CVPR 2016.

    >>> label_smoothed_cross_entropy(smoothing=0.2).params
    {'smoothing': 0.2}
    """
    return _loss("label_smoothed_cross_entropy", smoothing=smoothing, **settings)


def charbonnier(*, epsilon: float = 0.001, **settings: Unpack[LossSettings]) -> DSLLoss:
    """Charbonnier (smooth L1) penalty sqrt(e^2 + epsilon^2).

    From: Charbonnier, Blanc-Feraud, Aubert, Barlaud. Two deterministic half-quadratic
    regularization algorithms for computed imaging. ICIP 1994.

    >>> charbonnier(epsilon=0.002).params
    {'epsilon': 0.002}
    """
    return _loss("charbonnier", epsilon=epsilon, **settings)


def pinball(*, tau: float = 0.5, **settings: Unpack[LossSettings]) -> DSLLoss:
    """Pinball (quantile) loss for the tau-quantile.

    From: Koenker, Bassett. Regression Quantiles. Econometrica 46(1), 1978.

    >>> pinball(tau=1.0).params
    {'tau': 1.0}
    """
    return _loss("pinball", tau=tau, **settings)


def gaussian_nll(**settings: Unpack[LossSettings]) -> DSLLoss:
    """Gaussian negative log-likelihood (without 0.5*log(2*pi)); y_pred's last axis
    is [mean, log variance].

    From: Nix, Weigend. Estimating the mean and variance of the target probability
    distribution. ICNN 1994; Kendall, Gal. What Uncertainties Do We Need in Bayesian Deep
    Learning for Computer Vision? NeurIPS 2017.

    >>> loss = gaussian_nll(reduction="sum")
    >>> loss.name, loss.reduction
    ('gaussian_nll', 'sum')
    """
    return _loss("gaussian_nll", **settings)


def focal_tversky(*, alpha: float = 0.7, beta: float = 0.3, gamma: float = 0.75,
                  smooth: float = 1.0, **settings: Unpack[LossSettings]) -> DSLLoss:
    """Focal Tversky loss: (1 - Tversky index)^gamma, alpha weighting false negatives.

    From: Abraham, Khan. A Novel Focal Tversky Loss Function with Improved Attention U-Net for
    Lesion Segmentation. ISBI 2019.

    >>> focal_tversky(alpha=1.4).params
    {'alpha': 1.4, 'beta': 0.3, 'gamma': 0.75, 'smooth': 1.0}
    """
    return _loss("focal_tversky", alpha=alpha, beta=beta, gamma=gamma, smooth=smooth, **settings)


def welsch(*, c: float = 1.0, **settings: Unpack[LossSettings]) -> DSLLoss:
    """Welsch (Leclerc) robust loss, bounded by c^2/2.

    From: Dennis, Welsch. Techniques for nonlinear least squares and robust regression.
    Communications in Statistics - Simulation and Computation 7(4), 1978.

    >>> welsch(c=2.0).params
    {'c': 2.0}
    """
    return _loss("welsch", c=c, **settings)


def cauchy(*, c: float = 1.0, **settings: Unpack[LossSettings]) -> DSLLoss:
    """Cauchy (Lorentzian) robust loss c^2/2*log(1 + (e/c)^2).

    From: Black, Anandan. The Robust Estimation of Multiple Motions. CVIU 63(1), 1996; Barron.
    A General and Adaptive Robust Loss Function. CVPR 2019.

    >>> cauchy(c=2.0).params
    {'c': 2.0}
    """
    return _loss("cauchy", c=c, **settings)


def pearson(**settings: Unpack[LossSettings]) -> DSLLoss:
    """1 minus the Pearson correlation of y_true and y_pred over each sample.

    From: Pearson. Notes on regression and inheritance in the case of two parents. Proc. Royal
    Society of London 58, 1895.

    >>> loss = pearson(reduction="sum")
    >>> loss.name, loss.reduction
    ('pearson', 'sum')
    """
    return _loss("pearson", **settings)
