"""Plan patterns that TensorFlow runs as one kernel, for eager calls.

Eager, every op is one Python dispatch and one pass over memory. ``x - logsumexp(x)``
over the last axis (the log-softmax of cross-entropy on logits) is nine ops in
``tf.reduce_logsumexp`` (max, isfinite, select, stop_gradient, sub, exp, sum,
log, add) and a subtraction, or one ``tf.nn.log_softmax`` whose gradient is
four ops. Graphs keep the plain ops (XLA has its matrix-vector form,
:mod:`lossdsl.backends.tensorflow.xla`); the runner takes this program only
for eager calls whose logsumexps reduce the last axis.
"""

from __future__ import annotations

from lossdsl.backends.interpret import Program, with_log_softmax
from lossdsl.backends.tensorflow.context import Context
from lossdsl.backends.tensorflow.functions import Tensor
from lossdsl.lower.plan import Plan


def softmax_program(plan: Plan, program: Program) -> tuple[Program, list] | None:
    """``program`` (see :class:`lossdsl.backends.tensorflow.run.Runner`) with each
    ``x - logsumexp(x)`` as TF's log-softmax kernel, and the axis specs of those
    logsumexps (they must reduce the last axis alone for it to apply).

    None when the plan has no such node.
    """
    return with_log_softmax(plan, program, _log_softmax)


def _log_softmax(context: Context, x: Tensor) -> Tensor:
    # One kernel instead of reduce_logsumexp's nine ops and a subtraction.
    return context.tf.nn.log_softmax(x, axis=-1)


__all__ = ["softmax_program"]
