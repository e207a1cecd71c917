"""Parameter values: bound over the source's defaults, each checked, with helpful errors.

A keyword that names no parameter is refused with the nearest name; a value
must be a finite real number; values that make part of the loss a constant
without a real value (``log(a)`` at ``a = -1``) are refused before anything runs.

    >>> from lossdsl.analysis.analyze import analyze
    >>> bind_parameters(analyze("alpha = 0.25; gamma = 2; alpha*y_pred^gamma"), {"gamma": 3})
    {'alpha': 0.25, 'gamma': 3.0}
"""

from __future__ import annotations

import difflib
import math
import numbers
from typing import Mapping

import numpy as np
import sympy

from lossdsl.analysis.results import Analysis
from lossdsl.errors import DSLLimitError, DSLNameError, DSLTypeError, Span
from lossdsl.limits import MAX_VECTOR_LENGTH


def bind_parameters(analysis: Analysis, given: Mapping[str, object], *,
                    require_all: bool = True) -> dict[str, float]:
    """The parameters' values: keywords over source defaults, each checked.

    With ``require_all=False`` a parameter without a value is left out
    instead of raising (for showing formulas, which keep parameters as symbols).

    Raises:
        DSLNameError: a parameter has no value, or a keyword names no parameter.
        DSLTypeError: a parameter value is not a finite real number.
    """
    _check_known(analysis, given)
    values: dict[str, float | tuple[float, ...]] = {}
    for name in analysis.parameters:
        if name in analysis.vectors:
            values[name] = _vector(analysis, name, given[name])
        elif name in given:
            values[name] = _number(analysis, name, given[name])
        elif name in analysis.defaults:
            values[name] = analysis.defaults[name]
        elif require_all:
            raise _missing(analysis, name)
    lengths = {name: len(v) for name, v in values.items() if isinstance(v, tuple)}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"`{name}` has {length}" for name, length in lengths.items())
        raise DSLTypeError(f"The vector parameters differ in length: {shown}.",
                           source=analysis.source,
                           span=analysis.lowered.first_use.get(list(lengths)[-1]),
                           hint="each gives one value per element of the last axis (per class)")
    return values


def is_vector(value: object) -> bool:
    """Whether a parameter value is a vector (a list, tuple or 1-D array), not a number."""
    return isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) >= 1


def vector_names(given: Mapping[str, object]) -> tuple[str, ...]:
    """The names of the parameters given a vector of values (sorted: a cache key)."""
    return tuple(sorted(name for name, value in given.items() if is_vector(value)))


def check_values_keep_it_real(analysis: Analysis, values: Mapping[str, float]) -> None:
    """Refuse values that make a part of the loss or its gradient complex or infinite.

    With values in, SymPy folds ``log(a)`` at ``a = -1`` to ``I*pi``, which no backend
    can compute; the part is reported with the parameters it depends on.

    Raises:
        DSLTypeError: naming the part and the values, at the parameter's first use.
    """
    symbols = {analysis.parameters[name] for name in values}
    if not symbols:
        return
    formulas = [analysis.expression, analysis.gradient] + \
        [reduction.arg for reduction in analysis.table.in_order()]
    # Only parts made of parameters and numbers fold to a constant; found once, they are
    # checked for each value (a vector parameter's values one by one, the k-th together,
    # each distinct set of values once). A Piecewise's (value, condition) pair is no part
    # to name: its value is visited next.
    parts = list(dict.fromkeys(
        node for formula in formulas for node in sympy.preorder_traversal(formula)
        if isinstance(node, sympy.Expr) and node.free_symbols and node.free_symbols <= symbols))
    length = max((len(v) for v in values.values() if isinstance(v, tuple)), default=1)
    each = {tuple((name, value[k] if isinstance(value, tuple) else value)
                  for name, value in values.items()) for k in range(length)}
    for scalars in sorted(each):
        _check_parts(analysis, parts, dict(scalars))


def _check_parts(analysis: Analysis, parts: list[sympy.Expr], scalars: Mapping[str, float]
                 ) -> None:
    substitution = {analysis.parameters[name]: sympy.Float(value)
                    for name, value in scalars.items()}
    bad = (sympy.I, sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)
    for node in parts:
        if not node.xreplace(substitution).has(*bad):
            continue
        used = sorted(str(s) for s in node.free_symbols)
        named = ", ".join(f"{name} = {scalars[name]!r}" for name in used)
        raise DSLTypeError(
            f"With {named}, `{node}` has no finite real value.",
            source=analysis.source,
            span=analysis.lowered.first_use.get(used[0], Span(0, len(analysis.source))),
            hint="choose a value in the part's domain (e.g. log(a) needs a > 0)")


def _check_known(analysis: Analysis, given: Mapping[str, object]) -> None:
    for name in given:
        if name in analysis.parameters:
            continue
        known = list(analysis.parameters)
        close = difflib.get_close_matches(name, known, n=1)
        message = f"`{name}` is not a parameter of this loss."
        if close:
            message += f" Did you mean `{close[0]}`?"
        hint = (f"its parameters are: {', '.join(known)}" if known
                else "this loss has no parameters")
        if name in analysis.inputs or any(b.name == name for b in analysis.program.bindings):
            hint = f"`{name}` is an input or a local definition, not a parameter"
        # The keyword is not in the source: point at the parameter it most likely meant,
        # else at the whole source, so the message still shows what was compiled.
        span = analysis.lowered.first_use.get(close[0]) if close else None
        raise DSLNameError(message, source=analysis.source,
                           span=span or Span(0, len(analysis.source)), hint=hint)


def _missing(analysis: Analysis, name: str) -> DSLNameError:
    nearby = list(analysis.inputs) + [b.name for b in analysis.program.bindings]
    close = difflib.get_close_matches(name, nearby, n=1)
    message = f"The parameter `{name}` has no value."
    if close:
        message += f" Did you mean `{close[0]}`?"
    return DSLNameError(
        message, source=analysis.source, span=analysis.lowered.first_use.get(name),
        hint=f"pass it as lossdsl.compile(..., {name}=VALUE), "
             f"or give a default in the source: `{name} = VALUE; ...`")


def _number(analysis: Analysis, name: str, value: object) -> float:
    is_real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_real or not _is_finite_float(value):
        shown = _shown(value)
        hint = (f"pass one number, e.g. {name}=0.5"
                if isinstance(value, (list, tuple, dict, set)) or hasattr(value, "shape")
                else f"pass a finite number, e.g. {name}=0.5")
        raise DSLTypeError(
            f"The parameter `{name}` must be a finite real number. Received: {shown}.",
            source=analysis.source,
            span=analysis.lowered.first_use.get(name, Span(0, len(analysis.source))), hint=hint)
    return float(value)


def _vector(analysis: Analysis, name: str, value: object) -> tuple[float, ...]:
    # A NumPy array or a backend tensor (tf.constant([1.0, 2.0])) as a list of numbers.
    items = list(np.asarray(value).tolist()) if hasattr(value, "shape") else list(value)
    span = analysis.lowered.first_use.get(name, Span(0, len(analysis.source)))
    if len(items) > MAX_VECTOR_LENGTH:
        raise DSLLimitError(
            f"The vector parameter `{name}` has {len(items)} values; lossdsl accepts at most "
            f"{MAX_VECTOR_LENGTH}.", source=analysis.source, span=span,
            hint="one value per class: a per-class weight for more classes is not supported")
    if not items or any(is_vector(item) for item in items):
        raise DSLTypeError(
            f"The vector parameter `{name}` must be a non-empty list of numbers, one per "
            f"element of the last axis. Received: {_shown(value)}.", source=analysis.source,
            span=span, hint=f"e.g. {name}=[1.0, 2.0, 5.0] for three classes; a matrix "
                            "parameter is not supported")
    for item in items:
        if not isinstance(item, numbers.Real) or isinstance(item, bool) or \
                not _is_finite_float(item):
            raise DSLTypeError(
                f"The vector parameter `{name}` must hold finite real numbers. "
                f"Received: {_shown(value)}.", source=analysis.source, span=span,
                hint=f"e.g. {name}=[1.0, 2.0, 5.0]")
    return tuple(float(item) for item in items)


def _shown(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _is_finite_float(value: numbers.Real) -> bool:
    # float() of a 400-digit int raises OverflowError (seen in a crafted .keras config).
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False
