"""SymPy formulas -> lossdsl source: the IR a formula would be written as, and its text.

A formula is printed as the user would write it: DSL function names (taken from
:data:`lossdsl.ops.BY_SYMPY_HEAD` and the rows' ``elementary`` forms, never a
table of names here), ``^`` for powers, ``sqrt``, ``where`` for SymPy's
``Piecewise`` and steps, ``b - a`` rather than ``-a + b``, ``x/y`` rather
than ``x*y**-1``, and no ``1.0*``. Reduction symbols print as the call they
stand for (``mean(y_pred)``); count symbols print as ``sum(1)`` (the number of
elements reduced) unless ``names`` gives them a name; a column sum
``sum(one_hot(k) * x, axis=-1)`` prints as ``x[..., k]``. The IR is printed by the
canonical printer of :mod:`lossdsl.language.ir`, so the text parses back.

    >>> import sympy
    >>> from lossdsl.symbolic.translate import Reduction, ReductionTable
    >>> y, t = sympy.Symbol("y_pred", real=True), sympy.Symbol("y_true", real=True)
    >>> formula_text(sympy.Heaviside(1 - y, 1) * (-y + t) ** 2 / sympy.Abs(y), ReductionTable())
    '(y_true - y_pred)^2 * where(1 >= y_pred, 1, 0) / abs(y_pred)'
"""

from __future__ import annotations

from typing import Mapping

import sympy

from lossdsl.language import ir
from lossdsl.ops import BY_SYMPY_HEAD, REGISTRY, varies_by_position
from lossdsl.symbolic.counts import Count
from lossdsl.symbolic.translate import Reduction, ReductionTable

# SymPy heads some rows use as their ``elementary`` form (``maximum`` is ``Max``).
_BY_ELEMENTARY: dict[type, str] = {
    op.elementary: op.name for op in REGISTRY.values() if isinstance(op.elementary, type)}
_RELATIONS: dict[type, str] = {sympy.Eq: "==", sympy.Ne: "!=", sympy.Lt: "<", sympy.Le: "<=",
                               sympy.Gt: ">", sympy.Ge: ">="}
_NEGATED: dict[str, str] = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}


class NotPrintable(ValueError):
    """The formula holds a node that has no spelling in the language."""


def formula_text(expr: sympy.Basic, table: ReductionTable,
                 names: Mapping[sympy.Basic, str] | None = None) -> str:
    """The DSL text of one formula (see the module docstring)."""
    return ir.to_text(to_ir(expr, table, names))


def condition_text(condition: sympy.Basic, table: ReductionTable) -> str:
    """A condition (``y_pred > 0``, ``a != b or c < 1``) in DSL spelling.

        >>> condition_text(sympy.Symbol("y_pred", real=True) < 1, ReductionTable())
        'y_pred < 1'
    """
    if isinstance(condition, (sympy.Or, sympy.And)):
        joiner = " or " if isinstance(condition, sympy.Or) else " and "
        return joiner.join(condition_text(arg, table) for arg in condition.args)
    if type(condition) not in _RELATIONS:
        raise NotPrintable(f"no comparison in the language for {condition}")
    printer = _Printer(table, {})
    return ir.to_text(ir.Compare(_RELATIONS[type(condition)],
                                 printer.node(condition.lhs), printer.node(condition.rhs)))


def number(value: sympy.Basic) -> ir.Expr:
    """A SymPy number as DSL: floats as short as they round-trip, integral ones as integers."""
    if value.is_Integer:
        return _signed(ir.Number(str(abs(int(value)))), int(value) < 0)
    if value.is_Rational:
        p, q = value.as_numer_denom()
        return ir.Binary("/", number(p), number(q))
    v = float(value)
    if v != v or v in (float("inf"), float("-inf")):
        raise NotPrintable(f"{value} is not a finite number")
    if v.is_integer() and abs(v) < 1e15:
        return _signed(ir.Number(str(int(abs(v)))), v < 0)
    text = repr(abs(v)).replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")
    return _signed(ir.Number(text), v < 0)


def _signed(node: ir.Expr, negative: bool) -> ir.Expr:
    return ir.Negate(node) if negative else node


def column_of(reduction: Reduction) -> tuple[sympy.Expr, int] | None:
    """``(x, k)`` when ``reduction`` is the column ``x[..., k]`` (``sum(one_hot(k) * x,
    axis=-1)``, as :mod:`lossdsl.symbolic.translate` writes it), else None."""
    if reduction.kind != "sum" or reduction.axis != (-1,):
        return None
    one_hot = REGISTRY["one_hot"].sympy
    picks = [f for f in sympy.Mul.make_args(reduction.arg) if isinstance(f, one_hot)]
    if len(picks) != 1:
        return None
    rest = reduction.arg / picks[0]
    if varies_by_position(rest) or rest.is_number:  # sum(one_hot(1), axis=-1) is no column
        return None
    position = picks[0].args[0]
    if position.is_Integer and position >= 0:
        return rest, int(position)
    last = Count((-1,))
    offset = position - last
    if position.has(last) and offset.is_Integer and offset < 0:
        return rest, int(offset)  # one_hot(n[-1] - 1) is the last column, x[..., -1]
    return None


def to_ir(expr: sympy.Basic, table: ReductionTable,
          names: Mapping[sympy.Basic, str] | None = None) -> ir.Expr:
    """The IR of a SymPy formula; ``names`` maps symbols (counts, reductions) to names."""
    return _Printer(table, names or {}).node(expr)


class _Printer:
    def __init__(self, table: ReductionTable, names: Mapping[sympy.Basic, str]) -> None:
        self.table, self.names = table, names

    def node(self, expr: sympy.Basic) -> ir.Expr:
        if expr in self.names:
            return ir.Name(self.names[expr])
        if expr.is_Number:
            return number(expr)
        if isinstance(expr, sympy.Symbol):
            return self.symbol(expr)
        if isinstance(expr, sympy.Add):
            return self.add(expr)
        if isinstance(expr, sympy.Mul):
            return self.mul(expr)
        if isinstance(expr, sympy.Pow):
            return self.power(expr)
        if isinstance(expr, sympy.Piecewise):
            return self.piecewise(expr.args)
        if isinstance(expr, sympy.Heaviside):
            return self.step(expr)
        if expr is sympy.E:  # not `e`: a source may bind `e` (e = y_pred - y_true) and shadow it
            return ir.Call("exp", (ir.Number("1"),))
        if expr.is_NumberSymbol:
            return number(sympy.Float(expr))
        return self.call(expr)

    def symbol(self, expr: sympy.Symbol) -> ir.Expr:
        if expr in self.table:
            reduction = self.table[expr]
            column = column_of(reduction)
            if column is not None:
                return ir.Column(self.node(column[0]), column[1])
            return ir.Call(reduction.kind, (self.node(reduction.arg),), reduction.axis)
        if isinstance(expr, Count):
            if expr.axis == "output":
                raise NotPrintable("the output count depends on the plan")
            return ir.Call("sum", (ir.Number("1"),), expr.axis)
        return ir.Name(expr.name)

    def call(self, expr: sympy.Basic) -> ir.Expr:
        row = BY_SYMPY_HEAD.get(type(expr))
        name = row.name if row is not None else _BY_ELEMENTARY.get(type(expr))
        if name is None:
            return self.node(_in_dsl_terms(expr))
        args = [self.node(arg) for arg in expr.args]
        if len(args) > REGISTRY[name].arity:  # Max(a, b, c): maximum(maximum(a, b), c)
            folded = args[0]
            for arg in args[1:]:
                folded = ir.Call(name, (folded, arg))
            return folded
        return ir.Call(name, tuple(args))

    def add(self, expr: sympy.Add) -> ir.Expr:
        terms = sorted(expr.args, key=_term_order)
        positive = [t for t in terms if not _is_negative(t)]
        negative = [t for t in terms if _is_negative(t)]
        if not positive:  # -a - b
            first, *rest = negative
            result: ir.Expr = self.node(first)
        else:
            first, *others = positive
            result = self.node(first)
            for term in others:
                result = ir.Binary("+", result, self.node(term))
            rest = negative
        for term in rest:
            result = ir.Binary("-", result, self.node(-term))
        return result

    def mul(self, expr: sympy.Mul) -> ir.Expr:
        coefficient, rest = expr.as_coeff_Mul()  # with a Float coefficient too
        factors = sympy.Mul.make_args(rest)
        negative = bool(coefficient.is_negative)
        coefficient = -coefficient if negative else coefficient
        numerator, denominator = [], []
        if not _is_one(coefficient):
            p, q = coefficient.as_numer_denom() if coefficient.is_Rational else (coefficient, 1)
            if p != 1:
                numerator.append(p)
            if q != 1:
                denominator.append(q)
        for factor in factors:
            if isinstance(factor, sympy.Pow) and factor.exp.is_number and factor.exp.is_negative:
                denominator.append(sympy.Pow(factor.base, -factor.exp))
            else:
                numerator.append(factor)
        top = self._product(numerator, negative) if numerator else \
            _signed(ir.Number("1"), negative)
        return ir.Binary("/", top, self._product(denominator)) if denominator else top

    def _product(self, factors: list[sympy.Basic], negative: bool = False) -> ir.Expr:
        # -a*b prints as `-a * b`: the sign goes on the first factor.
        result = _signed(self.node(factors[0]), negative)
        for factor in factors[1:]:
            result = ir.Binary("*", result, self.node(factor))
        return result

    def power(self, expr: sympy.Pow) -> ir.Expr:
        base, exponent = expr.args
        if exponent == sympy.S.Half:
            return ir.Call("sqrt", (self.node(base),))
        if exponent.is_number and exponent.is_negative:
            return ir.Binary("/", ir.Number("1"), self.node(sympy.Pow(base, -exponent)))
        return ir.Binary("^", self.node(base), self.node(exponent))

    def piecewise(self, pieces: tuple) -> ir.Expr:
        (value, condition), rest = pieces[0], pieces[1:]
        if condition == sympy.true or not rest:
            return self.node(value)
        otherwise = self.piecewise(rest)
        return self.where(condition, self.node(value), otherwise)

    def where(self, condition: sympy.Basic, if_true: ir.Expr, if_false: ir.Expr) -> ir.Expr:
        if isinstance(condition, sympy.And):
            first, *others = condition.args
            return self.where(first, self.where(sympy.And(*others), if_true, if_false), if_false)
        if isinstance(condition, sympy.Or):
            first, *others = condition.args
            return self.where(first, if_true, self.where(sympy.Or(*others), if_true, if_false))
        if isinstance(condition, sympy.Not):
            return self.where(condition.args[0], if_false, if_true)
        if isinstance(condition, sympy.ITE):  # SymPy's Eq(where(...), x): and/or/not of its parts
            return self.where(condition.to_nnf(), if_true, if_false)
        if condition == sympy.true:
            return if_true
        if condition == sympy.false:
            return if_false
        if type(condition) not in _RELATIONS:
            raise NotPrintable(f"no comparison in the language for {condition}")
        op = _RELATIONS[type(condition)]
        return ir.Call("where", (self.compare(op, *condition.args), if_true, if_false))

    def compare(self, op: str, left: sympy.Expr, right: sympy.Expr) -> ir.Compare:
        if right == 0 and isinstance(left, sympy.Add):  # a - b > 0: a > b
            negative = [t for t in left.args if _is_negative(t)]
            if negative and len(negative) < len(left.args):
                positive = [t for t in left.args if not _is_negative(t)]
                left, right = sympy.Add(*positive), -sympy.Add(*negative)
        return ir.Compare(op, self.node(left), self.node(right))

    def step(self, expr: sympy.Heaviside) -> ir.Expr:
        """``Heaviside(x, h)``: 1 for x > 0, ``h`` at 0, else 0, as a ``where``."""
        x, at_zero = expr.args[0], (expr.args[1] if len(expr.args) > 1 else sympy.S.Half)
        one, zero = ir.Number("1"), ir.Number("0")
        if at_zero == 1:
            return ir.Call("where", (self.compare(">=", x, sympy.S.Zero), one, zero))
        inner = one if at_zero == 0 else ir.Call(
            "where", (self.compare("==", x, sympy.S.Zero), self.node(at_zero), zero))
        return ir.Call("where", (self.compare(">", x, sympy.S.Zero), one,
                                 zero if at_zero == 0 else inner))


def _in_dsl_terms(expr: sympy.Basic) -> sympy.Expr:
    """A node no row names (derivatives make ``sinh``, ``tan``) in terms that rows name."""
    if isinstance(expr, sympy.tan):
        return sympy.Mul(sympy.sin(expr.args[0]), sympy.Pow(sympy.cos(expr.args[0]), -1),
                         evaluate=False)
    rewritten = expr.rewrite(sympy.exp)
    if rewritten == expr or rewritten.has(sympy.I):
        raise NotPrintable(f"`{type(expr).__name__}` has no spelling in the language")
    return rewritten


def _is_one(value: sympy.Basic) -> bool:
    """1 or 1.0 (SymPy no longer calls ``Float(1.0) == 1``)."""
    return value.is_number and float(value) == 1.0


def _is_negative(term: sympy.Basic) -> bool:
    return term.could_extract_minus_sign() and (term.is_Number or term.is_Mul)


def _term_order(term: sympy.Basic) -> tuple[int, str]:
    # Terms with the inputs first, constants last: `y_pred - y_true + 1`.
    return (1 if term.is_number else 0, "")
