"""Pair symbols: what a pair function of a loss (``pair_dist(y_pred)``) stands for.

A pair symbol counts as an input of the loss (the :class:`~lossdsl.symbolic.reductions.ReductionTable`
holds them next to its reductions); :class:`Pair` says which function of which input it is,
along which axis the other sample runs, and, for a backward pass, its upstream gradient.

    >>> import sympy
    >>> y = sympy.Symbol("y_true", real=True)
    >>> Pair("pair_eq", y, sympy.Symbol("_"), axis=-2).text
    'pair_eq(y_true, axis=-2)'
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy


@dataclass(frozen=True)
class Pair:
    """What a pair symbol stands for: ``kind(input)``, one row over the batch per sample.

    ``axis`` is the axis the other sample runs along: -1 (j), or -2 for the first other
    sample of a triple (a, p, n): each sample's rows are then (batch, batch), the value at
    (p, n) that of the pair (a, p) for ``axis=-2``, of (a, n) for ``axis=-1``.
    ``upstream`` is set for the symbol of its backward pass: d (sum of ``upstream`` *
    ``kind(input)``) / d ``input``, at the input's shape (:mod:`lossdsl.symbolic.derive`).
    """

    kind: str
    input: sympy.Symbol | None  # None: pair_self()
    symbol: sympy.Symbol
    upstream: sympy.Expr | None = None
    axis: int = -1

    @property
    def text(self) -> str:
        """The call as written: ``pair_dist(y_pred)``, ``pair_eq(y_true, axis=-2)``."""
        args = [self.input.name] if self.input is not None else []
        return f"{self.kind}({', '.join(args + ([f'axis={self.axis}'] if self.axis != -1 else []))})"

    @property
    def constant_axis(self) -> tuple[int, ...]:
        """The axis of a triple's rows it is constant along (the other one's)."""
        return (-1,) if self.axis == -2 else (-2,)


__all__ = ["Pair"]
