"""The TensorFlow interpreter of a plan: one function per node kind.

:data:`DISPATCH` maps each kind of :data:`lossdsl.lower.plan.KINDS` to a
function ``(context, node, args) -> tensor``. A :class:`Runner` pairs each node
of a plan with its function once, so a call walks a prepared list and does no
other Python work per node. Functions of :data:`lossdsl.ops.OPS` are called by
their ``tf`` path. The TF-only fast paths (:mod:`lossdsl.backends.tensorflow.xla`,
small-first ordering) are switched by :class:`Capabilities`.

TensorFlow is imported when a plan first runs, not when this module is.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, Sequence

import sympy

from lossdsl.analysis.analyze import COMPILE_CACHE_SIZE
from lossdsl.analysis.backward import UPSTREAM
from lossdsl.backends.interpret import (SHARED_STEPS, Program, Step, add_terms, execute,
                                        check_pair_shapes, pair_gradient, pair_layout,
                                        pair_upstream, placed_pair, rows_input,
                                        prepare, product)
from lossdsl.backends.tensorflow.pairs import assert_fits_pair_rows, pair_rows
from lossdsl.backends.tensorflow.context import (Capabilities, Context, batch_shape, finish,
                                                 same_static_shape, smaller)
from lossdsl.backends.tensorflow.functions import Tensor, tf_function
from lossdsl.backends.labels import named_inputs
from lossdsl.backends.tensorflow.kernels import softmax_program
from lossdsl.backends.tensorflow.xla import (MATVEC_KINDS, SHARED_EXP, as_matvec,
                                             matvec_logsumexp, matvec_reduce, shared_exp)
from lossdsl.lower.plan import Node, Output, Plan, late_broadcast_inputs, per_sample_tail



def _boolean(context: Context, node: Node, args: list) -> Tensor:
    return context.tf.constant(node["value"])


def _count(context: Context, node: Node, args: list) -> Tensor:
    return context.count(context.axes(node["axis"]))


def _call(context: Context, node: Node, args: list) -> Tensor:
    op = node.op
    if op.name in SHARED_EXP and context.capabilities.shared_exp:
        return shared_exp(context, node, args)
    function = tf_function(op.tf)
    if node["by_position"]:  # its value depends on where each element sits: the full shape
        return function(*(context.full(arg) for arg in args))
    if node["broadcast_first"]:
        # Not every TF function broadcasts its first argument: clip_by_value(2, lo, hi)
        # with tensor bounds raised a ValueError (found by tests/test_fuzz.py).
        return function(_broadcast_against(context.tf, args[0], args[1:]), *args[1:])
    return function(*args)


def _broadcast_against(tf: Any, value: Tensor, others: Sequence[Tensor]) -> Tensor:
    """``value`` broadcast to the common shape of itself and ``others`` (no larger)."""
    shape = tf.shape(value)
    for other in others:
        shape = tf.broadcast_dynamic_shape(shape, tf.shape(other))
    return tf.broadcast_to(value, shape)


def _reduction(context: Context, node: Node, args: list) -> Tensor:
    value = context.full(args[0]) if node["broadcast"] else args[0]
    axes = context.axes(node["axis"])
    kind = node["kind"]
    if 0 in axes and context.replica() is not None:  # a batch statistic over every replica
        from lossdsl.backends.tensorflow.replicas import global_reduction
        return global_reduction(context.replica(), kind, value, axes)
    if context.capabilities.matvec and (kind in MATVEC_KINDS or kind == "logsumexp") \
            and as_matvec(context, value, axes):
        return matvec_logsumexp(context, value, axes) if kind == "logsumexp" else \
            matvec_reduce(context, value, kind, axes)
    function, axis = tf_function(node.op.tf), context.axis_argument(axes)
    if id(node) in context.kept and axes == context.output_axes():
        if same_static_shape(value.shape, context.static):
            # One number per sample, as Keras's built-ins reduce: no squeeze after.
            context.dropped.add(id(node))
            return function(value, axis=axis)
        if context.tail:  # the tail's values must all be one number per sample
            return finish(context, function(value, axis=axis, keepdims=True), "per_sample")
    return function(value, axis=axis, keepdims=True)


def _add(context: Context, node: Node, args: list) -> Tensor:
    # Small terms (constants, one number per sample) first: outside XLA each
    # operation on a full-size tensor is one more pass over memory.
    order = sorted(range(len(args)), key=lambda i: not context.is_small(args[i])) \
        if context.capabilities.small_first else range(len(args))
    return add_terms(node, args, order)


def _mul(context: Context, node: Node, args: list) -> Tensor:
    return product(context, node, args, context.capabilities.small_first)


# The ops of each power form (see lossdsl.lower.build.POWER_FORMS).
POWER_FUNCTIONS: dict[str, str] = {"square": "math.square", "sqrt": "math.sqrt",
                                   "rsqrt": "math.rsqrt", "reciprocal": "math.reciprocal"}


def _power(context: Context, node: Node, args: list) -> Tensor:
    form = node["form"]
    if form in POWER_FUNCTIONS:
        return tf_function(POWER_FUNCTIONS[form])(args[0])
    if form == "identity":
        return args[0]
    if form == "cube":
        return args[0] * args[0] * args[0]
    if node["exponent"] is None:
        return context.tf.pow(args[0], args[1])
    return context.tf.pow(args[0], context.constant(node["exponent"]))


def _step(context: Context, node: Node, args: list) -> Tensor:
    tf, value = context.tf, args[0]
    ones, zeros = tf.ones_like(value), tf.zeros_like(value)
    middle = tf.fill(tf.shape(value), context.constant(node["at_zero"]))
    return tf.where(value > 0, ones, tf.where(value < 0, zeros, middle))


def _relation(context: Context, node: Node, args: list) -> Tensor:
    return tf_function(RELATIONS[node["name"]])(*args)


def _pair(context: Context, node: Node, args: list) -> Tensor:
    # pair_self() takes the batch's size from any input
    x = context.raw[node["input"]] if node["input"] else next(iter(context.raw.values()))
    if context.replica() is not None:  # this replica's samples against the global batch
        from lossdsl.backends.tensorflow.replica_pairs import global_pair
        value = global_pair(context.replica(), node["kind"], x)
    else:
        value = tf_function(node.op.tf)(x)
    return placed_pair(_PAIR_OPS, value, node["axis"], context.rank, context.full)


def _pair_backward(context: Context, node: Node, args: list) -> Tensor:
    from lossdsl.backends.tensorflow.pairs import pair_vjp
    upstream = pair_upstream(_PAIR_OPS, context.full(args[0]), node["axis"], context.rank)
    if context.replica() is not None:
        from lossdsl.backends.tensorflow.replica_pairs import global_pair_vjp
        return global_pair_vjp(context.replica(), node["kind"], upstream, context.raw[node["input"]])
    return pair_vjp(node["kind"], upstream, context.raw[node["input"]])


class _TFOps:
    """TF's ops by their ``keras.ops`` names, for the helpers every backend shares
    (:mod:`lossdsl.backends.interpret`); TensorFlow is imported when one runs."""

    @staticmethod
    def sum(x: Tensor, axis: Any = None) -> Tensor:
        import tensorflow as tf
        return tf.reduce_sum(x, axis=axis)

    @staticmethod
    def reshape(x: Tensor, shape: Any) -> Tensor:
        import tensorflow as tf
        return tf.reshape(x, shape)

    @staticmethod
    def zeros_like(x: Tensor) -> Tensor:
        import tensorflow as tf
        return tf.zeros_like(x)

    @staticmethod
    def expand_dims(x: Tensor, axis: int) -> Tensor:
        import tensorflow as tf
        return tf.expand_dims(x, axis)


_PAIR_OPS = _TFOps()


RELATIONS = {name: f"math.{name}" for name in
             ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal")}

DISPATCH: dict[str, Step] = {
    **SHARED_STEPS, "boolean": _boolean, "count": _count, "call": _call, "reduction": _reduction,
    "add": _add, "mul": _mul, "power": _power, "step": _step, "relation": _relation,
    "sinh": lambda context, node, args: context.tf.math.sinh(args[0]),
    "pair": _pair, "pair_backward": _pair_backward,
}
# "given" (a guarded branch's leaf) is read by `execute` itself.
HANDLED_KINDS = frozenset(DISPATCH) | {"given"}


class Runner:
    """A plan ready to run on TensorFlow tensors (its nodes paired with their functions once)."""

    def __init__(self, plan: Plan, capabilities: Capabilities = Capabilities()) -> None:
        self.plan, self.capabilities = plan, capabilities
        self.programs: dict[int, Program] = {}  # a guarded where's branches, by id (plan-owned)
        self.program = prepare(plan.nodes, DISPATCH, self.programs)
        self.squeezed_axes = plan.squeezed_axes
        self.tail = per_sample_tail(plan)  # reductions that may drop their axes: no squeeze
        self.left_small = late_broadcast_inputs(plan)  # eagerly not broadcast first (upstream)
        self.softmax = softmax_program(plan, self.program) if capabilities.log_softmax else None
        self.pairs = plan.has_pairs  # (batch, batch) rows: see lossdsl.backends.interpret.pair_layout
        self.direct, self.shaped_like = pair_layout(plan) if self.pairs else (None, "")

    def _finish(self, context: Context, values: list, output: Output) -> Tensor:
        if output.finish != "elementwise" or not self.pairs:
            return finish(context, values[output.index], output.finish)
        like = context.raw[self.shaped_like]  # a gradient: the shape of its input
        tf, shape = context.tf, context.tf.shape(like)
        width = shape[-1] if like.shape.rank == 2 else 1  # rank 1: one number per sample
        return pair_gradient(_PAIR_OPS, context, self.plan, output, values, like,
                             tf.stack([shape[0], width, -1]), shape)

    def _take_tail(self, context: Context) -> None:
        """Let the per-sample tail's reductions drop their axes (all of them, eager only)."""
        if self.tail is None:
            return
        output, reductions = self.tail
        if output == reductions[0]:  # the output itself: reduced once, in any mode
            context.kept = frozenset({id(self.plan.nodes[output])})
        elif context.eager and all(context.axes(self.plan.nodes[index]["axis"]) ==
                                   context.output_axes() for index in reductions):
            context.kept = frozenset(id(self.plan.nodes[index]) for index in reductions)
            context.tail = True  # every tail value is one number per sample

    def run(self, inputs: Mapping[str, Tensor],
            symbols: Mapping[sympy.Symbol, Tensor] | None = None) -> dict[str, Tensor]:
        """Evaluate every output; ``inputs`` are same-dtype tensors of equal rank, by name.

        ``symbols`` give the parameters' values when the plan has them as symbols.
        """
        import tensorflow as tf

        first = next(iter(inputs.values()))
        rows, ops = self.plan.rows, _PAIR_OPS if self.pairs else None
        replica, columns = (_pair_replica(inputs, self.direct) if self.pairs else (False, None))
        sized = [rows_input(ops, t, rows) if self.pairs else t
                 for name, t in inputs.items() if self.direct is None or name in self.direct]
        if self.pairs:  # rows over the batch: the full shape is (batch,) + (columns,) * rows
            check_pair_shapes({name: t.shape.as_list() for name, t in inputs.items()}, self.direct,
                              rows)
            sized.append(pair_rows(tf, inputs, rows, columns))
        shape, dynamic = batch_shape(tf, sized)
        context = Context(tf, first.dtype, shape.rank, dynamic, self.plan.reduced,
                          tuple(shape.as_list()), capabilities=self.capabilities,
                          programs=self.programs, eager=tf.executing_eagerly(), raw=inputs,
                          _replica=replica)
        self._take_tail(context)
        given = context.given
        for name, tensor in inputs.items():
            if self.direct is None or name in self.direct:
                if self.pairs:  # a batch size known only when it runs: checked then; and
                    if name != UPSTREAM.name:  # (the upstream: at the per-sample output's shape)
                        tensor = assert_fits_pair_rows(tf, name, tensor, 2 if replica else rows)
                    given[name] = context.full(rows_input(ops, tensor, rows))
                    continue  # always the full rows, even where the last axis is unknown
                given[name] = context.full(tensor) if smaller(tensor.shape, shape) and not (
                    context.eager and name in self.left_small) else tensor
        if symbols:
            given.update((symbol.name, value) for symbol, value in symbols.items())
        program = self.program
        if self.softmax and context.eager and all(
                context.axes(axis) == [context.rank - 1] for axis in self.softmax[1]):
            program = self.softmax[0]
        values = execute(context, program)
        nodes, dropped = self.plan.nodes, context.dropped
        return {output.name: values[output.index] if id(nodes[output.index]) in dropped
                or (context.tail and output.index == self.tail[0])
                else self._finish(context, values, output)
                for output in self.plan.outputs}


def _pair_replica(inputs: Mapping[str, Tensor], direct: frozenset[str]) -> tuple[Any, Any]:
    """For a plan with pair functions: the replica context whose batch they gather (None: one
    replica) and the global batch's size (None: this batch's)."""
    from lossdsl.backends.tensorflow.replica_pairs import global_batch_size, refuse_shard_matrices
    from lossdsl.backends.tensorflow.replicas import global_replica_context
    replica = global_replica_context()
    if replica is None:
        return None, None
    refuse_shard_matrices({name: inputs[name] for name in direct})
    return replica, global_batch_size(replica, next(iter(inputs.values())))


@lru_cache(maxsize=2 * COMPILE_CACHE_SIZE)
def runner(plan: Plan) -> Runner:
    """The runner of a plan with every TF specialisation (one per plan object, cached)."""
    return Runner(plan)


def run_loss(plan: Runner, y_true: Tensor, y_pred: Tensor) -> Tensor:
    """The per-sample values of a loss plan on same-dtype, rank-aligned inputs.

    ``y_true`` may be a dict of ``y_true`` and extra inputs (:mod:`lossdsl.backends.labels`).
    """
    return plan.run(named_inputs(y_true, y_pred))["loss"]


__all__ = ["DISPATCH", "HANDLED_KINDS", "Capabilities", "Runner", "runner", "run_loss", "execute"]
