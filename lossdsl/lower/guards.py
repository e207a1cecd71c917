"""The "double where" guard: which ``where`` needs it, and what a guarded where is made of.

A tape differentiates both branches of a ``where`` and multiplies the untaken
branch's derivative by 0, which is NaN when that derivative is infinite or NaN
(TF issue #38349). A guarded where evaluates each branch on its leaves with the
gradient cut where the branch is not taken (``where(taken, x, stop_gradient(x))``),
so the backward pass *selects* rather than multiplies. The value is unchanged.
Whether a node's derivative can blow up is a column of :data:`lossdsl.ops.OPS`
(:func:`lossdsl.ops.derivative_may_blow_up`).

No TensorFlow here.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import sympy

from lossdsl.lower.plan import Branch, frozen
from lossdsl.ops import derivative_may_blow_up
from lossdsl.symbolic.counts import Count

BuildBranch = Callable[[sympy.Expr, tuple[sympy.Basic, ...]], Branch]
"""Builds the nodes of one branch, its leaves given (:func:`lossdsl.lower.build.branch`)."""


def needs_guard(expr: sympy.Piecewise) -> bool:
    """Whether a branch of this ``where`` calls something whose derivative can blow up."""
    return any(derivative_may_blow_up(node)
               for value, _ in expr.args for node in sympy.preorder_traversal(value))


def guarded_where(expr: sympy.Piecewise, build_branch: BuildBranch
                  ) -> tuple[tuple[sympy.Basic, ...], Mapping[str, Any]]:
    """The children (conditions, then leaves) and attributes of a guarded where node.

    Attributes: ``conditions`` (how many children are conditions), ``has_default``
    (the last branch has no condition), ``leaves`` (the leaf expressions, sorted),
    ``masked`` (per leaf: whether its gradient is cut outside the branch; counts
    are constants, never masked) and ``branches`` (one :class:`Branch` per value).
    """
    values = [value for value, _ in expr.args]
    conditions = tuple(cond for _, cond in expr.args if cond is not sympy.true)
    has_default = expr.args[-1].cond is sympy.true
    leaves = tuple(sorted(set().union(*(v.free_symbols for v in values)), key=str))
    masked = tuple(not isinstance(leaf, Count) for leaf in leaves)
    branches = tuple(build_branch(value, leaves) for value in values)
    return conditions + leaves, frozen(conditions=len(conditions), has_default=has_default,
                                       leaves=leaves, masked=masked, branches=branches)


def taken_masks(conditions: list, has_default: bool, logical_and: Callable, logical_not: Callable
                ) -> list:
    """Where each branch is the one taken: its condition and no earlier one.

    Works on any backend's booleans (tensors, or the names of tensors in printed
    code), given its ``and`` and ``not``.
    """
    masks, none_before = [], None
    for condition in conditions:
        masks.append(condition if none_before is None else logical_and(condition, none_before))
        negated = logical_not(condition)
        none_before = negated if none_before is None else logical_and(none_before, negated)
    if has_default:
        masks.append(none_before)
    return masks


__all__ = ["needs_guard", "guarded_where", "taken_masks"]
