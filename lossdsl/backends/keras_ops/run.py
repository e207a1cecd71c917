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
from typing import Any, Callable, Mapping, Sequence

import sympy

from lossdsl.backends.keras_ops.context import Context, broadcast_shape, finish
from lossdsl.backends.keras_ops.functions import Tensor, keras_function, sinh
from lossdsl.errors import LossDSLError
from lossdsl.limits import COMPILE_CACHE_SIZE
from lossdsl.lower.guards import taken_masks
from lossdsl.lower.plan import Node, Plan, log_softmax_nodes, per_sample_tail


Step = Callable[[Context, Node, list], Tensor]
Program = tuple[tuple[Step | None, Node, tuple[int, ...]], ...]  # None: a given leaf


def _given(context: Context, node: Node, args: list) -> Tensor:
    value = context.given.get(node["name"])
    if value is None:
        raise LossDSLError(f"Internal error: no value for the symbol `{node['name']}`.")
    return value


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
    total = None
    for sign, arg in zip(node["signs"], args):
        if total is None:
            total = arg if sign > 0 else -arg
        else:
            total = total + arg if sign > 0 else total - arg
    return total


def _mul(context: Context, node: Node, args: list) -> Tensor:
    split, value = node["split"], None
    for factor in args[:split]:
        value = factor if value is None else value * factor
    for factor in args[split:]:
        value = (context.constant(1.0) if value is None else value) / factor
    return value


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


def _where(context: Context, node: Node, args: list) -> Tensor:
    pairs = list(zip(args[0::2], args[1::2]))
    result = args[-1] if node["has_default"] else context.constant(float("nan"))
    for value, condition in reversed(pairs):
        result = context.ops.where(condition, value, result)
    return result


def _guarded_where(context: Context, node: Node, args: list) -> Tensor:
    """Each branch computed from its leaves with the gradient cut where it is not taken.

    JAX's and PyTorch's ``where`` pass NaN gradients from an untaken infinite
    branch just as TF's does: the same guard holds on every backend.
    """
    ops, count = context.ops, node["conditions"]
    conditions, leaves = args[:count], args[count:]
    taken_by = taken_masks(conditions, node["has_default"], ops.logical_and, ops.logical_not)
    branches = []
    for taken, branch in zip(taken_by, node["branches"]):
        given = [ops.where(taken, leaf, ops.stop_gradient(leaf)) if masked else leaf
                 for leaf, masked in zip(leaves, node["masked"])]
        branches.append(execute(context, context.programs[id(branch)], given)[branch.result])
    result = branches[-1] if node["has_default"] else context.constant(float("nan"))
    for condition, branch_value in reversed(list(zip(conditions, branches))):
        result = ops.where(condition, branch_value, result)
    return result


def _step(context: Context, node: Node, args: list) -> Tensor:
    ops, value = context.ops, args[0]
    middle = ops.full_like(value, node["at_zero"])
    return ops.where(value > 0, ops.ones_like(value),
                     ops.where(value < 0, ops.zeros_like(value), middle))


def _logic(context: Context, node: Node, args: list) -> Tensor:
    function, result = getattr(context.ops, LOGIC[node["name"]]), args[0]
    for arg in args[1:]:
        result = function(result, arg)
    return result


LOGIC = {"and": "logical_and", "or": "logical_or", "xor": "logical_xor"}

DISPATCH: dict[str, Step] = {
    "input": _given, "parameter": _given,
    "constant": lambda context, node, args: context.constant(node["value"]),
    "boolean": lambda context, node, args: context.ops.convert_to_tensor(node["value"]),
    "count": lambda context, node, args: context.count(context.axes(node["axis"])),
    "call": _call, "reduction": _reduction, "add": _add, "mul": _mul, "power": _power,
    "where": _where, "guarded_where": _guarded_where, "step": _step,
    "relation": lambda context, node, args: getattr(context.ops, node["name"])(*args),
    "logic": _logic,
    "not": lambda context, node, args: context.ops.logical_not(args[0]),
    "ite": lambda context, node, args: context.ops.where(*args),
    "sinh": lambda context, node, args: sinh(args[0]),
}
# "given" (a guarded branch's leaf) is read by `execute` itself.
HANDLED_KINDS = frozenset(DISPATCH) | {"given"}


def _prepare(nodes: Sequence[Node], programs: dict[int, Program]) -> Program:
    """Each node paired with its function; the programs of guarded branches go to ``programs``."""
    for node in nodes:
        for branch in node.attrs.get("branches", ()):
            programs[id(branch)] = _prepare(branch.nodes, programs)
    return tuple((None if node.kind == "given" else DISPATCH[node.kind], node, node.children)
                 for node in nodes)


def _softmax_program(plan: Plan, program: Program) -> tuple[Program, list] | None:
    """``program`` with each ``x - logsumexp(x)`` as one ``keras.ops.log_softmax``, and the
    axis specs of those logsumexps (they must reduce the last axis alone); None if there are none.

    Cross-entropy on logits then runs as Keras's own does: ``logsumexp`` is several
    ops on every backend, and an eager PyTorch op costs more than its arithmetic.
    """
    found = log_softmax_nodes(plan)
    if not found:
        return None
    steps = list(program)
    for index, (x, lse, only_here) in found.items():
        node = plan.nodes[index]
        position = node.children.index(x)
        steps[index] = (lambda context, node, args, position=position:
                        context.ops.log_softmax(args[position], axis=-1), node, node.children)
        if only_here:  # its value is not needed: nothing runs
            steps[lse] = (lambda context, node, args: None, plan.nodes[lse], ())
    return tuple(steps), [plan.nodes[lse]["axis"] for _, lse, _ in found.values()]


def execute(context: Context, program: Program, given: Sequence[Tensor] = ()) -> list[Tensor]:
    """The value of every node of ``program``; ``given`` are a branch's leaves."""
    values: list[Tensor] = []
    for step, node, children in program:
        values.append(given[node.attrs["index"]] if step is None else
                      step(context, node, [values[i] for i in children]))
    return values


class Runner:
    """A plan ready to run on tensors of the current Keras backend (same interface as TF's)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.programs: dict[int, Program] = {}  # a guarded where's branches, by id (plan-owned)
        self.program = _prepare(plan.nodes, self.programs)
        self.squeezed_axes = plan.squeezed_axes
        self.tail = per_sample_tail(plan)  # arithmetic on reductions: one number per sample
        self.softmax = _softmax_program(plan, self.program)

    def _flat_reductions(self, context: Context) -> frozenset:
        """The tail's reductions, when each reduces exactly the axes the output drops."""
        if self.tail is None:
            return frozenset()
        output_axes = context.axes("output")
        reductions = [self.plan.nodes[index] for index in self.tail[1]]
        if all(context.axes(node["axis"]) == output_axes and output_axes for node in reductions):
            return frozenset(id(node) for node in reductions)
        return frozenset()

    def run(self, inputs: Mapping[str, Tensor],
            symbols: Mapping[sympy.Symbol, Tensor] | None = None) -> dict[str, Tensor]:
        """Evaluate every output; ``inputs`` are same-dtype tensors of equal rank, by name."""
        import keras

        ops = keras.ops
        first = next(iter(inputs.values()))
        shape = broadcast_shape([tuple(ops.shape(tensor)) for tensor in inputs.values()])
        context = Context(ops, _dtype_name(first.dtype), shape,
                          self.plan.reduced, _torch_device(first),
                          programs=self.programs)
        context.flat = self._flat_reductions(context)
        for name, tensor in inputs.items():
            context.given[name] = context.full(tensor)
        if symbols:
            context.given.update((symbol.name, value) for symbol, value in symbols.items())
        program = self.program
        if self.softmax and all(context.axes(axis) == [context.rank - 1]
                                for axis in self.softmax[1]):
            program = self.softmax[0]
        values = execute(context, program)
        flat_output = self.tail[0] if context.flat else None
        return {output.name: values[output.index] if output.index == flat_output
                else finish(context, values[output.index], output.finish)
                for output in self.plan.outputs}


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
    """The per-sample values of a loss plan on same-dtype, rank-aligned inputs."""
    return plan.run({"y_true": y_true, "y_pred": y_pred})["loss"]


__all__ = ["DISPATCH", "HANDLED_KINDS", "Runner", "runner", "run_loss", "execute"]
