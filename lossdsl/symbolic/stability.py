"""Stability rewrites: naive formulas become numerically stable ones, each by a named rule.

A loss written the way it reads on paper (``log(sigmoid(x))``, ``log(1 + exp(x))``,
``y*log(p)``) overflows or produces ``0*inf = NaN`` at inputs a model easily reaches
(logits of 100, probabilities of exactly 0). lossdsl sees the whole formula, so it
rewrites it before lowering, the way PyTensor's ``register_stabilize`` rewrites do
(``pytensor/tensor/rewriting/math.py`` and ``special.py``): ``log(sigmoid(x))`` becomes
``-softplus(-x)`` and so on (:data:`RULES` lists them all). The pass runs on the
loss, on the arguments of every reduction in the :class:`ReductionTable`, and again
on the derived gradient; the names of the rules that fired are recorded.

Each rule matches one node (:mod:`lossdsl.symbolic.rules`, matchers in
``rules_exp_log`` and ``rules_guards``); this module is the pass that applies them.
Rules whose pattern *contains* a pattern of another rule (``log(1 - sigmoid(x))``
contains ``1 - sigmoid(x)``) are tried on the way down, before the node's arguments
are rewritten; the rest are tried on the way up.

    >>> import sympy
    >>> from lossdsl.ops import sigmoid
    >>> from lossdsl.symbolic.translate import ReductionTable
    >>> x = sympy.Symbol("y_pred", real=True)
    >>> result = stabilize(ReductionTable(), [sympy.log(sigmoid(x)), sympy.log(1 + sympy.exp(x))])
    >>> result.exprs
    (-softplus(-y_pred), softplus(y_pred))
    >>> result.fired
    ('log_sigmoid', 'log_one_plus_exp')

A value that is infinite in exact arithmetic (``log(y_pred)`` at ``y_pred = 0``)
cannot be rewritten away; :func:`infinity_warnings` (:mod:`lossdsl.symbolic.infinities`)
finds the cases that are visible in the formula, and the compiler turns them into a
:class:`lossdsl.errors.LossDSLWarning`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import sympy

from lossdsl.limits import MAX_REWRITES_PER_NODE
from lossdsl.symbolic.infinities import infinity_warnings
from lossdsl.symbolic.rules import RULES, Phase, Rule
from lossdsl.symbolic.translate import ReductionTable


# ---------------------------------------------------------------- the pass

@dataclass(frozen=True)
class Stabilized:
    """The result of :func:`stabilize`.

    Attributes:
        table: a new table whose reduction arguments are rewritten (symbols are
            renamed after their new text).
        exprs: the given expressions, rewritten, over ``table``'s symbols.
        fired: names of the rules that fired, in first-fired order, once each.
        renamed: old reduction symbol -> its expression over ``table`` (for
            formulas over the old table that were not rewritten).
    """

    table: ReductionTable
    exprs: tuple[sympy.Expr, ...]
    fired: tuple[str, ...]
    renamed: dict = field(default_factory=dict)


def stabilize(table: ReductionTable, exprs: Sequence[sympy.Expr]) -> Stabilized:
    """Rewrite the reductions of ``table`` (in dependency order), then ``exprs``."""
    stable_table = ReductionTable(inputs=table.inputs)
    rewriter = _Rewriter(stable_table)
    renamed: dict[sympy.Symbol, sympy.Expr] = {}
    for reduction in table.in_order():
        arg = rewriter.rewrite(reduction.arg.xreplace(renamed))
        value = stable_table.reduce(reduction.kind, arg, reduction.axis)
        if value != reduction.symbol:
            renamed[reduction.symbol] = value
    for symbol, pair in table.pairs.items():  # a backward pass's upstream is a formula too
        stable_table.pairs[symbol] = pair if pair.upstream is None else replace(
            pair, upstream=rewriter.rewrite(pair.upstream.xreplace(renamed)))
    rewritten = tuple(rewriter.rewrite(sympy.sympify(e).xreplace(renamed)) for e in exprs)
    return Stabilized(stable_table, rewritten, tuple(rewriter.fired), renamed)


def rewrite_with_rules(expr: sympy.Expr, table: ReductionTable) -> sympy.Expr:
    """``expr`` rewritten by :data:`RULES` over an existing ``table`` (which may gain symbols)."""
    return _Rewriter(table).rewrite(sympy.sympify(expr))


class _Rewriter:
    def __init__(self, table: ReductionTable) -> None:
        self.table = table
        self.fired: list[str] = []
        self.memo: dict[sympy.Basic, sympy.Basic] = {}
        self.by_phase = {phase: [r for r in RULES if phase in r.phases]
                         for phase in ("pre", "post")}

    def rewrite(self, expr: sympy.Basic) -> sympy.Basic:
        if expr.is_Atom:
            return expr
        if expr not in self.memo:
            node = self._apply(expr, "pre")
            args = tuple(self.rewrite(arg) for arg in node.args)
            if args != node.args:
                node = node.func(*args)
            self.memo[expr] = self._apply(node, "post")
        return self.memo[expr]

    def _apply(self, node: sympy.Basic, phase: Phase) -> sympy.Basic:
        for _ in range(MAX_REWRITES_PER_NODE):
            result = self._first_match(node, phase)
            if result is None:
                return node
            if phase == "post" and not result.is_Atom:
                # A rewrite can expose patterns in the new node's arguments.
                result = result.func(*(self.rewrite(arg) for arg in result.args))
            node = result
        return node

    def _first_match(self, node: sympy.Basic, phase: Phase) -> sympy.Basic | None:
        for rule in self.by_phase[phase]:
            if isinstance(node, rule.heads):
                result = rule.match(node, self.table)
                if result is not None and result != node:
                    if rule.name not in self.fired:
                        self.fired.append(rule.name)
                    return result
        return None


__all__ = ["RULES", "Rule", "Stabilized", "stabilize", "rewrite_with_rules", "infinity_warnings"]
