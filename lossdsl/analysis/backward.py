"""The backward pass of ``gradient="symbolic"``: the derived gradient, seeded by the upstream gradient.

Keras multiplies the per-sample losses by ``sample_weight`` and reduces them
*after* ``Loss.call``, so the gradient a loss receives from above is one number
per element of its output, not 1. The backward formula is therefore
d(sum of ``upstream`` * output) / d ``y_pred``, with ``upstream`` a symbol:

* when the output is one number per sample, or the loss is purely elementwise
  (no reduction at all), this is simply ``upstream * gradient``;
* otherwise (``y_pred - mean(y_pred)`` as a loss, per-row outputs that mix rows
  through a reduction) the gradient is derived again with ``upstream`` treated
  as an input, which keeps it inside the reductions' adjoint sums.

No TensorFlow here.

    >>> backward("mean((y_true - y_pred)^2)").formula
    2*upstream*(y_pred - y_true)/n
    >>> backward("y_pred - mean(y_pred)").formula
    upstream - sum(upstream)/n
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import sympy

from lossdsl.analysis.analyze import COMPILE_CACHE_SIZE, Analysis, analyze
from lossdsl.symbolic.derive import derive
from lossdsl.ops import INPUT_NAMES
from lossdsl.symbolic.simplify import simplify
from lossdsl.symbolic.stability import stabilize
from lossdsl.symbolic.translate import ReductionTable

UPSTREAM = sympy.Symbol("upstream", real=True)
"""The upstream gradient of each element of the loss's output, broadcast to the inputs' shape."""


@dataclass(frozen=True)
class Backward:
    """d(sum of ``upstream`` * loss output) / d ``wrt``, elementwise.

    Attributes:
        formula: the gradient, in the inputs, ``UPSTREAM``, parameters and reductions.
        table: what the reduction symbols of ``formula`` stand for.
        rederived: False when ``formula`` is ``UPSTREAM`` times the analysis's gradient.
    """

    formula: sympy.Expr
    table: ReductionTable
    rederived: bool


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def separable(source: str, inputs: tuple[str, ...] = INPUT_NAMES, wrt: str = "y_pred",
              vectors: tuple[str, ...] = ()) -> bool:
    """:func:`is_separable` of ``source``'s analysis (cached by its text)."""
    return is_separable(analyze(source, inputs, wrt, vectors))


def is_separable(analysis: Analysis) -> bool:
    """Whether each element of the loss's output depends only on the ``wrt`` elements it reduces.

    True for elementwise losses (no reduction), for one number per sample, and
    when every reduction of ``wrt`` runs over the output's axes (``axis=-1``
    per row; reductions of the labels alone do not matter): the gradient of
    sum(``upstream`` * output) is then ``upstream``, broadcast, times the
    gradient of the output's sum, which can be computed before ``upstream`` is
    known (``lossdsl.backends.tensorflow.fused``). False when an output element mixes others'
    predictions (``y_pred - mean(y_pred)``), and whenever a reduction runs over the
    batch axis (``axis=0``), even of the labels alone.
    """
    output, table = analysis.expression, analysis.table
    if analysis.batch_reductions:
        return False  # a batch statistic or pair: each output element mixes every sample's inputs
    if not output.free_symbols & set(table.reductions):
        return True
    axes = table.constant_axis(output)
    if axes is None:
        return True
    if axes in ((), "mixed"):
        return False
    wrt = sympy.Symbol(analysis.wrt, real=True)
    return all(table[symbol].axis == axes for symbol in _reductions_of(output, table)
               if wrt in _inputs_of(symbol, table))


def _reductions_of(expr: sympy.Expr, table: ReductionTable) -> set[sympy.Symbol]:
    """The reduction symbols ``expr`` uses, directly or inside other reductions."""
    found: set[sympy.Symbol] = set()
    pending = [s for s in expr.free_symbols if s in table]
    while pending:
        symbol = pending.pop()
        if symbol not in found:
            found.add(symbol)
            pending.extend(s for s in table[symbol].arg.free_symbols if s in table)
    return found


def _inputs_of(symbol: sympy.Symbol, table: ReductionTable) -> set[sympy.Symbol]:
    """The input symbols a reduction's value depends on."""
    reductions = _reductions_of(symbol, table)  # the symbol itself included
    return {s for r in reductions for s in table[r].arg.free_symbols if s in table.inputs}


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def backward(source: str, inputs: tuple[str, ...] = INPUT_NAMES, wrt: str = "y_pred",
             vectors: tuple[str, ...] = ()) -> Backward:
    """The seeded gradient of ``source`` (cached by its text)."""
    analysis = analyze(source, inputs, wrt, vectors)
    output, table = analysis.expression, analysis.table
    if not analysis.batch_reductions and (table.constant_axis(output) is None or
                                          not (output.free_symbols & set(table.reductions))):
        return Backward(UPSTREAM * analysis.gradient, table, rederived=False)
    seeded = table.with_inputs(frozenset({UPSTREAM}))
    raw = derive(replace(analysis.lowered, table=seeded), sympy.Symbol(wrt, real=True),
                 seed=UPSTREAM)
    stable = stabilize(seeded, [simplify(raw)])
    return Backward(stable.exprs[0], stable.table, rederived=True)


__all__ = ["UPSTREAM", "Backward", "backward", "is_separable", "separable"]
