"""Stage 5: SymPy -> TensorFlow, by walking the tree through the function table.

No generated text is evaluated: :func:`build_plan` orders the distinct
subexpressions of the formulas (shared ones once) and pairs each with a small
function; :meth:`TFPlan.run` executes them on tensors. DSL functions take their
TF form from :data:`lossdsl.ops.OPS`; nodes that only SymPy produces (``+``,
``*``, powers, ``Piecewise``, steps, comparisons) are in :data:`INTERNAL` here.

TensorFlow is imported when a plan first runs, not when this module is.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

import sympy

from lossdsl.errors import DSLShapeError, LossDSLError
from lossdsl.ops import BY_SYMPY_HEAD
from lossdsl.symbolic import Axis, ReductionTable

Tensor = Any  # tf.Tensor; TF is not imported at module load


@lru_cache(maxsize=None)
def tf_function(dotted: str) -> Callable[..., Tensor]:
    """Resolve a dotted path under ``tensorflow`` (e.g. ``"math.log"``) to the function."""
    value: Any = importlib.import_module("tensorflow")
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


@dataclass
class _Context:
    """What a run knows: the dtype, the rank and the full shape of a sample batch."""

    tf: Any
    dtype: Any
    rank: int
    shape: Tensor
    table: ReductionTable
    output: sympy.Expr

    def constant(self, value: float) -> Tensor:
        return self.tf.constant(value, dtype=self.dtype)

    def axes(self, axis: Axis | str) -> list[int]:
        """Resolve an axis spec to non-negative axes of the batch (never the batch axis)."""
        if axis is None:
            return list(range(1, self.rank))
        if axis == "output":
            return self.output_axes()
        resolved = []
        for a in axis:
            index = a + self.rank if a < 0 else a
            if not 1 <= index < self.rank:
                raise DSLShapeError(
                    f"axis={a} does not exist for inputs of rank {self.rank} "
                    f"(a batch of samples of rank {self.rank - 1}).",
                    hint="axes count from 1 for the first axis of a sample")
            resolved.append(index)
        return resolved

    def output_axes(self) -> list[int]:
        """The axes along which the per-sample output is constant (they get squeezed)."""
        free = self.output.free_symbols
        if free & self.table.inputs:
            return []
        axes = set(range(1, self.rank))
        for symbol in free:
            if symbol in self.table:
                axes &= set(self.axes(self.table[symbol].axis))
        return sorted(axes)

    def count(self, axes: list[int]) -> Tensor:
        sizes = self.tf.gather(self.shape, axes) if axes else self.tf.ones([1], "int32")
        return self.tf.cast(self.tf.reduce_prod(sizes), self.dtype)

    def full(self, value: Tensor) -> Tensor:
        return self.tf.broadcast_to(value, self.shape)


Step = Callable[[_Context, list[Tensor]], Tensor]


@dataclass(frozen=True)
class _Node:
    expr: sympy.Basic
    children: tuple[sympy.Basic, ...]
    step: Step


class TFPlan:
    """Formulas compiled to an ordered list of TF steps; run it on input tensors.

    Args:
        outputs: name -> (formula, finish); ``finish`` is ``"per_sample"``
            (squeeze the axes the loss reduced: the loss), ``"total"`` (one
            number per sample: a parameter gradient) or ``"elementwise"``
            (broadcast to the inputs' shape: the gradient w.r.t. an input).
        table: what the reduction symbols of the formulas stand for.
        loss_output: the loss formula, which decides the per-sample shape.
    """

    def __init__(self, outputs: Mapping[str, tuple[sympy.Expr, str]],
                 table: ReductionTable, loss_output: sympy.Expr) -> None:
        self.outputs = dict(outputs)
        self.table = table
        self.loss_output = loss_output
        self.nodes = build_plan([formula for formula, _ in self.outputs.values()], table)

    def run(self, inputs: Mapping[str, Tensor], symbols: Mapping[sympy.Symbol, Tensor]
            ) -> dict[str, Tensor]:
        """Evaluate every output; ``inputs`` are same-dtype tensors of equal rank."""
        import tensorflow as tf

        first = next(iter(inputs.values()))
        shape = first.shape
        for tensor in inputs.values():
            shape = tf.broadcast_static_shape(shape, tensor.shape)
        rank = shape.rank
        dynamic = tf.shape(first)
        for tensor in inputs.values():
            dynamic = tf.broadcast_dynamic_shape(dynamic, tf.shape(tensor))
        context = _Context(tf, first.dtype, rank, dynamic, self.table, self.loss_output)
        values: dict[sympy.Basic, Tensor] = {}
        for name, tensor in inputs.items():
            values[sympy.Symbol(name, real=True)] = context.full(tensor) \
                if _smaller(tensor.shape, shape) else tensor
        values.update(symbols)
        for node in self.nodes:
            if node.expr not in values:
                values[node.expr] = node.step(context, [values[c] for c in node.children])
        return {name: _finish(context, values[formula], finish)
                for name, (formula, finish) in self.outputs.items()}


def _smaller(shape: Any, full: Any) -> bool:
    """Whether a tensor of ``shape`` must be broadcast to reach ``full``."""
    if shape.rank != full.rank:
        return True
    return any(a != b for a, b in zip(shape.as_list(), full.as_list()))


def _finish(context: _Context, value: Tensor, finish: str) -> Tensor:
    tf = context.tf
    if finish == "elementwise":
        return context.full(value)
    axes = context.output_axes() if finish == "per_sample" else list(range(1, context.rank))
    keep = tf.tensor_scatter_nd_update(
        context.shape, [[a] for a in axes], tf.ones([len(axes)], context.shape.dtype)) \
        if axes else context.shape
    value = tf.broadcast_to(value, keep)
    return tf.squeeze(value, axis=axes) if axes else value


# ---------------------------------------------------------------- planning

def build_plan(roots: Sequence[sympy.Expr], table: ReductionTable) -> list[_Node]:
    """Every distinct subexpression of ``roots``, children before parents."""
    order: list[_Node] = []
    done: set[sympy.Basic] = set()
    stack: list[tuple[sympy.Basic, bool]] = [(sympy.sympify(r), False) for r in reversed(roots)]
    pending: dict[sympy.Basic, _Node] = {}
    while stack:
        expr, expanded = stack.pop()
        if expr in done:
            continue
        if expanded:
            done.add(expr)
            order.append(pending.pop(expr))
            continue
        node = pending.get(expr) or _node(expr, table)
        pending[expr] = node
        stack.append((expr, True))
        stack.extend((child, False) for child in reversed(node.children) if child not in done)
    return order


def _node(expr: sympy.Basic, table: ReductionTable) -> _Node:
    if expr in table:
        return _reduction_node(expr, table)
    if isinstance(expr, sympy.Symbol):
        return _Node(expr, (), _symbol_step(expr))
    if expr is sympy.true or expr is sympy.false:
        truth = bool(expr)
        return _Node(expr, (), lambda context, _: context.tf.constant(truth))
    if expr.is_Number or isinstance(expr, sympy.NumberSymbol) or expr in _SPECIAL_VALUES:
        value = _SPECIAL_VALUES.get(expr, None)
        value = float(expr) if value is None else value
        return _Node(expr, (), lambda context, _: context.constant(value))
    for kind, rule in INTERNAL.items():
        if isinstance(expr, kind):
            children, step = rule(expr)
            return _Node(expr, tuple(children), step)
    op = BY_SYMPY_HEAD.get(type(expr))
    if op is not None and op.tf is not None:
        function_path = op.tf
        if op.arity == 1:
            return _Node(expr, tuple(expr.args),
                         lambda context, args: tf_function(function_path)(*args))
        # Not every TF function broadcasts its first argument: clip_by_value(2, lo, hi)
        # with tensor bounds raised a ValueError (found by tests/test_fuzz.py).
        return _Node(expr, tuple(expr.args), lambda context, args: tf_function(function_path)(
            _broadcast_against(context.tf, args[0], args[1:]), *args[1:]))
    raise LossDSLError(
        f"Internal error: lossdsl cannot lower the SymPy node {type(expr).__name__} "
        f"({expr}) to TensorFlow. Please report this with the source that produced it.")


def _broadcast_against(tf: Any, value: Tensor, others: Sequence[Tensor]) -> Tensor:
    """``value`` broadcast to the common shape of itself and ``others`` (no larger)."""
    shape = tf.shape(value)
    for other in others:
        shape = tf.broadcast_dynamic_shape(shape, tf.shape(other))
    return tf.broadcast_to(value, shape)


_SPECIAL_VALUES = {sympy.oo: float("inf"), -sympy.oo: float("-inf"),
                   sympy.zoo: float("inf"), sympy.nan: float("nan")}


def _symbol_step(symbol: sympy.Symbol) -> Step:
    name = symbol.name
    if name == "n" or name.startswith("n["):
        axis = None if name == "n" else tuple(int(a) for a in name[2:-1].split(","))
        return lambda context, _: context.count(context.axes(axis))
    if name == "n_out":
        return lambda context, _: context.count(context.output_axes())

    def missing(context: _Context, _: list) -> Tensor:
        raise LossDSLError(f"Internal error: no value for the symbol `{name}`.")
    return missing


def _reduction_node(symbol: sympy.Symbol, table: ReductionTable) -> _Node:
    reduction = table[symbol]
    reduce = {"mean": "math.reduce_mean", "sum": "math.reduce_sum",
              "max": "math.reduce_max", "min": "math.reduce_min",
              "logsumexp": "math.reduce_logsumexp"}[reduction.kind]
    # An argument without an input is smaller than a sample; reductions see it
    # broadcast back to the full shape (sum(1) counts elements).
    broadcast = not (reduction.arg.free_symbols & table.inputs)

    def step(context: _Context, args: list[Tensor]) -> Tensor:
        value = context.full(args[0]) if broadcast else args[0]
        return tf_function(reduce)(value, axis=context.axes(reduction.axis), keepdims=True)

    return _Node(symbol, (reduction.arg,), step)


# ---------------------------------------------------------------- SymPy's own nodes

def _add(expr: sympy.Add):
    signs, children = [], []
    for term in expr.args:
        negative = term.could_extract_minus_sign()
        signs.append(-1 if negative else 1)
        children.append(-term if negative else term)

    def step(context: _Context, args: list[Tensor]) -> Tensor:
        total = args[0] if signs[0] > 0 else -args[0]
        for sign, value in zip(signs[1:], args[1:]):
            total = total + value if sign > 0 else total - value
        return total
    return children, step


def _mul(expr: sympy.Mul):
    numerator, denominator = [], []
    for factor in expr.args:
        if isinstance(factor, sympy.Pow) and factor.exp.is_number and factor.exp.is_negative:
            denominator.append(factor.base ** (-factor.exp))
        else:
            numerator.append(factor)
    if not numerator:
        numerator = [sympy.Integer(1)]
    split = len(numerator)

    def step(context: _Context, args: list[Tensor]) -> Tensor:
        value = args[0]
        for factor in args[1:split]:
            value = value * factor
        for factor in args[split:]:
            value = value / factor
        return value
    return numerator + denominator, step


def _pow(expr: sympy.Pow):
    base, exponent = expr.args
    if exponent.is_number and exponent.is_real:
        return [base], _numeric_power(float(exponent))
    return [base, exponent], lambda context, args: context.tf.pow(args[0], args[1])


def _numeric_power(exponent: float) -> Step:
    # Small exponents get dedicated ops: `pow(x, 2.0)` is slow in eager mode,
    # and sqrt/rsqrt have exact gradients at the edges of their domains.
    special = {2.0: lambda tf, x: tf.math.square(x), 1.0: lambda tf, x: x,
               0.5: lambda tf, x: tf.math.sqrt(x), -0.5: lambda tf, x: tf.math.rsqrt(x),
               -1.0: lambda tf, x: tf.math.reciprocal(x), 3.0: lambda tf, x: x * x * x}
    if exponent in special:
        rule = special[exponent]
        return lambda context, args: rule(context.tf, args[0])
    return lambda context, args: context.tf.pow(args[0], context.constant(exponent))


def _piecewise(expr: sympy.Piecewise):
    children: list[sympy.Basic] = []
    for value, condition in expr.args:
        children.append(value)
        if condition is not sympy.true:
            children.append(condition)
    has_default = expr.args[-1].cond is sympy.true

    def step(context: _Context, args: list[Tensor]) -> Tensor:
        tf = context.tf
        pairs = list(zip(args[0::2], args[1::2]))
        result = args[-1] if has_default else context.constant(float("nan"))
        for value, condition in reversed(pairs):
            result = tf.where(condition, value, result)
        return result
    return children, step


def _heaviside(expr: sympy.Heaviside):
    x = expr.args[0]
    at_zero = float(expr.args[1]) if len(expr.args) > 1 and expr.args[1].is_number else 0.5

    def step(context: _Context, args: list[Tensor]) -> Tensor:
        tf, value = context.tf, args[0]
        ones, zeros = tf.ones_like(value), tf.zeros_like(value)
        middle = tf.fill(tf.shape(value), context.constant(at_zero))
        return tf.where(value > 0, ones, tf.where(value < 0, zeros, middle))
    return [x], step


def _relation(function: str):
    def rule(expr: sympy.core.relational.Relational):
        return list(expr.args), lambda context, args: getattr(context.tf.math, function)(*args)
    return rule


def _logic(function: str):
    def rule(expr: sympy.Basic):
        def step(context: _Context, args: list[Tensor]) -> Tensor:
            result = args[0]
            for arg in args[1:]:
                result = getattr(context.tf.math, function)(result, arg)
            return result
        return list(expr.args), step
    return rule


def _unary(function: str):
    def rule(expr: sympy.Basic):
        return list(expr.args), lambda context, args: tf_function(function)(args[0])
    return rule


INTERNAL: dict[type, Callable] = {
    sympy.Add: _add,
    sympy.Mul: _mul,
    sympy.Pow: _pow,
    sympy.Piecewise: _piecewise,
    sympy.Heaviside: _heaviside,
    sympy.Eq: _relation("equal"),
    sympy.Ne: _relation("not_equal"),
    sympy.StrictLessThan: _relation("less"),
    sympy.LessThan: _relation("less_equal"),
    sympy.StrictGreaterThan: _relation("greater"),
    sympy.GreaterThan: _relation("greater_equal"),
    sympy.And: _logic("logical_and"),
    sympy.Or: _logic("logical_or"),
    sympy.Not: _unary("math.logical_not"),
    sympy.Xor: _logic("logical_xor"),
    # SymPy folds a comparison of a Piecewise into ITE (found by tests/test_fuzz.py).
    sympy.ITE: lambda expr: (list(expr.args),
                             lambda context, args: context.tf.where(*args)),
    sympy.sinh: _unary("math.sinh"),  # d/dx cosh(x)
}
