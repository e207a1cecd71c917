"""See what a loss does: its formulas, its gradient three ways, and where it breaks.

:func:`explain` returns an :class:`Explanation`: the canonical source, the
simplified loss, the gradient w.r.t. ``y_pred`` as derived, simplified and with
common subexpressions pulled out (``sympy.cse``), the gradient w.r.t. each
parameter, and the conditions under which the loss or its gradient is
undefined, infinite or not differentiable. It renders as text, LaTeX, Markdown
and a dict/JSON, and typesets itself in Jupyter. Nothing here imports TensorFlow.

    >>> import lossdsl
    >>> report = lossdsl.explain("mean(-y_true*log(y_pred))")
    >>> report.gradient
    -xdivy(y_true, y_pred)/n
    >>> [condition.text for condition in report.conditions]
    ['y_pred > 0']
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import sympy

from lossdsl.analysis.analyze import Analysis, analyze, bind_parameters
from lossdsl.analysis.domains import Condition, find_conditions
from lossdsl.analysis.latex import INPUT_LATEX, formula_latex
from lossdsl.symbolic.counts import Count
from lossdsl.symbolic.translate import ReductionTable

Replacements = tuple[tuple[sympy.Symbol, sympy.Expr], ...]


def _text(expr: sympy.Basic) -> str:
    return sympy.sstr(expr, full_prec=False)


@dataclass(frozen=True)
class Explanation:
    """Everything lossdsl knows about one loss, ready to read.

    Attributes:
        source: the text as given.
        canonical: the canonical form; it parses back to the same program.
        params: the parameter values given or defaulted (may be partial).
        parameters: every parameter's name, in order of first use.
        loss: the per-sample loss, simplified, parameters as symbols.
        gradient_as_derived: d loss / d ``y_pred`` before simplification.
        gradient: the same, simplified.
        gradient_cse: ``(replacements, reduced)`` from ``sympy.cse``.
        parameter_gradients: per-sample d loss / d parameter.
        conditions: where the loss or gradient is undefined, infinite or kinked.
    """

    source: str
    canonical: str
    params: Mapping[str, float]
    parameters: tuple[str, ...]
    loss: sympy.Expr
    gradient_as_derived: sympy.Expr
    gradient: sympy.Expr
    gradient_cse: tuple[Replacements, sympy.Expr]
    parameter_gradients: Mapping[str, sympy.Expr]
    conditions: tuple[Condition, ...]
    table: ReductionTable = field(repr=False)

    def formulas(self) -> list[tuple[str, str, sympy.Expr]]:
        """``(key, title, formula)`` for each formula, in reading order."""
        rows = [("loss", "loss (simplified)", self.loss),
                ("gradient_as_derived", "d loss / d y_pred, as derived", self.gradient_as_derived),
                ("gradient", "d loss / d y_pred, simplified", self.gradient)]
        rows += [(f"d/{name}", f"d loss / d {name}", formula)
                 for name, formula in self.parameter_gradients.items()]
        return rows

    def latex(self, expr: sympy.Basic) -> str:
        """LaTeX of one of this loss's formulas (reductions typeset via their OPS row)."""
        return formula_latex(expr, self.table)

    def counts(self) -> list[str]:
        """What the count symbols in the formulas mean."""
        symbols = set().union(*(f.free_symbols for _, _, f in self.formulas()))
        return [count.describe() for count in sorted(
            (s for s in symbols if isinstance(s, Count)), key=lambda s: s.name)]

    # ------------------------------------------------------------- renderings

    def to_text(self) -> str:
        """A plain-text report, as ``lossdsl show`` prints it."""
        lines = [f"source      {self.source}", f"canonical   {self.canonical}",
                 f"parameters  {self._parameter_text()}", ""]
        for key, title, formula in self.formulas():
            lines += [title, f"  {_text(formula)}"]
            if key == "gradient":
                replacements, reduced = self.gradient_cse
                lines += ["d loss / d y_pred, common subexpressions"]
                lines += [f"  {_text(s)} = {_text(e)}" for s, e in replacements]
                lines += [f"  {_text(reduced)}"]
        lines += ["", "where the loss or its gradient is undefined, infinite or kinked"]
        lines += [f"  {c.text:<24} [{', '.join(c.applies_to)}] {c.reason}"
                  for c in self.conditions] or ["  nowhere: defined and smooth everywhere"]
        lines += [""] + self.counts() if self.counts() else []
        return "\n".join(lines).rstrip()

    def to_latex(self) -> str:
        """The formulas as one LaTeX ``aligned`` block (no surrounding ``$``)."""
        wrt = INPUT_LATEX["y_pred"]
        rows = [rf"L &= {self.latex(self.loss)}",
                rf"\frac{{\partial L}}{{\partial {wrt}}} &= {self.latex(self.gradient)}"]
        rows += [rf"\frac{{\partial L}}{{\partial {sympy.latex(sympy.Symbol(name))}}} &= "
                 rf"{self.latex(formula)}" for name, formula in self.parameter_gradients.items()]
        rows += [rf"&\text{{needs }} {self.latex(c.requirement)}"
                 for c in self.conditions if c.kind == "domain"]
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"

    def to_markdown(self) -> str:
        """A Markdown report with typeset math (``$$``), for notebooks and READMEs."""
        parts = [f"**Loss** `{self.canonical}`", f"Parameters: {self._parameter_text()}"]
        for key, title, formula in self.formulas():
            parts.append(f"*{title}*\n\n$$\n{self.latex(formula)}\n$$")
        parts.append("*Where it is undefined, infinite or kinked*\n\n" + (
            "\n".join(f"- `{c.text}` ({', '.join(c.applies_to)}): {c.reason}"
                      for c in self.conditions) or "- nowhere"))
        return "\n\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (strings and numbers): every formula as text and as LaTeX."""
        replacements, reduced = self.gradient_cse
        return {
            "source": self.source, "canonical": self.canonical, "params": dict(self.params),
            "parameters": list(self.parameters),
            "formulas": {key: {"text": _text(f), "latex": self.latex(f)}
                         for key, _, f in self.formulas()},
            "gradient_cse": {"replacements": [[_text(s), _text(e)] for s, e in replacements],
                             "result": _text(reduced)},
            "conditions": [{"requirement": c.text, "latex": self.latex(c.requirement),
                            "term": c.term, "reason": c.reason,
                            "applies_to": list(c.applies_to), "kind": c.kind}
                           for c in self.conditions],
            "counts": self.counts(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON."""
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_latex_(self) -> str:
        return f"$$\n{self.to_latex()}\n$$"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _parameter_text(self) -> str:
        if not self.parameters:
            return "none"
        return ", ".join(f"{name} = {self.params[name]!r}" if name in self.params
                         else f"{name} (no value)" for name in self.parameters)


def explain(source: str, **params: float) -> Explanation:
    """Explain a loss: formulas, gradients and where they break.

    Parameters without a value stay symbols (the formulas do not need them);
    values given settle conditions that depend on them.

    Args:
        source: the loss of one sample, as for :func:`lossdsl.compile`.
        **params: parameter values; they override defaults bound in the source.

    Returns:
        An :class:`Explanation`.

    Raises:
        LossDSLError: for a mistake in the source or a parameter value.

    Examples:

    >>> report = explain("mean((y_true - y_pred)^2)")
    >>> print(report.gradient)
    2*(y_pred - y_true)/n
    >>> report.latex(report.loss)
    '\\\\operatorname{mean}\\\\left(\\\\left(- y_{\\\\mathrm{pred}} + y_{\\\\mathrm{true}}\\\\right)^{2}\\\\right)'
    """
    analysis = analyze(source)
    return explain_analysis(analysis, bind_parameters(analysis, params, require_all=False))


def explain_analysis(analysis: Analysis, params: Mapping[str, float]) -> Explanation:
    """The :class:`Explanation` of an analysis with (some) parameter values."""
    return Explanation(
        source=analysis.source, canonical=analysis.canonical, params=dict(params),
        parameters=tuple(analysis.parameters), loss=analysis.expression,
        gradient_as_derived=analysis.gradient_as_derived, gradient=analysis.gradient,
        gradient_cse=_cse(analysis.gradient),
        parameter_gradients=dict(analysis.parameter_gradients),
        conditions=tuple(find_conditions(analysis, params)), table=analysis.table)


def _cse(formula: sympy.Expr) -> tuple[Replacements, sympy.Expr]:
    # Fresh names that cannot clash with a parameter's.
    names = sympy.numbered_symbols("t", real=True, exclude=formula.free_symbols)
    replacements, (reduced,) = sympy.cse(formula, symbols=names)
    return tuple(replacements), reduced
