"""The value and the gradient of a loss in one XLA call, inside graphs XLA does not compile.

Keras trains on a CPU without XLA (``jit_compile="auto"`` resolves to False
there), and outside XLA each TF op on a full-size tensor is one more pass over
memory: a focal loss and its gradient take dozens. For a *separable* loss
(:func:`lossdsl.analysis.backward.is_separable`: elementwise, one number per sample,
or per row with rows independent) the gradient is the upstream gradient, broadcast, times a per-element *unit
gradient* (the gradient of the output's sum) that does not depend on the
upstream. So one ``tf.function(jit_compile=True)`` computes the per-sample
value and the unit gradient together, in one or two passes, and the backward
pass only scales it by the upstream gradient.

Both gradient modes use it: ``"autodiff"`` takes the unit gradient from TF's
tape inside the XLA function, ``"symbolic"`` from the derived formula. What
stays exact:

* second derivatives (a tape around the training tape, w.r.t. either input)
  differentiate the unit gradient's ops again, computed only when asked for;
* in ``"autodiff"`` mode the gradient w.r.t. ``y_true`` is TF's, computed in the
  backward pass; a graph that does not use it drops it unexecuted.

Where no tape records (Keras's evaluate and predict steps) the XLA call
computes the value alone. Eager calls, calls under an outer ``jit_compile=True``
(XLA fuses the whole step anyway) and small batches (an XLA launch costs more
than it saves) use the plain ops.
"""

from __future__ import annotations

import math
from functools import reduce
from typing import Callable, Optional

import tensorflow as tf

from lossdsl.backends.labels import label_tensors, no_gradient
from lossdsl.backends.tensorflow.functions import in_xla_context
from lossdsl.lower.shapes import incompatible_shapes

LossFunction = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
"""``(y_true, y_pred) -> per-sample loss`` (ranks aligned, same dtype); ``y_true`` may be a
dict of ``y_true`` and extra inputs (:mod:`lossdsl.backends.labels`)."""

FUSED_MIN_ELEMENTS = 100_000
"""Batches smaller than this (elements of the broadcast inputs) use the plain ops.

Measured in graph mode against the plain ops: at (256, 10) an XLA launch costs
about what the whole loss does; from about 1e5 elements on the fused call wins
for every benchmarked loss; at (4096, 1000) it is 1.5-3.5x faster
(``python benchmarks/bench_losses.py``).
"""
ASSUMED_BATCH = 128
"""The size counted for a dimension unknown when the graph is traced (Keras's batch axis)."""


def worth_fusing(y_true: tf.Tensor, y_pred: tf.Tensor) -> bool:
    """Whether to take the fused path for these inputs (decided when the graph is traced)."""
    if tf.executing_eagerly() or in_xla_context():
        return False
    shapes = [tensor.shape for tensor in label_tensors(y_true)] + [y_pred.shape]
    try:
        shape = reduce(tf.broadcast_static_shape, shapes)
    except ValueError:  # the user's shapes: the same error as on every other path
        raise incompatible_shapes(shapes) from None
    if shape.rank is None or shape.rank != y_pred.shape.rank:
        return False
    return math.prod(ASSUMED_BATCH if d is None else d for d in shape.as_list()) \
        >= FUSED_MIN_ELEMENTS


def fused_loss(value: LossFunction, unit_gradient: LossFunction, *,
               labels_differentiable: bool) -> Callable[..., tf.Tensor]:
    """``(y_true, y_pred, squeezed_axes) -> per-sample loss``, value and gradient from one XLA call.

    ``unit_gradient(y_true, y_pred)`` is d sum(``value``) / d ``y_pred``, elementwise
    at the inputs' broadcast shape (not yet summed over axes along which
    ``y_pred`` broadcasts). ``squeezed_axes``: the axes the per-sample output
    drops, which the upstream gradient gets back.
    """
    xla_calls = None  # built when first needed: compiling a loss stays cheap

    def per_sample_loss(y_true: tf.Tensor, y_pred: tf.Tensor, squeezed: list[int]) -> tf.Tensor:
        nonlocal xla_calls
        if xla_calls is None:
            xla_calls = _xla_calls(value, unit_gradient)
        value_only, value_and_unit_gradient = xla_calls
        # Decided when the graph is traced: without a tape (evaluate, predict) the
        # XLA call computes the value alone, and the gradient, should a caller of
        # this graph ask for it after all, comes from the plain ops.
        precompute = _tape_is_recording()

        @tf.custom_gradient
        def loss(labels: tf.Tensor, prediction: tf.Tensor) -> tuple[tf.Tensor, Callable]:
            # stop_gradient: no tape may record the XLA call's insides.
            inputs = tf.nest.map_structure(tf.stop_gradient, labels), tf.stop_gradient(prediction)
            if precompute:
                result, unit = value_and_unit_gradient(*inputs)
            else:
                result, unit = value_only(*inputs), None

            def grad(upstream: tf.Tensor) -> tuple[Optional[tf.Tensor], tf.Tensor]:
                label_gradient = _gradient_by_tape(value, labels, prediction, upstream) \
                    if labels_differentiable else no_gradient(labels)
                upstream = with_kept_axes(upstream, squeezed)
                unit_here = unit_gradient(labels, prediction) if unit is None else \
                    _with_second_derivative(unit, unit_gradient, labels, prediction)
                return label_gradient, unbroadcast(upstream * unit_here, prediction)
            return result, grad

        return loss(y_true, y_pred)

    return per_sample_loss


def with_kept_axes(upstream: tf.Tensor, squeezed: list[int]) -> tf.Tensor:
    """The per-sample output's upstream gradient back at the inputs' rank, as keepdims would give it."""
    for axis in squeezed:
        upstream = tf.expand_dims(upstream, axis)
    return upstream


def _xla_calls(value: LossFunction, unit_gradient: LossFunction) -> tuple[Callable, Callable]:
    """(value alone, (value, unit gradient)) as XLA-compiled functions."""
    # autograph=False: the plans are plain Python driving TF ops, nothing to convert.
    @tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
    def value_and_unit_gradient(y_true: tf.Tensor, y_pred: tf.Tensor
                                ) -> tuple[tf.Tensor, tf.Tensor]:
        return value(y_true, y_pred), unit_gradient(y_true, y_pred)

    value_only = tf.function(value, jit_compile=True, reduce_retracing=True, autograph=False)
    return value_only, value_and_unit_gradient


def _tape_is_recording() -> bool:
    """Whether a gradient tape records the ops created now (not in Keras's evaluate step)."""
    try:  # private; if TF moves it, assume a gradient is wanted
        from tensorflow.python.eager import record
        return bool(record.could_possibly_record())
    except (ImportError, AttributeError):
        return True


def _with_second_derivative(unit: tf.Tensor, unit_gradient: LossFunction, labels: tf.Tensor,
                            prediction: tf.Tensor) -> tf.Tensor:
    """``unit`` itself, whose own derivatives w.r.t. the inputs are those of ``unit_gradient``."""
    @tf.custom_gradient
    def precomputed(labels: tf.Tensor, prediction: tf.Tensor) -> tuple[tf.Tensor, Callable]:
        def grad(upstream: tf.Tensor) -> list[Optional[tf.Tensor]]:
            with tf.GradientTape() as tape:
                tape.watch([labels, prediction])
                again = unit_gradient(labels, prediction)
            return tape.gradient(again, [labels, prediction], output_gradients=upstream)
        return tf.identity(unit), grad

    return precomputed(labels, prediction)


def _gradient_by_tape(value: LossFunction, labels: tf.Tensor, prediction: tf.Tensor,
                      upstream: tf.Tensor) -> tf.Tensor:
    with tf.GradientTape() as tape:
        tape.watch(labels)
        result = value(labels, prediction)
    return tape.gradient(result, labels, output_gradients=upstream)


def unbroadcast(gradient: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """Sum ``gradient`` over the axes along which ``like`` was broadcast (y_pred of shape (b, 1))."""
    if gradient.shape.is_fully_defined() and gradient.shape == like.shape:
        return gradient
    # Unknown sizes may still differ at run time (a batch of 1 against a batch of 256):
    # the axes come from the run-time shapes; a sum over no axis is free.
    _, axes = tf.raw_ops.BroadcastGradientArgs(s0=tf.shape(gradient), s1=tf.shape(like))
    return tf.reshape(tf.reduce_sum(gradient, axis=axes), tf.shape(like))


__all__ = ["FUSED_MIN_ELEMENTS", "ASSUMED_BATCH", "worth_fusing", "fused_loss", "unbroadcast",
           "with_kept_axes"]
