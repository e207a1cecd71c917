"""A formula as lossdsl shows it: lossdsl source for people, SymPy for programs.

A :class:`Formula` prints as lossdsl source with the user's names (it parses
back), typesets as LaTeX in Jupyter, and holds the SymPy expression as
``.sympy`` (SymPy functions accept it as is).

    >>> from lossdsl.analysis.analyze import analyze
    >>> analysis = analyze("e = y_pred - y_true; mean(e^2)")
    >>> gradient = Formula(analysis.gradient, analysis)
    >>> gradient
    e = y_pred - y_true; n = sum(1); 2 * e / n
    >>> gradient.sympy
    2*(y_pred - y_true)/n
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import sympy

from lossdsl.analysis.dsl_text import NotPrintable
from lossdsl.analysis.latex import named_latex
from lossdsl.analysis.naming import NamedFormulas, name_formulas, user_bindings

if TYPE_CHECKING:
    from lossdsl.analysis.results import Analysis


class Formula:
    """One formula of a loss: DSL text for people, SymPy for programs.

    ``str``/``repr`` give the formula as a lossdsl program (the user's bindings
    kept, counts as ``n = sum(1)``); ``latex()`` and ``_repr_latex_`` the same
    with typeset names (``\\mu``); ``.sympy`` the SymPy expression, whose
    attributes (``free_symbols``, ``subs`` ...) a formula also answers.
    """

    def __init__(self, expr: sympy.Basic, analysis: "Analysis") -> None:
        self.sympy = sympy.sympify(expr)
        self.analysis = analysis

    @cached_property
    def named(self) -> NamedFormulas:
        """The formula with its names bound (see :mod:`lossdsl.analysis.naming`)."""
        return name_formulas([self.sympy], self.analysis.table, user_bindings(self.analysis))

    @cached_property
    def text(self) -> str:
        """The formula as one line of lossdsl source."""
        try:
            return self.named.text()
        except NotPrintable:  # a node without a spelling: SymPy's text, never nothing
            return sympy.sstr(self.sympy)

    def parts(self) -> tuple[list[tuple[str, str]], str]:
        """``([(name, value text), ...], result text)``: the program in pieces."""
        try:
            return self.named.binding_texts(), self.named.body_text()
        except NotPrintable:
            return [], sympy.sstr(self.sympy)

    def latex(self) -> str:
        """LaTeX, bindings first (an ``aligned`` block when there are any)."""
        return named_latex(name_formulas([self.sympy], self.analysis.table,
                                         user_bindings(self.analysis), name_counts=False))

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.latex()}$"

    def _sympy_(self) -> sympy.Basic:
        return self.sympy

    def __eq__(self, other: object) -> bool:
        return self.sympy == (other.sympy if isinstance(other, Formula) else other)

    def __hash__(self) -> int:
        return hash(self.sympy)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("sympy", "analysis"):
            raise AttributeError(name)
        return getattr(self.sympy, name)

    def __reduce__(self) -> tuple:
        return (Formula, (self.sympy, self.analysis))

    # Arithmetic gives SymPy expressions, as on the formula itself.
    def __neg__(self) -> sympy.Expr:
        return -self.sympy

    def __add__(self, other: Any) -> sympy.Expr:
        return self.sympy + sympy.sympify(other)

    def __radd__(self, other: Any) -> sympy.Expr:
        return sympy.sympify(other) + self.sympy

    def __sub__(self, other: Any) -> sympy.Expr:
        return self.sympy - sympy.sympify(other)

    def __rsub__(self, other: Any) -> sympy.Expr:
        return sympy.sympify(other) - self.sympy

    def __mul__(self, other: Any) -> sympy.Expr:
        return self.sympy * sympy.sympify(other)

    def __rmul__(self, other: Any) -> sympy.Expr:
        return sympy.sympify(other) * self.sympy

    def __truediv__(self, other: Any) -> sympy.Expr:
        return self.sympy / sympy.sympify(other)

    def __rtruediv__(self, other: Any) -> sympy.Expr:
        return sympy.sympify(other) / self.sympy
