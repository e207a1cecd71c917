"""Work limits that keep SymPy bounded: a pathological source fails fast and clearly.

This module is the one home of every limit: the constants below are read by
the stages that enforce them, and the README's limits table is generated from
:data:`LIMITS` (``tests/test_limits.py`` keeps the two in sync).

SymPy cannot be interrupted safely, so lossdsl bounds its *input* instead:
the parser limits the source's length, depth and node count
(``language/parse.py``, ``language/ir.py``); the checks here bound numbers,
exponents and the size of the formulas the later stages build, checked
*before* an expensive step where the cost can be estimated (differentiating a
product of ``k`` factors makes ``k`` products of ``k - 1`` factors) and right
after it otherwise.

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
from dataclasses import dataclass
from typing import Iterator

import sympy

from lossdsl.errors import DSLLimitError, DSLTypeError, LossDSLError, Span
from lossdsl.ops import varies_by_position

# --- the source (language/parse.py, language/ir.py) ---
MAX_SOURCE_LENGTH = 10_000
"""Longest accepted source, in characters."""
MAX_DEPTH = 64
"""Deepest accepted nesting of the expression tree."""
MAX_NODES = 2_000
"""Most IR nodes accepted in one source."""
MAX_REDUCTION_NESTING = 8
"""Most reductions/normalizers nested inside one another (through bindings too).

The chain rule through nested reductions revisits each inner one, so the
gradient's size and the time to derive it grow exponentially with nesting
(``softmax`` 16 deep takes seconds, 30 deep hours); realistic losses nest 2 or 3.
"""
MAX_NUMBER_DIGITS = 400
"""Longest numeric literal, in characters (float64 has no use for more)."""
MAX_VECTOR_LENGTH = 10_000
"""Most values of a vector parameter (one per class); each distinct one is checked against
the domains of the functions it meets, so a crafted config cannot stall a safe load."""

# --- numbers and the formulas derived from them (symbolic/, analysis/) ---
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

# --- effort bounds: past them a step is skipped, not refused (symbolic/) ---
MAX_OPS_TO_SIMPLIFY = 400
"""Expressions with more operations than this (or 4 times as many tree nodes) are left as derived."""
MAX_DENOMINATORS_TO_COMBINE = 8
"""``together`` multiplies out every distinct denominator; beyond this many it is skipped."""
MAX_REWRITES_PER_NODE = 16
"""A node is rewritten at most this often (every rule shrinks or stabilizes, so few are needed)."""
SIMPLIFY_BUDGET_SECONDS = 0.05
"""A wall-clock budget callers may pass to ``simplify``; not the default (it made results load-dependent)."""

# --- caches (analysis/, keras/, backends/) ---
COMPILE_CACHE_SIZE = 512
"""Entries kept by each compile cache (``analyze``, the backward formula, the TF plans)."""
EAGER_TENSOR_CACHE_SIZE = 256
"""Eager constants and axis tensors kept per (value, dtype): made once, not per call (issue 17)."""
RESOLVED_AXES_CACHE_SIZE = 1024
"""(rank, axis spec) -> axes resolutions kept by the TF runner."""
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
    if len(text) > MAX_NUMBER_DIGITS or not math.isfinite(float(text)):
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


@dataclass(frozen=True)
class Limit:
    """One row of the README's limits table."""

    what: str
    value: str
    past_it: str


REFUSED = "`DSLLimitError`"
LIMITS: tuple[Limit, ...] = (
    Limit("source length", f"{MAX_SOURCE_LENGTH:,} characters", REFUSED),
    Limit("nesting depth of the expression", f"{MAX_DEPTH:,}", REFUSED),
    Limit("nodes in the expression", f"{MAX_NODES:,}", REFUSED),
    Limit("reductions/`softmax` nested inside one another (bindings included)",
          f"{MAX_REDUCTION_NESTING:,}", REFUSED),
    Limit("characters of a numeric literal", f"{MAX_NUMBER_DIGITS:,}", REFUSED),
    Limit("values of a vector parameter (`w=[1.0, 2.0, 5.0]`)", f"{MAX_VECTOR_LENGTH:,}", REFUSED),
    Limit("magnitude of a numeric exponent (`x^1000` overflows float64 for `x > 2`)",
          f"{MAX_EXPONENT:,}", REFUSED),
    Limit("numbers and constant powers (`1e400`, `10^10^10`)", "the float64 range", REFUSED),
    Limit("constants must be finite reals (`log(0)`, `sqrt(-1)`, `1/0` are refused)", "—",
          "`DSLTypeError`"),
    Limit("tree nodes of the derived gradient", f"{MAX_FORMULA_NODES:,}", REFUSED),
    Limit("estimated work of one derivative (tree nodes + k·k per product of k factors)",
          f"{MAX_DERIVATIVE_WORK:,}", REFUSED),
    Limit("tree nodes differentiated for one gradient", f"{MAX_DIFFERENTIATION_WORK:,}", REFUSED),
    Limit("operations `simplify` works on (tree nodes: 4 times as many)",
          f"{MAX_OPS_TO_SIMPLIFY:,}", "left as derived"),
    Limit("distinct denominators put over one (`together`)", f"{MAX_DENOMINATORS_TO_COMBINE:,}",
          "left apart"),
    Limit("stability rewrites of one node", f"{MAX_REWRITES_PER_NODE:,}", "no further rewrite"),
    Limit("compiled sources kept in each cache", f"{COMPILE_CACHE_SIZE:,}",
          "least recently used dropped"),
)
"""The limits a user can meet, in the order the README lists them."""


def markdown_table() -> str:
    """The README's limits table (between ``<!-- limits-table:start/end -->``).

    >>> print(markdown_table().splitlines()[2])
    | source length | 10,000 characters | `DSLLimitError` |
    """
    rows = ["| limit | value | past it |", "| --- | --- | --- |"]
    rows += [f"| {limit.what} | {limit.value} | {limit.past_it} |" for limit in LIMITS]
    return "\n".join(rows) + "\n"
