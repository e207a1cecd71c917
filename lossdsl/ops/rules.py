"""The derivative rules, domains and kinks that rows of :data:`lossdsl.ops.OPS` share."""

from __future__ import annotations

from typing import Callable

import sympy

from lossdsl.ops.functions import minimum, step
from lossdsl.ops.row import DerivativeRule, Domain, Kink


def zero_where_x_is_zero(x: sympy.Expr, value: sympy.Expr) -> sympy.Expr:
    """TF's xlogy/xdivy give 0 where x == 0 whatever y is; the derivative keeps that."""
    return sympy.Piecewise((0, sympy.Eq(x, 0)), (value, True))


def where(condition: sympy.Basic, if_true: sympy.Expr, if_false: sympy.Expr) -> sympy.Expr:
    return sympy.Piecewise((if_true, condition), (if_false, True))


# TF computes clip_by_value as maximum(minimum(x, hi), lo); the rules follow that
# composition so they also match the tape when lo > hi (the value is then lo).
CLIP_DERIVATIVES: tuple[DerivativeRule, ...] = (
    lambda x, lo, hi: step(minimum(x, hi) - lo, 1) * step(hi - x, 1),
    lambda x, lo, hi: step(lo - minimum(x, hi), 0),
    lambda x, lo, hi: step(minimum(x, hi) - lo, 1) * step(x - hi, 0),
)


# ---------------------------------------------------------------- reductions: d value / d element

def tie_share(element: sympy.Expr, value: sympy.Expr, count: sympy.Expr,
              total: Callable[[sympy.Expr], sympy.Expr]) -> sympy.Expr:
    """max/min: TF shares the gradient equally among the elements that tie for it."""
    # evaluate=False: asking SymPy whether element == value can never decide, and is slow.
    hit = sympy.Piecewise((1, sympy.Eq(element, value, evaluate=False)), (0, True))
    return hit / total(hit)


MEAN_DERIVATIVE = (lambda element, value, count, total: 1 / count,)
SUM_DERIVATIVE = (lambda element, value, count, total: sympy.Integer(1),)
LOGSUMEXP_DERIVATIVE = (lambda element, value, count, total: sympy.exp(element - value),)


# ---------------------------------------------------------------- domains and kinks

def log_domain(floor: int) -> Domain:
    """``log(x)`` (floor 0) and ``log1p(x)`` (floor -1)."""
    return Domain(lambda x: x > floor, lambda x: x - floor,
                  f"{{call}} is undefined below {floor} and -oo at {floor}")


def guarded(what: str, requires: Callable[[sympy.Expr], sympy.Basic],
            pole: Callable[[sympy.Expr], sympy.Expr], shown: str = "log({})") -> Domain:
    """``xlogy(x, y)`` & co: the condition on ``y`` binds only where ``x`` is nonzero.

    Saying so in the reason keeps the condition itself as short as log's.
    """
    return Domain(lambda x, y: requires(y), lambda x, y: pole(y),
                  f"{{call}}: its {what} of {{1}} needs this unless {{0}} = 0", shown)


KINK_AT_ZERO = (Kink(lambda x: (x, sympy.Integer(0)),
                     "{call} has a kink at 0; TF's gradient there is 0"),)
JUMP_AT_ZERO = (Kink(lambda x: (x, sympy.Integer(0)),
                     "{call} jumps at 0; TF's gradient there is 0"),)
TIE = (Kink(lambda a, b: (a, b),
            "{call} has a kink where its arguments tie; TF sends the gradient to the first"),)
CLIP_KINKS = (Kink(lambda x, lo, hi: (x, lo), "{call} has a kink at {1}; TF's gradient there is 1"),
              Kink(lambda x, lo, hi: (x, hi), "{call} has a kink at {2}; TF's gradient there is 1"))
