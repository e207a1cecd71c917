"""The forms that are faster under XLA: matrix-vector sums and a shared ``exp(-|x|)``.

The TF runner uses them when its :class:`~lossdsl.backends.tensorflow.context.Capabilities`
allow and the ops are traced for XLA; outside XLA the plain TF ops are faster.
"""

from __future__ import annotations

import math
from functools import lru_cache

from lossdsl.backends.tensorflow.context import Context
from lossdsl.backends.tensorflow.functions import Tensor, tf_function
from lossdsl.lower.plan import Node

MATVEC_KINDS = ("sum", "mean")
_MATVEC_MIN_LENGTH = 64
SHARED_EXP = ("sigmoid", "softplus")


def as_matvec(context: Context, value: Tensor, axes: list[int]) -> bool:
    """Whether a reduction over trailing axes runs faster with a product by a vector of ones as its sum.

    XLA's CPU backend lowers a row reduction to a windowed reduction plus a
    library call over its elementwise argument written out to memory; its
    matrix-vector product is faster (MSE value and gradient at (4096, 1000):
    8.7 -> 6.0 ms). Rows shorter than
    ``_MATVEC_MIN_LENGTH`` gain nothing (measured 0.94-1.04x either way at (256, 10)).
    CPU-only machines only (:func:`_only_cpus`).
    """
    if not axes or axes != list(range(axes[0], context.rank)) or \
            value.shape.rank != context.rank or not context.in_xla():
        return False
    sizes = [value.shape[a] for a in axes]
    return (None not in sizes and math.prod(sizes) >= _MATVEC_MIN_LENGTH
            and value.dtype in (context.tf.float32, context.tf.float64) and _only_cpus())


@lru_cache(maxsize=None)
def _only_cpus() -> bool:
    """No GPU: there XLA reduces well itself, and float32 products may run in TF32 (10-bit mantissa)."""
    import tensorflow as tf
    return not tf.config.list_physical_devices("GPU")


def matvec_reduce(context: Context, value: Tensor, kind: str, axes: list[int]) -> Tensor:
    """sum or mean over the trailing ``axes`` (keepdims), as a matrix-vector product."""
    tf, size = context.tf, math.prod(value.shape[a] for a in axes)
    weight = tf.fill([size], tf.constant(1.0 / size if kind == "mean" else 1.0, value.dtype))
    if axes == [1] and context.rank == 2:
        return tf.matmul(value, weight[:, None])
    leading = tf.shape(value)[:axes[0]]
    rows = tf.reshape(value, tf.concat([leading, [size]], 0))
    return tf.reshape(tf.linalg.matvec(rows, weight),
                      tf.concat([leading, tf.ones([len(axes)], leading.dtype)], 0))


def matvec_logsumexp(context: Context, value: Tensor, axes: list[int]) -> Tensor:
    """log(sum(exp(x))) over the trailing ``axes``, the sum as a matrix-vector product.

    The largest element is subtracted first, as tf.reduce_logsumexp does (no
    overflow), and is a constant to the tape (the result does not depend on it).
    """
    tf = context.tf
    largest = tf.stop_gradient(tf.reduce_max(value, axis=axes, keepdims=True))
    largest = tf.where(tf.math.is_finite(largest), largest, tf.zeros_like(largest))
    return tf.math.log(matvec_reduce(context, tf.exp(value - largest), "sum", axes)) + largest


def shared_exp(context: Context, node: Node, args: list[Tensor]) -> Tensor:
    """sigmoid(z) or softplus(z) from ``e = exp(-|u|)``, shared with every sibling under XLA.

    ``u`` is the argument of the first such node of the run, ``z`` is ``u`` or
    ``-u``. With ``r = 1/(1 + e)``: sigmoid(u) = where(u >= 0, 1, e)*r, sigmoid(-u) =
    where(u >= 0, e, 1)*r, softplus(u) = where(u >= 0, u, 0) + log1p(e), softplus(-u)
    = where(u >= 0, 0, -u) + log1p(e). One exp and one division for all four (a focal
    loss and its gradient need them all), never an overflow (e <= 1), and one
    comparison for both signs, so the tape's derivatives are exact at u = 0 too
    (TF's d|u|/du and d relu(u)/du are 0 there; a second comparison on -u would
    pick the other branch at 0).
    """
    tf, value = context.tf, args[0]
    if not context.in_xla():
        return tf_function(node.op.tf)(value)  # one fused TF kernel beats four ops
    (z,) = node.expr.args
    key, is_sigmoid = abs(z), node.op.name == "sigmoid"
    if key not in context.memo:
        positive = value >= 0
        e = tf.exp(tf.where(positive, -value, value))
        context.memo[key] = (z, value, positive, e, 1 / (1 + e))
    first, u, positive, e, reciprocal = context.memo[key]
    if z == first:
        if is_sigmoid:
            return tf.where(positive, tf.ones_like(e), e) * reciprocal
        return tf.where(positive, u, tf.zeros_like(u)) + tf.math.log1p(e)
    if z == -first:
        if is_sigmoid:
            return tf.where(positive, e, tf.ones_like(e)) * reciprocal
        return tf.where(positive, tf.zeros_like(u), -u) + tf.math.log1p(e)
    return tf_function(node.op.tf)(value)  # |z| = |u| by another form: no sharing


__all__ = ["MATVEC_KINDS", "SHARED_EXP", "as_matvec", "matvec_reduce", "matvec_logsumexp",
           "shared_exp"]
