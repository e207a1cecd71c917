"""Lowering: SymPy formulas -> the nodes of a :class:`lossdsl.lower.plan.Plan`.

:func:`build` orders the distinct subexpressions of the formulas (shared ones
once, children first) and describes each as a :class:`Node`: DSL functions by
their row of :data:`lossdsl.ops.OPS` (looked up by SymPy head), the nodes only
SymPy produces (``+``, ``*``, powers, ``Piecewise``, steps, comparisons, logic)
by their own kinds. Nothing here says how a node is computed: that is each
backend's business. No TensorFlow here.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import sympy

from lossdsl.errors import LossDSLError
from lossdsl.lower.guards import guarded_where, needs_guard
from lossdsl.lower.plan import Branch, Node, frozen
from lossdsl.ops import BY_SYMPY_HEAD, REGISTRY, PerClassValues, varies_by_position
from lossdsl.symbolic.counts import Count
from lossdsl.symbolic.translate import ReductionTable

# (kind, children, op, attrs) of one node before its children have indices.
Description = tuple[str, Sequence[sympy.Basic], Any, Mapping[str, Any]]


def build(roots: Sequence[sympy.Expr], table: ReductionTable, *,
          inputs: frozenset | None = None, differentiable: bool = True,
          leaves: tuple[sympy.Basic, ...] = ()) -> tuple[tuple[Node, ...], list[int]]:
    """The nodes computing ``roots``, children before parents, and the index of each root.

    Args:
        roots: the formulas.
        table: what their reduction symbols stand for.
        inputs: the symbols given by name when the plan runs (default: the table's inputs).
        differentiable: whether a tape will differentiate the plan's ops; if so a
            ``where`` whose branches can blow up is guarded (:mod:`lossdsl.lower.guards`).
        leaves: expressions taken as given (``given`` nodes: the leaves of a guarded branch).
    """
    walk = _Walk(table, table.inputs if inputs is None else inputs, differentiable, leaves)
    return walk.run([sympy.sympify(root) for root in roots])


class _Walk:
    """One depth-first walk; a guarded where's branches are walks of their own."""

    def __init__(self, table: ReductionTable, inputs: frozenset, differentiable: bool,
                 leaves: tuple[sympy.Basic, ...]) -> None:
        self.table, self.inputs, self.differentiable = table, inputs, differentiable
        self.leaves = {leaf: i for i, leaf in enumerate(leaves)}

    def run(self, roots: list[sympy.Basic]) -> tuple[tuple[Node, ...], list[int]]:
        nodes: list[Node] = []
        index: dict[sympy.Basic, int] = {}
        pending: dict[sympy.Basic, Description] = {}
        stack: list[tuple[sympy.Basic, bool]] = [(root, False) for root in reversed(roots)]
        while stack:
            expr, expanded = stack.pop()
            if expr in index:
                continue
            if expanded:
                kind, children, op, attrs = pending.pop(expr)
                index[expr] = len(nodes)
                nodes.append(Node(kind, expr, tuple(index[c] for c in children), op, attrs))
                continue
            description = pending.get(expr) or self.describe(expr)
            pending[expr] = description
            stack.append((expr, True))
            stack.extend((child, False) for child in reversed(description[1])
                         if child not in index)
        return tuple(nodes), [index[root] for root in roots]

    def branch(self, value: sympy.Expr, leaves: tuple[sympy.Basic, ...]) -> Branch:
        """The nodes of one branch of a guarded where, its leaves given."""
        walk = _Walk(self.table, self.inputs, self.differentiable, leaves)
        nodes, (result,) = walk.run([value])
        return Branch(nodes, result)

    def describe(self, expr: sympy.Basic) -> Description:
        if expr in self.leaves:
            return "given", (), None, frozen(index=self.leaves[expr])
        if expr in self.table:
            return _reduction(expr, self.table)
        if expr in self.table.pairs:
            return _pair(expr, self.table)
        if self.differentiable and isinstance(expr, sympy.Piecewise) and needs_guard(expr):
            children, attrs = guarded_where(expr, self.branch)
            return "guarded_where", children, None, attrs
        if isinstance(expr, sympy.Symbol):
            return self.symbol(expr)
        if expr is sympy.true or expr is sympy.false:
            return "boolean", (), None, frozen(value=bool(expr))
        if expr.is_Number or isinstance(expr, sympy.NumberSymbol) or expr in _SPECIAL_VALUES:
            value = _SPECIAL_VALUES.get(expr, None)
            return "constant", (), None, frozen(value=float(expr) if value is None else value)
        for head, rule in _SYMPY_NODES.items():
            if isinstance(expr, head):
                kind, children, attrs = rule(expr)
                return kind, children, None, attrs
        op = BY_SYMPY_HEAD.get(type(expr))
        if op is not None and op.tf is not None:
            args = expr.args
            return "call", args, op, frozen(
                by_position=op.by_position, broadcast_first=len(args) > 1 and not op.by_position,
                first_full=bool(args[0].free_symbols & self.inputs))
        raise LossDSLError(
            f"Internal error: lossdsl cannot lower the SymPy node {type(expr).__name__} "
            f"({expr}). Please report this with the source that produced it.")

    def symbol(self, symbol: sympy.Symbol) -> Description:
        if isinstance(symbol, Count):
            return "count", (), None, frozen(axis=symbol.axis)
        if isinstance(symbol, PerClassValues):  # one value per element of the last axis
            return "constant", (), None, frozen(value=symbol.values)
        kind = "input" if symbol in self.inputs else "parameter"
        return kind, (), None, frozen(name=symbol.name)


_SPECIAL_VALUES = {sympy.oo: float("inf"), -sympy.oo: float("-inf"),
                   sympy.zoo: float("inf"), sympy.nan: float("nan")}


def _reduction(symbol: sympy.Symbol, table: ReductionTable) -> Description:
    reduction = table[symbol]
    # An argument without an input is smaller than a sample; reductions see it
    # broadcast back to the full shape (sum(1) counts elements).
    broadcast = not (reduction.arg.free_symbols & table.inputs)
    return "reduction", (reduction.arg,), REGISTRY[reduction.kind], frozen(
        kind=reduction.kind, axis=reduction.axis, broadcast=broadcast)


def _pair(symbol: sympy.Symbol, table: ReductionTable) -> Description:
    """A pair function of an input as given (read by name, not broadcast), or its backward pass."""
    pair = table.pairs[symbol]
    attrs = frozen(kind=pair.kind, input=None if pair.input is None else pair.input.name,
                   axis=pair.axis)
    if pair.upstream is None:
        return "pair", (), REGISTRY[pair.kind], attrs
    return "pair_backward", (pair.upstream,), REGISTRY[pair.kind], attrs


def split_sum(expr: sympy.Add) -> tuple[list[int], list[sympy.Expr]]:
    """The terms of a sum as (signs, positive terms): ``a - b`` is ``a`` minus ``b``."""
    signs, children = [], []
    for term in expr.args:
        negative = term.could_extract_minus_sign()
        signs.append(-1 if negative else 1)
        children.append(-term if negative else term)
    return signs, children


def split_product(expr: sympy.Mul) -> tuple[list[sympy.Expr], list[sympy.Expr]]:
    """The factors of a product as (numerator, denominator): ``a*b**-2`` is ``a / b**2``."""
    numerator, denominator = [], []
    for factor in expr.args:
        if isinstance(factor, sympy.Pow) and factor.exp.is_number and factor.exp.is_negative:
            denominator.append(factor.base ** (-factor.exp))
        else:
            numerator.append(factor)
    return numerator or [sympy.Integer(1)], denominator


Rule = Callable[[Any], tuple[str, Sequence[sympy.Basic], Mapping[str, Any]]]


def _add(expr: sympy.Add):
    signs, children = split_sum(expr)
    return "add", children, frozen(signs=tuple(signs))


def _mul(expr: sympy.Mul):
    numerator, denominator = split_product(expr)
    return "mul", numerator + denominator, frozen(split=len(numerator))


def _pow(expr: sympy.Pow):
    base, exponent = expr.args
    # one_hot(0.5) has no free symbol, yet no single value: it depends on the position.
    if exponent.is_number and exponent.is_real and not varies_by_position(exponent):
        value = float(exponent)
        return "power", (base,), frozen(exponent=value, form=POWER_FORMS.get(value, "pow"))
    return "power", (base, exponent), frozen(exponent=None, form="pow")


# Small exponents get their own forms: `pow(x, 2.0)` is slow in TF's eager mode, and
# sqrt/rsqrt have exact gradients at the edges of their domains; 1 and 3 are written
# out (`x`, `x*x*x`). Every backend maps each form to its ops.
POWER_FORMS: dict[float, str] = {2.0: "square", 0.5: "sqrt", -0.5: "rsqrt", -1.0: "reciprocal",
                                 1.0: "identity", 3.0: "cube"}


def _piecewise(expr: sympy.Piecewise):
    children: list[sympy.Basic] = []
    for value, condition in expr.args:
        children.append(value)
        if condition is not sympy.true:
            children.append(condition)
    return "where", children, frozen(has_default=expr.args[-1].cond is sympy.true)


def _heaviside(expr: sympy.Heaviside):
    at_zero = float(expr.args[1]) if len(expr.args) > 1 and expr.args[1].is_number else 0.5
    return "step", (expr.args[0],), frozen(at_zero=at_zero)


def _named(kind: str, name: str) -> Rule:
    return lambda expr: (kind, expr.args, frozen(name=name))


def _plain(kind: str) -> Rule:
    return lambda expr: (kind, expr.args, frozen())


RELATIONS: dict[type, str] = {
    sympy.Eq: "equal", sympy.Ne: "not_equal",
    sympy.StrictLessThan: "less", sympy.LessThan: "less_equal",
    sympy.StrictGreaterThan: "greater", sympy.GreaterThan: "greater_equal",
}
LOGIC: dict[type, str] = {sympy.And: "and", sympy.Or: "or", sympy.Xor: "xor"}

# SymPy's own nodes, by head (checked in this order: `isinstance`).
_SYMPY_NODES: dict[type, Rule] = {
    sympy.Add: _add,
    sympy.Mul: _mul,
    sympy.Pow: _pow,
    sympy.Piecewise: _piecewise,
    sympy.Heaviside: _heaviside,
    **{head: _named("relation", name) for head, name in RELATIONS.items()},
    **{head: _named("logic", name) for head, name in LOGIC.items()},
    sympy.Not: _plain("not"),
    sympy.sinh: _plain("sinh"),  # d/dx cosh(x)
    # SymPy folds a comparison of a Piecewise into ITE (found by tests/test_fuzz.py).
    sympy.ITE: _plain("ite"),
}


__all__ = ["build", "split_sum", "split_product", "RELATIONS", "LOGIC", "POWER_FORMS"]
