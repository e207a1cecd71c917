"""``gradient="symbolic"``: the derived gradient as the backward pass, via ``tf.custom_gradient``.

TensorFlow's autodiff differentiates the forward ops one by one and keeps
their intermediates; the derived gradient is one simplified, stabilised
formula (``2*(y_pred - y_true)/n`` for MSE) evaluated in a single walk. The
backward pass receives the upstream gradient of each per-sample loss (Keras
applies ``sample_weight`` and the batch reduction after ``Loss.call``) and
evaluates :func:`lossdsl.backward.backward`'s seeded formula on it.

The gradient w.r.t. ``y_true`` is not derived: labels get ``None``, as a
constant would (use the default ``gradient="autodiff"`` to differentiate
through labels).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import sympy
import tensorflow as tf

from lossdsl.backward import backward
from lossdsl.compiler import COMPILE_CACHE_SIZE, CompiledExpression, analyze
from lossdsl.fuse import fuse_reductions
from lossdsl.tf_lower import TFPlan

LossFunction = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def gradient_plan(compiled: CompiledExpression) -> TFPlan:
    """The plan of the seeded gradient, parameter values built in (inputs: y_true, y_pred, upstream)."""
    seeded = backward(compiled.source, wrt=compiled.wrt)
    values = {symbol: sympy.Float(value) for symbol, value in compiled.values_by_symbol().items()}
    formula, table = fuse_reductions(seeded.formula.xreplace(values),
                                     seeded.table.substituted(values))
    # Evaluated, never differentiated: no double-where guard needed.
    return TFPlan({"gradient": (formula, "elementwise")}, table,
                  compiled.expression.xreplace(values), differentiable=False)


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def _plans(source: str, wrt: str, params: tuple[tuple[str, float], ...]) -> tuple[TFPlan, TFPlan]:
    """(forward, gradient) plans, cached: compiling a loss again must cost no SymPy work."""
    from lossdsl.keras_loss import forward_plan  # keras_loss imports this module

    compiled = CompiledExpression(analyze(source, wrt=wrt), dict(params))
    # Inside tf.custom_gradient the tape does not differentiate the forward ops.
    return forward_plan(compiled, differentiable=False), gradient_plan(compiled)


def symbolic_loss(compiled: CompiledExpression) -> LossFunction:
    """``(y_true, y_pred) -> per-sample loss`` whose gradient is the derived formula."""
    forward, gradient = _plans(compiled.source, compiled.wrt, tuple(sorted(compiled.params.items())))

    def per_sample_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        squeezed = forward.squeezed_axes(y_pred.shape.rank)

        @tf.custom_gradient
        def loss(prediction: tf.Tensor) -> tuple[tf.Tensor, Callable]:
            value = forward.run({"y_true": y_true, "y_pred": prediction}, {})["loss"]

            def grad(upstream: tf.Tensor) -> tf.Tensor:
                for axis in squeezed:  # back to the inputs' rank, as keepdims would
                    upstream = tf.expand_dims(upstream, axis)
                inputs = {"y_true": y_true, "y_pred": prediction, "upstream": upstream}
                return _unbroadcast(gradient.run(inputs, {})["gradient"], prediction)
            return value, grad

        return loss(y_pred)

    return per_sample_loss


def _unbroadcast(gradient: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """Sum ``gradient`` over the axes along which ``like`` was broadcast (y_pred of shape (b, 1))."""
    if gradient.shape.as_list() == like.shape.as_list() and like.shape.is_fully_defined():
        return gradient
    if gradient.shape.rank == like.shape.rank and all(
            g == p for g, p in zip(gradient.shape.as_list()[1:], like.shape.as_list()[1:])):
        return gradient  # equal but for the (unknown) batch size, which is never broadcast
    _, axes = tf.raw_ops.BroadcastGradientArgs(s0=tf.shape(gradient), s1=tf.shape(like))
    return tf.reshape(tf.reduce_sum(gradient, axis=axes), tf.shape(like))


__all__ = ["symbolic_loss", "gradient_plan"]
