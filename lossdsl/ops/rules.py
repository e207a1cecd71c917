"""The derivative rules, domains and kinks that rows of :data:`lossdsl.ops.OPS` share."""

from __future__ import annotations

from typing import Callable

import sympy

from lossdsl.ops.functions import minimum, step
from lossdsl.ops.row import DerivativeRule, Domain, Kink


def zero_where_x_is_zero(x: sympy.Expr, value: sympy.Expr) -> sympy.Expr:
    """TF's xlogy/xdivy give 0 where x == 0 whatever y is; the derivative keeps that.

    An ``x`` that is a ``where`` is decided piece by piece: SymPy rewrites a condition
    holding a Piecewise as an if-then-else, and raised a bare KeyError when a piece's
    condition was constant (``where(log(2) == one_hot(2), ...)``).
    """
    x = sympy.piecewise_fold(x)
    if isinstance(x, sympy.Piecewise):
        return sympy.Piecewise(*[(zero_where_x_is_zero(piece, value), condition)
                                 for piece, condition in x.args])
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


def _deviation(element: sympy.Expr, count: sympy.Expr,
               total: Callable[[sympy.Expr], sympy.Expr]) -> sympy.Expr:
    return element - total(element) / count


MEAN_DERIVATIVE = (lambda element, value, count, total: 1 / count,)
SUM_DERIVATIVE = (lambda element, value, count, total: sympy.Integer(1),)
LOGSUMEXP_DERIVATIVE = (lambda element, value, count, total: sympy.exp(element - value),)
# prod: the product of the other elements, written value/element (NaN where an element is 0).
PROD_DERIVATIVE = (lambda element, value, count, total: value / element,)
# var is the population variance (TF's reduce_variance, NumPy's ddof=0): 2(x - mean)/n.
VAR_DERIVATIVE = (lambda element, value, count, total: 2 * _deviation(element, count, total) / count,)
STD_DERIVATIVE = (lambda element, value, count, total: _deviation(element, count, total)
                  / (count * value),)
NORM_DERIVATIVE = (lambda element, value, count, total: element / value,)


# ---------------------------------------------------------------- elementwise helpers

def power(base: sympy.Expr, exponent: sympy.Expr) -> sympy.Expr:
    """``pow(a, b)``: the same SymPy power as ``a^b`` (translate applies the same limits)."""
    return base**exponent


def digamma(x: sympy.Expr) -> sympy.Expr:
    """The derivative of ``lgamma``, in functions every backend runs.

    digamma(x) = digamma(x + 10) - sum_{k<10} 1/(x + k) (the recurrence), and at
    z = x + 10 >= 10 the asymptotic series up to z^-8 is within 1e-12 of it (the
    next term is 1/(132 z^10)); TF's own digamma uses the same method. Written
    out because a ``digamma`` row would need a ``trigamma`` row for its own
    derivative, and so on without end.
    """
    z = x + 10
    series = sympy.log(z) - 1 / (2 * z) - 1 / (12 * z**2) + sympy.Rational(1, 120) / z**4 \
        - sympy.Rational(1, 252) / z**6 + sympy.Rational(1, 240) / z**8
    return series - sympy.Add(*(1 / (x + k) for k in range(10)))


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


LGAMMA_DOMAIN = Domain(lambda x: x > 0, lambda x: x,
                      "{call} is defined for {0} > 0 (the log of the gamma function; +oo at 0)",
                      shown="lgamma({})")


KINK_AT_ZERO = (Kink(lambda x: (x, sympy.Integer(0)),
                     "{call} has a kink at 0; TF's gradient there is 0"),)
JUMP_AT_ZERO = (Kink(lambda x: (x, sympy.Integer(0)),
                     "{call} jumps at 0; TF's gradient there is 0"),)
TIE = (Kink(lambda a, b: (a, b),
            "{call} has a kink where its arguments tie; TF sends the gradient to the first"),)
CLIP_KINKS = (Kink(lambda x, lo, hi: (x, lo), "{call} has a kink at {1}; TF's gradient there is 1"),
              Kink(lambda x, lo, hi: (x, hi), "{call} has a kink at {2}; TF's gradient there is 1"))


def PAIR_BACKWARD(*args: sympy.Expr) -> sympy.Expr:  # noqa: N802 - a rule, named like the others
    """The derivative rule of the differentiable pair functions: there is no elementwise one.

    Sample k is a row and a column of ``pair_dot(x)``, so d/dx_k mixes every sample:
    :mod:`lossdsl.symbolic.derive` makes it a backward-pass symbol, which each backend
    computes with its ``pair_vjp``. A row with this rule is differentiated; one without any
    (``pair_eq``, ``pair_self``) is not.
    """
    raise TypeError("pair functions are differentiated by their backward pass, not elementwise")
