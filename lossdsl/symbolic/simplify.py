"""Simplification within a budget: a rewrite is taken only when it pays.

``sympy.simplify`` is too slow for a compiler (tens to hundreds of ms) and
sometimes makes formulas larger or numerically worse (it turns a focal loss's
gradient into ratios of ``exp`` that overflow). Here a few cheap, local
rewrites are tried in turn; a candidate replaces the current form only if it
has fewer operations and no more overflow-prone nodes (``exp`` and powers
with a symbolic exponent). Large expressions stop the search and keep what
there is; the bounds are on size, never on time, so results are deterministic.

    >>> import sympy

    >>> y, t, n = sympy.symbols("y_pred y_true n", real=True)
    >>> simplify((2*y - 2*t)/n)
    2*(y_pred - y_true)/n
    >>> simplify(sympy.sinh(y - t) / sympy.cosh(y - t))
    tanh(y_pred - y_true)
"""

from __future__ import annotations

import time
from typing import Callable

import sympy

# The bounds live with every other limit; SIMPLIFY_BUDGET_SECONDS is importable from here.
from lossdsl.limits import (MAX_DENOMINATORS_TO_COMBINE, MAX_OPS_TO_SIMPLIFY,
                            SIMPLIFY_BUDGET_SECONDS, exceeds)


def _hyperbolic_ratio(expr: sympy.Expr) -> sympy.Expr:
    """sinh(a)/cosh(a) -> tanh(a): the ratio overflows to inf/inf for |a| > 89."""
    def is_ratio(node: sympy.Basic) -> bool:
        return isinstance(node, sympy.Mul) and _sinh_over_cosh_args(node)

    def rewrite(node: sympy.Mul) -> sympy.Expr:
        for arg in _sinh_over_cosh_args(node):
            node = node.subs({sympy.sinh(arg): sympy.tanh(arg) * sympy.cosh(arg)})
        return node

    return expr.replace(is_ratio, rewrite)


def _sinh_over_cosh_args(node: sympy.Mul) -> list[sympy.Expr]:
    factors = sympy.Mul.make_args(node)
    sinh_args = {f.args[0] for f in factors if isinstance(f, sympy.sinh)}
    return [f.base.args[0] for f in factors
            if isinstance(f, sympy.Pow) and f.exp == -1 and isinstance(f.base, sympy.cosh)
            and f.base.args[0] in sinh_args]


def _together_if_few_denominators(expr: sympy.Expr) -> sympy.Expr:
    """``together``, which is quadratic in the number of denominators (seconds at 100)."""
    denominators = {p.base for p in expr.atoms(sympy.Pow) if p.exp.is_negative}
    return expr if len(denominators) > MAX_DENOMINATORS_TO_COMBINE else sympy.together(expr)


REWRITES: tuple[Callable[[sympy.Expr], sympy.Expr], ...] = (
    _hyperbolic_ratio,
    sympy.factor_terms,
    _together_if_few_denominators,
)


def cost(expr: sympy.Expr) -> tuple[int, int]:
    """Operations first, then tree nodes: ``2*(a - b)`` beats ``2*a - 2*b``."""
    return int(sympy.count_ops(expr)), sum(1 for _ in sympy.preorder_traversal(expr))


def overflow_risk(expr: sympy.Expr) -> int:
    """Number of nodes that can overflow on their own: exp, and x**y with symbolic y."""
    exps = sum(1 for _ in expr.atoms(sympy.exp))
    powers = sum(1 for p in expr.atoms(sympy.Pow) if not p.exp.is_number)
    return exps + powers


def simplify(expr: sympy.Expr, budget: float | None = None) -> sympy.Expr:
    """The smallest form of ``expr`` the cheap rewrites reach (within ``budget`` seconds if given).

    By default there is no wall-clock deadline: with one, the same source came out
    simplified differently under load or from several threads at once
    (tests/test_threads.py). The size guards here bound the work instead.
    """
    # Counting nodes stops at the limit; count_ops on a huge tree alone takes seconds.
    if exceeds(expr, 4 * MAX_OPS_TO_SIMPLIFY) or cost(expr)[0] > MAX_OPS_TO_SIMPLIFY:
        return expr
    deadline = None if budget is None else time.perf_counter() + budget
    best, best_cost, best_risk = expr, cost(expr), overflow_risk(expr)
    for rewrite in REWRITES:
        if deadline is not None and time.perf_counter() > deadline:
            break
        candidate = rewrite(best)
        candidate_cost = cost(candidate)
        # tanh is taken even at equal size: it is the form that does not overflow.
        is_better = candidate_cost < best_cost or (
            rewrite is _hyperbolic_ratio and candidate != best)
        if is_better and overflow_risk(candidate) <= best_risk:
            best, best_cost = candidate, candidate_cost
    return best
