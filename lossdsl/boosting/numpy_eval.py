"""SymPy formulas -> NumPy float64, by walking the tree (no ``lambdify``, no ``eval``/``exec``).

The formulas of a boosting objective are evaluated on batches of shape
``(n, K)``: ``n`` samples of ``K`` margins (``K = 1`` for one output). A sample
has a single axis, so every reduction (``mean(x)``, ``logsumexp(x, axis=-1)``)
runs along the last axis with ``keepdims``, and every count symbol is ``K``.

Each DSL function's NumPy form is the ``numpy`` column of its
:data:`lossdsl.ops.OPS` row (:data:`NUMPY_FORMS` collects them by name); nodes
that only SymPy makes (``+``, ``*``, powers, ``Piecewise``, steps, comparisons)
are handled in :func:`_internal_step`.

    >>> import sympy
    >>> from lossdsl.ops import softplus
    >>> from lossdsl.symbolic.translate import ReductionTable
    >>> x = sympy.Symbol("y_pred", real=True)
    >>> plan = NumpyPlan([softplus(x) - 2*x], ReductionTable())
    >>> plan.run({"y_pred": np.array([[1000.0], [0.0]])}, {})[0].ravel().tolist()
    [-1000.0, 0.6931471805599453]
"""

from __future__ import annotations

import functools
from typing import Callable, Mapping, Sequence

import numpy as np
import sympy

from lossdsl.errors import DSLShapeError, LossDSLError
from lossdsl.ops import BY_SYMPY_HEAD, OPS
from lossdsl.ops.numpy_forms import numpy_form
from lossdsl.symbolic.counts import Count
from lossdsl.symbolic.translate import ReductionTable

Array = np.ndarray
SAMPLE_AXES = (None, (1,), (-1,))  # the axis specs that name a boosting sample's one axis


# One NumPy form per OPS row, read from its ``numpy`` column. Reductions run along a
# sample's one axis, the last (``axis`` is always -1 here).
NUMPY_FORMS: dict[str, Callable[..., Array]] = {op.name: numpy_form(op) for op in OPS}

_RELATIONS: dict[type, Callable[..., Array]] = {
    sympy.Eq: np.equal, sympy.Ne: np.not_equal, sympy.StrictLessThan: np.less,
    sympy.LessThan: np.less_equal, sympy.StrictGreaterThan: np.greater,
    sympy.GreaterThan: np.greater_equal,
}
_LOGIC: dict[type, Callable[..., Array]] = {
    sympy.And: np.logical_and, sympy.Or: np.logical_or, sympy.Xor: np.logical_xor}
_SPECIAL = {sympy.oo: np.inf, -sympy.oo: -np.inf, sympy.zoo: np.inf, sympy.nan: np.nan}

Step = Callable[[list[Array]], Array]
_Node = tuple[sympy.Basic, tuple[sympy.Basic, ...], "Step | None", bool]


def check_sample_axes(table: ReductionTable, source: str | None = None) -> None:
    """Refuse a reduction over anything but a sample's one axis (it has no other), and pair
    functions: a boosting objective is one gradient and Hessian per sample, each of its own."""
    pairs = sorted(pair.text for pair in table.pairs.values() if pair.upstream is None)
    if pairs:
        raise DSLShapeError(
            f"{', '.join(pairs)} compares the samples with each other, but a boosting objective "
            "gives each sample a gradient and Hessian of its own margins.", source=source,
            hint="write the loss of one sample, without pair_* functions")
    for reduction in table.in_order():
        if reduction.axis not in SAMPLE_AXES:
            raise DSLShapeError(
                f"`{reduction.symbol}` reduces axis {reduction.axis}, but a boosting sample "
                "has one axis: its K margins.", source=source,
                hint="write the reduction without axis=, or with axis=-1")


class NumpyPlan:
    """Formulas compiled to an ordered list of NumPy steps (shared subexpressions once)."""

    def __init__(self, roots: Sequence[sympy.Expr], table: ReductionTable) -> None:
        self.roots = [sympy.sympify(r) for r in roots]
        self.table = table
        self.order: list[_Node] = []
        seen: set[sympy.Basic] = set()
        stack: list[tuple[sympy.Basic, bool]] = [(r, False) for r in reversed(self.roots)]
        while stack:
            expr, expanded = stack.pop()
            if expr in seen:
                continue
            if expanded:
                seen.add(expr)
                self.order.append(self._node(expr))
                continue
            stack.append((expr, True))
            stack.extend((c, False) for c in reversed(self._children(expr)) if c not in seen)

    def _children(self, expr: sympy.Basic) -> tuple[sympy.Basic, ...]:
        if expr in self.table:
            return (self.table[expr].arg,)
        if isinstance(expr, sympy.Symbol) or expr.is_Atom:
            return ()
        if isinstance(expr, sympy.Piecewise):
            return tuple(part for pair in expr.args for part in pair)
        return tuple(expr.args)

    def _node(self, expr: sympy.Basic) -> _Node:
        children = self._children(expr)
        if expr in self.table:
            reduce = NUMPY_FORMS[self.table[expr].kind]
            return expr, children, lambda args: reduce(args[0], -1), True
        if isinstance(expr, sympy.Symbol):
            return expr, (), None, False  # given when the plan runs
        op = BY_SYMPY_HEAD.get(type(expr))
        return expr, children, _step(expr), op is not None and op.by_position

    def run(self, inputs: Mapping[str, Array], symbols: Mapping[sympy.Symbol, float]
            ) -> list[Array]:
        """Evaluate the roots; ``inputs`` broadcast to one ``(n, K)`` shape."""
        full = np.broadcast_shapes(*(np.shape(v) for v in inputs.values()))
        # Inputs keep their own shape ((n, 1) labels stay narrow); NumPy broadcasts each step.
        values: dict[sympy.Basic, Array] = {
            sympy.Symbol(name, real=True): np.asarray(v, np.float64) for name, v in inputs.items()}
        values.update({s: np.float64(v) for s, v in symbols.items()})
        with np.errstate(all="ignore"):  # untaken `where` branches may be inf or NaN
            for expr, children, step, at_full_shape in self.order:
                if expr in values:
                    continue
                if step is None:
                    values[expr] = self._symbol(expr, full)
                    continue
                args = [values[c] for c in children]
                if at_full_shape:
                    # A reduction sees its argument at the sample's full shape (sum(1) = K);
                    # one_hot(2) needs it to know each element's position.
                    args = [np.broadcast_to(arg, full) for arg in args]
                values[expr] = step(args)
        return [np.broadcast_to(values[r], full) for r in self.roots]

    @staticmethod
    def _symbol(symbol: sympy.Symbol, full: tuple[int, ...]) -> Array:
        if isinstance(symbol, Count):
            return np.float64(full[-1])
        raise LossDSLError(f"Internal error: no value for the symbol `{symbol}`.")


def _step(expr: sympy.Basic) -> Step:
    if expr is sympy.true or expr is sympy.false:
        truth = bool(expr)
        return lambda args: np.bool_(truth)
    if expr in _SPECIAL:
        special = _SPECIAL[expr]
        return lambda args: np.float64(special)
    if expr.is_Number or isinstance(expr, sympy.NumberSymbol):
        value = float(expr)
        return lambda args: np.float64(value)
    op = BY_SYMPY_HEAD.get(type(expr))
    if op is not None:
        form = NUMPY_FORMS[op.name]
        return lambda args: form(*args)
    return _internal_step(expr)


def _internal_step(expr: sympy.Basic) -> Step:
    if isinstance(expr, sympy.Add):
        return lambda args: sum(args[1:], args[0])
    if isinstance(expr, sympy.Mul):
        def product(args: list[Array]) -> Array:
            result = args[0]
            for arg in args[1:]:
                result = result * arg
            return result
        return product
    if isinstance(expr, sympy.Pow):
        exponent = expr.exp
        if exponent == -1:
            return lambda args: 1.0 / args[0]
        if exponent == sympy.Rational(1, 2):
            return lambda args: np.sqrt(args[0])
        if exponent == 2:
            return lambda args: args[0] * args[0]
        return lambda args: np.power(args[0], args[1])
    if isinstance(expr, sympy.Piecewise):
        has_default = expr.args[-1].cond is sympy.true

        def piecewise(args: list[Array]) -> Array:
            pairs = list(zip(args[0::2], args[1::2]))
            result = pairs[-1][0] if has_default else np.float64(np.nan)
            for value, condition in reversed(pairs[:-1] if has_default else pairs):
                result = np.where(condition, value, result)
            return result
        return piecewise
    if isinstance(expr, sympy.Heaviside):
        at_zero = float(expr.args[1]) if len(expr.args) > 1 else 0.5
        return lambda args: np.where(args[0] > 0, 1.0, np.where(args[0] < 0, 0.0, at_zero))
    for kind, function in _RELATIONS.items():
        if isinstance(expr, kind):
            return lambda args: function(args[0], args[1])
    for kind, function in _LOGIC.items():
        if isinstance(expr, kind):
            return lambda args: functools.reduce(function, args)
    if isinstance(expr, sympy.Not):
        return lambda args: np.logical_not(args[0])
    if isinstance(expr, sympy.ITE):
        return lambda args: np.where(*args)
    if isinstance(expr, sympy.sinh):  # d/dx cosh(x)
        return lambda args: np.sinh(args[0])
    raise LossDSLError(
        f"Internal error: lossdsl cannot evaluate the SymPy node {type(expr).__name__} "
        f"({expr}) in NumPy. Please report this with the source that produced it.")
