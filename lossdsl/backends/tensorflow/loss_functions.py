"""What a Keras loss, metric or gradient check needs from TensorFlow: the same names as
:mod:`lossdsl.backends.keras_ops.loss_functions`, with TF's fast paths.

:mod:`lossdsl.backends.current` picks this module on ``KERAS_BACKEND=tensorflow``.
Importing it imports TensorFlow.
"""

from __future__ import annotations

from functools import partial

import tensorflow as tf

from lossdsl.backends.labels import label_tensors
from lossdsl.backends.tensorflow.custom_gradient import symbolic_loss
from lossdsl.backends.tensorflow.autodiff import check_values
from lossdsl.backends.tensorflow.ranks import align_ranks, batch_inputs
from lossdsl.backends.tensorflow.replicas import check_batch_statistics
from lossdsl.backends.tensorflow.fused import LossFunction, fused_loss, worth_fusing
from lossdsl.backends.tensorflow.run import Runner, run_loss, runner

NAME = "tensorflow"
AUTODIFF = "tf.GradientTape"


def autodiff_loss(plan: Runner, separable: bool) -> LossFunction:
    """``(y_true, y_pred) -> per-sample loss`` differentiated by TF's tape.

    A large batch of a separable loss inside a graph takes the fused path of
    :mod:`lossdsl.backends.tensorflow.fused`: the tape runs inside one XLA call with the forward ops.
    """
    value = partial(run_loss, plan)
    fused = fused_loss(value, partial(_unit_gradient_by_tape, value),
                       labels_differentiable=True) if separable else None

    def per_sample_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        if fused is not None and worth_fusing(y_true, y_pred):
            return fused(y_true, y_pred, plan.squeezed_axes(y_pred.shape.rank))
        return value(y_true, y_pred)

    return per_sample_loss


def _unit_gradient_by_tape(value: LossFunction, y_true: tf.Tensor, y_pred: tf.Tensor
                           ) -> tf.Tensor:
    """d sum(value) / d y_pred per element of the broadcast shape (not summed where y_pred broadcasts)."""
    shape = tf.shape(y_pred)
    for tensor in label_tensors(y_true):  # y_true, and any extra inputs
        shape = tf.broadcast_dynamic_shape(tf.shape(tensor), shape)
    y_pred = tf.broadcast_to(y_pred, shape)
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        result = value(y_true, y_pred)
    return tape.gradient(result, y_pred, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def check_dtype(dtype: str) -> None:
    """TensorFlow computes in every float dtype it is given: nothing to warn about."""


def assert_last_axis(y_pred: tf.Tensor, at_least: int, exactly: int | None,
                     message: str) -> tf.Tensor:
    """``y_pred``, once its last axis is checked at run time (its size was unknown when
    traced): an ``InvalidArgumentError`` carrying ``message`` otherwise, before any use."""
    width = tf.shape(y_pred)[-1]
    checks = [tf.debugging.assert_greater_equal(width, at_least, message=message)]
    if exactly is not None:
        checks.append(tf.debugging.assert_equal(width, exactly, message=message))
    with tf.control_dependencies(checks):
        return tf.identity(y_pred)


def per_sample_values(plan: Runner, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Run a loss plan on a batch (see :func:`batch_inputs`)."""
    return run_loss(plan, *batch_inputs(y_true, y_pred))


__all__ = ["NAME", "AUTODIFF", "align_ranks", "autodiff_loss", "batch_inputs", "per_sample_values",
           "symbolic_loss", "runner", "Runner", "check_values", "check_dtype", "assert_last_axis",
           "check_batch_statistics"]
