"""Losses from the literature, each with its citation, as callables.

Each callable compiles its row of :data:`~lossdsl.losses.literature_sources.LITERATURE`.
Keywords work as for the Keras built-ins (:mod:`lossdsl.losses.keras_builtins`):
parameters override their defaults in the source, :class:`~lossdsl.losses.spec.LossSettings`
go to the Keras loss. ``tests/test_losses_library.py`` checks each signature against its row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Unpack

from lossdsl.losses.literature_sources import LITERATURE
from lossdsl.losses.spec import LossSettings

if TYPE_CHECKING:
    from lossdsl.keras.loss import DSLLoss

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


def iou(*, eps: float = 1e-07, **settings: Unpack[LossSettings]) -> DSLLoss:
    """IoU loss 1 - IoU of boxes [x1, y1, x2, y2] along the last axis, one value per box.

    y_true and y_pred are boxes (x2 >= x1, y2 >= y1) of shape (batch, 4) or (batch, boxes, 4);
    the per-sample loss has shape (batch,) or (batch, boxes). eps is added to the union, as
    torchvision does.

    From: Yu, Jiang, Wang, Cao, Huang. UnitBox: An Advanced Object Detection Network. ACM
    Multimedia 2016; Rezatofighi et al. Generalized Intersection over Union. CVPR 2019.

    >>> iou(eps=1e-9).params
    {'eps': 1e-09}
    """
    return _loss("iou", eps=eps, **settings)


def giou(*, eps: float = 1e-07, **settings: Unpack[LossSettings]) -> DSLLoss:
    """Generalized IoU loss 1 - GIoU: 1 - IoU plus the enclosing box's share outside the union.

    Boxes and shapes as for :func:`iou`. As torchvision's generalized_box_iou_loss: eps is
    added to the union and to the enclosing box's area (TF Addons' GIoULoss divides with
    divide_no_nan instead: the same away from empty boxes).

    From: Rezatofighi, Tsoi, Gwak, Sadeghian, Reid, Savarese. Generalized Intersection over
    Union: A Metric and A Loss for Bounding Box Regression. CVPR 2019.

    >>> import numpy as np  # two disjoint unit boxes: GIoU = 0 - 1/3
    >>> round(float(giou()(np.array([[0.0, 0, 1, 1]]), np.array([[2.0, 0, 3, 1]]))), 6)
    1.333333
    """
    return _loss("giou", eps=eps, **settings)


def diou(*, eps: float = 1e-07, **settings: Unpack[LossSettings]) -> DSLLoss:
    """Distance-IoU loss: 1 - IoU plus the squared distance of the box centers over the
    enclosing box's squared diagonal.

    Boxes and shapes as for :func:`iou`. As torchvision's distance_box_iou_loss: eps is added
    to the union and to the squared diagonal.

    From: Zheng, Wang, Liu, Li, Ye, Ren. Distance-IoU Loss: Faster and Better Learning for
    Bounding Box Regression. AAAI 2020.

    >>> diou(eps=1e-9).params
    {'eps': 1e-09}
    """
    return _loss("diou", eps=eps, **settings)
