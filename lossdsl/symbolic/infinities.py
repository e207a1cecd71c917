"""Warnings for values that are infinite in exact arithmetic (``log(y_pred)`` at ``y_pred = 0``).

No rewrite can remove such an infinity; :func:`infinity_warnings` finds the
cases visible in the formula, from the ``domain`` column of each function's row
(its pole: ``log(x)`` is infinite where ``x`` is 0, ``log1p(x)`` where ``1 + x``
is), and the compiler turns them into a :class:`lossdsl.errors.LossDSLWarning`.
"""

from __future__ import annotations

import itertools
from typing import Iterator, Sequence

import sympy

from lossdsl.ops import BY_SYMPY_HEAD
from lossdsl.symbolic.translate import ReductionTable


def infinity_warnings(exprs: Sequence[sympy.Expr], table: ReductionTable) -> tuple[str, ...]:
    """Messages for logs and divisions whose argument reaches 0 on the inputs' usual range.

    Statically detectable cases only: the argument is a polynomial in the inputs
    alone (``y_pred``, ``1 - y_pred``, ``y_true - y_pred``) that is 0 somewhere on
    ``[0, 1]`` for each input (probabilities and labels). Arguments made safe by
    ``clip``, ``+ eps``, ``sigmoid``... and branches of ``where`` are not reported.
    """
    messages: list[str] = []
    for expr in _with_reached_reductions(exprs, table):
        for shown, argument in _singular_arguments(expr):
            point = _zero_on_unit_box(argument, table.inputs)
            if point is None:
                continue
            message = (f"`{shown}` is infinite where `{argument}` = 0 (e.g. at {point}), so the "
                       "loss or its gradient can be infinite there; no rewrite can change that. "
                       f"If the inputs can reach that point, {_remedy(argument)}.")
            if message not in messages:
                messages.append(message)
    return tuple(messages)


def _with_reached_reductions(exprs: Sequence[sympy.Expr], table: ReductionTable
                             ) -> list[sympy.Expr]:
    """``exprs`` and the arguments of the reductions they use, directly or through others.

    Only those: the table also holds the reductions of the gradients (d/dgamma
    of ``(1 - y_pred)^gamma`` has a ``log(1 - y_pred)``), which are not the loss.
    """
    pending, reached = list(exprs), set()
    while pending:
        for symbol in pending.pop().free_symbols & set(table.reductions) - reached:
            reached.add(symbol)
            pending.append(table[symbol].arg)
    return list(exprs) + [r.arg for r in table.in_order() if r.symbol in reached]


def _remedy(argument: sympy.Expr) -> str:
    """What to change in the source: clip the input the argument involves (the prediction first)."""
    names = sorted(str(symbol) for symbol in argument.free_symbols)
    if "y_pred" in names:
        return "clip it (`clip(y_pred, 1e-7, 1 - 1e-7)`) or write the loss on logits"
    return f"clip it (`clip({names[0]}, 1e-7, 1 - 1e-7)`)"


def _singular_arguments(expr: sympy.Basic) -> Iterator[tuple[str, sympy.Expr]]:
    """(what to show, argument that must not be 0) for every node with a pole, and divisions."""
    if isinstance(expr, sympy.Piecewise):
        # Branch values are guarded by their conditions: only look at the conditions.
        for pair in expr.args:
            yield from _singular_arguments(pair.cond)
        return
    row = BY_SYMPY_HEAD.get(type(expr))
    if row is not None and row.domain is not None:
        pole = row.domain.pole(*expr.args)
        yield row.domain.shown.format(pole), pole
    elif isinstance(expr, sympy.Pow) and expr.exp.is_number and expr.exp.is_negative:
        yield f"1/({expr.base})" if expr.exp == -1 else str(expr), expr.base
    for arg in expr.args:
        yield from _singular_arguments(arg)


def _zero_on_unit_box(argument: sympy.Expr, inputs: frozenset) -> str | None:
    """A point of ``[0, 1]^inputs`` where the polynomial ``argument`` is 0 (or crosses 0)."""
    free = sorted(argument.free_symbols, key=str)
    if not free or not set(free) <= inputs or not argument.is_polynomial(*free):
        return None
    grid = list(itertools.product((0, sympy.Rational(1, 2), 1), repeat=len(free)))
    values = [argument.xreplace(dict(zip(free, point))) for point in grid]
    for point, value in zip(grid, values):
        if value == 0:
            return ", ".join(f"{s} = {v}" for s, v in zip(free, point))
    if min(values) < 0 < max(values):
        return "a point between " + " and ".join(
            ", ".join(f"{s} = {v}" for s, v in zip(free, grid[i]))
            for i in (values.index(min(values)), values.index(max(values))))
    return None


__all__ = ["infinity_warnings"]
