"""The library rows of the losses from the literature: :data:`LITERATURE`, each with its citation.

Each source is written from its paper (or the reference code the docs name), with
its parameters' defaults bound in the source. The box losses share :data:`BOXES`:
corners ``[x1, y1, x2, y2]`` along the last axis, picked as columns ``x[..., k]``,
divisions guarded as torchvision guards them (``eps = 1e-7`` added to each
denominator). The public callables are in :mod:`lossdsl.losses.literature`.

    >>> {spec.name: spec.params for spec in LITERATURE}["diou"]
    {'eps': 1e-07}
"""

from __future__ import annotations

from lossdsl.losses.spec import EPSILON, LossSpec, fixed

BOXES = ("eps = 1e-7; x1 = y_pred[..., 0]; y1 = y_pred[..., 1]; x2 = y_pred[..., 2]; "
         "y2 = y_pred[..., 3]; x1g = y_true[..., 0]; y1g = y_true[..., 1]; x2g = y_true[..., 2]; "
         "y2g = y_true[..., 3]; inter = maximum(minimum(x2, x2g) - maximum(x1, x1g), 0)"
         "*maximum(minimum(y2, y2g) - maximum(y1, y1g), 0); "
         "union = (x2 - x1)*(y2 - y1) + (x2g - x1g)*(y2g - y1g) - inter; "
         "iou = inter/(union + eps); ")
"""The box losses' shared bindings: corners of y_pred and of y_true (``g``), intersection,
union and IoU, as torchvision's ``_loss_inter_union`` (areas are not clamped: boxes need
x2 >= x1 and y2 >= y1)."""

ENCLOSING = "cw = maximum(x2, x2g) - minimum(x1, x1g); ch = maximum(y2, y2g) - minimum(y1, y1g); "
"""Width and height of the smallest box enclosing both boxes."""

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
        "mu = y_pred[..., 0]; log_var = y_pred[..., 1]; "
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
    LossSpec("iou", fixed(f"{BOXES}1 - iou"),
        "IoU loss 1 - IoU of boxes [x1, y1, x2, y2] along the last axis, one value per box",
        citation="Yu, Jiang, Wang, Cao, Huang. UnitBox: An Advanced Object Detection Network. "
                 "ACM Multimedia 2016; Rezatofighi et al. Generalized Intersection over Union. "
                 "CVPR 2019"),
    LossSpec("giou", fixed(
        f"{BOXES}{ENCLOSING}area_c = cw*ch; 1 - iou + (area_c - union)/(area_c + eps)"),
        "generalized IoU loss 1 - GIoU: 1 - IoU plus the enclosing box's share outside the union",
        citation="Rezatofighi, Tsoi, Gwak, Sadeghian, Reid, Savarese. Generalized Intersection "
                 "over Union: A Metric and A Loss for Bounding Box Regression. CVPR 2019"),
    LossSpec("diou", fixed(
        f"{BOXES}{ENCLOSING}rho2 = ((x1 + x2 - x1g - x2g)^2 + (y1 + y2 - y1g - y2g)^2)/4; "
        "1 - iou + rho2/(cw^2 + ch^2 + eps)"),
        "distance-IoU loss: 1 - IoU plus the squared distance of the box centers over the "
        "enclosing box's squared diagonal",
        citation="Zheng, Wang, Liu, Li, Ye, Ren. Distance-IoU Loss: Faster and Better Learning "
                 "for Bounding Box Regression. AAAI 2020"),
)
"""The losses from papers, in the order the README lists them."""
