"""The pair functions on ``keras.ops`` (JAX, PyTorch), and their backward pass.

The same functions as :mod:`lossdsl.backends.tensorflow.pairs`, with TensorFlow's
gradient conventions: a clamp sends the gradient to its argument at a tie
(``where(x >= floor, x, floor)``; ``jnp.maximum`` would split it), so autodiff and the
derived backward pass :func:`pair_vjp` agree on every backend; products are the backend's
own ``matmul`` (float64 stays float64).
Keras is imported when one runs.
"""

from __future__ import annotations

from typing import Any

from lossdsl.backends.keras_ops.functions import _native
from lossdsl.backends.tensorflow.pairs import DISTANCE_FLOOR, NORM_FLOOR

Tensor = Any


def _ops() -> Any:
    import keras
    return keras.ops


def _vectors(x: Tensor) -> Tensor:
    ops = _ops()
    return ops.reshape(x, (ops.shape(x)[0], -1))


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    # The backend's own: Keras 3.15's ops.matmul computes float64 in float32 on PyTorch.
    return _native("matmul")(a, b)


def _gram(v: Tensor) -> Tensor:
    return _matmul(v, _ops().transpose(v))


def _floored(value: Tensor, floor: float) -> Tensor:
    return _ops().where(value >= floor, value, floor)


def _sqdist_parts(x: Tensor) -> tuple[Tensor, Tensor]:
    ops = _ops()
    v = _vectors(x)
    squares = ops.sum(v * v, axis=1, keepdims=True)
    raw = squares + ops.transpose(squares) - 2.0 * _gram(v)
    off_diagonal = 1.0 - ops.eye(ops.shape(v)[0], dtype=v.dtype)
    flows = ops.cast(raw >= 0.0, v.dtype) * off_diagonal
    return _floored(raw, 0.0) * off_diagonal, flows


def _normalized(v: Tensor) -> tuple[Tensor, Tensor]:
    ops = _ops()
    norm = ops.sqrt(_floored(ops.sum(v * v, axis=1, keepdims=True), NORM_FLOOR))
    return v / norm, norm


def pair_dot(x: Tensor) -> Tensor:
    return _gram(_vectors(x))


def pair_cos(x: Tensor) -> Tensor:
    return _gram(_normalized(_vectors(x))[0])


def pair_sqdist(x: Tensor) -> Tensor:
    return _sqdist_parts(x)[0]


def pair_dist(x: Tensor) -> Tensor:
    ops = _ops()
    squared = pair_sqdist(x)
    positive = ops.cast(squared > DISTANCE_FLOOR, squared.dtype)
    return ops.sqrt(_floored(squared, DISTANCE_FLOOR)) * positive


def pair_eq(x: Tensor) -> Tensor:
    ops = _ops()
    v = ops.stop_gradient(_vectors(x))
    equal = ops.all(ops.equal(v[:, None, :], v[None, :, :]), axis=-1)
    return ops.cast(equal, x.dtype)


def pair_self(like: Tensor) -> Tensor:
    ops = _ops()
    return ops.eye(ops.shape(like)[0], dtype=like.dtype)


def pair_vjp(kind: str, g: Tensor, x: Tensor) -> Tensor:
    """d (sum of ``g`` * ``kind(x)``) / d ``x`` (see the TensorFlow module's)."""
    ops = _ops()
    v = _vectors(x)
    if kind in ("pair_eq", "pair_self"):
        return ops.zeros_like(x)
    if kind == "pair_dist":
        distance = pair_dist(x)
        g = ops.where(distance > 0, g / ops.where(distance > 0, 2.0 * distance, 1.0), 0.0)
        kind = "pair_sqdist"
    if kind == "pair_sqdist":
        g = g * _sqdist_parts(x)[1]
    both = g + ops.transpose(g)
    if kind == "pair_sqdist":
        grad = 2.0 * (ops.sum(both, axis=1, keepdims=True) * v - _matmul(both, v))
    elif kind == "pair_dot":
        grad = _matmul(both, v)
    else:  # pair_cos
        u, norm = _normalized(v)
        grad_u = _matmul(both, u)
        inside = ops.cast(ops.sum(v * v, axis=1, keepdims=True) >= NORM_FLOOR, v.dtype)
        grad = (grad_u - inside * u * ops.sum(grad_u * u, axis=1, keepdims=True)) / norm
    return ops.reshape(grad, ops.shape(x))


__all__ = ["pair_dot", "pair_cos", "pair_sqdist", "pair_dist", "pair_eq", "pair_self", "pair_vjp"]
