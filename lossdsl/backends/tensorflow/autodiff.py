"""The gradient check's evaluation on TensorFlow: a check plan and ``tf.GradientTape``, in float64."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import sympy
import tensorflow as tf

from lossdsl.backends.labels import named_inputs
from lossdsl.backends.tensorflow.ranks import batch_inputs
from lossdsl.backends.tensorflow.run import Runner
from lossdsl.lower.plan import Plan


def check_values(plan: Plan, y_true: np.ndarray, y_pred: np.ndarray,
                 parameters: Mapping[sympy.Symbol, float]
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray,
                            dict[sympy.Symbol, float]]:
    """Run a check plan in float64 and differentiate ``sum(loss)`` by the tape.

    Returns ``(y_true, y_pred)`` rank-aligned, every output of the plan, the tape's
    gradient w.r.t. ``y_pred``, and its gradient w.r.t. each parameter. ``y_true`` may be
    a dict of ``y_true`` and extra inputs (:mod:`lossdsl.backends.labels`): so is its return.
    """
    labels = {name: tf.constant(value, tf.float64) for name, value in y_true.items()} \
        if isinstance(y_true, dict) else tf.constant(y_true, tf.float64)
    yt, yp = batch_inputs(labels, tf.constant(y_pred, tf.float64))
    variables = {symbol: tf.Variable(value, dtype=tf.float64)
                 for symbol, value in parameters.items()}
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(yp)
        values = Runner(plan).run(named_inputs(yt, yp), variables)
        total = tf.reduce_sum(values["loss"])
    by_tape = tape.gradient(total, yp)
    by_tape = np.zeros(yp.shape) if by_tape is None else by_tape.numpy()
    by_parameter = {}
    for symbol, variable in variables.items():
        gradient = tape.gradient(total, variable)
        by_parameter[symbol] = 0.0 if gradient is None else float(gradient)
    yt = {name: value.numpy() for name, value in yt.items()} if isinstance(yt, dict) else yt.numpy()
    return (yt, yp.numpy(), {name: value.numpy() for name, value in values.items()},
            by_tape, by_parameter)


__all__ = ["check_values"]
