"""Every Keras-parity loss of ``lossdsl.losses`` equals its ``keras.losses`` built-in.

Same value and gradient, with and without ``sample_weight``, for every constructor option,
on the inputs of Keras's ``keras/src/losses/losses_test.py`` and on random inputs. Run once
per Keras backend (marker ``backends``), both sides differentiated by that backend's own
autodiff (``tests/backend_support.py``): matching Keras on TensorFlow only is not enough.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import lossdsl
from backend_support import (BACKEND, BuiltinCall, float64_enabled, keras_builtin_inexact_here,
                             keras_builtins_on_tensorflow, to_numpy, value_and_gradient)
from lossdsl import losses

pytestmark = pytest.mark.backends

RNG = np.random.default_rng(7)


def _one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[labels]


def _random_probabilities(shape: tuple[int, ...]) -> np.ndarray:
    values = RNG.uniform(0.05, 1.0, shape)
    return (values / values.sum(-1, keepdims=True)).astype(np.float32)


_LABELS = RNG.integers(0, 4, 5)

# Inputs by kind: Keras's test inputs (keras/src/losses/losses_test.py) first, then random ones.
INPUTS: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {
    "regression": [
        (np.array([[1, 9, 2], [-5, -2, 6]]), np.array([[4, 8, 12], [8, 1, 3]], "float32")),
        (np.array([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]]),
         np.array([[0.9, 0.2, 0.2], [0.8, 0.4, 0.6]])),
        (np.asarray([1, 9, 2, -5, -2, 6]).reshape(2, 3, 1),
         np.asarray([4, 8, 12, 8, 1, 3], "float32").reshape(2, 3, 1)),
        (RNG.normal(size=(5, 4)), RNG.normal(size=(5, 4))),
    ],
    "positive": [  # Poisson, KL: Keras's inputs, then random positive ones
        (np.asarray([4, 8, 12, 8, 1, 3], "float32").reshape(2, 3),
         np.asarray([1, 9, 2, 5, 2, 6], "float32").reshape(2, 3)),
        (np.asarray([0.5, 0.8, 0.12, 0.7, 0.43, 0.8], "float32").reshape(2, 3),
         np.asarray([0.4, 0.9, 0.12, 0.36, 0.3, 0.4], "float32").reshape(2, 3)),
        (RNG.uniform(0.01, 2.0, (5, 4)), RNG.uniform(0.01, 2.0, (5, 4))),
    ],
    "hinge": [
        (np.array([[0.0, 1.0], [0.0, 0.0]]), np.array([[0.6, 0.4], [0.4, 0.6]])),
        (np.array([[-1.0, 1.0, -1.0, 1.0], [-1.0, -1.0, 1.0, 1.0]]),
         np.array([[-0.3, 0.2, -0.1, 1.6], [-0.25, -1.0, 0.5, 0.6]])),
        (RNG.choice([-1.0, 1.0], (5, 4)), RNG.normal(size=(5, 4))),
    ],
    "binary_probabilities": [
        (np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], "float32"),
         np.array([[0.9, 0.1, 0.2], [0.3, 0.8, 0.1], [0.1, 0.2, 0.7]], "float32")),
        (np.array([1, 0, 1, 0]).reshape([2, 2]), np.array([1, 1, 1, 0], "float32").reshape([2, 2])),
        (np.asarray([1, 0, 1, 0]).reshape([2, 2]),
         np.asarray([0.9, 0.8, 0.7, 0.2], "float32").reshape([2, 2])),
        (RNG.integers(0, 2, (5, 4)).astype("float32"), RNG.uniform(0.02, 0.98, (5, 4))),
    ],
    "binary_logits": [
        (np.array([[1, 0, 1], [0, 1, 1]]), np.array([[10.0, -10.0, 10.0], [10.0, 10.0, -10.0]])),
        (np.array([[1, 1, 0], [0, 1, 0]], "float32"),
         np.array([[1.5, -2.7, 2.9], [-3.8, 1.2, -4.5]])),
        (RNG.integers(0, 2, (5, 4)).astype("float32"), RNG.normal(0, 3, (5, 4))),
    ],
    "categorical_probabilities": [
        (np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]]),
         np.array([[0.9, 0.05, 0.05], [0.5, 0.89, 0.6], [0.05, 0.01, 0.94]], "float32")),
        (np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], "int64"),
         np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], "float32")),
        (_one_hot(_LABELS, 4), _random_probabilities((5, 4))),
    ],
    "categorical_logits": [
        (np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]]),
         np.array([[8.0, 1.0, 1.0], [0.0, 9.0, 1.0], [2.0, 3.0, 5.0]])),
        (np.array([[1, 0, 0]]), np.array([[4.9, -0.5, 2.05]])),
        (_one_hot(_LABELS, 4), RNG.normal(0, 3, (5, 4))),
    ],
    "sparse_probabilities": [
        (np.array([[0], [1], [2]]),
         np.array([[0.9, 0.05, 0.05], [0.5, 0.89, 0.6], [0.05, 0.01, 0.94]], "float32")),
        (np.array([0, 1, 2]),
         np.array([[0.9, 0.05, 0.05], [0.5, 0.89, 0.6], [0.05, 0.01, 0.94]], "float32")),
        (_LABELS, _random_probabilities((5, 4))),
    ],
    "sparse_logits": [
        (np.array([[0], [1], [2]], "int64"),
         np.array([[8.0, 1.0, 1.0], [0.0, 9.0, 1.0], [2.0, 3.0, 5.0]])),
        (_LABELS, RNG.normal(0, 3, (5, 4))),
    ],
    "vectors": [
        (np.asarray([[1, 9, 2], [-5, -2, 6]], "float32"),
         np.asarray([[4, 8, 12], [8, 1, 3]], "float32")),
        (RNG.normal(size=(5, 4)), RNG.normal(size=(5, 4))),
    ],
    "segmentation": [
        (np.array([[1, 2], [1, 2]]), np.array([[4, 1], [6, 1]])),
        (np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]]),
         np.array([[0, 1, 0, 1], [1, 0, 1, 1], [0, 1, 0, 1], [1, 0, 1, 1]])),
        (RNG.integers(0, 2, (5, 4)).astype("float32"), RNG.uniform(0, 1, (5, 4))),
    ],
    "segmentation_rank4": [
        (np.array([[[[1.0], [1.0]], [[0.0], [0.0]]], [[[1.0], [1.0]], [[0.0], [0.0]]]]),
         np.array([[[[0.0], [1.0]], [[0.0], [1.0]]], [[[0.4], [0.0]], [[0.0], [0.9]]]])),
        (RNG.integers(0, 2, (3, 2, 3, 2)).astype("float32"), RNG.uniform(0, 1, (3, 2, 3, 2))),
    ],
}


@dataclass(frozen=True)
class Case:
    """A library loss with keywords, the Keras class with keywords, and the inputs to try."""

    loss: str
    keywords: dict[str, Any]
    keras: str
    keras_keywords: dict[str, Any]
    inputs: str
    rtol: float = 1e-5

    @property
    def id(self) -> str:
        words = ",".join(f"{k}={v}" for k, v in self.keywords.items())
        return f"{self.loss}({words})-{self.inputs}"


def _same(loss: str, keras_name: str, inputs: str, **keywords: Any) -> Case:
    """A case whose lossdsl and Keras keywords are the same."""
    return Case(loss, keywords, keras_name, keywords, inputs)


CASES: list[Case] = [
    _same("mean_squared_error", "MeanSquaredError", "regression"),
    _same("mean_absolute_error", "MeanAbsoluteError", "regression"),
    _same("mean_absolute_percentage_error", "MeanAbsolutePercentageError", "regression"),
    _same("mean_squared_logarithmic_error", "MeanSquaredLogarithmicError", "regression"),
    _same("huber", "Huber", "regression"),
    _same("huber", "Huber", "regression", delta=0.8),
    _same("log_cosh", "LogCosh", "regression"),
    _same("hinge", "Hinge", "hinge"),
    _same("squared_hinge", "SquaredHinge", "hinge"),
    _same("categorical_hinge", "CategoricalHinge", "hinge"),
    _same("kl_divergence", "KLDivergence", "positive"),
    _same("poisson", "Poisson", "positive"),
    _same("cosine_similarity", "CosineSimilarity", "vectors"),
    _same("cosine_similarity", "CosineSimilarity", "vectors", axis=1),
    *[_same("binary_crossentropy", "BinaryCrossentropy",
            "binary_logits" if logits else "binary_probabilities",
            from_logits=logits, label_smoothing=smoothing)
      for logits in (False, True) for smoothing in (0.0, 0.2)],
    *[_same("categorical_crossentropy", "CategoricalCrossentropy",
            "categorical_logits" if logits else "categorical_probabilities",
            from_logits=logits, label_smoothing=smoothing)
      for logits in (False, True) for smoothing in (0.0, 0.3)],
    *[_same("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy",
            "sparse_logits" if logits else "sparse_probabilities", from_logits=logits)
      for logits in (False, True)],
    *[_same("binary_focal_crossentropy", "BinaryFocalCrossentropy",
            "binary_logits" if logits else "binary_probabilities",
            apply_class_balancing=balancing, from_logits=logits, **numbers)
      for balancing in (False, True) for logits in (False, True)
      for numbers in ({}, {"alpha": 0.4, "gamma": 3.0, "label_smoothing": 0.1})],
    *[_same("categorical_focal_crossentropy", "CategoricalFocalCrossentropy",
            "categorical_logits" if logits else "categorical_probabilities",
            from_logits=logits, **numbers)
      for logits in (False, True)
      for numbers in ({}, {"alpha": 0.4, "gamma": 1.5, "label_smoothing": 0.1})],
    # Keras's Dice/Tversky default (axis=None) reduces the whole batch to one number,
    # which no per-sample loss can be; over each sample's axes they are ours.
    Case("dice", {}, "Dice", {"axis": (1,)}, "segmentation"),
    Case("dice", {}, "Dice", {"axis": (1, 2, 3)}, "segmentation_rank4"),
    _same("dice", "Dice", "segmentation_rank4", axis=-1),
    Case("tversky", {}, "Tversky", {"axis": (1,)}, "segmentation"),
    Case("tversky", {"alpha": 0.2, "beta": 0.8}, "Tversky",
         {"alpha": 0.2, "beta": 0.8, "axis": (1,)}, "segmentation"),
    _same("tversky", "Tversky", "segmentation_rank4", axis=(1, 2, 3)),
]


def _value_and_gradient(loss: keras.losses.Loss, y_true: np.ndarray, y_pred: np.ndarray,
                        weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The reduced loss and its gradient w.r.t. ``y_pred`` (float32) by this backend's autodiff."""
    return value_and_gradient(lambda t, p: loss(t, p, sample_weight=weight), y_true, y_pred)


def _assert_same(actual: tuple[np.ndarray, np.ndarray], expected: tuple[np.ndarray, np.ndarray],
                 case: Case, context: str) -> None:
    """Same value and same gradient, to the case's tolerance."""
    for name, ours, theirs in zip(("value", "gradient"), actual, expected):
        np.testing.assert_allclose(ours, theirs, rtol=case.rtol, atol=1e-6,
                                   err_msg=f"{BACKEND}: {name} of {context}")


def _weight_for(unreduced: keras.losses.Loss, y_true: np.ndarray, y_pred: np.ndarray,
                weighted: bool) -> np.ndarray | None:
    """One weight per entry of the per-sample loss (per sample, or per timestep for rank 3)."""
    if not weighted:
        return None
    loss_shape = tuple(unreduced(y_true, y_pred).shape)
    return np.linspace(0.5, 2.0, int(np.prod(loss_shape))).reshape(loss_shape)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_equals_keras_builtin_in_value_and_gradient(case: Case, weighted: bool,
                                                    tmp_path: Path) -> None:
    ours = losses.make(case.loss, **case.keywords)
    theirs = getattr(keras.losses, case.keras)(**case.keras_keywords)
    unreduced = getattr(keras.losses, case.keras)(**case.keras_keywords, reduction="none")
    for y_true, y_pred in INPUTS[case.inputs]:
        weight = _weight_for(unreduced, y_true, y_pred, weighted)
        if keras_builtin_inexact_here(case.keras, case.keras_keywords, y_true, y_pred):
            [expected] = keras_builtins_on_tensorflow(
                [BuiltinCall.of(case.keras, case.keras_keywords, y_true, y_pred, weight)], tmp_path)
        else:
            expected = _value_and_gradient(theirs, y_true, y_pred, weight)
        _assert_same(_value_and_gradient(ours, y_true, y_pred, weight), expected, case,
                     f"{case.id} on y_true={y_true.tolist()}, y_pred={y_pred.tolist()}")


@pytest.mark.parametrize("reduction", ["sum", "none", "mean_with_sample_weight"])
def test_keras_reductions_pass_through(reduction: str) -> None:
    y_true, y_pred = INPUTS["binary_logits"][1]
    ours = losses.binary_crossentropy(from_logits=True, reduction=reduction)
    theirs = keras.losses.BinaryCrossentropy(from_logits=True, reduction=reduction)
    weight = np.array([1.2, 3.4])
    np.testing.assert_allclose(to_numpy(ours(y_true, y_pred, weight)),
                               to_numpy(theirs(y_true, y_pred, weight)), rtol=1e-6)


FLOAT64_CASES = [case for case in CASES if case.id in {
    "mean_squared_error()-regression",
    "binary_crossentropy(from_logits=False,label_smoothing=0.2)-binary_probabilities",
    "categorical_crossentropy(from_logits=True,label_smoothing=0.0)-categorical_logits",
    "sparse_categorical_crossentropy(from_logits=False)-sparse_probabilities",
    "binary_focal_crossentropy(apply_class_balancing=True,from_logits=True)-binary_logits",
}]


@pytest.fixture(scope="module")
def float64_keras_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Keras's float64 built-ins, on TF (see ``keras_builtin_inexact_here``: not on JAX/torch)."""
    calls = [BuiltinCall.of(case.keras, {**case.keras_keywords, "reduction": "none",
                                          "dtype": "float64"}, *INPUTS[case.inputs][-1],
                            dtype="float64") for case in FLOAT64_CASES]
    values = keras_builtins_on_tensorflow(calls, tmp_path_factory.mktemp("float64"))
    return {case.id: value for case, (value, _) in zip(FLOAT64_CASES, values)}


@pytest.mark.parametrize("case", FLOAT64_CASES, ids=lambda case: case.id)
def test_float64_equals_keras_float64(case: Case, float64_keras_values: dict) -> None:
    """With dtype="float64" every constant, epsilon included, is float64 on both sides."""
    assert len(FLOAT64_CASES) == 5
    y_true, y_pred = INPUTS[case.inputs][-1]
    with float64_enabled():  # JAX: x64 on, from construction on, as a float64 user's would be
        ours = losses.make(case.loss, dtype="float64", reduction="none", **case.keywords)
        theirs = getattr(keras.losses, case.keras)(dtype="float64", reduction="none",
                                                   **case.keras_keywords)
        value, here = ours(y_true, y_pred), theirs(y_true, y_pred)
        dtypes = {keras.backend.standardize_dtype(value.dtype),
                  keras.backend.standardize_dtype(here.dtype)}
    assert dtypes == {"float64"}, dtypes
    np.testing.assert_allclose(to_numpy(value), float64_keras_values[case.id], rtol=1e-12)
    inexact = keras_builtin_inexact_here(case.keras, case.keras_keywords, y_true, y_pred,
                                         "float64")
    np.testing.assert_allclose(to_numpy(value), to_numpy(here), rtol=1e-6 if inexact else 1e-12)


def test_every_keras_parity_loss_is_covered() -> None:
    keras_losses = {spec.name for spec in losses.available() if spec.keras}
    assert keras_losses == {case.loss for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_symbolic_gradient_matches_the_builtins_autodiff(case: Case) -> None:
    """gradient="symbolic" (the derived formula is the backward pass) against the backend's
    autodiff of the Keras built-in, with and without sample_weight (a non-uniform upstream
    gradient); and ``check_gradients`` against the backend's autodiff of the same loss."""
    y_true, y_pred = INPUTS[case.inputs][-1]  # the random inputs: away from kinks and clips
    symbolic = losses.make(case.loss, gradient="symbolic", **case.keywords)
    theirs = getattr(keras.losses, case.keras)(**case.keras_keywords)
    unreduced = getattr(keras.losses, case.keras)(**case.keras_keywords, reduction="none")
    for weighted in (False, True):
        weight = _weight_for(unreduced, y_true, y_pred, weighted)
        _assert_same(_value_and_gradient(symbolic, y_true, y_pred, weight),
                     _value_and_gradient(theirs, y_true, y_pred, weight), case,
                     f"{case.id} (gradient='symbolic', weighted={weighted})")
    report = lossdsl.check_gradients(losses.make(case.loss, **case.keywords), y_true, y_pred)
    assert report.passed, str(report)
    assert report.skipped == 0
