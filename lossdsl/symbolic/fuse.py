"""Lowering-time fusion: one reduction pass where the formula has several.

The symbolic core distributes ``mean`` and ``sum`` over sums (``mean(a + b)`` is
``mean(a) + mean(b)``), which keeps derivatives small and readable. Lowered as
is, that is one reduction pass over the data per term. Before lowering, a
linear combination of reductions of one kind over one axis is merged back into
a single reduction of the combined argument, which the stability rules then
see whole (``y*softplus(-x) + (1 - y)*softplus(x)`` becomes ``softplus(x) - y*x``).
Only the plans TensorFlow runs are affected; ``loss.expression`` stays readable.

    >>> import lossdsl
    >>> analysis = lossdsl.analyze("mean(-(y_true*log(sigmoid(y_pred)) + (1-y_true)*log(1-sigmoid(y_pred))))")
    >>> analysis.expression
    mean((1 - y_true)*softplus(y_pred)) + mean(y_true*softplus(-y_pred))
    >>> fused, table = fuse_reductions(analysis.expression, analysis.table)
    >>> fused
    mean(-y_pred*y_true + softplus(y_pred))
"""

from __future__ import annotations

import sympy

from lossdsl.symbolic.stability import rewrite_with_rules
from lossdsl.symbolic.reductions import ReductionTable

_MERGEABLE = ("mean", "sum")


def fuse_reductions(expr: sympy.Expr, table: ReductionTable
                    ) -> tuple[sympy.Expr, ReductionTable]:
    """``expr`` with each sum of same-kind, same-axis reductions merged into one."""
    table = table.with_inputs(frozenset())  # a copy: the analysis's table is shared

    def merge(add: sympy.Add) -> sympy.Expr:
        groups: dict[tuple, list[tuple[sympy.Expr, sympy.Symbol]]] = {}
        rest = []
        for term in add.args:
            split = _scaled_reduction(term, table)
            if split is None:
                rest.append(term)
            else:
                kind_axis = (table[split[1]].kind, table[split[1]].axis)
                groups.setdefault(kind_axis, []).append(split)
        for (kind, axis), members in groups.items():
            if len(members) == 1:
                rest.append(members[0][0] * members[0][1])
                continue
            arg = sympy.Add(*(scale * table[symbol].arg for scale, symbol in members))
            rest.append(table.opaque(kind, rewrite_with_rules(arg, table), axis))
        return sympy.Add(*rest)

    fused = sympy.sympify(expr).replace(lambda e: isinstance(e, sympy.Add), merge)
    return fused, table


def _scaled_reduction(term: sympy.Expr, table: ReductionTable
                      ) -> tuple[sympy.Expr, sympy.Symbol] | None:
    """``(scale, R)`` when ``term`` is ``scale * R``, R a mean/sum, scale constant along R."""
    for factor in sympy.Mul.make_args(term):
        if factor in table and table[factor].kind in _MERGEABLE:
            scale = term / factor
            if table.is_constant_along(scale, table[factor].axis) and not scale.has(factor):
                return scale, factor
    return None


__all__ = ["fuse_reductions"]
