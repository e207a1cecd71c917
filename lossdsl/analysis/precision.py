"""Constants in the dtype a loss computes in: which ones it cannot hold.

Every constant of a plan is made in the loss's compute dtype. In float16 or
bfloat16, ``1 - 1e-7`` is 1.0, so ``clip(y_pred, 1e-7, 1 - 1e-7)`` no longer keeps
``log(1 - p)`` finite; lossdsl says so when the loss is built. (Under a mixed
precision policy Keras losses and metrics compute in float32 anyway.)

    >>> from lossdsl.analysis.analyze import compile_expression
    >>> compiled = compile_expression("mean(log(1 - clip(y_pred, 1e-7, 1 - 1e-7)))")
    >>> len(lost_constants(compiled, "float16")) > 0, lost_constants(compiled, "float32")
    (True, [])
"""

from __future__ import annotations

import math
import operator
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from lossdsl.language import ir
from lossdsl.analysis.analyze import first_level_outside_lossdsl
from lossdsl.errors import LossDSLWarning, Span

if TYPE_CHECKING:
    from lossdsl.analysis.analyze import CompiledExpression


def lost_constants(compiled: "CompiledExpression", dtype: str) -> list[str]:
    """Which constants of the source ``dtype`` cannot hold, one message each.

    A plan makes every constant in the dtype the loss computes in. A constant of
    the source (a number, or arithmetic on numbers and parameter values, such as
    ``1 - 1e-7``) or a parameter value is reported when, in ``dtype``, it becomes
    an integer it is not (``1 - 1e-7`` is 1.0 in float16, so
    ``clip(y_pred, 1e-7, 1 - 1e-7)`` no longer keeps ``log(1 - p)`` finite),
    overflows, or falls below the normal range and loses its precision
    (``1e-9`` is 0.0 in float16). The ordinary rounding of a normal number
    (``0.1`` is 0.09998 in float16) is not reported.
    """
    source, params = compiled.source, compiled.params
    scalars = {name: value for name, value in params.items() if not isinstance(value, tuple)}
    messages: dict[tuple[str, float], str] = {}
    for node, text, value in _source_constants(compiled.program, source, scalars):
        rounded = _rounded_away(value, dtype)
        if rounded is not None:
            what = f"The constant `{text}`" if isinstance(node, ir.Number) else \
                f"The constant `{text}` (= {value!r})"
            messages.setdefault((text, value), _lost_message(what, rounded, dtype, source,
                                                             node.span))
    each_value = [(name, item) for name, value in params.items()
                  for item in (value if isinstance(value, tuple) else (value,))]
    for name, value in each_value:  # a vector parameter's values one by one
        rounded = _rounded_away(value, dtype)
        if rounded is not None:
            messages.setdefault((name, value), _lost_message(
                f"The parameter `{name}` = {value!r}", rounded, dtype, source,
                compiled.lowered.first_use.get(name)))
    return list(messages.values())


def warn_lost_constants(compiled: "CompiledExpression", dtype: str) -> None:
    """Emit :func:`lost_constants`'s messages as ``LossDSLWarning``s (at compile time)."""
    for message in lost_constants(compiled, dtype):
        warnings.warn(LossDSLWarning(message), stacklevel=first_level_outside_lossdsl())


def _lost_message(what: str, rounded: float, dtype: str, source: str, span: Span | None) -> str:
    where = "" if span is None else ", line {}, column {},".format(*span.line_and_column(source))
    if not math.isfinite(rounded):
        why = "it overflows"
    elif rounded == round(rounded):
        why = f"its difference from {_shown(rounded)} is lost, so a clip bound or an epsilon " \
              "made of it no longer guards"
    else:
        why = "it is below the normal range, where few digits are left"
    return (f"{what}{where} is {_shown(rounded)} in {dtype}, the compute dtype: {why}. "
            f"Compute in float32 (dtype=None; under a mixed precision policy lossdsl losses "
            f"and metrics still compute in float32, as Keras's do), or use a constant "
            f"{dtype} can hold.")


_ARITHMETIC: dict[str, Callable[[float, float], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "^": operator.pow}


def _source_constants(program: ir.Program, source: str, params: Mapping[str, float]
                      ) -> Iterator[tuple[ir.Expr, str, float]]:
    """(node, text, value) of each largest subexpression made of numbers, parameters and arithmetic.

    A parameter alone is left to the caller (its value may not come from the
    source), and so is a binding that gives a parameter its default.
    """
    roots = [binding.value for binding in program.bindings if not binding.is_parameter_default]
    stack = list(reversed(roots + [program.body]))
    while stack:
        node = stack.pop()
        value = None if isinstance(node, ir.Name) else _constant_value(node, params)
        if value is None:
            stack.extend(reversed(ir._children(node)))
        else:
            has_span = node.span.end > node.span.start
            yield node, source[node.span.start:node.span.end] if has_span else \
                ir.to_text(node), value


def _constant_value(node: ir.Expr, params: Mapping[str, float]) -> float | None:
    """The value of ``node`` if it is only numbers, parameter values and arithmetic, else None."""
    if isinstance(node, ir.Number):
        return node.value
    if isinstance(node, ir.Name):
        return params.get(node.id)
    if isinstance(node, ir.Negate):
        operand = _constant_value(node.operand, params)
        return None if operand is None else -operand
    if not isinstance(node, ir.Binary):
        return None
    left, right = _constant_value(node.left, params), _constant_value(node.right, params)
    if left is None or right is None:
        return None
    try:
        value = _ARITHMETIC[node.op](left, right)
    except (ArithmeticError, ValueError):
        return None
    # (-8)^(1/3) is complex in Python; such a constant is refused elsewhere.
    return value if isinstance(value, float) and math.isfinite(value) else None


def _rounded_away(value: float, dtype: str) -> float | None:
    """``value`` as ``dtype`` holds it, when that loses its meaning (see :func:`lost_constants`)."""
    import ml_dtypes  # a dependency of Keras; it knows bfloat16, and its finfo too
    import numpy as np

    kind = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype).type
    if not issubclass(kind, np.floating) and kind is not ml_dtypes.bfloat16:
        return None
    with np.errstate(over="ignore", under="ignore"):
        rounded = float(kind(value))
    if rounded == value:
        return None
    if not math.isfinite(rounded) or (rounded == round(rounded) and value != round(value)):
        return rounded
    # A normal number rounds by at most half the dtype's epsilon, relatively.
    unit_roundoff = float(ml_dtypes.finfo(kind).eps) / 2
    return rounded if abs(rounded - value) > unit_roundoff * abs(value) else None


def _shown(value: float) -> str:
    text = f"{value:.7g}"
    return text if any(c in text for c in ".en") else text + ".0"
