"""Where the gradient check looks: the default shape and the ranges points are drawn from.

Default points come from the loss itself: candidate ranges are tried in order
(:func:`candidate_ranges`) and :mod:`lossdsl.tools.check` keeps the one where the
loss and both gradients are finite at the most entries.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import sympy

from lossdsl.analysis.analyze import Analysis, CompiledExpression
from lossdsl.ops import OPS

# Distinct sizes per axis, so that a reduction over the wrong axis cannot go unnoticed.
_BATCH, _LAST, _MIDDLE = 8, 5, (3, 6, 7, 4, 9)
_LABEL_OPS = tuple(op.sympy for op in OPS if op.by_position)  # their argument is a class label

Draw = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


def default_shape(compiled: CompiledExpression) -> tuple[int, ...]:
    """``(8, 5)``, or ``(8, 3, 5)``, ... when the loss reduces over an axis beyond the first;
    the last axis as long as the vector parameters, or long enough for every column (and
    one more, so that a column is never the whole row)."""
    if compiled.table.pairs:  # embeddings or a (batch, batch) matrix: square fits both
        return (_BATCH, _BATCH)
    rank = max([abs(a) for r in compiled.table.in_order() for a in (r.axis or ())] + [1])
    columns = compiled.lowered.columns
    last = compiled.vector_length() or max(
        [_LAST] + [(k + 2 if k >= 0 else 1 - k) for k in columns])
    return (_BATCH, *_MIDDLE[:rank - 1], last)


def takes_labels(compiled: CompiledExpression | Analysis) -> bool:
    """Whether ``y_true`` is a class label (the argument of a function such as ``one_hot``)."""
    formulas = [compiled.expression] + [r.arg for r in compiled.table.in_order()]
    return any(node.args and "y_true" in {s.name for s in node.args[0].free_symbols}
               for formula in formulas for node in sympy.preorder_traversal(formula)
               if isinstance(node, _LABEL_OPS))


def candidate_ranges(compiled: CompiledExpression) -> list[tuple[Draw, Draw]]:
    """Where to draw ``(y_true, y_pred)``, in order of preference.

    Around 0; in (0.05, 0.95); inside the bounds that the loss's own domain
    conditions put on each input (:func:`lossdsl.analysis.domains.find_conditions`).
    Labels (see :func:`takes_labels`) are whole class indices.
    """
    ranges: list[tuple[Draw, Draw]] = [(_normal, _normal), (_uniform(0.05, 0.95),) * 2]
    bounds = _domain_bounds(compiled)
    if bounds:
        ranges.append((_inside(*bounds.get("y_true", (None, None))),
                       _inside(*bounds.get("y_pred", (None, None)))))
    if takes_labels(compiled):
        ranges = [(_labels, draw_pred) for _, draw_pred in ranges]
    if any(pair.kind == "pair_eq" and pair.input is not None and pair.input.name == "y_true"
           for pair in compiled.table.pairs.values()):  # class ids: positive pairs exist
        ranges = [(_class_ids, draw_pred) for _, draw_pred in ranges]
    return ranges


def _class_ids(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Three classes among the batch's samples (one id per sample), so that pairs of the same
    class and of different classes both occur."""
    return np.arange(shape[0])[:, None] % 3 * 1.0


def _normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.normal(0.0, 1.0, shape)


def _uniform(low: float, high: float) -> Draw:
    return lambda rng, shape: rng.uniform(low, high, shape)


def _labels(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    if len(shape) < 2:  # no class axis: a label is any of the one element's indices
        return np.zeros(shape)
    return rng.integers(0, shape[-1], shape[:-1]).astype(np.float64)


def _inside(low: float | None, high: float | None) -> Draw:
    """Uniform, 5% of the width away from each bound (a unit width where one is missing)."""
    if low is None and high is None:
        low, high = 0.0, 1.0
    elif high is None:
        high = low + 1.0
    elif low is None:
        low = high - 1.0
    margin = 0.05 * (high - low)
    return _uniform(low + margin, high - margin)


def _domain_bounds(compiled: CompiledExpression) -> dict[str, tuple[float | None, float | None]]:
    """Per input, the tightest ``(low, high)`` its domain conditions give (None: unbounded)."""
    from lossdsl.analysis.domains import find_conditions

    values = compiled.values_by_symbol()
    lows: dict[str, list[float]] = {name: [] for name in compiled.inputs}
    highs: dict[str, list[float]] = {name: [] for name in compiled.inputs}
    for condition in find_conditions(compiled.analysis, compiled.params):
        requirement = condition.requirement
        if condition.kind != "domain" or not isinstance(requirement, sympy.Rel):
            continue
        name = getattr(requirement.lhs, "name", None)
        bound = requirement.rhs.xreplace(values)
        if name not in lows or not (bound.is_number and bound.is_real and bound.is_finite):
            continue  # not solved for one input (e.g. `y_pred - y_true > 0`): no box to draw in
        if isinstance(requirement, (sympy.StrictGreaterThan, sympy.GreaterThan)):
            lows[name].append(float(bound))
        elif isinstance(requirement, (sympy.StrictLessThan, sympy.LessThan)):
            highs[name].append(float(bound))
    bounds = {name: (max(lows[name], default=None), min(highs[name], default=None))
              for name in compiled.inputs if lows[name] or highs[name]}
    return {name: (low, high) for name, (low, high) in bounds.items()
            if low is None or high is None or low < high}


__all__ = ["Draw", "default_shape", "takes_labels", "candidate_ranges"]
