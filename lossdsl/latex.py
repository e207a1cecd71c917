"""LaTeX for lossdsl formulas: reductions print with their :data:`lossdsl.ops.OPS` template.

A formula's reduction symbols (``mean(y_pred)``) are atoms to SymPy; this
printer expands each through its row's LaTeX template, with the argument
printed the same way, so nested reductions typeset as nested calls. Inputs
print as :math:`y_{\\mathrm{true}}`, :math:`y_{\\mathrm{pred}}`; counts
``n[-1]`` as :math:`n_{-1}`.

    >>> from lossdsl.compiler import analyze
    >>> analysis = analyze("mean((y_true - y_pred)^2)")
    >>> formula_latex(analysis.gradient, analysis.table)
    '\\\\frac{2 \\\\left(y_{\\\\mathrm{pred}} - y_{\\\\mathrm{true}}\\\\right)}{n}'
"""

from __future__ import annotations

import sympy
from sympy.printing.latex import LatexPrinter

from lossdsl.ops import INPUT_NAMES, REGISTRY
from lossdsl.symbolic import Axis, ReductionTable

INPUT_LATEX: dict[str, str] = {
    name: rf"y_{{\mathrm{{{name[2:]}}}}}" for name in INPUT_NAMES}


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

    def _print_Symbol(self, expr: sympy.Symbol, style: str = "plain") -> str:
        if expr in self.table:
            reduction = self.table[expr]
            argument = self._print(reduction.arg) + axis_latex(reduction.axis)
            return REGISTRY[reduction.kind].latex.format(argument)
        if expr.name in INPUT_LATEX:
            return INPUT_LATEX[expr.name]
        if expr.name.startswith("n["):
            return f"n_{{{expr.name[2:-1]}}}"
        return super()._print_Symbol(expr, style)


def formula_latex(expr: sympy.Basic, table: ReductionTable) -> str:
    """LaTeX of a lossdsl formula (loss, gradient, condition)."""
    return LossLatexPrinter(table).doprint(expr)
