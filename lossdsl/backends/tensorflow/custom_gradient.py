"""``gradient="symbolic"``: the derived gradient as the backward pass, via ``tf.custom_gradient``.

TensorFlow's autodiff differentiates the forward ops one by one and keeps
their intermediates; the derived gradient is one simplified, stabilised
formula (``2*(y_pred - y_true)/n`` for MSE) evaluated in a single walk. The
backward pass receives the upstream gradient of each per-sample loss (Keras
applies ``sample_weight`` and the batch reduction after ``Loss.call``) and
evaluates :func:`lossdsl.analysis.backward.backward`'s seeded formula on it.

Inside a graph that XLA does not compile (Keras's ``fit`` on a CPU), a large
batch of a separable loss takes the fused path of :mod:`lossdsl.backends.tensorflow.fused`: one XLA
call computes the value and the derived gradient for an upstream gradient of 1.

The gradient w.r.t. ``y_true`` is not derived: labels get ``None``, as a
constant would (use the default ``gradient="autodiff"`` to differentiate
through labels).
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Callable

import sympy
import tensorflow as tf

from lossdsl.analysis.backward import backward, separable
from lossdsl.analysis.analyze import COMPILE_CACHE_SIZE, CompiledExpression, analyze
from lossdsl.symbolic.fuse import fuse_reductions
from lossdsl.backends.tensorflow.fused import LossFunction, fused_loss, unbroadcast, with_kept_axes, worth_fusing
from lossdsl.lower.plan import TFPlan, run_loss


def gradient_plan(compiled: CompiledExpression) -> TFPlan:
    """The plan of the seeded gradient, parameter values built in (inputs: y_true, y_pred, upstream)."""
    seeded = backward(compiled.source, wrt=compiled.wrt)
    values = {symbol: sympy.Float(value) for symbol, value in compiled.values_by_symbol().items()}
    formula, table = fuse_reductions(seeded.formula.xreplace(values),
                                     seeded.table.substituted(values))
    # Evaluated, never differentiated: no double-where guard needed.
    return TFPlan({"gradient": (formula, "elementwise")}, table, compiled.expression,
                  differentiable=False, loss_table=compiled.table)


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def _plans(source: str, wrt: str, params: tuple[tuple[str, float], ...]
           ) -> tuple[TFPlan, TFPlan, bool]:
    """(forward, gradient, separable) plans, cached: compiling a loss again must cost no SymPy work.

    ``separable``: the gradient is the upstream gradient times a formula of the
    inputs alone, which the fused path evaluates before the upstream is known.
    """
    from lossdsl.keras.loss import forward_plan  # keras_loss imports this module

    compiled = CompiledExpression(analyze(source, wrt=wrt), dict(params))
    # Inside tf.custom_gradient the tape does not differentiate the forward ops.
    return (forward_plan(compiled, differentiable=False), gradient_plan(compiled),
            separable(source, wrt=wrt))


def symbolic_loss(compiled: CompiledExpression) -> LossFunction:
    """``(y_true, y_pred) -> per-sample loss`` whose gradient is the derived formula."""
    forward, gradient, separable = _plans(compiled.source, compiled.wrt,
                                          tuple(sorted(compiled.params.items())))
    fused = fused_loss(partial(run_loss, forward), partial(_unit_gradient, gradient),
                       labels_differentiable=False) if separable else None

    def per_sample_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        squeezed = forward.squeezed_axes(y_pred.shape.rank)
        if fused is not None and worth_fusing(y_true, y_pred):
            return fused(y_true, y_pred, squeezed)

        @tf.custom_gradient
        def loss(prediction: tf.Tensor) -> tuple[tf.Tensor, Callable]:
            value = run_loss(forward, y_true, prediction)

            def grad(upstream: tf.Tensor) -> tf.Tensor:
                inputs = {"y_true": y_true, "y_pred": prediction,
                          "upstream": with_kept_axes(upstream, squeezed)}
                return unbroadcast(gradient.run(inputs, {})["gradient"], prediction)
            return value, grad

        return loss(y_pred)

    return per_sample_loss


def _unit_gradient(gradient: TFPlan, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """The seeded gradient for an upstream gradient of 1 (XLA folds the multiplications by it)."""
    inputs = {"y_true": y_true, "y_pred": y_pred, "upstream": tf.ones([], y_pred.dtype)}
    return gradient.run(inputs, {})["gradient"]


__all__ = ["symbolic_loss", "gradient_plan"]
