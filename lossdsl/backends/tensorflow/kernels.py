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

from functools import partial

from lossdsl.backends.tensorflow.context import Context
from lossdsl.backends.tensorflow.functions import Tensor
from lossdsl.lower.plan import Node, Plan, log_softmax_nodes


def softmax_program(plan: Plan, program: tuple) -> tuple[tuple, list] | None:
    """``program`` (see :class:`lossdsl.backends.tensorflow.run.Runner`) with each
    ``x - logsumexp(x)`` as TF's log-softmax kernel, and the axis specs of those
    logsumexps (they must reduce the last axis alone for it to apply).

    None when the plan has no such node.
    """
    found = log_softmax_nodes(plan)
    if not found:
        return None
    steps = list(program)
    for index, (x, lse, only_here) in found.items():
        node = plan.nodes[index]
        steps[index] = (partial(_log_softmax, position=node.children.index(x)), node, node.children)
        if only_here:  # its value is not needed: nothing runs
            steps[lse] = (lambda context, node, args: None, plan.nodes[lse], ())
    return tuple(steps), [plan.nodes[lse]["axis"] for _, lse, _ in found.values()]


def _log_softmax(context: Context, node: Node, args: list, position: int) -> Tensor:
    # One kernel instead of reduce_logsumexp's nine ops and a subtraction.
    return context.tf.nn.log_softmax(args[position], axis=-1)


__all__ = ["softmax_program"]
