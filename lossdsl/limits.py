"""Work limits that keep SymPy bounded: a pathological source fails fast and clearly.

SymPy cannot be interrupted safely, so lossdsl bounds its *input* instead:
the parser limits the source's length, depth and node count (``parse.py``,
``ir.py``); this module adds limits on numbers, exponents and on the size of
the formulas the later stages build, checked *before* an expensive step
where the cost can be estimated (differentiating a product of ``k`` factors
makes ``k`` products of ``k - 1`` factors) and right after it otherwise.

Sizes are counted with an early exit, so checking a huge tree costs no more
than the limit itself:

    >>> import sympy
    >>> x = sympy.Symbol("x")
    >>> exceeds(sum(x**i for i in range(100)), 50)
    True
    >>> check_exponent(sympy.Integer(2))
    >>> check_exponent(sympy.Integer(10**6))
    Traceback (most recent call last):
    ...
    lossdsl.errors.DSLLimitError: The exponent 1000000 is larger than 1000 in magnitude.
      hint: a power beyond 1000 overflows float64 for any base above 2; rescale the base instead
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import sympy

from lossdsl.errors import DSLLimitError, DSLTypeError, LossDSLError, Span
from lossdsl.ops import varies_by_position

MAX_EXPONENT = 1_000
"""Largest magnitude of a numeric exponent (``x^1000`` overflows float64 for ``|x| > 2``)."""
MAX_FORMULA_NODES = 5_000
"""Most SymPy tree nodes in a derived gradient (or one adjoint on the way to it)."""
MAX_DERIVATIVE_WORK = 10_000
"""Estimated cost of one symbolic derivative: tree nodes, plus k * k per product of k factors."""
MAX_DIFFERENTIATION_WORK = 100_000
"""Most tree nodes differentiated, over all the steps of one gradient."""
MAX_REDUCTION_NAME = 120
"""Longest reduction-symbol name spelled out; longer ones are numbered instead."""
_FLOAT64_MAX_LOG10 = math.log10(float.fromhex("0x1.fffffffffffffp+1023"))


def tree_size(expr: sympy.Basic, limit: int) -> int:
    """The number of tree nodes of ``expr``, counted up to ``limit + 1`` at most."""
    count = 0
    for count, _ in enumerate(sympy.preorder_traversal(expr), start=1):
        if count > limit:
            break
    return count


def exceeds(expr: sympy.Basic, limit: int) -> bool:
    """Whether ``expr`` has more than ``limit`` tree nodes (stops counting at the limit)."""
    return tree_size(expr, limit) > limit


def check_formula_size(expr: sympy.Basic, what: str) -> None:
    """Raise :class:`DSLLimitError` when ``expr`` is larger than :data:`MAX_FORMULA_NODES`."""
    if exceeds(expr, MAX_FORMULA_NODES):
        raise DSLLimitError(
            f"The {what} grows beyond {MAX_FORMULA_NODES} nodes.",
            hint="deeply nested softmax/normalisations or very long products make the "
                 "symbolic gradient explode; simplify the loss or split it into bindings")


def derivative_work(expr: sympy.Basic, symbol: sympy.Symbol) -> int:
    """An estimate of the size of d ``expr`` / d ``symbol``, dominated by products.

    The product rule turns a product of ``k`` factors that depend on ``symbol``
    into ``k`` products of the other factors: about ``k * len(factors)`` nodes.
    Shared subtrees are counted once, as SymPy shares them.
    """
    work, seen, stack = 0, set(), [expr]
    while stack:
        node = stack.pop()
        if node in seen or not node.args or not node.has(symbol):
            continue
        seen.add(node)
        work += 1
        if isinstance(node, sympy.Mul):
            dependent = sum(1 for factor in node.args if factor.has(symbol))
            work += dependent * len(node.args)
        stack.extend(node.args)
    return work


def check_derivative_work(expr: sympy.Basic, symbol: sympy.Symbol) -> int:
    """Refuse a derivative whose estimated size is beyond :data:`MAX_DERIVATIVE_WORK`.

    SymPy walks the expression as a tree (not as the shared graph it is), so
    the tree's size counts too: nested normalisations double it at each level.
    """
    size = tree_size(expr, MAX_DERIVATIVE_WORK)
    if size > MAX_DERIVATIVE_WORK or derivative_work(expr, symbol) > MAX_DERIVATIVE_WORK:
        raise DSLLimitError(
            f"Differentiating this loss would build more than {MAX_DERIVATIVE_WORK} terms.",
            hint="a product of many factors that each depend on y_pred has a quadratically "
                 "large derivative; write it as exp(sum(log(...))) or split it")
    return size


def check_total_work(work: int) -> None:
    """Refuse a gradient whose steps together differentiate too much (many large reductions)."""
    if work > MAX_DIFFERENTIATION_WORK:
        raise DSLLimitError(
            f"Deriving the gradient needs more than {MAX_DIFFERENTIATION_WORK} steps of work.",
            hint="many reductions nested in one another make the chain rule revisit large "
                 "formulas; simplify the loss or split it into bindings")


def check_number(text: str, source: str | None, span: Span) -> None:
    """A numeric literal must be a finite float64 (``1e400`` and 400-digit integers are not)."""
    if len(text) > 400 or not math.isfinite(float(text)):
        raise DSLLimitError(f"The number {_shortened(text)} is beyond the float64 range.",
                            source=source, span=span, hint="float64 reaches about 1.8e308")


def check_exponent(exponent: sympy.Expr, source: str | None = None,
                   span: Span | None = None) -> None:
    """A numeric exponent must be at most :data:`MAX_EXPONENT` in magnitude."""
    # Only literal/folded numbers: `abs(-softplus(2)) > 1000` cannot be decided (TypeError).
    if exponent.is_Number and abs(exponent) > MAX_EXPONENT:
        raise DSLLimitError(
            f"The exponent {_shortened(str(exponent))} is larger than {MAX_EXPONENT} in magnitude.",
            source=source, span=span,
            hint=f"a power beyond {MAX_EXPONENT} overflows float64 for any base above 2; "
                 "rescale the base instead")


def check_constant_power(base: sympy.Expr, exponent: sympy.Expr, source: str | None,
                         span: Span) -> None:
    """Refuse ``base^exponent`` of two numbers whose value would overflow float64.

    SymPy evaluates such powers exactly (``10^10^10`` has ten billion digits),
    so this is checked from logarithms before the power is built.
    """
    if not (base.is_Number and exponent.is_Number) or base == 0:
        return
    if float(exponent) * _log10_magnitude(base) > _FLOAT64_MAX_LOG10:
        raise DSLLimitError(
            f"The constant {_shortened(str(base))}^{_shortened(str(exponent))} "
            "is beyond the float64 range.",
            source=source, span=span, hint="float64 reaches about 1.8e308")


def _log10_magnitude(number: sympy.Number) -> float:
    """log10 of ``|number|``, exact enough for integers and fractions of any size."""
    if isinstance(number, sympy.Rational):
        return math.log10(abs(int(number.p))) - math.log10(int(number.q))
    return math.log10(abs(float(number))) if math.isfinite(float(number)) else math.inf


def check_real_constant(value: sympy.Expr, source: str | None, span: Span) -> None:
    """A subexpression made only of numbers must have a finite real value."""
    if not value.is_number:
        return
    # lossdsl's own functions (log1p, xlogy, ...) say they are real; their numeric value
    # (through the `elementary` column of their row) tells: log1p(-2) is log(-1) = I*pi.
    infinite_or_complex = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I)
    not_finite_real = value.has(*infinite_or_complex) or \
        _numeric_value(value).has(*infinite_or_complex)
    if not_finite_real or value.is_extended_real is False:
        raise DSLTypeError(
            f"This part of the loss is a constant without a finite real value ({value}).",
            source=source, span=span,
            hint="e.g. log(0), 1/0, sqrt(-1) or (-8)^(1/3); TensorFlow would give inf or nan")


def _numeric_value(value: sympy.Expr) -> sympy.Expr:
    """``value`` evaluated to a number where SymPy can; else ``value`` itself (no claim)."""
    if varies_by_position(value):  # one_hot(2): a value per position, not a number
        return value
    try:
        return value.evalf()
    except (ValueError, TypeError, NotImplementedError, ArithmeticError):
        return value


@contextmanager
def located_in(source: str) -> Iterator[None]:
    """Give errors raised without a position the whole ``source`` as their span."""
    try:
        yield
    except LossDSLError as error:
        if error.source is None:
            error.source, error.span = source, Span(0, len(source))
        raise


def _shortened(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"
