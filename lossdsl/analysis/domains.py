"""Where a loss or its gradient is undefined, infinite, or has a kink, as readable conditions.

The formulas are walked node by node (the loss with the arguments of the
reductions it uses, then the gradient with its own): a ``log`` needs a positive
argument, a division a non-zero denominator, a fractional power a non-negative
base, ``abs``/``relu``/``maximum``/``clip`` have kinks where TF picks one
gradient. A condition on a linear expression of one input is solved for it
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
    values = {analysis.parameters[k]: sympy.Float(v) for k, v in (params or {}).items()}
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


_GUARDED = {"xlogy": (lambda y: y > 0, "log"), "xlog1py": (lambda y: y > -1, "log1p"),
            "xdivy": (lambda y: sympy.Ne(y, 0), "division")}


def _rules(node: sympy.Basic, values: dict) -> Iterator[tuple[sympy.Basic, str, Kind]]:
    name = type(node).__name__
    args = node.args
    text = _text(node)
    if name == "log":
        yield args[0] > 0, f"{text} is undefined below 0 and -oo at 0", "domain"
    elif name == "log1p":
        yield args[0] > -1, f"{text} is undefined below -1 and -oo at -1", "domain"
    elif name in _GUARDED:
        # The condition binds only where the factor x is nonzero; saying so in the
        # text keeps the condition itself as short as log's.
        condition, what = _GUARDED[name]
        yield condition(args[1]), \
            f"{text}: its {what} of {_text(args[1])} needs this unless {_text(args[0])} = 0", \
            "domain"
    elif isinstance(node, sympy.Pow):
        yield from _power_rules(node, values)
    elif isinstance(node, sympy.Abs) or name == "relu" or isinstance(node, sympy.sign):
        where = "jumps at 0" if isinstance(node, sympy.sign) else "has a kink at 0"
        yield sympy.Ne(args[0], 0), f"{text} {where}; TF's gradient there is 0", "kink"
    elif name in ("maximum", "minimum"):
        yield sympy.Ne(args[0], args[1]), f"{text} has a kink where its arguments tie; " \
                                          "TF sends the gradient to the first", "kink"
    elif name == "clip":
        for bound in args[1:]:
            yield sympy.Ne(args[0], bound), f"{text} has a kink at {_text(bound)}; " \
                                             "TF's gradient there is 1", "kink"


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
