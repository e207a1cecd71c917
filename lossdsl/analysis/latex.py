"""LaTeX for lossdsl formulas: reductions print with their :data:`lossdsl.ops.OPS` template.

A formula's reduction symbols (``mean(y_pred)``) are atoms to SymPy; this
printer expands each through its row's LaTeX template, with the argument
printed the same way, so nested reductions typeset as nested calls. Inputs
print as :math:`y_{\\mathrm{true}}`, :math:`y_{\\mathrm{pred}}`; counts
``n[-1]`` as :math:`n_{-1}`. A column ``x[..., k]`` (the sum ``sum(one_hot(k) * x,
axis=-1)`` it is lowered to, recognised by :func:`lossdsl.analysis.dsl_text.column_of`)
prints as it is written, :math:`x[\\ldots, k]`.

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

from typing import TYPE_CHECKING, Sequence

import sympy
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE, precedence

from lossdsl.analysis.dsl_text import column_of
from lossdsl.ops import INPUT_NAMES, REGISTRY
from lossdsl.symbolic.counts import Count
from lossdsl.symbolic.translate import Axis, ReductionTable

if TYPE_CHECKING:
    from lossdsl.analysis.naming import NamedFormulas

INPUT_LATEX: dict[str, str] = {
    name: rf"y_{{\mathrm{{{name[2:]}}}}}" for name in INPUT_NAMES}

# LaTeX operators that scope over what follows them, as SymPy's Sum does.
LARGE_OPERATORS: tuple[str, ...] = (r"\sum", r"\prod")


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
        return expr in self.table and column_of(self.table[expr]) is None and \
            REGISTRY[self.table[expr].kind].latex.startswith(LARGE_OPERATORS)

    def column_latex(self, x: sympy.Basic, index: int) -> str:
        """``x[..., k]`` as written: :math:`x[\\ldots, k]`, ``x`` bracketed unless it is an atom
        or a call (a power, a product or a large operator would take the subscript)."""
        operand = self._print(x)
        if self.scopes_right(x) or (precedence(x) < PRECEDENCE["Func"] and not x.is_Symbol) \
                or isinstance(x, sympy.Pow) or (x.is_Number and x < 0):
            operand = self._add_parens(operand)
        return rf"{operand}[\ldots, {index}]"

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
            column = column_of(reduction)
            if column is not None:
                return self.column_latex(*column)
            argument = self._print(reduction.arg) + axis_latex(reduction.axis)
            return REGISTRY[reduction.kind].latex.format(argument)
        if expr in self.table.pairs:
            return self.pair_latex(expr)
        if expr.name in INPUT_LATEX:
            return INPUT_LATEX[expr.name]
        if isinstance(expr, Count) and expr.axis not in (None, "output"):
            return f"n_{{{','.join(map(str, expr.axis))}}}"
        if expr.name.count("_") > 1:  # a made-up name (sigmoid_minus_y_pred): spelled out
            return r"\mathit{" + expr.name.replace("_", r"\_") + "}"
        return super()._print_Symbol(expr, style)


    def pair_latex(self, symbol: sympy.Symbol) -> str:
        """A pair function by its row's template; its backward pass as what it computes,
        the gradient of ``sum(upstream * pair)`` w.r.t. the input."""
        pair = self.table.pairs[symbol]
        inputs = () if pair.input is None else (self._print(pair.input),)
        kernel = REGISTRY[pair.kind].latex.format(*inputs)
        if self.table.triples and pair.axis == -1:  # over triples (i, j, k): the last is k
            kernel = kernel.replace("^{(j)}", "^{(k)}").replace("i = j", "i = k")
        if pair.upstream is None:
            return kernel
        upstream = self.parenthesize(pair.upstream, PRECEDENCE["Mul"])
        return rf"\nabla_{{{inputs[0]}}} \sum\left({upstream} \, {kernel}\right)"


def formula_latex(expr: sympy.Basic, table: ReductionTable) -> str:
    """LaTeX of a lossdsl formula (loss, gradient, condition)."""
    return LossLatexPrinter(table).doprint(expr)


def named_latex(named: "NamedFormulas", lhs: Sequence[str] = ()) -> str:
    r"""LaTeX of named formulas: one ``aligned`` row per binding, then one per formula.

    ``lhs`` gives each formula's left-hand side; a single formula without
    bindings or ``lhs`` is returned bare.

        >>> from lossdsl.analysis.analyze import analyze
        >>> from lossdsl.analysis.naming import name_formulas, user_bindings
        >>> a = analyze("mu = mean(y_pred); mean((y_pred - mu)^2)")
        >>> print(named_latex(name_formulas([a.gradient], a.table, user_bindings(a), name_counts=False), ["g"]))
        \begin{aligned}
        \mu &= \operatorname{mean}\left(y_{\mathrm{pred}}\right) \\
        g &= \frac{2 \left(- \mu + y_{\mathrm{pred}}\right)}{n}
        \end{aligned}
    """
    printer = LossLatexPrinter(named.table)
    rows = [f"{printer.doprint(symbol)} &= {printer.doprint(value)}"
            for symbol, value in named.bindings]
    formulas = [printer.doprint(formula) for formula in named.formulas]
    if not rows and not lhs and len(formulas) == 1:
        return formulas[0]
    sides = list(lhs) + [""] * (len(formulas) - len(lhs))
    rows += [f"{side} &= {tex}" for side, tex in zip(sides, formulas)]
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"
