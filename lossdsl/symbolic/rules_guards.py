"""Stability rewrites against 0*inf: x*log(y) -> xlogy(x, y), and powers divided by their base.

Which factors of ``x*log(a)`` become the guard ``x`` of ``xlogy`` is decided by
:func:`_guard_factors` from the factors' zeros (:func:`_zero_factors`).
"""

from __future__ import annotations

import sympy

from lossdsl.ops import log1p
from lossdsl.symbolic.rules_exp_log import Match
from lossdsl.symbolic.translate import ReductionTable


def _combine_powers(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    # SymPy leaves b**g/b alone when b is a sum; at b = 0 it is 0*inf.
    bases = [f.base if isinstance(f, sympy.Pow) else f for f in node.args]
    symbolic = {f.base for f in node.args if isinstance(f, sympy.Pow) and not f.exp.is_number}
    if any(bases.count(base) > 1 for base in symbolic):
        return sympy.powsimp(node, combine="exp", deep=False)
    return None


def _cancel_power_division(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    # b**g * (u/b + v) -> u*b**(g - 1) + v*b**g: no 0*inf where b is 0 (the focal gradient).
    powers = [f for f in node.args if isinstance(f, sympy.Pow) and not f.exp.is_number]
    for power in powers:
        for factor in node.args:
            if isinstance(factor, sympy.Add) and any(
                    1 / power.base in sympy.Mul.make_args(term) for term in factor.args):
                others = [f for f in node.args if f is not power and f is not factor]
                return sympy.Mul(sympy.Add(*(power * term for term in factor.args)), *others)
    return None



def _times_log(log_type: type, safe: type) -> Match:
    """x*log(y) -> xlogy(x, y) (and the log1p twin): 0 where x is 0, even when log(y) is not finite."""
    def match(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
        logs = [f for f in node.args if isinstance(f, log_type)]
        if len(logs) != 1:
            return None
        coefficient, rest = node.as_coeff_Mul()
        factors = [f for f in sympy.Mul.make_args(rest) if f != logs[0]]
        y = logs[0].args[0]
        inside, outside = _guard_factors(factors, 1 + y if log_type is log1p else y, table)
        if not inside:
            return None  # constants and parameters are never 0 per element: nothing to protect
        return coefficient * sympy.Mul(*outside) * safe(sympy.Mul(*inside), y)
    return match


def _guard_factors(factors: list[sympy.Expr], log_argument: sympy.Expr, table: ReductionTable
                   ) -> tuple[list[sympy.Expr], list[sympy.Expr]]:
    """Which factors of x*log(a) go inside xlogy as its x: (inside, outside).

    A factor that is 0 where ``a`` is (``a`` itself, a power of it, a factor of
    it) makes the product 0 there, so it must be the guard: left outside it
    would multiply the guard's -inf, 0*(-inf) = NaN (``y_true*y_pred*log(y_pred)``
    at ``y_pred = 0``, or d/dp of ``relu(x)^p``). Without one, factors that do
    not share a variable with ``a`` (labels) are the guard, so that
    ``y_true*(1 - p)^g*log(p)`` reads ``(1 - p)^g*xlogy(y_true, p)``; failing
    that, every varying factor.
    """
    variables = table.inputs | set(table.reductions)
    varying = [f for f in factors if f.free_symbols & variables]
    zeros = _zero_factors(log_argument)
    vanishing = [f for f in varying if _zero_factors(f) & zeros]
    independent = [f for f in varying if not f.free_symbols & log_argument.free_symbols]
    inside = vanishing or independent or varying
    return inside, [f for f in factors if f not in inside]


def _zero_factors(expr: sympy.Expr) -> set[sympy.Expr]:
    """Expressions whose zeros are zeros of ``expr``: its factors, through positive powers and abs.

    Signs are dropped (``y - 1`` and ``1 - y`` are one factor). A power with a
    symbolic exponent counts: where that exponent is not positive the guard is
    inactive (``x**0 = 1``), which changes nothing.
    """
    if isinstance(expr, sympy.Mul):
        return set().union(*(_zero_factors(f) for f in expr.args))
    if isinstance(expr, sympy.Pow):
        return set() if expr.exp.is_number and not expr.exp.is_positive else \
            _zero_factors(expr.base)
    if isinstance(expr, sympy.Abs):
        return _zero_factors(expr.args[0])
    if expr.is_number:
        return set()
    return {-expr if expr.could_extract_minus_sign() else expr}
