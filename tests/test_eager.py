"""Eager calls: static shapes instead of shape ops, and the same values as a traced graph.

In eager mode every input shape is known, so a plan runs no ``Shape`` or
``BroadcastArgs`` op, reduces its final reduction without keeping the axes (no
``Squeeze``), and the symbolic mode records its gradient without
``tf.custom_gradient``'s per-call work (issue 17). These tests check that the
values and gradients are those of a ``tf.function`` with an unknown batch size
(where the shape ops stay), and count the ops an eager step executes.
"""

from __future__ import annotations

import collections

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python import pywrap_tfe

import lossdsl

SOURCES = [
    "mean((y_true - y_pred)^2)",
    "-sum(y_true*log(softmax(y_pred)))",
    "1 - 2*sum(y_true*y_pred)/(sum(y_true) + sum(y_pred) + 1e-7)",
    "mean(softplus(y_pred) - y_true*y_pred)",
    "(y_true - y_pred)^2",
    "mean(y_pred)",
    "y_pred",
    "mean(y_true*y_pred) + 0.5*sum(y_pred^2)",
]


def _value_and_gradient(loss, y_true, y_pred):
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        value = loss(y_true, y_pred)
    return value, tape.gradient(value, y_pred)


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (tf.constant(rng.uniform(0, 1, shape), tf.float32),
            tf.constant(rng.normal(0, 1, shape), tf.float32))


@pytest.mark.parametrize("mode", ["autodiff", "symbolic"])
@pytest.mark.parametrize("source", SOURCES)
def test_eager_equals_a_graph_with_unknown_batch(source, mode):
    loss = lossdsl.compile(source, gradient=mode, reduction="none")
    y_true, y_pred = _data((5, 4))
    eager = _value_and_gradient(loss, y_true, y_pred)
    spec = tf.TensorSpec([None, 4], tf.float32)
    graph = tf.function(lambda t, p: _value_and_gradient(loss, t, p),
                        input_signature=[spec, spec])(y_true, y_pred)
    for ours, traced in zip(eager, graph):
        assert ours.shape == traced.shape
        np.testing.assert_allclose(ours.numpy(), traced.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["autodiff", "symbolic"])
def test_eager_broadcast_labels_and_rank_3(mode):
    loss = lossdsl.compile("mean((y_true - y_pred)^2)", gradient=mode)
    y_pred = tf.constant(np.random.default_rng(1).normal(size=(3, 2, 4)), tf.float32)
    labels = tf.constant([[[1.0], [0.0]], [[0.5], [2.0]], [[0.0], [1.0]]])
    value, gradient = _value_and_gradient(loss, labels, y_pred)
    expected = 2 * (y_pred - labels).numpy() / 4 / 6  # mean over the batch of 3 x 2 samples
    np.testing.assert_allclose(gradient.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(value.numpy(), np.mean((y_pred - labels).numpy() ** 2), rtol=1e-5)


@pytest.mark.parametrize("mode", ["autodiff", "symbolic"])
@pytest.mark.parametrize("source", ["y_pred - logsumexp(y_pred, axis=1)",
                                    "y_pred - logsumexp(y_pred, axis=-1)",
                                    "sum(y_true*log(softmax(y_pred)), axis=-1)",
                                    "logsumexp(y_pred, axis=-1)*mean(y_pred - "
                                    "logsumexp(y_pred, axis=-1))"])
def test_eager_log_softmax_kernel_equals_the_plain_ops_at_rank_3(source, mode):
    loss = lossdsl.compile(source, gradient=mode, reduction="none")
    y_true, y_pred = _data((2, 3, 4))
    eager = _value_and_gradient(loss, y_true, y_pred)
    spec = tf.TensorSpec([None, 3, 4], tf.float32)
    graph = tf.function(lambda t, p: _value_and_gradient(loss, t, p),
                        input_signature=[spec, spec])(y_true, y_pred)
    for ours, traced in zip(eager, graph):
        np.testing.assert_allclose(ours.numpy(), traced.numpy(), rtol=1e-5, atol=1e-6)


def test_eager_symbolic_labels_get_no_gradient():
    loss = lossdsl.compile("mean(y_pred^3*y_true)", gradient="symbolic")
    y_true, y_pred = _data((2, 3))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([y_true, y_pred])
        value = loss(y_true, y_pred)
    assert tape.gradient(value, y_true) is None  # as when the labels were a constant
    expected = 3 * y_pred.numpy() ** 2 * y_true.numpy() / 3 / 2
    np.testing.assert_allclose(tape.gradient(value, y_pred).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("mode", ["autodiff", "symbolic"])
def test_eager_loss_that_returns_an_input(mode):
    loss = lossdsl.compile("y_pred", gradient=mode, reduction="sum")
    y_true, y_pred = _data((2, 3))
    value, gradient = _value_and_gradient(loss, y_true, y_pred)
    np.testing.assert_allclose(value.numpy(), np.sum(y_pred.numpy()), rtol=1e-6)
    np.testing.assert_allclose(gradient.numpy(), np.ones((2, 3)))


def _ops_run_by(call, monkeypatch) -> collections.Counter:
    """The eager ops ``call()`` executes, counted by name."""
    counts = collections.Counter()
    execute = pywrap_tfe.TFE_Py_FastPathExecute

    def spy(context, op_name, *args, **kwargs):
        counts[op_name] += 1
        return execute(context, op_name, *args, **kwargs)
    monkeypatch.setattr(pywrap_tfe, "TFE_Py_FastPathExecute", spy)
    call()
    monkeypatch.setattr(pywrap_tfe, "TFE_Py_FastPathExecute", execute)
    return counts


def _eager_ops(loss, y_true, y_pred, monkeypatch):
    return _ops_run_by(lambda: _value_and_gradient(loss, y_true, y_pred), monkeypatch)


@pytest.mark.parametrize("mode", ["autodiff", "symbolic"])
def test_eager_mse_runs_no_more_ops_than_the_builtin(mode, monkeypatch):
    y_true, y_pred = _data((256, 10))
    ours = _eager_ops(lossdsl.compile("mean((y_true - y_pred)^2)", gradient=mode), y_true,
                      y_pred, monkeypatch)
    builtin = _eager_ops(keras.losses.MeanSquaredError(), y_true, y_pred, monkeypatch)
    assert sum(builtin.values()) > 20  # the spy saw the ops
    if mode == "autodiff":
        assert ours == builtin
    else:
        assert sum(ours.values()) <= sum(builtin.values())
    assert not {"BroadcastArgs", "Squeeze", "Identity"} & set(ours)


def test_eager_forward_runs_no_shape_op(monkeypatch):
    y_true, y_pred = _data((8, 3))
    for source in SOURCES:
        loss = lossdsl.compile(source, reduction="none")
        counts = _ops_run_by(lambda: loss(y_true, y_pred), monkeypatch)
        assert not {"Shape", "BroadcastArgs", "Pack"} & set(counts), (source, counts)


@pytest.mark.parametrize("mode", ["autodiff", "symbolic"])
def test_eager_cce_on_logits_runs_the_log_softmax_kernel(mode, monkeypatch):
    y_true, y_pred = _data((256, 10))
    loss = lossdsl.compile("-sum(y_true*log(softmax(y_pred)))", gradient=mode)
    ours = _eager_ops(loss, y_true, y_pred, monkeypatch)
    builtin = _eager_ops(keras.losses.CategoricalCrossentropy(from_logits=True), y_true, y_pred,
                         monkeypatch)
    assert "LogSoftmax" in ours and "Max" not in ours
    assert sum(ours.values()) <= sum(builtin.values())
