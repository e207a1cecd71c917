"""The box losses (``iou``, ``giou``, ``diou``) and ``gaussian_nll``: losses written with columns.

Boxes are ``[x1, y1, x2, y2]`` along the last axis. Each box loss is checked against
an independent TensorFlow version written from torchvision's formulas
(``_loss_inter_union``, ``generalized_box_iou_loss``, ``_diou_iou_loss``: ``eps`` added
to each denominator), value and gradient in float64, with the backend's autodiff and
with ``gradient="symbolic"``, on overlapping, disjoint and nested boxes, one box per
sample or several; ``giou`` also against TF Addons' ``giou_loss`` (``divide_no_nan``)
and its published example. ``gaussian_nll`` is checked against PyTorch's
``gaussian_nll_loss``. Each loss trains two steps in ``model.fit`` and reloads with
its model. Runs once per Keras backend (marker ``backends``), as
tests/test_losses_literature.py does.
"""

from __future__ import annotations

import math
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

RNG = np.random.default_rng(23)
BOX_LOSSES = ("iou", "giou", "diou")


# ---------------------------------------------------------------- boxes

def _boxes(count: int, low: float = 0.8) -> np.ndarray:
    corner = RNG.uniform(-2, 2, (count, 2))
    size = RNG.uniform(low, 2.5, (count, 2))
    return np.concatenate([corner, corner + size], axis=-1)


def _overlapping(truth: np.ndarray) -> np.ndarray:
    """Each corner moved by less than a quarter of the smallest side: still valid, overlapping."""
    return truth + RNG.uniform(-0.25, 0.25, truth.shape)


def _disjoint(truth: np.ndarray) -> np.ndarray:
    """Moved right past the box by a gap, and up or down by anything."""
    width = truth[:, 2] - truth[:, 0]
    shift = np.stack([width + RNG.uniform(0.1, 1.0, len(truth)),
                      RNG.uniform(-3, 3, len(truth))], axis=-1)
    return truth + np.concatenate([shift, shift], axis=-1)


def _nested(outer: np.ndarray) -> np.ndarray:
    """Inside ``outer``, each side moved in by 5% to 40% of the box's size."""
    size = np.concatenate([outer[:, 2:] - outer[:, :2]] * 2, axis=-1)
    inward = RNG.uniform(0.05, 0.4, outer.shape) * size * np.array([1, 1, -1, -1])
    return outer + inward


def _mixed(count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` of each: overlapping, disjoint, predicted inside the truth, truth inside."""
    truth = [_boxes(count) for _ in range(4)]
    outer = _boxes(count)
    y_true = np.concatenate([truth[0], truth[1], truth[2], _nested(outer)])
    y_pred = np.concatenate([_overlapping(truth[0]), _disjoint(truth[1]), _nested(truth[2]),
                             outer])
    return y_true, y_pred


POINTS: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "mixed": _mixed(3),
    "boxes_per_sample": tuple(a.reshape(2, 6, 4) for a in _mixed(3)),
    "random": (_boxes(8, low=0.1), _boxes(8, low=0.1)),
}


# ---------------------------------------------------------------- independent references

def _inter_union(y, x):
    """torchvision's ``_loss_inter_union``: masked intersection, unclamped areas."""
    x1, y1, x2, y2 = tf.unstack(x, 4, axis=-1)
    x1g, y1g, x2g, y2g = tf.unstack(y, 4, axis=-1)
    xk1, yk1 = tf.maximum(x1, x1g), tf.maximum(y1, y1g)
    xk2, yk2 = tf.minimum(x2, x2g), tf.minimum(y2, y2g)
    mask = (yk2 > yk1) & (xk2 > xk1)
    inter = tf.where(mask, (xk2 - xk1) * (yk2 - yk1), tf.zeros_like(x1))
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    return inter, union


def _enclosing(y, x):
    x1, y1, x2, y2 = tf.unstack(x, 4, axis=-1)
    x1g, y1g, x2g, y2g = tf.unstack(y, 4, axis=-1)
    return tf.maximum(x2, x2g) - tf.minimum(x1, x1g), tf.maximum(y2, y2g) - tf.minimum(y1, y1g)


def iou_reference(y, x, eps=1e-7):
    """1 - IoU, as in torchvision's box losses (Rezatofighi et al. 2019, L_IoU)."""
    inter, union = _inter_union(y, x)
    return 1 - inter / (union + eps)


def giou_reference(y, x, eps=1e-7):
    """torchvision's ``generalized_box_iou_loss`` (Rezatofighi et al. 2019, Algorithm 1)."""
    inter, union = _inter_union(y, x)
    width, height = _enclosing(y, x)
    area_c = width * height
    return 1 - (inter / (union + eps) - (area_c - union) / (area_c + eps))


def diou_reference(y, x, eps=1e-7):
    """torchvision's ``_diou_iou_loss`` (Zheng et al. 2020, eq. 6)."""
    inter, union = _inter_union(y, x)
    width, height = _enclosing(y, x)
    x1, y1, x2, y2 = tf.unstack(x, 4, axis=-1)
    x1g, y1g, x2g, y2g = tf.unstack(y, 4, axis=-1)
    centers = ((x1 + x2) / 2 - (x1g + x2g) / 2) ** 2 + ((y1 + y2) / 2 - (y1g + y2g) / 2) ** 2
    return 1 - inter / (union + eps) + centers / (width**2 + height**2 + eps)


def giou_addons(y, x):
    """TF Addons' ``giou_loss``: widths clamped at 0, ``divide_no_nan`` (x/y order is moot)."""
    zero = tf.zeros_like(x[..., 0])
    x1, y1, x2, y2 = tf.unstack(x, 4, axis=-1)
    x1g, y1g, x2g, y2g = tf.unstack(y, 4, axis=-1)
    area = tf.maximum(zero, x2 - x1) * tf.maximum(zero, y2 - y1)
    area_g = tf.maximum(zero, x2g - x1g) * tf.maximum(zero, y2g - y1g)
    inter = tf.maximum(zero, tf.minimum(x2, x2g) - tf.maximum(x1, x1g)) * \
        tf.maximum(zero, tf.minimum(y2, y2g) - tf.maximum(y1, y1g))
    union = area + area_g - inter
    width, height = _enclosing(y, x)
    area_c = tf.maximum(zero, width) * tf.maximum(zero, height)
    return 1 - (tf.math.divide_no_nan(inter, union) -
                tf.math.divide_no_nan(area_c - union, area_c))


REFERENCES: dict[str, Callable[..., tf.Tensor]] = {
    "iou": iou_reference, "giou": giou_reference, "diou": diou_reference}
CASES = [(name, points, params) for name in BOX_LOSSES for points in POINTS
         for params in ({}, {"eps": 0.5})]


def _case_id(case: tuple) -> str:
    name, points, params = case
    return f"{name}-{points}" + "".join(f"-{k}={v}" for k, v in params.items())


def test_the_points_are_what_their_names_say() -> None:
    y_true, y_pred = (tf.constant(a) for a in POINTS["mixed"])
    inter, _ = _inter_union(y_true, y_pred)
    inter = inter.numpy()
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    assert np.all(inter[:3] > 0) and np.all(inter[3:6] == 0)
    np.testing.assert_allclose(inter[6:9], area(POINTS["mixed"][1][6:9]))   # predicted inside
    np.testing.assert_allclose(inter[9:], area(POINTS["mixed"][0][9:]))     # truth inside
    for y, x in POINTS.values():
        assert np.all(y[..., 2:] > y[..., :2]) and np.all(x[..., 2:] > x[..., :2])


@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
@pytest.mark.parametrize("case", CASES, ids=[_case_id(case) for case in CASES])
def test_matches_the_torchvision_formulas(case: tuple, gradient: str) -> None:
    name, points, params = case
    y_true, y_pred = POINTS[points]
    with float64_enabled():
        loss = losses.make(name, reduction="none", dtype="float64", gradient=gradient, **params)
    value, grad = value_and_gradient(loss, y_true, y_pred, dtype="float64")
    expected, expected_gradient = tape_value_and_gradient(
        lambda t, p: REFERENCES[name](t, p, **params), y_true, y_pred)
    assert value.shape == y_true.shape[:-1] and grad.shape == y_pred.shape  # one value per box
    np.testing.assert_allclose(value, expected, rtol=1e-9, atol=1e-12, err_msg=BACKEND)
    np.testing.assert_allclose(grad, expected_gradient, rtol=1e-8, atol=1e-12, err_msg=BACKEND)


@pytest.mark.parametrize("name", BOX_LOSSES)
def test_symbolic_gradient_matches_the_tape(name: str) -> None:
    for y_true, y_pred in POINTS.values():
        report = lossdsl.check_gradients(losses.make(name), y_true, y_pred)
        assert report.passed, str(report)
        assert report.points == y_pred.size


def test_giou_matches_tensorflow_addons_away_from_empty_boxes() -> None:
    for y_true, y_pred in POINTS.values():
        expected, expected_gradient = tape_value_and_gradient(giou_addons, y_true, y_pred)
        with float64_enabled():
            loss = losses.giou(reduction="none", dtype="float64")
        value, grad = value_and_gradient(loss, y_true, y_pred, dtype="float64")
        np.testing.assert_allclose(value, expected, rtol=1e-6)
        np.testing.assert_allclose(grad, expected_gradient, rtol=1e-5, atol=1e-7)


HAND_WORKED = [
    # identical boxes: IoU = A/(A + eps), no enclosing-box or center penalty
    ("iou", [0, 0, 2, 3], [0, 0, 2, 3], 1e-7 / 6),
    ("giou", [0, 0, 2, 3], [0, 0, 2, 3], 1e-7 / 6),
    ("diou", [0, 0, 2, 3], [0, 0, 2, 3], 1e-7 / 6),
    # disjoint unit boxes one apart: enclosing box 3 x 1, centers 2 apart
    ("iou", [0, 0, 1, 1], [2, 0, 3, 1], 1.0),
    ("giou", [0, 0, 1, 1], [2, 0, 3, 1], 1 + (3 - 2) / 3),
    ("diou", [0, 0, 1, 1], [2, 0, 3, 1], 1 + 4 / 10),
    # half overlapping 2 x 2 boxes: IoU 2/6, enclosing box 3 x 2 = the union
    ("iou", [0, 0, 2, 2], [1, 0, 3, 2], 1 - 2 / 6),
    ("giou", [0, 0, 2, 2], [1, 0, 3, 2], 1 - 2 / 6),
    ("diou", [0, 0, 2, 2], [1, 0, 3, 2], 1 - 2 / 6 + 1 / 13),
    # a 2 x 2 box in the middle of a 4 x 4 one: IoU 1/4, same center, enclosing = the union
    ("iou", [0, 0, 4, 4], [1, 1, 3, 3], 0.75),
    ("giou", [0, 0, 4, 4], [1, 1, 3, 3], 0.75),
    ("diou", [0, 0, 4, 4], [1, 1, 3, 3], 0.75),
]


@pytest.mark.parametrize("name, box_true, box_pred, expected", HAND_WORKED)
def test_hand_worked_values(name: str, box_true: list, box_pred: list, expected: float) -> None:
    with float64_enabled():
        loss = losses.make(name, reduction="none", dtype="float64")
        value = to_numpy(loss(np.array([box_true], float), np.array([box_pred], float)))
    np.testing.assert_allclose(value, [expected], rtol=1e-6, atol=1e-12)


def test_giou_reproduces_the_tensorflow_addons_docstring_example() -> None:
    boxes1 = np.array([[4.0, 3.0, 7.0, 5.0], [5.0, 6.0, 10.0, 7.0]])
    boxes2 = np.array([[3.0, 4.0, 6.0, 8.0], [14.0, 14.0, 15.0, 15.0]])
    value = to_numpy(losses.giou(reduction="none")(boxes1, boxes2))
    np.testing.assert_allclose(value, [1.075, 1.9333333], rtol=1e-6)


@pytest.mark.parametrize("name", BOX_LOSSES)
def test_one_value_per_box_under_each_keras_reduction(name: str) -> None:
    y_true, y_pred = POINTS["boxes_per_sample"]
    per_box = to_numpy(losses.make(name, reduction="none")(y_true, y_pred))
    assert per_box.shape == (2, 6)
    weights = np.array([0.5, 2.0])
    np.testing.assert_allclose(to_numpy(losses.make(name)(y_true, y_pred)), per_box.mean(),
                               rtol=1e-6)
    np.testing.assert_allclose(to_numpy(losses.make(name, reduction="sum")(y_true, y_pred)),
                               per_box.sum(), rtol=1e-6)
    # As for Keras's own losses, weights are per box, or (batch, 1) (a (batch,) one does not
    # broadcast against (batch, boxes), in Keras either).
    for weight in (weights[:, None], RNG.uniform(0, 1, (2, 6))):
        weighted = losses.make(name)(y_true, y_pred, sample_weight=weight)
        np.testing.assert_allclose(to_numpy(weighted), (per_box * weight).mean(), rtol=1e-6)


def test_a_box_without_four_columns_is_refused() -> None:
    with pytest.raises(lossdsl.DSLShapeError, match="column index 3 is out of range"):
        losses.iou()(np.zeros((2, 3)), np.ones((2, 3)))


def test_every_box_loss_is_covered() -> None:
    box_losses = {spec.name for spec in losses.available() if "y_pred[..., 3]" in spec.source}
    assert box_losses == set(BOX_LOSSES) == set(REFERENCES)


# ---------------------------------------------------------------- gaussian_nll

def test_gaussian_nll_picks_its_columns() -> None:
    source = losses.REGISTRY["gaussian_nll"].source
    assert "y_pred[..., 0]" in source and "y_pred[..., 1]" in source
    assert "one_hot" not in source


def test_gaussian_nll_hand_worked_value() -> None:
    """y = 3, mean 1, variance 2: 0.5*(log 2 + (3 - 1)^2/2); y = 1, mean 0, variance 1: 0.5."""
    with float64_enabled():
        loss = losses.gaussian_nll(reduction="none", dtype="float64")
        value = to_numpy(loss(np.array([[3.0], [1.0]]), np.array([[1.0, math.log(2)], [0, 0]])))
    np.testing.assert_allclose(value, [0.5 * math.log(2) + 1, 0.5], rtol=1e-12)


@pytest.mark.parametrize("shape", [(6,), (2, 3)])
def test_gaussian_nll_matches_pytorch(shape: tuple[int, ...]) -> None:
    """torch.nn.functional.gaussian_nll_loss, var = exp(log variance) (above its 1e-6 clamp)."""
    torch = pytest.importorskip("torch")
    y_true = RNG.normal(size=(*shape, 1))
    y_pred = np.concatenate([RNG.normal(size=(*shape, 1)), RNG.uniform(-2, 2, (*shape, 1))], -1)
    prediction = torch.tensor(y_pred, dtype=torch.float64, requires_grad=True)
    expected = torch.nn.functional.gaussian_nll_loss(
        prediction[..., :1], torch.tensor(y_true), torch.exp(prediction[..., 1:]),
        reduction="none")[..., 0]
    expected.sum().backward()
    with float64_enabled():
        loss = losses.gaussian_nll(reduction="none", dtype="float64")
    value, grad = value_and_gradient(loss, y_true, y_pred, dtype="float64")
    np.testing.assert_allclose(value, expected.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(grad, prediction.grad.numpy(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- training and saving

TRAINED = [("iou", 4, None), ("giou", 4, None), ("diou", 4, None), ("giou", 4, 2),
           ("gaussian_nll", 2, None)]


@pytest.mark.parametrize("name, units, boxes", TRAINED)
def test_trains_two_steps_and_reloads_with_its_model(name, units, boxes, tmp_path) -> None:
    x = RNG.normal(size=(16, 3)).astype("float32")
    if name == "gaussian_nll":
        y, bias = RNG.normal(size=(16, 1)).astype("float32"), np.zeros(2)
    else:
        y = _boxes(16 * (boxes or 1)).astype("float32")
        y = y.reshape(16, boxes, 4) if boxes else y
        bias = np.array([-1.0, -1.0, 1.0, 1.0])  # a valid box before training
    outputs = units * (boxes or 1)
    layers = [keras.Input((3,)), keras.layers.Dense(outputs, kernel_initializer="zeros")]
    if boxes:
        layers.append(keras.layers.Reshape((boxes, units)))
    model = keras.Sequential(layers)
    model.layers[0].bias.assign(np.tile(bias, boxes or 1).astype("float32"))
    loss = losses.make(name)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=loss)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # two steps
    assert np.all(np.isfinite(history.history["loss"]))
    assert np.any(model.layers[0].kernel.numpy() != 0)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(reloaded.loss, lossdsl.DSLLoss)
    assert reloaded.loss.get_config() == loss.get_config()
    np.testing.assert_allclose(to_numpy(reloaded.loss(y, reloaded(x))),
                               to_numpy(loss(y, model(x))), rtol=1e-6)
