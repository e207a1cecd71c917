"""The literature's losses in ``lossdsl.losses`` against independent TensorFlow versions.

Each reference below is written from the paper (or its official code) with TF
ops, not from the lossdsl source; value and gradient must agree in float64, at the
defaults and at other parameter values, and ``lossdsl.check_gradients`` must pass
on each loss. Runs once per Keras backend (marker ``backends``): lossdsl's side is
differentiated by the current backend's own autodiff, the reference always by
``tf.GradientTape`` (TF is always installed), see ``tests/backend_support.py``.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import pytest
import tensorflow as tf

import lossdsl
from backend_support import (BACKEND, float64_enabled, tape_value_and_gradient, to_numpy,
                             value_and_gradient)
from lossdsl import losses

pytestmark = pytest.mark.backends

RNG = np.random.default_rng(11)
BATCH, CLASSES = 6, 4


def _probabilities(shape: tuple[int, ...]) -> np.ndarray:
    values = RNG.uniform(0.05, 1.0, shape)
    return values / values.sum(-1, keepdims=True)


LABELS = RNG.integers(0, CLASSES, BATCH)
ONE_HOT = np.eye(CLASSES)[LABELS]
POINTS: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "multilabel_logits": (RNG.integers(0, 2, (BATCH, CLASSES)).astype(float),
                          RNG.normal(0, 2, (BATCH, CLASSES))),
    "one_hot_logits": (ONE_HOT, RNG.normal(0, 2, (BATCH, CLASSES))),
    "one_hot_probabilities": (ONE_HOT, _probabilities((BATCH, CLASSES))),
    "labels_probabilities": (LABELS.astype(float), _probabilities((BATCH, CLASSES))),
    "regression": (RNG.normal(size=(BATCH, CLASSES)), RNG.normal(size=(BATCH, CLASSES))),
    "mean_and_log_variance": (RNG.normal(size=(BATCH, 1)), RNG.normal(size=(BATCH, 2))),
    # sigmoid(y_pred) > 0.62, above every margin tried: see CHECK_POINTS.
    "multilabel_logits_above_margin": (RNG.integers(0, 2, (BATCH, CLASSES)).astype(float),
                                       np.abs(RNG.normal(0, 2, (BATCH, CLASSES))) + 0.5),
    "segmentation": (RNG.integers(0, 2, (BATCH, 3, 3)).astype(float),
                     RNG.uniform(0.01, 0.99, (BATCH, 3, 3))),
}


# ---------------------------------------------------------------- independent references

def focal_reference(y, x, alpha=0.25, gamma=2.0):
    """Lin et al. 2017, eq. (5), as torchvision's sigmoid_focal_loss, averaged per sample."""
    p = tf.sigmoid(x)
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=x)
    p_t = p * y + (1 - p) * (1 - y)
    alpha_t = alpha * y + (1 - alpha) * (1 - y)
    return tf.reduce_mean(alpha_t * tf.pow(1 - p_t, gamma) * ce, axis=-1)


def poly1_reference(y, x, epsilon=1.0):
    """Leng et al. 2022, Poly-1: CE + epsilon * (1 - P_t)."""
    ce = tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=x)
    p_t = tf.reduce_sum(y * tf.nn.softmax(x), axis=-1)
    return ce + epsilon * (1 - p_t)


def generalized_ce_reference(labels, p, q=0.7):
    """Zhang & Sabuncu 2018, L_q = (1 - f_j(x)^q) / q."""
    p_true = tf.gather(p, tf.cast(labels, tf.int32), axis=1, batch_dims=1)
    return (1 - tf.pow(p_true, q)) / q


def symmetric_ce_reference(y, p, alpha=0.1, beta=1.0):
    """Wang et al. 2019, SL = alpha*CE + beta*RCE, with log 0 clipped to log 1e-4 (their A=-4)."""
    p = tf.clip_by_value(p, 1e-7, 1.0)
    ce = -tf.reduce_sum(y * tf.math.log(p), axis=-1)
    rce = -tf.reduce_sum(p * tf.math.log(tf.clip_by_value(y, 1e-4, 1.0)), axis=-1)
    return alpha * ce + beta * rce


def asymmetric_reference(y, x, gamma_pos=0.0, gamma_neg=4.0, margin=0.05):
    """Ridnik et al. 2021, following the official AsymmetricLoss code (eps=1e-8)."""
    xs_pos = tf.sigmoid(x)
    xs_neg = tf.minimum(1 - xs_pos + margin, 1.0)
    loss = y * tf.math.log(tf.maximum(xs_pos, 1e-8)) + \
        (1 - y) * tf.math.log(tf.maximum(xs_neg, 1e-8))
    p_t = xs_pos * y + xs_neg * (1 - y)
    gamma = gamma_pos * y + gamma_neg * (1 - y)
    return -tf.reduce_sum(loss * tf.pow(1 - p_t, gamma), axis=-1)


def label_smoothed_ce_reference(y, x, smoothing=0.1):
    """Szegedy et al. 2016, section 7: q' = (1 - eps) q + eps / K."""
    target = (1 - smoothing) * y + smoothing / y.shape[-1]
    return tf.nn.softmax_cross_entropy_with_logits(labels=target, logits=x)


def charbonnier_reference(y, x, epsilon=1e-3):
    return tf.reduce_mean(tf.sqrt(tf.square(x - y) + epsilon**2), axis=-1)


def pinball_reference(y, x, tau=0.5):
    """Koenker & Bassett 1978: rho_tau(u) = u (tau - 1[u < 0])."""
    u = y - x
    return tf.reduce_mean(u * (tau - tf.cast(u < 0, u.dtype)), axis=-1)


def gaussian_nll_reference(y, x):
    """Nix & Weigend 1994 / Kendall & Gal 2017, y_pred = [mean, log variance]."""
    mean, variance = x[:, 0], tf.exp(x[:, 1])
    return 0.5 * (tf.math.log(variance) + tf.square(y[:, 0] - mean) / variance)


def focal_tversky_reference(y, x, alpha=0.7, beta=0.3, gamma=0.75, smooth=1.0):
    """Abraham & Khan 2019, FTL = (1 - TI)^gamma, alpha on false negatives."""
    axes = list(range(1, len(y.shape)))
    tp = tf.reduce_sum(y * x, axes)
    fn = tf.reduce_sum(y * (1 - x), axes)
    fp = tf.reduce_sum((1 - y) * x, axes)
    index = (tp + smooth) / (tp + alpha * fn + beta * fp + smooth)
    return tf.pow(1 - index, gamma)


def welsch_reference(y, x, c=1.0):
    r = (x - y) / c
    return tf.reduce_mean(c**2 / 2 * (1 - tf.exp(-0.5 * r * r)), axis=-1)


def cauchy_reference(y, x, c=1.0):
    r = (x - y) / c
    return tf.reduce_mean(c**2 / 2 * tf.math.log(1 + r * r), axis=-1)


def pearson_reference(y, x):
    yc = y - tf.reduce_mean(y, axis=-1, keepdims=True)
    xc = x - tf.reduce_mean(x, axis=-1, keepdims=True)
    return 1 - tf.reduce_sum(yc * xc, -1) / (tf.norm(yc, axis=-1) * tf.norm(xc, axis=-1))


CASES: list[tuple[str, Callable[..., tf.Tensor], str, dict[str, float]]] = [
    ("focal", focal_reference, "multilabel_logits", {}),
    ("focal", focal_reference, "multilabel_logits", {"alpha": 0.6, "gamma": 1.5}),
    ("poly1", poly1_reference, "one_hot_logits", {}),
    ("poly1", poly1_reference, "one_hot_logits", {"epsilon": -0.5}),
    ("generalized_cross_entropy", generalized_ce_reference, "labels_probabilities", {}),
    ("generalized_cross_entropy", generalized_ce_reference, "labels_probabilities", {"q": 0.3}),
    ("symmetric_cross_entropy", symmetric_ce_reference, "one_hot_probabilities", {}),
    ("symmetric_cross_entropy", symmetric_ce_reference, "one_hot_probabilities",
     {"alpha": 6.0, "beta": 0.1}),
    ("asymmetric", asymmetric_reference, "multilabel_logits", {}),
    ("asymmetric", asymmetric_reference, "multilabel_logits",
     {"gamma_pos": 1.0, "gamma_neg": 2.0, "margin": 0.2}),
    ("label_smoothed_cross_entropy", label_smoothed_ce_reference, "one_hot_logits", {}),
    ("label_smoothed_cross_entropy", label_smoothed_ce_reference, "one_hot_logits",
     {"smoothing": 0.3}),
    ("charbonnier", charbonnier_reference, "regression", {}),
    ("charbonnier", charbonnier_reference, "regression", {"epsilon": 0.5}),
    ("pinball", pinball_reference, "regression", {}),
    ("pinball", pinball_reference, "regression", {"tau": 0.9}),
    ("gaussian_nll", gaussian_nll_reference, "mean_and_log_variance", {}),
    ("focal_tversky", focal_tversky_reference, "segmentation", {}),
    ("focal_tversky", focal_tversky_reference, "segmentation",
     {"alpha": 0.5, "beta": 0.5, "gamma": 2.0, "smooth": 0.1}),
    ("welsch", welsch_reference, "regression", {}),
    ("welsch", welsch_reference, "regression", {"c": 0.5}),
    ("cauchy", cauchy_reference, "regression", {}),
    ("cauchy", cauchy_reference, "regression", {"c": 2.0}),
    ("pearson", pearson_reference, "regression", {}),
]


def _case_id(case: tuple) -> str:
    name, _, _, params = case
    return name + "".join(f"-{k}={v}" for k, v in params.items())


@pytest.mark.parametrize("case", CASES, ids=[_case_id(case) for case in CASES])
def test_matches_independent_tensorflow_reference(case: tuple) -> None:
    name, reference, points, params = case
    y_true, y_pred = POINTS[points]
    with float64_enabled():  # JAX: built with x64 on, as a float64 user's loss would be
        loss = losses.make(name, reduction="none", dtype="float64", **params)
    value, gradient = value_and_gradient(loss, y_true, y_pred, dtype="float64")
    expected, expected_gradient = tape_value_and_gradient(
        lambda t, p: reference(t, p, **params), y_true, y_pred)
    assert value.dtype == gradient.dtype == np.float64, (BACKEND, value.dtype, gradient.dtype)
    np.testing.assert_allclose(value, expected, rtol=1e-9, atol=1e-12, err_msg=BACKEND)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-8, atol=1e-12,
                               err_msg=BACKEND)


# Where sigmoid(y_pred) <= margin, ASL's shifted probability max(p - margin, 0) is 0 and
# SymPy's d/dx x^g = g*x^g/x is 0/0 in the derived formula (the tape, which training
# uses, is finite there: the reference test above covers such points). The symbolic
# formula is checked where it is defined.
CHECK_POINTS = {"asymmetric": "multilabel_logits_above_margin"}


@pytest.mark.parametrize("case", CASES, ids=[_case_id(case) for case in CASES])
def test_symbolic_gradient_matches_the_tape(case: tuple) -> None:
    name, _, points, params = case
    y_true, y_pred = POINTS[CHECK_POINTS.get(name, points)]
    report = lossdsl.check_gradients(losses.make(name, **params), y_true, y_pred)
    assert report.passed, str(report)
    assert report.points == y_pred.size


def test_asymmetric_tape_gradient_is_finite_where_negatives_are_below_the_margin() -> None:
    y_true = np.zeros((1, 3))
    y_pred = np.array([[-4.0, -3.0, 0.5]])  # sigmoid: 0.018, 0.047 (<= 0.05), 0.62
    with float64_enabled():
        loss = losses.asymmetric(dtype="float64")
    _, gradient = value_and_gradient(loss, y_true, y_pred, dtype="float64")
    assert np.all(np.isfinite(gradient))
    np.testing.assert_array_equal(gradient[0, :2], 0.0)  # below the margin: no push
    assert gradient[0, 2] > 0


def test_generalized_cross_entropy_equals_keras() -> None:
    """Keras ships this one too: CategoricalGeneralizedCrossEntropy, integer labels."""
    y_true = np.array([0, 1, 0, 1])
    y_pred = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4], [0.4, 0.6]])
    for q in (0.5, 0.7, 0.8):
        ours = losses.generalized_cross_entropy(q=q, reduction="none")
        theirs = keras.losses.CategoricalGeneralizedCrossEntropy(q=q, reduction="none")
        np.testing.assert_allclose(to_numpy(ours(y_true, y_pred)),
                                   to_numpy(theirs(y_true, y_pred)), rtol=1e-6)


def test_every_literature_loss_is_covered_and_cited() -> None:
    literature = {spec.name for spec in losses.available() if not spec.keras}
    boxes = {"iou", "giou", "diou"}  # in tests/test_losses_boxes.py
    pairs = {"contrastive", "batch_contrastive", "triplet_hard", "triplet_semihard", "triplet_all",
             "npairs", "ntxent", "clip"}
    assert literature == {case[0] for case in CASES} | boxes | pairs  # tests/test_metric_learning.py
    for spec in losses.available():
        assert bool(spec.keras) != bool(spec.citation), spec.name
        assert callable(getattr(losses, spec.name)), spec.name

