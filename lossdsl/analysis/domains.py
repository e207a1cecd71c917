"""Where a loss or its gradient is undefined, infinite, or has a kink, as readable conditions.

The formulas are walked node by node (the loss with the arguments of the
reductions it uses, then the gradient with its own): a ``log`` needs a positive
argument, a division a non-zero denominator, a fractional power a non-negative
base, ``abs``/``relu``/``maximum``/``clip`` have kinks where TF picks one
gradient. What each function needs is the ``domain`` and ``kinks`` columns of
its row in :data:`lossdsl.ops.OPS`; powers are SymPy's own node, handled here.
A condition on a linear expression of one input is solved for it
(``1 - y_pred > 0`` reads ``y_pred < 1``). Conditions that the parameter
values settle are dropped.

    >>> from lossdsl.analysis.analyze import analyze
    >>> for condition in find_conditions(analyze("mean(-y_true*log(y_pred))")):
    ...     print(condition)
    y_pred > 0  [loss, gradient]  xlogy(y_true, y_pred): its log of y_pred needs this unless y_true = 0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal, Mapping

import sympy

from lossdsl.analysis.analyze import Analysis
from lossdsl.ops import BY_SYMPY_HEAD
from lossdsl.symbolic.translate import ReductionTable

Kind = Literal["domain", "kink"]


def _text(expr: sympy.Basic) -> str:
    return sympy.sstr(expr, full_prec=False)
_FLIPPED = {sympy.StrictGreaterThan: sympy.StrictLessThan, sympy.StrictLessThan: sympy.StrictGreaterThan,
            sympy.GreaterThan: sympy.LessThan, sympy.LessThan: sympy.GreaterThan,
            sympy.Eq: sympy.Eq, sympy.Ne: sympy.Ne}


@dataclass(frozen=True)
class Condition:
    """One place where a formula needs care.

    Attributes:
        requirement: for ``domain``, what must hold for the formula to be finite;
            for ``kink``, where the gradient jumps (as ``a != b``: smooth off it).
        term: the subterm responsible, as text.
        reason: what happens otherwise, in words.
        applies_to: ``("loss", "gradient")``, ``("loss",)`` or ``("gradient",)``.
        kind: ``"domain"`` (undefined/infinite) or ``"kink"`` (not differentiable).
    """

    requirement: sympy.Basic
    term: str
    reason: str
    applies_to: tuple[str, ...]
    kind: Kind

    @property
    def text(self) -> str:
        """The requirement as a person writes it: ``y_pred > 0``, ``y_pred != y_true``."""
        return requirement_text(self.requirement)

    def __str__(self) -> str:
        return f"{self.text}  [{', '.join(self.applies_to)}]  {self.reason}"


_RELATION_TEXT = {sympy.Eq: "==", sympy.Ne: "!=", sympy.StrictGreaterThan: ">",
                  sympy.StrictLessThan: "<", sympy.GreaterThan: ">=", sympy.LessThan: "<="}


def requirement_text(requirement: sympy.Basic) -> str:
    """``Ne(y_pred, 1)`` as ``y_pred != 1``; ``Or`` as ``... or ...``."""
    if isinstance(requirement, sympy.Or):
        return " or ".join(requirement_text(arg) for arg in requirement.args)
    relation = _RELATION_TEXT.get(type(requirement))
    if relation is None:
        return _text(requirement)
    return f"{_text(requirement.lhs)} {relation} {_text(requirement.rhs)}"


def find_conditions(analysis: Analysis, params: Mapping[str, float] | None = None
                    ) -> list[Condition]:
    """Domain conditions and kinks of the loss and of its gradient w.r.t. the input."""
    # A vector parameter stays a symbol: a condition on it holds class by class.
    values = {analysis.parameters[k]: sympy.Float(v) for k, v in (params or {}).items()
              if not isinstance(v, tuple)}
    found: dict[tuple[str, str], Condition] = {}
    for part, formula in (("loss", analysis.expression), ("gradient", analysis.gradient)):
        for node in _nodes(formula, analysis.table):
            for requirement, reason, kind in _rules(node, values):
                requirement = _solved(requirement, analysis.table)
                if _settled(requirement, values):
                    continue
                key = (sympy.srepr(requirement), kind)
                previous = found.get(key)
                applies = previous.applies_to if previous else ()
                # Where the loss is undefined, so is its gradient.
                # A kink is a jump of the gradient, wherever it was found.
                parts = ("gradient",) if kind == "kink" else \
                    ("loss", "gradient") if part == "loss" else (part,)
                if not set(parts) <= set(applies):
                    merged = applies + tuple(p for p in parts if p not in applies)
                    found[key] = Condition(requirement, _text(node), reason, merged, kind)
    return _without_implied(list(found.values()))


def _nodes(formula: sympy.Basic, table: ReductionTable) -> Iterator[sympy.Basic]:
    """Every node of ``formula`` and of the arguments of the reductions it reaches."""
    pending, seen = [formula], set()
    while pending:
        expr = pending.pop()
        for node in sympy.preorder_traversal(expr):
            yield node
            if node in table and node not in seen:
                seen.add(node)
                pending.append(table[node].arg)


def _rules(node: sympy.Basic, values: dict) -> Iterator[tuple[sympy.Basic, str, Kind]]:
    """The node's conditions: its row's ``domain`` and ``kinks``; powers are SymPy's own."""
    if isinstance(node, sympy.Pow):
        yield from _power_rules(node, values)
        return
    row = BY_SYMPY_HEAD.get(type(node))
    if row is None:
        return
    texts = {"call": _text(node)}
    args = [_text(arg) for arg in node.args]
    if row.domain is not None:
        yield row.domain.requires(*node.args), row.domain.reason.format(*args, **texts), "domain"
    for kink in row.kinks:
        yield sympy.Ne(*kink.at(*node.args)), kink.reason.format(*args, **texts), "kink"


def _power_rules(node: sympy.Pow, values: dict) -> Iterator[tuple[sympy.Basic, str, Kind]]:
    base, exponent = node.args
    text = _text(node)
    value = exponent.xreplace(values)
    if not value.is_number:
        yield base >= 0, f"{text} is undefined below 0 unless {_text(exponent)} " \
                         "is an integer", "domain"
        return
    number = float(value)
    if number.is_integer():
        if number < 0:
            yield sympy.Ne(base, 0), f"{text} is infinite at {_text(base)} = 0", "domain"
    elif number > 0:
        yield base >= 0, f"{text} is undefined below 0", "domain"
    else:
        yield base > 0, f"{text} is undefined below 0 and infinite at 0", "domain"


def _solved(requirement: sympy.Basic, table: ReductionTable) -> sympy.Basic:
    """``a*x + b REL c`` with ``x`` the only input and ``a`` a number, solved for ``x``."""
    if type(requirement) not in _FLIPPED:
        return requirement
    difference = requirement.lhs - requirement.rhs
    # y_pred first: the conditions are read as "where may the prediction go".
    for x in sorted(difference.free_symbols & table.inputs, key=lambda s: s.name != "y_pred"):
        slope = sympy.diff(difference, x)
        if not slope.is_number or slope == 0 or sympy.diff(difference, x, 2) != 0:
            continue
        rest = sympy.expand(difference - slope * x)
        if x in rest.free_symbols:
            continue
        relation = type(requirement) if slope > 0 else _FLIPPED[type(requirement)]
        return relation(x, -rest / slope)
    return requirement


def _settled(requirement: sympy.Basic, values: dict) -> bool:
    """Whether the requirement holds whatever the inputs (e.g. ``2 > 0``, ``alpha > 0`` at 0.5)."""
    settled = requirement.xreplace(values) if values else requirement
    return settled is sympy.true


def _without_implied(conditions: list[Condition]) -> list[Condition]:
    """Drop ``x != c`` and ``x >= c`` where ``x > c`` (or ``x < c``) is already required."""
    strict = {(type(c.requirement), c.requirement.args): set(c.applies_to) for c in conditions
              if isinstance(c.requirement, (sympy.StrictGreaterThan, sympy.StrictLessThan))}
    implied_by = {sympy.Ne: (sympy.StrictGreaterThan, sympy.StrictLessThan),
                  sympy.GreaterThan: (sympy.StrictGreaterThan,),
                  sympy.LessThan: (sympy.StrictLessThan,)}
    kept = []
    for condition in conditions:
        stronger = implied_by.get(type(condition.requirement), ())
        args = condition.requirement.args if stronger else ()
        covered = set(condition.applies_to)
        if condition.kind == "domain" and any(covered <= strict.get((kind, args), set())
                                              for kind in stronger):
            continue
        kept.append(condition)
    return kept
