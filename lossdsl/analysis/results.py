"""What the analysis produces: :class:`Analysis` (formulas) and :class:`CompiledExpression`.

An :class:`Analysis` is everything derived from a source text, with parameters
as symbols; a :class:`CompiledExpression` adds the parameters' values. Both are
made by :mod:`lossdsl.analysis.analyze`.

    >>> from lossdsl.analysis.analyze import compile_expression
    >>> compiled = compile_expression("mean(-alpha*log(y_pred))", {"alpha": 0.5})
    >>> compiled.params, compiled.analysis.canonical
    ({'alpha': 0.5}, 'mean(-alpha * log(y_pred))')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import sympy

from lossdsl.language import ir
from lossdsl.ops import INPUT_NAMES
from lossdsl.symbolic.counts import Count, reduces_batch
from lossdsl.symbolic.translate import Lowered, ReductionTable, axis_text


@dataclass(frozen=True)
class Analysis:
    """Everything lossdsl derives from a source text, independent of parameter values.

    Attributes:
        source: the text as given.
        program: the checked IR.
        canonical: the canonical form of the source (parses back to ``program``).
        expression: the per-sample loss, simplified, parameters as symbols.
        gradient: d loss / d ``wrt`` (elementwise), simplified.
        gradient_as_derived: the same before simplification.
        parameter_gradients: per-sample d loss / d parameter, simplified.
        table: what each reduction symbol in the formulas stands for.
        parameters: the parameters' SymPy symbols, in order of first use.
        defaults: parameter defaults bound in the source.
        wrt: the input the gradient is taken with respect to.
        rewrites: names of the stability rewrites that fired (see ``lossdsl.symbolic.stability``).
        inputs: the names of the elementwise inputs.
        vectors: the parameters with one value per element of the last axis (no
            parameter gradient is derived for them).
        warnings: why the loss is infinite somewhere, when that is visible in the
            formula; :func:`compile_expression` emits each as a ``LossDSLWarning``.
    """

    source: str
    program: ir.Program
    canonical: str
    expression: sympy.Expr
    gradient: sympy.Expr
    gradient_as_derived: sympy.Expr
    parameter_gradients: Mapping[str, sympy.Expr]
    table: ReductionTable = field(repr=False)
    parameters: Mapping[str, sympy.Symbol] = field(repr=False)
    defaults: Mapping[str, float] = field(repr=False)
    lowered: Lowered = field(repr=False)
    wrt: str = "y_pred"
    inputs: tuple[str, ...] = INPUT_NAMES
    vectors: tuple[str, ...] = ()
    rewrites: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def batch_reductions(self) -> tuple[str, ...]:
        """The reductions over the batch axis (``axis=0``) and the pair functions
        (``pair_dist(y_pred)``), as written: what reads the whole batch.

        >>> from lossdsl.analysis.analyze import analyze
        >>> analyze("mean(y_pred - mean(y_pred, axis=0))").batch_reductions
        ('mean(y_pred, axis=0)',)
        """
        # What the loss reads, through the reductions it uses: a dead term
        # (0*mean(y_pred, axis=0)) is none, a batch count (sum(1, axis=0), n[0]) is one.
        found, pending, seen = set(), [self.expression], set()
        while pending:
            for symbol in pending.pop().free_symbols:
                if symbol in seen:
                    continue
                seen.add(symbol)
                if isinstance(symbol, Count) and symbol.axis not in (None, "output") and \
                        reduces_batch(symbol.axis):
                    found.add(f"sum(1{axis_text(symbol.axis)})")
                elif symbol in self.table.pairs:  # pair_dist(y_pred) reads every sample
                    found.add(self.table.pairs[symbol].text)
                elif symbol in self.table:
                    reduction = self.table[symbol]
                    if reduces_batch(reduction.axis):
                        found.add(symbol.name)
                    pending.append(reduction.arg)
        return tuple(sorted(found))


@dataclass(frozen=True)
class CompiledExpression:
    """An :class:`Analysis` with every parameter given a value."""

    analysis: Analysis
    params: dict[str, "float | tuple[float, ...]"]  # a tuple: a vector parameter's values

    def __getattr__(self, name: str):
        # Formulas and tables are the analysis's; only the values are ours.
        return getattr(self.analysis, name)

    def values_by_symbol(self) -> dict[sympy.Symbol, float]:
        """The scalar parameters' values (a plan builds the vector ones in as constants)."""
        return {self.analysis.parameters[name]: value for name, value in self.params.items()
                if not isinstance(value, tuple)}

    def vector_length(self) -> int | None:
        """The length of the vector parameters (all have one), or None without any."""
        lengths = {len(value) for value in self.params.values() if isinstance(value, tuple)}
        return lengths.pop() if lengths else None
