"""The ``keras.ops`` interpreter of a plan: one function per node kind, on any Keras 3 backend.

The same plan (:mod:`lossdsl.lower.plan`) that the TensorFlow runner and the
text printer read runs here through ``keras.ops``, so JAX and PyTorch compute
what TensorFlow computes. Functions of :data:`lossdsl.ops.OPS` are called by
their ``keras`` column. The TF-only fast paths (XLA matrix-vector reductions,
eager kernels) stay in :mod:`lossdsl.backends.tensorflow`; on JAX the training
step is jitted anyway. Shapes are read from the tensors (static on JAX and
PyTorch); a dimension unknown before running (a TF graph) is read at run time.

Keras is imported when a plan first runs, not when this module is.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, Sequence

import sympy

from lossdsl.backends.interpret import (SHARED_STEPS, Program, Step, add_terms, execute,
                                        check_pair_shapes, pair_gradient, pair_layout,
                                        pair_upstream, placed_pair, rows_input,
                                        prepare, product, with_log_softmax)
from lossdsl.backends.keras_ops.context import Context, broadcast_shape, finish
from lossdsl.backends.keras_ops.functions import Tensor, keras_function, sinh
from lossdsl.backends.labels import named_inputs
from lossdsl.limits import COMPILE_CACHE_SIZE
from lossdsl.lower.plan import Node, Output, Plan, late_broadcast_inputs, per_sample_tail


def _call(context: Context, node: Node, args: list) -> Tensor:
    function = keras_function(node.op.keras_path)
    if node["by_position"]:  # its value depends on where each element sits: the full shape
        return function(*(context.full(arg) for arg in args))
    # Every keras.ops function broadcasts all its arguments (the TF runner broadcasts a
    # first argument where a TF function does not): no `broadcast_first` work here.
    return function(*args)


def _reduction(context: Context, node: Node, args: list) -> Tensor:
    value = context.full(args[0]) if node["broadcast"] else args[0]
    axes = context.axes(node["axis"])
    function = keras_function(node.op.keras_path)
    if not axes:  # a sample of one element: reduce over a new axis of size 1 (var: 0, norm: |x|)
        ops = context.ops
        rank = len(value.shape)
        return ops.squeeze(function(ops.expand_dims(value, rank), axis=(rank,), keepdims=True),
                           axis=rank)
    # A reduction of the per-sample tail gives one number per sample, as Keras's
    # built-ins reduce: no keepdims, and no squeeze of the output after.
    keepdims = id(node) not in context.flat
    return function(value, axis=tuple(axes), keepdims=keepdims)


def _add(context: Context, node: Node, args: list) -> Tensor:
    # Small terms (constants, one number per sample) first, and added terms before
    # subtracted ones: an eager op on a full-size tensor is one more pass over memory
    # (`a - y` is one subtraction, not a negation and an addition).
    signs = node["signs"]
    return add_terms(node, args, sorted(
        range(len(args)), key=lambda i: (not context.is_small(args[i]), signs[i] < 0)))


def _mul(context: Context, node: Node, args: list) -> Tensor:
    return product(context, node, args, small_first=True)


def _power(context: Context, node: Node, args: list) -> Tensor:
    ops, form, x = context.ops, node["form"], args[0]
    if form == "square":
        return ops.square(x)
    if form == "sqrt":
        return ops.sqrt(x)
    if form == "rsqrt":
        return ops.rsqrt(x)
    if form == "reciprocal":
        return context.constant(1.0) / x
    if form == "identity":
        return x
    if form == "cube":
        return x * x * x
    if node["exponent"] is None:
        return ops.power(x, args[1])
    return ops.power(x, context.constant(node["exponent"]))


def _step(context: Context, node: Node, args: list) -> Tensor:
    ops, value = context.ops, args[0]
    middle = ops.full_like(value, node["at_zero"])
    return ops.where(value > 0, ops.ones_like(value),
                     ops.where(value < 0, ops.zeros_like(value), middle))


DISPATCH: dict[str, Step] = {
    **SHARED_STEPS, "call": _call, "reduction": _reduction, "add": _add, "mul": _mul,
    "power": _power, "step": _step,
    "boolean": lambda context, node, args: context.ops.convert_to_tensor(node["value"]),
    "count": lambda context, node, args: context.count(context.axes(node["axis"])),
    "relation": lambda context, node, args: getattr(context.ops, node["name"])(*args),
    "sinh": lambda context, node, args: sinh(args[0]),
    "pair": lambda context, node, args: placed_pair(context.ops, _pairs().__dict__[node["kind"]](
        context.raw[node["input"]] if node["input"] else next(iter(context.raw.values()))),
        node["axis"], context.rank, context.full),
    "pair_backward": lambda context, node, args: _pairs().pair_vjp(node["kind"], pair_upstream(
        context.ops, context.full(args[0]), node["axis"], context.rank),
        context.raw[node["input"]]),
}
# "given" (a guarded branch's leaf) is read by `execute` itself.
HANDLED_KINDS = frozenset(DISPATCH) | {"given"}


def _rows_shape(shape: Sequence, rows: int) -> tuple:
    """An input's shape once :func:`~lossdsl.backends.interpret.rows_input` has placed it."""
    return tuple(shape) + (1,) * (1 + rows - len(shape))


def _pairs() -> Any:
    from lossdsl.backends.keras_ops import pairs
    return pairs


def _log_softmax(context: Context, x: Tensor) -> Tensor:
    # Cross-entropy on logits then runs as Keras's own does: logsumexp is several ops
    # on every backend, and an eager PyTorch op costs more than its arithmetic.
    return context.ops.log_softmax(x, axis=-1)


class Runner:
    """A plan ready to run on tensors of the current Keras backend (same interface as TF's)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.programs: dict[int, Program] = {}  # a guarded where's branches, by id (plan-owned)
        self.program = prepare(plan.nodes, DISPATCH, self.programs)
        self.squeezed_axes = plan.squeezed_axes
        self.tail = per_sample_tail(plan)  # arithmetic on reductions: one number per sample
        self.softmax = with_log_softmax(plan, self.program, _log_softmax)
        # Inputs only summed or multiplied into elementwise outputs (the upstream gradient
        # of the symbolic backward pass) broadcast there: not brought to the full shape first.
        self.left_small = late_broadcast_inputs(plan)
        self.by_rank: dict[int, tuple[frozenset, Program]] = {}  # see run()
        self.pairs = plan.has_pairs  # (batch, batch) rows: see lossdsl.backends.interpret.pair_layout
        self.direct, self.shaped_like = pair_layout(plan) if self.pairs else (None, "")

    def _flat_reductions(self, context: Context) -> frozenset:
        """The tail's reductions, when each reduces exactly the axes the output drops."""
        if self.tail is None:
            return frozenset()
        output_axes = context.axes("output")
        reductions = [self.plan.nodes[index] for index in self.tail[1]]
        if all(context.axes(node["axis"]) == output_axes and output_axes for node in reductions):
            return frozenset(id(node) for node in reductions)
        return frozenset()

    def _program(self, context: Context) -> Program:
        """The log-softmax program where its logsumexps reduce the last axis, else the plain one."""
        if self.softmax and all(context.axes(axis) == [context.rank - 1]
                                for axis in self.softmax[1]):
            return self.softmax[0]
        return self.program

    def run(self, inputs: Mapping[str, Tensor],
            symbols: Mapping[sympy.Symbol, Tensor] | None = None) -> dict[str, Tensor]:
        """Evaluate every output; ``inputs`` are same-dtype tensors of equal rank, by name."""
        import keras

        first = next(iter(inputs.values()))
        rows = self.plan.rows
        shapes = tuple(_rows_shape(tensor.shape, rows) if self.pairs else tuple(tensor.shape)
                       for name, tensor in inputs.items()
                       if self.direct is None or name in self.direct)
        if self.pairs:  # rows over the batch: the full shape is (batch,) * (1 + rows)
            check_pair_shapes({name: tuple(t.shape) for name, t in inputs.items()}, self.direct,
                              rows)
            shapes += ((first.shape[0],) * (1 + rows),)
        shape = broadcast_shape(shapes)
        context = Context(keras.ops, _dtype_name(first.dtype), shape, self.plan.reduced,
                          _torch_device(first), programs=self.programs)
        context.raw = inputs
        # What depends only on the rank is decided once per rank (PyTorch runs this per call).
        decided = self.by_rank.get(context.rank)
        if decided is None:
            decided = self.by_rank[context.rank] = (self._flat_reductions(context),
                                                    self._program(context))
        context.flat, program = decided
        for name, tensor in inputs.items():
            if self.direct is None or name in self.direct:
                if self.pairs:  # one number per sample: a column ((batch, 1, 1): triples)
                    tensor = rows_input(keras.ops, tensor, rows)
                context.given[name] = context.full(tensor) if self.pairs or \
                    name not in self.left_small else tensor
        if symbols:
            context.given.update((symbol.name, value) for symbol, value in symbols.items())
        values = execute(context, program)
        flat_output = self.tail[0] if context.flat else None
        return {output.name: values[output.index] if output.index == flat_output
                else self._finish(context, values, output)
                for output in self.plan.outputs}

    def _finish(self, context: Context, values: list, output: Output) -> Tensor:
        if output.finish != "elementwise" or not self.pairs:
            return finish(context, values[output.index], output.finish)
        like = context.raw[self.shaped_like]  # a gradient: the shape of its input
        width = like.shape[-1] if len(like.shape) == 2 else 1  # rank 1: one number per sample
        return pair_gradient(context.ops, context, self.plan, output, values, like,
                             (like.shape[0], width, -1), tuple(like.shape))


def _torch_device(tensor: Any) -> str | None:
    """The device of a PyTorch tensor, None for any other backend's."""
    return str(tensor.device) if type(tensor).__module__.startswith("torch") else None


@lru_cache(maxsize=None)  # a handful of dtypes; Keras's standardize_dtype costs microseconds
def _dtype_name(dtype: Any) -> str:
    import keras
    return keras.backend.standardize_dtype(dtype)


@lru_cache(maxsize=2 * COMPILE_CACHE_SIZE)
def runner(plan: Plan) -> Runner:
    """The runner of a plan (one per plan object, cached)."""
    return Runner(plan)


def run_loss(plan: Runner, y_true: Tensor, y_pred: Tensor) -> Tensor:
    """The per-sample values of a loss plan on same-dtype, rank-aligned inputs.

    ``y_true`` may be a dict of ``y_true`` and extra inputs (:mod:`lossdsl.backends.labels`).
    """
    return plan.run(named_inputs(y_true, y_pred))["loss"]


__all__ = ["DISPATCH", "HANDLED_KINDS", "Runner", "runner", "run_loss", "execute"]
