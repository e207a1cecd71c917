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

from lossdsl.compiler import COMPILE_CACHE_SIZE, Analysis, analyze
from lossdsl.gradient import derive
from lossdsl.ops import INPUT_NAMES
from lossdsl.simplify import simplify
from lossdsl.stability import stabilize
from lossdsl.symbolic import ReductionTable

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


def is_separable(analysis: Analysis) -> bool:
    """Whether each element of the loss's output depends only on the input elements it reduces.

    True when the output is one number per sample (every reduction over the
    whole sample) or elementwise (no reduction): the gradient of
    sum(``upstream`` * output) is then ``upstream``, broadcast, times the
    gradient of the output's sum, which can be computed before ``upstream`` is known.
    """
    output, table = analysis.expression, analysis.table
    return table.constant_axis(output) is None or not (output.free_symbols & set(table.reductions))


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def backward(source: str, inputs: tuple[str, ...] = INPUT_NAMES, wrt: str = "y_pred") -> Backward:
    """The seeded gradient of ``source`` (cached by its text)."""
    analysis = analyze(source, inputs, wrt)
    table = analysis.table
    if is_separable(analysis):
        return Backward(UPSTREAM * analysis.gradient, table, rederived=False)
    seeded = table.with_inputs(frozenset({UPSTREAM}))
    raw = derive(replace(analysis.lowered, table=seeded), sympy.Symbol(wrt, real=True),
                 seed=UPSTREAM)
    stable = stabilize(seeded, [simplify(raw)])
    return Backward(stable.exprs[0], stable.table, rederived=True)


__all__ = ["UPSTREAM", "Backward", "backward", "is_separable"]
