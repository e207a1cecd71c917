"""Which axes a loss's reductions reduce and which the per-sample output keeps: the one home of that rule.

Pure Python on ranks. The TF runner calls these functions; the exporter copies
:func:`sample_axes` and :func:`output_axes` into the generated module by reading
their source, so both must stay self-contained (no lossdsl names, no type hints
that the generated module would not know).

    >>> output_axes(3, ((-1,),)), output_axes(3, (None,)), output_axes(3, None)
    ([2], [1, 2], [])
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence, Union

import sympy

from lossdsl.errors import DSLShapeError
from lossdsl.limits import RESOLVED_AXES_CACHE_SIZE
from lossdsl.symbolic.counts import Axis
from lossdsl.symbolic.translate import ReductionTable

Reduced = Union[tuple, None]
"""The axis specs of the loss's reductions, or None: the loss varies along every axis."""


def sample_axes(rank, axis):
    """Non-negative axes of a batch of ``rank`` for an axis spec (None: all but the batch axis).

    ``0`` is the batch axis (a batch statistic); a negative axis counts within a sample.
    Raises ValueError for an axis a sample of rank ``rank - 1`` does not have.
    """
    if axis is None:
        return list(range(1, rank))
    resolved = []
    for a in axis:
        if a == 0:
            resolved.append(0)
            continue
        index = a + rank if a < 0 else a
        if not 1 <= index < rank:
            raise ValueError(f"axis={a} does not exist for inputs of rank {rank} "
                             f"(a batch of samples of rank {rank - 1}).")
        if index in resolved:  # axis=(1, -1) on rank 2: one axis named twice
            raise ValueError(f"axis={tuple(axis)} names the axis {index} twice for inputs of "
                             f"rank {rank}.")
        resolved.append(index)
    return resolved


def output_axes(rank, reduced):
    """The axes the per-sample output drops: those every reduction of the loss reduced.

    ``reduced`` is None when the loss varies along every axis (it keeps them all),
    else the axis specs of its reductions (none at all: a constant, every axis goes).
    """
    if reduced is None:
        return []
    return sorted(set(range(1, rank)).intersection(*(sample_axes(rank, axis) for axis in reduced)))


def resolve_axes(rank: int, axis: Axis | str, reduced: Reduced) -> list[int]:
    """:func:`sample_axes`, with ``"output"`` (the per-sample output's axes) and a lossdsl error."""
    try:
        return output_axes(rank, reduced) if axis == "output" else sample_axes(rank, axis)
    except ValueError as error:
        raise DSLShapeError(str(error), hint="axes count from 1 for the first axis of a sample") \
            from None


def output_reductions(output: sympy.Expr, table: ReductionTable) -> Reduced:
    """What decides the per-sample shape of ``output``: see :data:`Reduced`.

    The loss formula with its parameters as symbols decides it, so that a value
    (``alpha = 0`` in ``mean(y_pred) + alpha*y_true``) cannot change the shape.
    """
    specs = table.constant_specs(output)  # of sample axes: the batch axis is always kept
    if () in specs:
        return None
    return tuple(sorted(specs, key=repr))


@lru_cache(maxsize=RESOLVED_AXES_CACHE_SIZE)
def resolved_axes(rank: int, axis: Axis | str, reduced: Reduced) -> tuple[int, ...]:
    """:func:`resolve_axes`, cached: backends resolve the same few specs on every call."""
    return tuple(resolve_axes(rank, axis, reduced))


def incompatible_shapes(shapes: Sequence[tuple]) -> DSLShapeError:
    """The error for inputs whose shapes do not broadcast (the same on every backend)."""
    shown = " and ".join(str(tuple(shape)) for shape in shapes)
    return DSLShapeError(f"The inputs' shapes {shown} do not broadcast against each other.",
                         hint="each axis of y_true and y_pred must have the same size, or "
                              "size 1 in one of them, as for Keras's losses")


__all__ = ["Reduced", "sample_axes", "output_axes", "resolve_axes", "output_reductions",
           "resolved_axes", "incompatible_shapes"]
