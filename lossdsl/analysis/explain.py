"""See what a loss does: its formulas, its gradient, and where it breaks.

:func:`explain` returns an :class:`Explanation`: the loss as written and as it
runs (its stable form) with the rewrites between them, the gradient w.r.t.
``y_pred`` as derived and simplified, the gradient w.r.t. each parameter, and
the conditions under which the loss or its gradient is undefined, infinite or
not differentiable. Every formula is a :class:`~lossdsl.analysis.formula.Formula`:
lossdsl source with the user's names, which parses back. It renders as text,
LaTeX, Markdown and a dict/JSON, and typesets itself in Jupyter. Nothing here
imports TensorFlow.

    >>> import lossdsl
    >>> report = lossdsl.explain("mean(-y_true*log(y_pred))")
    >>> report.gradient
    n = sum(1); -xdivy(y_true, y_pred) / n
    >>> [condition.text for condition in report.conditions]
    ['y_pred > 0']
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping, Sequence

import sympy

from lossdsl.analysis.analyze import Analysis, analyze, bind_parameters, vector_names
from lossdsl.analysis.domains import Condition, find_conditions
from lossdsl.analysis.dsl_text import NotPrintable, condition_text, formula_text
from lossdsl.analysis.formula import Formula
from lossdsl.analysis.inputs import declared_inputs
from lossdsl.analysis.latex import INPUT_LATEX, formula_latex, named_latex
from lossdsl.analysis.naming import name_formulas, user_bindings
from lossdsl.ops import INPUT_NAMES
from lossdsl.symbolic.counts import Count
from lossdsl.symbolic.translate import ReductionTable

Replacements = tuple[tuple[sympy.Symbol, sympy.Expr], ...]


def program_lines(formula: Formula, indent: str = "  ") -> list[str]:
    """A formula as source, one binding a line (``name = value;``), the result last."""
    bindings, body = formula.parts()
    return [f"{indent}{name} = {value};" for name, value in bindings] + [indent + body]


@dataclass(frozen=True)
class Explanation:
    """Everything lossdsl knows about one loss, ready to read.

    Attributes:
        source: the text as given.
        canonical: the loss as written, in canonical form; it parses back to the same program.
        params: the parameter values given or defaulted (may be partial).
        parameters: every parameter's name, in order of first use.
        loss: the per-sample loss as it runs (stable, simplified), parameters as names.
        rewrites: the stability rewrites between ``canonical`` and ``loss``, by name.
        gradient_as_derived: d loss / d ``y_pred`` before simplification.
        gradient: the same, simplified.
        parameter_gradients: per-sample d loss / d parameter.
        conditions: where the loss or gradient is undefined, infinite or kinked.
    """

    source: str
    canonical: str
    params: Mapping[str, float]
    parameters: tuple[str, ...]
    loss: Formula
    gradient_as_derived: Formula
    gradient: Formula
    parameter_gradients: Mapping[str, Formula]
    conditions: tuple[Condition, ...]
    table: ReductionTable = field(repr=False)
    rewrites: tuple[str, ...] = ()
    analysis: Analysis | None = field(default=None, repr=False, compare=False)

    @cached_property
    def gradient_cse(self) -> tuple[Replacements, sympy.Expr]:
        """``(replacements, reduced)`` from ``sympy.cse`` of the gradient (SymPy's names)."""
        formula = self.gradient.sympy
        names = sympy.numbered_symbols("t", real=True, exclude=formula.free_symbols)
        replacements, (reduced,) = sympy.cse(formula, symbols=names)
        return tuple(replacements), reduced

    def formulas(self) -> list[tuple[str, str, Formula]]:
        """``(key, title, formula)`` for each formula, in reading order."""
        wrt = self.wrt
        rows = [("loss", "loss as it runs", self.loss),
                ("gradient_as_derived", f"d loss / d {wrt}, as derived", self.gradient_as_derived),
                ("gradient", f"d loss / d {wrt}", self.gradient)]
        rows += [(f"d/{name}", f"d loss / d {name}", formula)
                 for name, formula in self.parameter_gradients.items()]
        return rows

    @property
    def wrt(self) -> str:
        """The input the gradient is taken with respect to (``y_pred``, or ``w`` for a penalty)."""
        return self.analysis.wrt if self.analysis is not None else "y_pred"

    def latex(self, expr: sympy.Basic) -> str:
        """LaTeX of one of this loss's formulas (reductions typeset via their OPS row)."""
        return formula_latex(sympy.sympify(expr), self.table)

    def counts(self) -> list[str]:
        """What the count symbols in the formulas mean, and the backward passes of pair functions."""
        symbols = set().union(*(f.sympy.free_symbols for _, _, f in self.formulas()))
        return [count.describe() for count in sorted(
            (s for s in symbols if isinstance(s, Count)), key=lambda s: s.name)] + [
            self._backward_text(symbol) for symbol in sorted(symbols, key=str)
            if symbol in self.table.pairs and self.table.pairs[symbol].upstream is not None]

    def _backward_text(self, symbol: sympy.Symbol) -> str:
        """``backward0(pair_dist(y_pred)) = d/dy_pred of sum(g * pair_dist(y_pred)), g = ...``."""
        pair = self.table.pairs[symbol]
        try:  # named as the loss's own formulas are (its bindings), when it has an analysis
            upstream = str(Formula(pair.upstream, self.analysis)) if self.analysis is not None \
                else formula_text(pair.upstream, self.table)
        except NotPrintable:
            upstream = str(pair.upstream)
        return (f"{symbol.name} = d/d{pair.input} of sum(g * {pair.text}) over the batch's "
                f"pairs, the pair function's backward pass, with g given by: {upstream}")

    def requirement(self, condition: Condition) -> str:
        """A condition's requirement in DSL spelling, with the user's names (``p > 0``)."""
        mapping = {value: sympy.Symbol(name, real=True) for name, values in (
            user_bindings(self.analysis) if self.analysis is not None else ()) for value in values}
        try:
            return condition_text(condition.requirement.xreplace(mapping), self.table)
        except NotPrintable:
            return condition.text

    def _rewrite_text(self) -> str:
        return ", ".join(self.rewrites) if self.rewrites else "none: it runs as written"

    # ------------------------------------------------------------- renderings

    def to_text(self) -> str:
        """A plain-text report, as ``lossdsl show`` prints it; every formula is lossdsl source."""
        lines = [f"source      {self.source}", f"parameters  {self._parameter_text()}", "",
                 "loss as written", f"  {self.canonical}",
                 f"  rewrites: {self._rewrite_text()}"]
        for key, title, formula in self.formulas():
            lines += [title] + program_lines(formula)
        lines += ["", "where the loss or its gradient is undefined, infinite or kinked"]
        lines += [f"  {self.requirement(c):<24} [{', '.join(c.applies_to)}] {c.reason}"
                  for c in self.conditions] or ["  nowhere: defined and smooth everywhere"]
        lines += [""] + self.counts() if self.counts() else []
        return "\n".join(lines).rstrip()

    def to_latex(self) -> str:
        """The formulas as one LaTeX ``aligned`` block (no surrounding ``$``), with the user's names."""
        wrt = INPUT_LATEX.get(self.wrt) or sympy.latex(sympy.Symbol(self.wrt))
        lhs = ["L", rf"\frac{{\partial L}}{{\partial {wrt}}}"] + [
            rf"\frac{{\partial L}}{{\partial {sympy.latex(sympy.Symbol(name))}}}"
            for name in self.parameter_gradients]
        formulas = [self.loss.sympy, self.gradient.sympy] + [
            f.sympy for f in self.parameter_gradients.values()]
        user = user_bindings(self.analysis) if self.analysis is not None else ()
        block = named_latex(name_formulas(formulas, self.table, user, name_counts=False), lhs)
        needs = [rf"&\text{{needs }} {self.latex(c.requirement)}"
                 for c in self.conditions if c.kind == "domain"]
        if needs:
            block = block.replace("\n\\end{aligned}", " \\\\\n" + " \\\\\n".join(needs)
                                  + "\n\\end{aligned}")
        return block

    def to_markdown(self) -> str:
        """A Markdown report: the source forms as code, the formulas typeset (``$$``)."""
        parts = [f"**Loss** `{self.canonical}`", f"Parameters: {self._parameter_text()}",
                 "| as written | runs as | rewrites |\n| --- | --- | --- |\n"
                 f"| `{self.canonical}` | `{self.loss}` | {self._rewrite_text()} |"]
        for key, title, formula in self.formulas():
            parts.append(f"*{title}*: `{formula}`\n\n$$\n{formula.latex()}\n$$")
        parts.append("*Where it is undefined, infinite or kinked*\n\n" + (
            "\n".join(f"- `{self.requirement(c)}` ({', '.join(c.applies_to)}): {c.reason}"
                      for c in self.conditions) or "- nowhere"))
        return "\n\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (strings and numbers): every formula as lossdsl source and as LaTeX."""
        return {
            "source": self.source, "canonical": self.canonical,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()},
            "parameters": list(self.parameters), "rewrites": list(self.rewrites),
            "formulas": {key: {"text": str(f), "latex": f.latex(),
                               "bindings": [list(b) for b in f.parts()[0]]}
                         for key, _, f in self.formulas()},
            "conditions": [{"requirement": self.requirement(c), "latex": self.latex(c.requirement),
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
        return ", ".join(f"{name} = {_shown(self.params[name])}" if name in self.params
                         else f"{name} (no value)" for name in self.parameters)


def _shown(value: object) -> str:
    """A value as the user wrote it: a vector parameter as a list."""
    return repr(list(value)) if isinstance(value, tuple) else repr(value)


def explain(source: str, *, inputs: str | Sequence[str] = (), **params: float) -> Explanation:
    """Explain a loss: formulas, gradients and where they break.

    Parameters without a value stay symbols (the formulas do not need them);
    values given settle conditions that depend on them.

    Args:
        source: the loss of one sample, as for :func:`lossdsl.compile`.
        inputs: the names of extra inputs (a mask, a weight map), as for
            :func:`lossdsl.compile`; other names are parameters.
        **params: parameter values; they override defaults bound in the source;
            a list makes a vector parameter (one value per class).

    Returns:
        An :class:`Explanation`.

    Raises:
        LossDSLError: for a mistake in the source or a parameter value.

    Examples:

    >>> report = explain("mean((y_true - y_pred)^2)")
    >>> print(report.gradient)
    n = sum(1); 2 * (y_pred - y_true) / n
    >>> report.latex(report.loss)
    '\\\\operatorname{mean}\\\\left(\\\\left(- y_{\\\\mathrm{pred}} + y_{\\\\mathrm{true}}\\\\right)^{2}\\\\right)'
    """
    names = declared_inputs(inputs, params)
    analysis = analyze(source, INPUT_NAMES + names, vectors=vector_names(params))
    return explain_analysis(analysis, bind_parameters(analysis, params, require_all=False))


def explain_analysis(analysis: Analysis, params: Mapping[str, float]) -> Explanation:
    """The :class:`Explanation` of an analysis with (some) parameter values."""
    def formula(expr: sympy.Expr) -> Formula:
        return Formula(expr, analysis)

    return Explanation(
        source=analysis.source, canonical=analysis.canonical, params=dict(params),
        parameters=tuple(analysis.parameters), loss=formula(analysis.expression),
        gradient_as_derived=formula(analysis.gradient_as_derived),
        gradient=formula(analysis.gradient),
        parameter_gradients={name: formula(f) for name, f in analysis.parameter_gradients.items()},
        conditions=tuple(find_conditions(analysis, params)), table=analysis.table,
        rewrites=tuple(analysis.rewrites), analysis=analysis)
