"""LaTeX for lossdsl formulas: reductions print with their :data:`lossdsl.ops.OPS` template.

A formula's reduction symbols (``mean(y_pred)``) are atoms to SymPy; this
printer expands each through its row's LaTeX template, with the argument
printed the same way, so nested reductions typeset as nested calls. Inputs
print as :math:`y_{\\mathrm{true}}`, :math:`y_{\\mathrm{pred}}`; counts
``n[-1]`` as :math:`n_{-1}`.

Brackets follow SymPy's precedence rules (``LatexPrinter.parenthesize``,
``_needs_mul_brackets``): an argument that a template juxtaposes with the rest
(``xlogy``'s ``x`` in :math:`x \\log(y)`) is bracketed like a factor of a
product, and a reduction typeset with a large operator (:math:`\\sum`) is
bracketed like SymPy's ``Sum`` when a factor or a power follows it.

    >>> from lossdsl.analysis.analyze import analyze
    >>> analysis = analyze("sum((y_true + 1)*log(y_pred))")
    >>> formula_latex(analysis.expression, analysis.table)
    '\\\\sum\\\\left(\\\\left(y_{\\\\mathrm{true}} + 1\\\\right) \\\\log\\\\left(y_{\\\\mathrm{pred}}\\\\right)\\\\right)'

    >>> from lossdsl.analysis.analyze import analyze
    >>> analysis = analyze("mean((y_true - y_pred)^2)")
    >>> formula_latex(analysis.gradient, analysis.table)
    '\\\\frac{2 \\\\left(y_{\\\\mathrm{pred}} - y_{\\\\mathrm{true}}\\\\right)}{n}'
"""

from __future__ import annotations

import re
import string
from functools import lru_cache
from typing import Sequence

import sympy
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE

from lossdsl.ops import INPUT_NAMES, REGISTRY
from lossdsl.symbolic.counts import Count
from lossdsl.symbolic.translate import Axis, ReductionTable

INPUT_LATEX: dict[str, str] = {
    name: rf"y_{{\mathrm{{{name[2:]}}}}}" for name in INPUT_NAMES}

# LaTeX operators that scope over what follows them, as SymPy's Sum does.
LARGE_OPERATORS: tuple[str, ...] = (r"\sum", r"\prod")

_OPENERS = re.compile(r"\\left\b|\\begin\b|\{")
_CLOSERS = re.compile(r"\\right\b|\\end\b|\}")


@lru_cache(maxsize=None)
def bare_slots(template: str) -> frozenset[int]:
    r"""The arguments of a LaTeX template that no bracket, brace or environment encloses.

    Such an argument is juxtaposed with the rest of the template, as a factor
    of a product (``{0} \log\left({1}\right)``), so it needs the brackets
    a factor needs.

        >>> sorted(bare_slots(r"{0} \log\left({1}\right)"))
        [0]
        >>> sorted(bare_slots(r"\frac{{{0}}}{{{1}}}"))
        []
    """
    depth, bare = 0, set()
    for literal, field, _, _ in string.Formatter().parse(template):
        depth += len(_OPENERS.findall(literal)) - len(_CLOSERS.findall(literal))
        if field is not None and depth == 0:
            bare.add(int(field))
    return frozenset(bare)


def format_template(template: str, printer: LatexPrinter, args: Sequence[sympy.Basic]) -> str:
    """Fill an OPS LaTeX template with the arguments' LaTeX, bracketing bare factors.

    A bare argument is bracketed by SymPy's rule for a factor that is neither
    first nor last in a product: sums, negative terms, ``cases`` and the like.
    """
    bare = bare_slots(template)
    texts = []
    for index, arg in enumerate(args):
        tex = printer._print(arg)
        if index in bare and printer._needs_mul_brackets(arg, first=False, last=False):
            tex = rf"\left({tex}\right)"
        texts.append(tex)
    return template.format(*texts)


def axis_latex(axis: Axis) -> str:
    """The ``axis=`` part of a reduction's argument list, empty for all axes."""
    if axis is None:
        return ""
    value = str(axis[0]) if len(axis) == 1 else "(" + ", ".join(map(str, axis)) + ")"
    return rf", \mathrm{{axis}}={value}"


class LossLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer, knowing what the reduction and count symbols stand for."""

    def __init__(self, table: ReductionTable, settings: dict | None = None) -> None:
        super().__init__(settings)
        self.table = table

    def scopes_right(self, expr: sympy.Basic) -> bool:
        """Whether ``expr`` is a reduction typeset with a large operator (``\\sum``)."""
        return expr in self.table and \
            REGISTRY[self.table[expr].kind].latex.startswith(LARGE_OPERATORS)

    def parenthesize(self, item: sympy.Basic, level: int, is_neg: bool = False,
                     strict: bool = False) -> str:
        # SymPy gives Sum the precedence of Mul in LaTeX; a large-operator
        # reduction is a Sum to the reader, so it gets brackets as a power's base.
        if self.scopes_right(item):
            prec = PRECEDENCE["Mul"]
            if prec < level or (not strict and prec <= level):
                return self._add_parens(self._print(item))
        return super().parenthesize(item, level, is_neg, strict)

    def _needs_mul_brackets(self, expr: sympy.Basic, first: bool = False,
                            last: bool = False) -> bool:
        # As SymPy brackets a Sum that a factor follows: `\sum(x) y` reads as sum(x*y).
        if not last and self.scopes_right(expr):
            return True
        return super()._needs_mul_brackets(expr, first=first, last=last)

    def _print_Symbol(self, expr: sympy.Symbol, style: str = "plain") -> str:
        if expr in self.table:
            reduction = self.table[expr]
            argument = self._print(reduction.arg) + axis_latex(reduction.axis)
            return REGISTRY[reduction.kind].latex.format(argument)
        if expr.name in INPUT_LATEX:
            return INPUT_LATEX[expr.name]
        if isinstance(expr, Count) and expr.axis not in (None, "output"):
            return f"n_{{{','.join(map(str, expr.axis))}}}"
        return super()._print_Symbol(expr, style)


def formula_latex(expr: sympy.Basic, table: ReductionTable) -> str:
    """LaTeX of a lossdsl formula (loss, gradient, condition)."""
    return LossLatexPrinter(table).doprint(expr)
