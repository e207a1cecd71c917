"""Value and gradient by the current Keras backend's own autodiff, for backend-neutral tests.

A test marked ``backends`` runs once per Keras backend (``KERAS_BACKEND`` picks it,
see tests/run_all.sh). Comparing lossdsl with a reference is only a test of the
backend at hand if the gradient comes from that backend's autodiff: so
:func:`value_and_gradient` uses ``tf.GradientTape`` on TensorFlow,
``jax.value_and_grad`` on JAX and ``torch.autograd`` on PyTorch, never TF's tape
on all three. :func:`tape_value_and_gradient` is TF's tape whatever the backend,
for references written in TensorFlow ops (TF is always installed).
:func:`run_on_backend` runs a script in a fresh process on another backend, and
:func:`keras_builtins_on_tensorflow` gives Keras's built-ins on TF as references where
its JAX/PyTorch built-in is inexact (:func:`keras_builtin_inexact_here`).

float64 on JAX: JAX truncates float64 to float32 unless x64 is enabled. Turning
it on for the whole process would change what every other test sees (numpy
float64 inputs would stay float64), so :func:`float64_enabled` turns it on only
around a float64 computation, with JAX's ``jax.enable_x64`` context manager (checked
on JAX 0.10.2; thread-local, and pytest runs tests in its main thread).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import keras
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BACKEND: str = keras.backend.backend()
BACKENDS: tuple[str, ...] = ("tensorflow", "jax", "torch")

LossFunction = Callable[[Any, Any], Any]
"""Takes ``(y_true, y_pred)`` as backend tensors and returns a backend tensor: a scalar, or
per-sample values whose *sum* is differentiated, as ``tf.GradientTape`` does."""


@contextlib.contextmanager
def float64_enabled(dtype: str = "float64") -> Iterator[None]:
    """Within it, ``dtype="float64"`` is really float64 on the current backend (JAX: x64 on)."""
    if BACKEND != "jax" or dtype != "float64":
        yield
        return
    import jax

    with jax.enable_x64(True):
        yield


def to_numpy(value: Any) -> np.ndarray:
    """A backend tensor (a torch tensor that requires grad included) as a NumPy array."""
    if hasattr(value, "detach"):  # torch
        value = value.detach().cpu()
    return np.asarray(keras.ops.convert_to_numpy(value))


def labels_tensor(y_true: np.ndarray, dtype: str) -> Any:
    """``y_true`` as a backend tensor: float labels in ``dtype``, integer labels kept integer."""
    y_true = np.asarray(y_true)
    if np.issubdtype(y_true.dtype, np.floating):
        return keras.ops.convert_to_tensor(y_true, dtype)
    return keras.ops.convert_to_tensor(y_true)


def value_and_gradient(function: LossFunction, y_true: np.ndarray, y_pred: np.ndarray,
                       dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """``function(y_true, y_pred)`` and its gradient w.r.t. ``y_pred``, by this backend's autodiff.

    A non-scalar value (``reduction="none"``) is returned as it is and its sum is
    differentiated, as ``tf.GradientTape`` does. ``y_pred`` is converted to ``dtype``;
    ``y_true`` too when it holds floats (integer labels stay integers, as a user's would).
    """
    differentiate = {"tensorflow": _by_tensorflow, "jax": _by_jax, "torch": _by_torch}[BACKEND]
    with float64_enabled(dtype):
        value, gradient = differentiate(function, labels_tensor(y_true, dtype),
                                        keras.ops.convert_to_tensor(y_pred, dtype))
        return to_numpy(value), to_numpy(gradient)


def _by_tensorflow(function: LossFunction, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        value = function(y_true, y_pred)
    gradient = tape.gradient(value, y_pred, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return value, gradient


def _by_jax(function: LossFunction, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    import jax
    import jax.numpy as jnp

    def total(prediction: Any) -> tuple[Any, Any]:
        value = function(y_true, prediction)
        return jnp.sum(value), value

    (_, value), gradient = jax.value_and_grad(total, has_aux=True)(y_pred)
    return value, gradient


def _by_torch(function: LossFunction, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    import torch

    y_pred = y_pred.detach().requires_grad_(True)
    value = function(y_true, y_pred)
    value.sum().backward()
    return value, torch.zeros_like(y_pred) if y_pred.grad is None else y_pred.grad


def tape_value_and_gradient(function: LossFunction, y_true: np.ndarray, y_pred: np.ndarray,
                            dtype: str = "float64") -> tuple[np.ndarray, np.ndarray]:
    """Value and ``tf.GradientTape`` gradient of a function of TF ops, on any Keras backend."""
    import tensorflow as tf

    y_true, y_pred = tf.constant(y_true, dtype), tf.constant(y_pred, dtype)
    value, gradient = _by_tensorflow(function, y_true, y_pred)
    return value.numpy(), gradient.numpy()


def run_on_backend(script: str, backend: str, *arguments: str, **environment: str) -> list[dict]:
    """Run ``script`` in a fresh process on ``backend``; its JSON lines (fails with its stderr).

    A fresh process because ``KERAS_BACKEND`` (and JAX's ``XLA_FLAGS``) are read once.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
           "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": backend, **environment}
    done = subprocess.run([sys.executable, "-c", script, *arguments], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"on {backend}:\n{done.stderr[-4000:]}"
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"on {backend}: no result\n{done.stderr[-4000:]}"
    return lines


@dataclass(frozen=True)
class BuiltinCall:
    """A Keras built-in loss (class name and keywords) called on NumPy inputs."""

    keras: str
    keywords: dict[str, Any]
    y_true: list = field(repr=False)
    y_pred: list = field(repr=False)
    sample_weight: list | None = field(default=None, repr=False)
    dtype: str = "float32"
    y_true_dtype: str = "float64"

    @classmethod
    def of(cls, keras_name: str, keywords: dict[str, Any], y_true: np.ndarray,
           y_pred: np.ndarray, sample_weight: np.ndarray | None = None,
           dtype: str = "float32") -> "BuiltinCall":
        return cls(keras_name, dict(keywords), np.asarray(y_true).tolist(),
                   np.asarray(y_pred).tolist(),
                   None if sample_weight is None else np.asarray(sample_weight).tolist(),
                   dtype, str(np.asarray(y_true).dtype))

    def value_and_gradient(self) -> tuple[np.ndarray, np.ndarray]:
        """On the current backend, by its autodiff."""
        keywords = {k: tuple(v) if isinstance(v, list) else v for k, v in self.keywords.items()}
        loss = getattr(keras.losses, self.keras)(**keywords)
        weight = None if self.sample_weight is None else np.asarray(self.sample_weight)
        return value_and_gradient(lambda t, p: loss(t, p, sample_weight=weight),
                                  np.asarray(self.y_true, self.y_true_dtype),
                                  np.asarray(self.y_pred), self.dtype)


def keras_builtin_inexact_here(keras_name: str, keywords: dict[str, Any], y_true: np.ndarray,
                               y_pred: np.ndarray, dtype: str = "float32") -> bool:
    """Whether Keras 3.15's own built-in differs from TF's rules on this backend for these inputs.

    There a parity test's reference is the same built-in on TensorFlow
    (:func:`keras_builtins_on_tensorflow`). Found by comparing with float64 NumPy:

    * float64 on JAX and PyTorch: ``ops.mean`` (and the loss reduction's ``divide_no_nan``)
      compute in float32, ``result_type("float64", "float32")`` being float32 off TF
      (cf. keras-team/keras#23223): values 5e-8 off, where float64 promises 1e-16.
    * ``BinaryFocalCrossentropy(from_logits=True)`` on JAX and PyTorch takes
      ``log(1 - sigmoid(logits))`` in float32 (TF's Keras recovers the logits): 2e-5 off
      at logits of +-10.
    * An exact tie: ``jnp.maximum``/``torch.maximum`` (and ``jnp.clip`` at its bounds)
      split a tie's gradient in halves, where TF sends all of it to the first argument,
      the rule lossdsl derives its gradients with on every backend (README, "Backends").
      Keras's own hinge inputs have ``y_true*y_pred == 1``; ``KLDivergence`` clips
      ``y_pred`` to ``[epsilon, 1]``.
    """
    if BACKEND == "tensorflow":
        return False
    saturated = keras_name == "BinaryFocalCrossentropy" and bool(keywords.get("from_logits")) \
        and float(np.abs(y_pred).max()) >= 10
    return dtype == "float64" or saturated or _tie(keras_name, y_true, y_pred)


def _tie(keras_name: str, y_true: np.ndarray, y_pred: np.ndarray) -> bool:
    """Whether the built-in's ``maximum``/``clip`` sits exactly at a tie for these inputs."""
    y_true, y_pred = np.asarray(y_true, "float64"), np.asarray(y_pred, "float64")
    if keras_name in ("Hinge", "SquaredHinge"):
        signs = np.where(np.isin(y_true, (0.0, 1.0)).all(), 2 * y_true - 1, y_true)
        return bool(np.any(signs * y_pred == 1.0))
    if keras_name == "KLDivergence":
        return bool(np.any(y_pred == 1.0) or np.any(y_true == 1.0))
    return False


_ON_TENSORFLOW = """
import json, sys
from backend_support import BuiltinCall
for request in json.loads(open(sys.argv[1]).read()):
    value, gradient = BuiltinCall(**request).value_and_gradient()
    print(json.dumps({"value": value.tolist(), "gradient": gradient.tolist()}))
"""


def keras_builtins_on_tensorflow(calls: list[BuiltinCall], folder: Path
                                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Value and gradient of each call with Keras's built-ins *on TensorFlow*, in one process.

    For the few places where Keras's own JAX/PyTorch built-in is inexact (see the callers):
    there the reference is the same built-in where it is exact. In-process on TensorFlow.
    """
    if BACKEND == "tensorflow":
        return [call.value_and_gradient() for call in calls]
    requests = folder / "requests.json"
    requests.write_text(json.dumps([asdict(call) for call in calls]))
    lines = run_on_backend(_ON_TENSORFLOW, "tensorflow", str(requests))
    assert len(lines) == len(calls), lines
    return [(np.asarray(line["value"]), np.asarray(line["gradient"])) for line in lines]


__all__ = ["BACKEND", "BACKENDS", "BuiltinCall", "LossFunction", "ROOT", "float64_enabled",
           "keras_builtin_inexact_here", "keras_builtins_on_tensorflow", "labels_tensor",
           "run_on_backend", "tape_value_and_gradient", "to_numpy", "value_and_gradient"]
