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
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

import sympy

from lossdsl.errors import DSLShapeError, LossDSLError
from lossdsl.ops import BY_SYMPY_HEAD, REGISTRY, derivative_may_blow_up, varies_by_position
from lossdsl.symbolic.counts import Axis, Count
from lossdsl.symbolic.translate import ReductionTable

Tensor = Any  # tf.Tensor; TF is not imported at module load


@lru_cache(maxsize=None)
def tf_function(dotted: str) -> Callable[..., Tensor]:
    """Resolve a dotted path under ``tensorflow`` (e.g. ``"math.log"``) to the function.

    A path under ``lossdsl.`` names a TF function lossdsl defines itself
    (``"lossdsl.lower.plan.one_hot_last_axis"``).
    """
    if dotted.startswith("lossdsl."):
        module, _, attribute = dotted.rpartition(".")
        return getattr(importlib.import_module(module), attribute)
    value: Any = importlib.import_module("tensorflow")
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def in_xla_context() -> bool:
    """Whether TF ops created now are traced for XLA (inside ``tf.function(jit_compile=True)``)."""
    # No public API tells; the private one may move in a later TF, and then the
    # plans simply use the forms that are fastest outside XLA.
    try:
        import tensorflow as tf
        from tensorflow.python.ops import control_flow_util
        in_context = control_flow_util.GraphOrParentsInXlaContext
    except (ImportError, AttributeError):
        return False
    return bool(in_context(tf.compat.v1.get_default_graph()))


@dataclass
class _Context:
    """What a run knows: the dtype, the rank and the full shape of a sample batch."""

    tf: Any
    dtype: Any
    rank: int
    shape: Tensor
    table: ReductionTable
    output: sympy.Expr
    static: tuple = ()  # the full shape as far as it is known before running (None: unknown)
    memo: dict = field(default_factory=dict)  # values shared between nodes (exp(-|z|))
    output_table: ReductionTable | None = None  # the reductions of `output` (default: table)

    def in_xla(self) -> bool:
        """Whether the ops are being traced for XLA (``jit_compile=True``)."""
        return in_xla_context()

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
        table = self.table if self.output_table is None else self.output_table
        free = self.output.free_symbols
        if free & table.inputs or varies_by_position(self.output):
            return []
        axes = set(range(1, self.rank))
        for symbol in free:
            if symbol in table:
                axes &= set(self.axes(table[symbol].axis))
        return sorted(axes)

    def count(self, axes: list[int]) -> Tensor:
        known = [self.static[a] for a in axes]
        if all(size is not None for size in known):  # a constant: no shape ops at run time
            return self.constant(float(math.prod(known)))
        sizes = self.tf.gather(self.shape, axes) if axes else self.tf.ones([1], "int32")
        return self.tf.cast(self.tf.reduce_prod(sizes), self.dtype)

    def is_small(self, value: Tensor) -> bool:
        """Whether ``value`` certainly has fewer elements than a sample batch (it broadcasts)."""
        shape = value.shape
        if shape.rank is None:
            return False
        if shape.rank < len(self.static):
            return True
        return any(d == 1 and s != 1 for d, s in zip(shape.as_list()[1:], self.static[1:]))

    def full(self, value: Tensor) -> Tensor:
        if _same_static_shape(value.shape, self.static):
            return value
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
        loss_table: the reductions of ``loss_output`` (default: ``table``). The shape
            comes from the formula with its parameters as symbols, so that a value
            (``alpha = 0`` in ``mean(y_pred) + alpha*y_true``) cannot change it.
        differentiable: whether the tape will differentiate the plan's ops. If so,
            each branch of a ``where`` is evaluated on inputs whose gradient is
            cut where the branch is not taken (the "double where"), so that the
            tape's gradient gets no NaN/Inf from an untaken branch. If not (the
            plans behind ``gradient="symbolic"``), no guard is needed. (Under XLA
            ``sigmoid(±x)``/``softplus(±x)`` share one ``exp(-|x|)`` either way.)
    """

    def __init__(self, outputs: Mapping[str, tuple[sympy.Expr, str]],
                 table: ReductionTable, loss_output: sympy.Expr,
                 differentiable: bool = True, loss_table: ReductionTable | None = None) -> None:
        self.outputs = dict(outputs)
        self.table = table
        self.loss_output = loss_output
        self.loss_table = table if loss_table is None else loss_table
        self.nodes = build_plan([formula for formula, _ in self.outputs.values()], table,
                                differentiable=differentiable)

    def squeezed_axes(self, rank: int) -> list[int]:
        """The axes of rank-``rank`` inputs that the per-sample loss output drops."""
        return _Context(None, None, rank, None, self.table, self.loss_output,
                        output_table=self.loss_table).output_axes()

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
        context = _Context(tf, first.dtype, rank, dynamic, self.table, self.loss_output,
                           tuple(shape.as_list()), output_table=self.loss_table)
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


def _same_static_shape(shape: Any, static: tuple) -> bool:
    """Whether a tensor of ``shape`` certainly has the full shape (only the batch may be unknown)."""
    if shape.rank != len(static) or not static:
        return False
    dims = shape.as_list()
    return dims[0] == static[0] and all(
        d is not None and d == s for d, s in zip(dims[1:], static[1:]))


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
    if _has_kept_shape(value.shape, context.static, axes):
        return tf.squeeze(value, axis=axes) if axes else value
    # Built from slices of the shape, which XLA can fold to a constant (a scatter it cannot).
    keep = tf.stack([1 if i in axes else context.shape[i] for i in range(context.rank)]) \
        if axes else context.shape
    value = tf.broadcast_to(value, keep)
    return tf.squeeze(value, axis=axes) if axes else value


def one_hot_last_axis(positions: Tensor) -> Tensor:
    """1 where an element's index along the last axis equals ``positions`` there, else 0.

    ``positions`` has the sample batch's full shape (labels broadcast along the
    classes); the result has its dtype. Used for ``one_hot`` in :data:`lossdsl.ops.OPS`.
    """
    import tensorflow as tf

    index = tf.cast(tf.range(tf.shape(positions)[-1]), positions.dtype)
    return tf.cast(tf.equal(positions, index), positions.dtype)


def _has_kept_shape(shape: Any, static: tuple, axes: list[int]) -> bool:
    """Whether ``shape`` is the full shape with 1 at ``axes`` (a reduction's keepdims result)."""
    if shape.rank != len(static) or not static:
        return False
    dims = shape.as_list()
    if dims[0] != static[0]:
        return False
    return all(d == 1 if i in axes else (d is not None and d == static[i])
               for i, d in enumerate(dims) if i > 0)


# ---------------------------------------------------------------- planning

def run_loss(plan: TFPlan, y_true: Tensor, y_pred: Tensor) -> Tensor:
    """The per-sample values of a loss plan on same-dtype, rank-aligned inputs."""
    return plan.run({"y_true": y_true, "y_pred": y_pred}, {})["loss"]


def build_plan(roots: Sequence[sympy.Expr], table: ReductionTable, *,
               leaves: frozenset = frozenset(), differentiable: bool = True) -> list[_Node]:
    """Every distinct subexpression of ``roots``, children before parents.

    ``leaves`` are taken as given (their value is supplied when the plan runs).
    """
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
        node = pending.get(expr) or (
            _Node(expr, (), _given_step(expr)) if expr in leaves
            else _node(expr, table, differentiable))
        pending[expr] = node
        stack.append((expr, True))
        stack.extend((child, False) for child in reversed(node.children) if child not in done)
    return order


def _node(expr: sympy.Basic, table: ReductionTable, differentiable: bool = True) -> _Node:
    if expr in table:
        return _reduction_node(expr, table)
    if differentiable and isinstance(expr, sympy.Piecewise) and _needs_guard(expr):
        return _guarded_piecewise_node(expr, table)
    if type(expr).__name__ in _SHARED_EXP:
        return _shared_exp_node(expr)
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
        if op.by_position:  # its value depends on where each element sits: give it the full shape
            return _Node(expr, tuple(expr.args), lambda context, args: tf_function(
                function_path)(*(context.full(arg) for arg in args)))
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


def _given_step(expr: sympy.Basic) -> Step:
    def missing(context: _Context, _: list) -> Tensor:
        raise LossDSLError(f"Internal error: no value given for `{expr}`.")
    return missing


def _symbol_step(symbol: sympy.Symbol) -> Step:
    name = symbol.name
    if isinstance(symbol, Count):
        axis = symbol.axis
        return lambda context, _: context.count(context.axes(axis))

    def missing(context: _Context, _: list) -> Tensor:
        raise LossDSLError(f"Internal error: no value for the symbol `{name}`.")
    return missing


def _reduction_node(symbol: sympy.Symbol, table: ReductionTable) -> _Node:
    reduction = table[symbol]
    reduce = REGISTRY[reduction.kind].tf
    # An argument without an input is smaller than a sample; reductions see it
    # broadcast back to the full shape (sum(1) counts elements).
    broadcast = not (reduction.arg.free_symbols & table.inputs)

    def step(context: _Context, args: list[Tensor]) -> Tensor:
        value = context.full(args[0]) if broadcast else args[0]
        axes = context.axes(reduction.axis)
        if reduction.kind in _MATVEC_KINDS and _as_matvec(context, value, axes):
            return _matvec_reduce(context, value, reduction.kind, axes)
        if reduction.kind == "logsumexp" and _as_matvec(context, value, axes):
            return _matvec_logsumexp(context, value, axes)
        return tf_function(reduce)(value, axis=axes, keepdims=True)

    return _Node(symbol, (reduction.arg,), step)


# ---------------------------------------------------------------- SymPy's own nodes

_MATVEC_KINDS = ("sum", "mean")
_MATVEC_MIN_LENGTH = 64


def _as_matvec(context: _Context, value: Tensor, axes: list[int]) -> bool:
    """Whether a reduction over trailing axes runs faster with a product by a vector of ones as its sum.

    XLA's CPU backend lowers a row reduction to a windowed reduction plus a
    library call over its elementwise argument written out to memory; its
    matrix-vector product is faster (MSE value and gradient at (4096, 1000):
    8.7 -> 6.0 ms). Rows shorter than
    ``_MATVEC_MIN_LENGTH`` gain nothing (measured 0.94-1.04x either way at (256, 10)).
    CPU-only machines only (:func:`_only_cpus`).
    """
    if not axes or axes != list(range(axes[0], context.rank)) or \
            value.shape.rank != context.rank or not context.in_xla():
        return False
    sizes = [value.shape[a] for a in axes]
    return (None not in sizes and math.prod(sizes) >= _MATVEC_MIN_LENGTH
            and value.dtype in (context.tf.float32, context.tf.float64) and _only_cpus())


@lru_cache(maxsize=None)
def _only_cpus() -> bool:
    """No GPU: there XLA reduces well itself, and float32 products may run in TF32 (10-bit mantissa)."""
    import tensorflow as tf
    return not tf.config.list_physical_devices("GPU")


def _matvec_reduce(context: _Context, value: Tensor, kind: str, axes: list[int]) -> Tensor:
    """sum or mean over the trailing ``axes`` (keepdims), as a matrix-vector product."""
    tf, size = context.tf, math.prod(value.shape[a] for a in axes)
    weight = tf.fill([size], tf.constant(1.0 / size if kind == "mean" else 1.0, value.dtype))
    if axes == [1] and context.rank == 2:
        return tf.matmul(value, weight[:, None])
    leading = tf.shape(value)[:axes[0]]
    rows = tf.reshape(value, tf.concat([leading, [size]], 0))
    return tf.reshape(tf.linalg.matvec(rows, weight),
                      tf.concat([leading, tf.ones([len(axes)], leading.dtype)], 0))


def _matvec_logsumexp(context: _Context, value: Tensor, axes: list[int]) -> Tensor:
    """log(sum(exp(x))) over the trailing ``axes``, the sum as a matrix-vector product.

    The largest element is subtracted first, as tf.reduce_logsumexp does (no
    overflow), and is a constant to the tape (the result does not depend on it).
    """
    tf = context.tf
    largest = tf.stop_gradient(tf.reduce_max(value, axis=axes, keepdims=True))
    largest = tf.where(tf.math.is_finite(largest), largest, tf.zeros_like(largest))
    return tf.math.log(_matvec_reduce(context, tf.exp(value - largest), "sum", axes)) + largest


def split_sum(expr: sympy.Add) -> tuple[list[int], list[sympy.Expr]]:
    """The terms of a sum as (signs, positive terms): ``a - b`` is ``a`` minus ``b``."""
    signs, children = [], []
    for term in expr.args:
        negative = term.could_extract_minus_sign()
        signs.append(-1 if negative else 1)
        children.append(-term if negative else term)
    return signs, children


def _add(expr: sympy.Add):
    signs, children = split_sum(expr)

    def step(context: _Context, args: list[Tensor]) -> Tensor:
        # Small terms (constants, one number per sample) first: outside XLA each
        # operation on a full-size tensor is one more pass over memory.
        order = sorted(range(len(args)), key=lambda i: not context.is_small(args[i]))
        total = args[order[0]] if signs[order[0]] > 0 else -args[order[0]]
        for i in order[1:]:
            total = total + args[i] if signs[i] > 0 else total - args[i]
        return total
    return children, step


def split_product(expr: sympy.Mul) -> tuple[list[sympy.Expr], list[sympy.Expr]]:
    """The factors of a product as (numerator, denominator): ``a*b**-2`` is ``a / b**2``."""
    numerator, denominator = [], []
    for factor in expr.args:
        if isinstance(factor, sympy.Pow) and factor.exp.is_number and factor.exp.is_negative:
            denominator.append(factor.base ** (-factor.exp))
        else:
            numerator.append(factor)
    return numerator or [sympy.Integer(1)], denominator


def _mul(expr: sympy.Mul):
    numerator, denominator = split_product(expr)
    split = len(numerator)

    def step(context: _Context, args: list[Tensor]) -> Tensor:
        # The small factors (constants, one number per sample) are combined first
        # and scale the full-size tensors once: outside XLA each operation on a
        # full-size tensor is one more pass over memory.
        small = [context.is_small(arg) for arg in args]

        def factors(of_small: bool, start: int, stop: int) -> list[Tensor]:
            return [args[i] for i in range(start, stop) if small[i] == of_small]
        scale = _quotient(context, factors(True, 0, split), factors(True, split, len(args)))
        return _quotient(context, [scale] + factors(False, 0, split),
                         factors(False, split, len(args)))
    return numerator + denominator, step


def _quotient(context: _Context, numerator: list[Tensor | None], denominator: list[Tensor]
              ) -> Tensor | None:
    """The product of ``numerator`` (None factors skipped) over that of ``denominator``.

    None when there is no factor at all.
    """
    value = None
    for factor in numerator:
        if factor is not None:
            value = factor if value is None else value * factor
    for factor in denominator:
        value = (context.constant(1.0) if value is None else value) / factor
    return value


def _pow(expr: sympy.Pow):
    base, exponent = expr.args
    if exponent.is_number and exponent.is_real:
        return [base], _numeric_power(float(exponent))
    return [base, exponent], lambda context, args: context.tf.pow(args[0], args[1])


# Small exponents get dedicated ops: `pow(x, 2.0)` is slow in eager mode, and
# sqrt/rsqrt have exact gradients at the edges of their domains. Exponents 1 and 3
# are written out (`x`, `x*x*x`). The exporter reads this table too.
POWER_FUNCTIONS: dict[float, str] = {2.0: "math.square", 0.5: "math.sqrt",
                                     -0.5: "math.rsqrt", -1.0: "math.reciprocal"}


def _numeric_power(exponent: float) -> Step:
    if exponent in POWER_FUNCTIONS:
        path = POWER_FUNCTIONS[exponent]
        return lambda context, args: tf_function(path)(args[0])
    if exponent == 1.0:
        return lambda context, args: args[0]
    if exponent == 3.0:
        return lambda context, args: args[0] * args[0] * args[0]
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


_SHARED_EXP = ("sigmoid", "softplus")


def _shared_exp_node(expr: sympy.Basic) -> _Node:
    """sigmoid(z) or softplus(z) from ``e = exp(-|u|)``, shared with every sibling under XLA.

    ``u`` is the argument of the first such node of the plan, ``z`` is ``u`` or
    ``-u``. With ``r = 1/(1 + e)``: sigmoid(u) = where(u >= 0, 1, e)*r, sigmoid(-u) =
    where(u >= 0, e, 1)*r, softplus(u) = where(u >= 0, u, 0) + log1p(e), softplus(-u)
    = where(u >= 0, 0, -u) + log1p(e). One exp and one division for all four (a focal
    loss and its gradient need them all), never an overflow (e <= 1), and one
    comparison for both signs, so the tape's derivatives are exact at u = 0 too
    (TF's d|u|/du and d relu(u)/du are 0 there; a second comparison on -u would
    pick the other branch at 0).
    """
    (z,) = expr.args
    key, is_sigmoid = sympy.Abs(z), type(expr).__name__ == "sigmoid"
    function = "math.sigmoid" if is_sigmoid else "math.softplus"

    def step(context: _Context, args: list[Tensor]) -> Tensor:
        tf, value = context.tf, args[0]
        if not context.in_xla():
            return tf_function(function)(value)  # one fused TF kernel beats four ops
        if key not in context.memo:
            positive = value >= 0
            e = tf.exp(tf.where(positive, -value, value))
            context.memo[key] = (z, value, positive, e, 1 / (1 + e))
        first, u, positive, e, reciprocal = context.memo[key]
        if z == first:
            if is_sigmoid:
                return tf.where(positive, tf.ones_like(e), e) * reciprocal
            return tf.where(positive, u, tf.zeros_like(u)) + tf.math.log1p(e)
        if z == -first:
            if is_sigmoid:
                return tf.where(positive, e, tf.ones_like(e)) * reciprocal
            return tf.where(positive, tf.zeros_like(u), -u) + tf.math.log1p(e)
        return tf_function(function)(value)  # |z| = |u| by another form: no sharing

    return _Node(expr, (z,), step)


def _needs_guard(expr: sympy.Piecewise) -> bool:
    """Whether a branch of this ``where`` calls something whose derivative can blow up."""
    return any(derivative_may_blow_up(node)
               for value, _ in expr.args for node in sympy.preorder_traversal(value))


def _guarded_piecewise_node(expr: sympy.Piecewise, table: ReductionTable) -> _Node:
    """``where`` whose branches see ``where(taken, x, stop_gradient(x))`` for each leaf ``x``.

    The value is unchanged; in the backward pass the inner ``where`` *selects*
    (rather than multiplies), so a NaN or Inf made by an untaken branch's
    derivative never reaches the inputs (TF issue #38349; the "double where").
    """
    values = [value for value, _ in expr.args]
    conditions = [cond for _, cond in expr.args if cond is not sympy.true]
    has_default = expr.args[-1].cond is sympy.true
    leaves = sorted(set().union(*(v.free_symbols for v in values)), key=str)
    masked = [leaf for leaf in leaves if not isinstance(leaf, Count)]
    branch_plans = [build_plan([value], table, leaves=frozenset(leaves)) for value in values]

    def step(context: _Context, args: list[Tensor]) -> Tensor:
        tf = context.tf
        taken_by = _taken_masks(tf, args[:len(conditions)], has_default)
        leaf_values = dict(zip(leaves, args[len(conditions):]))
        branches = []
        for taken, value, plan in zip(taken_by, values, branch_plans):
            given = dict(leaf_values)
            for leaf in masked:
                given[leaf] = tf.where(taken, given[leaf], tf.stop_gradient(given[leaf]))
            for node in plan:
                if node.expr not in given:
                    given[node.expr] = node.step(context, [given[c] for c in node.children])
            branches.append(given[value])
        result = branches[-1] if has_default else context.constant(float("nan"))
        for condition, branch in reversed(list(zip(args[:len(conditions)], branches))):
            result = tf.where(condition, branch, result)
        return result

    return _Node(expr, tuple(conditions) + tuple(leaves), step)


def _taken_masks(tf: Any, conditions: list[Tensor], has_default: bool) -> list[Tensor]:
    """Where each branch is the one taken: its condition and no earlier one."""
    masks, none_before = [], None
    for condition in conditions:
        masks.append(condition if none_before is None else tf.logical_and(condition, none_before))
        negated = tf.logical_not(condition)
        none_before = negated if none_before is None else tf.logical_and(none_before, negated)
    if has_default:
        masks.append(none_before)
    return masks


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
        return list(expr.args), lambda context, args: tf_function(function)(*args)
    return rule


def _logic(function: str):
    def rule(expr: sympy.Basic):
        def step(context: _Context, args: list[Tensor]) -> Tensor:
            result = args[0]
            for arg in args[1:]:
                result = tf_function(function)(result, arg)
            return result
        return list(expr.args), step
    return rule


def _unary(function: str):
    def rule(expr: sympy.Basic):
        return list(expr.args), lambda context, args: tf_function(function)(args[0])
    return rule


# SymPy nodes that map to one TF function (dotted path under `tensorflow`), by kind;
# the exporter prints the same paths.
RELATIONS: dict[type, str] = {
    sympy.Eq: "math.equal", sympy.Ne: "math.not_equal",
    sympy.StrictLessThan: "math.less", sympy.LessThan: "math.less_equal",
    sympy.StrictGreaterThan: "math.greater", sympy.GreaterThan: "math.greater_equal",
}
LOGIC: dict[type, str] = {sympy.And: "math.logical_and", sympy.Or: "math.logical_or",
                          sympy.Xor: "math.logical_xor"}
UNARY: dict[type, str] = {sympy.Not: "math.logical_not",
                          sympy.sinh: "math.sinh"}  # sinh: d/dx cosh(x)

INTERNAL: dict[type, Callable] = {
    sympy.Add: _add,
    sympy.Mul: _mul,
    sympy.Pow: _pow,
    sympy.Piecewise: _piecewise,
    sympy.Heaviside: _heaviside,
    **{kind: _relation(path) for kind, path in RELATIONS.items()},
    **{kind: _logic(path) for kind, path in LOGIC.items()},
    **{kind: _unary(path) for kind, path in UNARY.items()},
    # SymPy folds a comparison of a Piecewise into ITE (found by tests/test_fuzz.py).
    sympy.ITE: lambda expr: (list(expr.args),
                             lambda context, args: context.tf.where(*args)),
}
