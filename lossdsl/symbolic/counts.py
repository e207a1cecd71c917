"""Count symbols: the number of elements a reduction reduces, as a SymPy symbol that knows its axes.

A formula divides by ``n`` (every axis of a sample), ``n[-1]`` (``axis=-1``) or
``n_out`` (the elements each per-sample output element stands for, when the loss
keeps some axes). Every consumer (the plan, the exporter, LaTeX, explain, the
NumPy evaluators) reads :attr:`Count.axis`; nothing decodes the name.

    >>> Count((-1,)), Count(None).axis, Count("output").name
    (n[-1], None, 'n_out')
    >>> Count((-1,)) == Count((-1,)), Count(None) == sympy.Symbol("n")
    (True, False)
"""

from __future__ import annotations

from typing import Literal

import sympy

Axis = tuple[int, ...] | None  # None: every axis of the sample (all but the batch axis)
CountAxis = Axis | Literal["output"]


def _name(axis: CountAxis) -> str:
    if axis is None:
        return "n"
    if axis == "output":
        return "n_out"
    return f"n[{','.join(map(str, axis))}]"


class Count(sympy.Symbol):
    """The number of elements along ``axis`` of one sample (a positive integer).

    ``axis`` is None (every axis of the sample), a tuple of axes, or
    ``"output"``: the axes the per-sample output drops (decided when the plan runs).
    """

    axis: CountAxis

    def __new__(cls, axis: CountAxis) -> "Count":
        if axis is not None and axis != "output":
            axis = tuple(int(a) for a in axis)
        count = sympy.Symbol.__xnew__(cls, _name(axis), positive=True, integer=True)
        count.axis = axis
        return count

    def __getnewargs_ex__(self) -> tuple[tuple, dict]:
        return (self.axis,), {}

    def __reduce_ex__(self, protocol: int):
        return type(self), (self.axis,)

    def describe(self) -> str:
        """What the symbol means, for reports: ``n[-1] = number of elements along axis -1``."""
        if self.axis is None:
            return f"{self.name} = number of elements of one sample"
        if self.axis == "output":
            return f"{self.name} = number of elements each output element stands for"
        if self.axis == (0,):
            return f"{self.name} = number of samples in the batch"
        batch = " (0: the batch axis)" if 0 in self.axis else ""
        return f"{self.name} = number of elements along axis {','.join(map(str, self.axis))}{batch}"


def reduces_batch(axis: CountAxis) -> bool:
    """Whether an axis spec names the batch axis (``axis=0``: a statistic of the whole batch)."""
    return axis is not None and axis != "output" and 0 in axis


def sample_part(axis: Axis) -> Axis:
    """The axes of ``axis`` within a sample (the batch axis left out); ``()`` for ``axis=0``."""
    return axis if axis is None else tuple(a for a in axis if a != 0)


def is_count(expr: sympy.Basic) -> bool:
    """Whether ``expr`` is a count symbol."""
    return isinstance(expr, Count)
