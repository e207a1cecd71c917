"""Value and gradient by the current Keras backend's own autodiff, for backend-neutral tests.

A test marked ``backends`` runs once per Keras backend (``KERAS_BACKEND`` picks it,
see tests/run_all.sh). Comparing lossdsl with a reference is only a test of the
backend at hand if the gradient comes from that backend's autodiff: so
:func:`value_and_gradient` uses ``tf.GradientTape`` on TensorFlow,
``jax.value_and_grad`` on JAX and ``torch.autograd`` on PyTorch, never TF's tape
on all three. :func:`tape_value_and_gradient` is TF's tape whatever the backend,
for references written in TensorFlow ops (TF is always installed).

float64 on JAX: JAX truncates float64 to float32 unless x64 is enabled. Turning
it on for the whole process would change what every other test sees (numpy
float64 inputs would stay float64), so :func:`float64_enabled` turns it on only
around a float64 computation, with the ``jax.enable_x64`` context manager of
JAX >= 0.7 (thread-local; pytest runs tests in its main thread).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import keras
import numpy as np

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


def call(function: LossFunction, *arguments: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """``function`` on NumPy arguments, no gradient, as NumPy (float64 really float64 on JAX)."""
    with float64_enabled(dtype):
        return to_numpy(function(*arguments))


__all__ = ["BACKEND", "BACKENDS", "LossFunction", "call", "float64_enabled",
           "labels_tensor", "tape_value_and_gradient", "to_numpy", "value_and_gradient"]
