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

from functools import partial
from typing import Callable

import tensorflow as tf

try:  # private; if TF moves it, eager calls take tf.custom_gradient's path
    from tensorflow.python.eager import record as _record
except ImportError:  # pragma: no cover
    _record = None

from lossdsl.analysis.analyze import CompiledExpression
from lossdsl.backends.tensorflow.fused import (LossFunction, fused_loss, unbroadcast,
                                               with_kept_axes, worth_fusing)
from lossdsl.backends.labels import label_tensors, named_inputs, no_gradient
from lossdsl.backends.tensorflow.run import Runner, run_loss, runner
from lossdsl.lower.plans import symbolic_plans


def symbolic_loss(compiled: CompiledExpression) -> LossFunction:
    """``(y_true, y_pred) -> per-sample loss`` whose gradient is the derived formula."""
    forward_of, gradient_of, separable = symbolic_plans(compiled)
    # Inside tf.custom_gradient the tape does not differentiate the forward ops.
    forward, gradient = runner(forward_of), runner(gradient_of)
    fused = fused_loss(partial(run_loss, forward), partial(_unit_gradient, gradient),
                       labels_differentiable=False) if separable else None

    def backward(labels: tf.Tensor, prediction: tf.Tensor, upstream: tf.Tensor) -> tf.Tensor:
        squeezed = forward.squeezed_axes(prediction.shape.rank)
        inputs = {**named_inputs(labels, prediction),
                  "upstream": with_kept_axes(upstream, squeezed)}
        return unbroadcast(gradient.run(inputs)["gradient"], prediction)

    # Decorated once, not per call: wrapping a function costs as much as a small op.
    # The labels (and extra inputs) get no gradient (None), as when they were a constant.
    @tf.custom_gradient
    def loss(labels: tf.Tensor, prediction: tf.Tensor) -> tuple[tf.Tensor, Callable]:
        return run_loss(forward, labels, prediction), \
            lambda upstream: (no_gradient(labels), backward(labels, prediction, upstream))

    def per_sample_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        if fused is not None and worth_fusing(y_true, y_pred):
            return fused(y_true, y_pred, forward.squeezed_axes(y_pred.shape.rank))
        if _record is not None and tf.executing_eagerly():
            return _eager_loss(partial(run_loss, forward), backward, y_true, y_pred)
        return loss(y_true, y_pred)

    return per_sample_loss


def _eager_loss(value: LossFunction, backward: Callable, labels: tf.Tensor,
                prediction: tf.Tensor) -> tf.Tensor:
    """What ``tf.custom_gradient`` records in eager mode, without its per-call work.

    The forward ops are not recorded (no tape differentiates them); the tapes record
    one operation whose backward function is the derived gradient. Its per-call
    Python work (argspec inspection, variable watching, an ``Identity``) made the
    symbolic mode 10% slower than autodiff at (256, 10).
    """
    with _record.stop_recording():
        result = value(labels, prediction)
    if result is labels or result is prediction:  # a tape needs a tensor of its own
        result = tf.identity(result)
    given = label_tensors(labels)
    _record.record_operation("lossdsl_symbolic_gradient", [result], [*given, prediction],
                             lambda upstream: [None] * len(given) +
                             [backward(labels, prediction, upstream)])
    return result


def _unit_gradient(gradient: Runner, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """The seeded gradient for an upstream gradient of 1 (XLA folds the multiplications by it)."""
    inputs = {**named_inputs(y_true, y_pred), "upstream": tf.ones([], y_pred.dtype)}
    return gradient.run(inputs)["gradient"]


__all__ = ["symbolic_loss"]
