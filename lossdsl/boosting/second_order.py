"""The diagonal of the Hessian: d gradient_i / d y_pred_i, through every reduction.

Gradient boosting wants, per sample and per output, the second derivative of
the loss w.r.t. that output alone (the diagonal of the per-sample Hessian).
``Analysis.gradient`` is elementwise over reduction symbols, so its diagonal
derivative is taken in forward mode, with ``T(e) = d e_i / d y_pred_i``:

* ``T(e) = de/dy_pred + sum over reductions R in e of de/dR * T(R)``;
* for ``R = kind(arg)``: ``T(R) = local_i * darg/dy_pred + sum over reductions
  S in arg of T(S) * sum(local * darg/dS)``, where ``local = dR/darg_j`` is the
  reduction's own derivative (``1/n``, ``1``, ``exp(arg - R)``, the tie share).

The second rule takes ``S`` constant over ``R``'s elements, which holds because
a boosting sample has one axis (its K margins), so every reduction covers it.
For softmax cross-entropy this gives ``p - p^2``, ``p = exp(y_pred - logsumexp(y_pred))``
(``sum(one_hot(y_true))`` is 1 for a valid label).

    >>> print(second_order("-sum(one_hot(y_true)*log_softmax(y_pred))").hessian)
    sum(one_hot(y_true), axis=-1)*(-exp(-2*logsumexp(y_pred, axis=-1) + 2*y_pred) + exp(-logsumexp(y_pred, axis=-1) + y_pred))
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy

from lossdsl import limits
from lossdsl.analysis.analyze import Analysis, analyze
from lossdsl.limits import COMPILE_CACHE_SIZE
from lossdsl.analysis.latex import INPUT_LATEX, formula_latex
from lossdsl.symbolic.derive import _drop_dirac, _local_derivative, _real_diff
from lossdsl.symbolic.simplify import simplify
from lossdsl.symbolic.stability import stabilize
from lossdsl.symbolic.reductions import ReductionTable

from lossdsl.boosting.numpy_eval import check_sample_axes


@dataclass(frozen=True)
class SecondOrder:
    """A loss with its gradient and diagonal Hessian w.r.t. ``y_pred``, over one table.

    Attributes:
        analysis: the first-order analysis (``lossdsl.analysis.analyze.analyze``).
        expression: the per-sample loss.
        gradient: d loss / d y_pred, elementwise.
        hessian: d gradient_i / d y_pred_i, elementwise, simplified and stabilised.
        table: what every reduction symbol of the three formulas stands for.
        rewrites: the stability rewrites that fired, the Hessian's included.
    """

    analysis: Analysis
    expression: sympy.Expr
    gradient: sympy.Expr
    hessian: sympy.Expr
    table: ReductionTable
    rewrites: tuple[str, ...]


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def second_order(source: str) -> SecondOrder:
    """Derive (once per source text) the diagonal Hessian of ``source`` w.r.t. ``y_pred``.

    Raises:
        LossDSLError: for a mistake in the source; ``DSLShapeError`` for a
            reduction over an axis a boosting sample does not have.
    """
    analysis = analyze(source)
    check_sample_axes(analysis.table, source)
    # A copy: reductions made for the Hessian must not leak into the cached analysis.
    table = analysis.table.with_inputs(frozenset())
    with limits.located_in(source):
        raw = _Diagonal(table, sympy.Symbol(analysis.wrt, real=True)).tangent(analysis.gradient)
        hessian = simplify(raw)
    final = stabilize(table, [analysis.expression, analysis.gradient, hessian])
    expression, gradient, hessian = final.exprs
    return SecondOrder(analysis, expression, gradient, hessian, final.table,
                       tuple(dict.fromkeys(analysis.rewrites + final.fired)))


class _Diagonal:
    def __init__(self, table: ReductionTable, wrt: sympy.Symbol) -> None:
        self.table, self.wrt = table, wrt
        self.memo: dict[sympy.Symbol, sympy.Expr] = {}

    def tangent(self, expr: sympy.Expr) -> sympy.Expr:
        """d expr_i / d y_pred_i for a full-shape expression."""
        total = _real_diff(expr, self.wrt)
        for symbol in sorted(expr.free_symbols & set(self.table.reductions), key=str):
            inner = self._reduction(symbol)
            if inner != 0:
                total += _real_diff(expr, symbol) * inner
        limits.check_formula_size(total, "derived Hessian")
        return _drop_dirac(total)

    def _reduction(self, symbol: sympy.Symbol) -> sympy.Expr:
        if symbol not in self.memo:
            reduction = self.table[symbol]
            local = _local_derivative(self.table, reduction)
            total = local * _real_diff(reduction.arg, self.wrt)
            for inner in sorted(reduction.arg.free_symbols & set(self.table.reductions), key=str):
                tangent = self._reduction(inner)
                if tangent != 0:
                    spread = _real_diff(reduction.arg, inner)
                    # The reduced product gets its own Dirac deltas dropped (clip of a softmax).
                    total += tangent * self.table.reduce("sum", _drop_dirac(local * spread),
                                                         reduction.axis)
            self.memo[symbol] = _drop_dirac(total)
        return self.memo[symbol]


def hessian_formula(source: str) -> dict[str, str]:
    """The diagonal Hessian of ``source``: ``{"text": ..., "latex": ...}`` (``lossdsl show``)."""
    formulas = second_order(source)
    latex = formula_latex(formulas.hessian, formulas.table)
    return {"text": sympy.sstr(formulas.hessian, full_prec=False),
            "latex": rf"\frac{{\partial^2 L}}{{\partial {INPUT_LATEX['y_pred']}^2}} = {latex}"}
