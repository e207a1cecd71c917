"""Subscripts: ``x[..., k]`` is a column of the last axis; every other form is refused.

The grammar parses any subscript (``x[0]``, ``x[:, 1]``, ``x[..., 0:2]``) so that
:func:`column` can say, at its position, what to write instead.

    >>> from lossdsl.language.ir import parse_source
    >>> parse_source("y_pred[..., -1]").body
    Column(operand=Name(id='y_pred'), index=-1)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from lossdsl.errors import DSLSyntaxError, DSLTypeError, Span
from lossdsl.language.nodes import Column, Expr, Negate, Node, Number


@dataclass(frozen=True)
class Ellipsis_(Node):
    """``...`` in a subscript."""


@dataclass(frozen=True)
class Range(Node):
    """``a:b`` in a subscript; refused with a hint (it would change the last axis's size)."""


def column(source: str, target: Expr, subscripts: Sequence[Node], span: Span) -> Column:
    """``target[subscripts]`` as a :class:`Column`, or the located error saying what to write.

    Raises:
        DSLSyntaxError: a subscript other than ``[..., k]``.
        DSLTypeError: a column index that is not an integer literal.
    """
    # The operand as written, brackets included: `(y_true - y_pred)[2]` must not suggest
    # `y_true - y_pred[..., 0]`, the column of y_pred alone.
    bracket = source.find("[", target.span.end, span.end)
    written = source[span.start:bracket].strip() if bracket > 0 else ""
    example = f"{written or 'y_pred'}[..., 0]"
    if len(subscripts) == 1 and not isinstance(subscripts[0], (Ellipsis_, Range)):
        raise DSLSyntaxError(
            "A subscript needs `...` first: lossdsl picks columns of the last axis, and `x[k]` "
            "reads as the k-th sample in NumPy and TensorFlow.", source=source, span=span,
            hint=f"write {example} for the first column of the last axis")
    if len(subscripts) != 2 or not isinstance(subscripts[0], Ellipsis_) or \
            isinstance(subscripts[1], Ellipsis_):
        raise DSLSyntaxError(
            "Only the last axis can be indexed, as `x[..., k]`.", source=source, span=span,
            hint=f"e.g. {example}; the batch axis is Keras's, and the axes between are "
                 "reduced with axis=")
    index = subscripts[1]
    if isinstance(index, Range):
        raise DSLSyntaxError(
            "A range `a:b` would change the size of the last axis; lossdsl picks one column "
            "at a time, which broadcasts against whole rows.", source=source, span=index.span,
            hint="pick each column, e.g. x0 = y_pred[..., 0]; x1 = y_pred[..., 1]")
    sign, number = (-1, index.operand) if isinstance(index, Negate) else (1, index)
    if not (isinstance(number, Number) and number.text.isdigit()):
        raise DSLTypeError("A column index must be an integer literal.", source=source,
                           span=getattr(index, "span", span),
                           hint=f"e.g. {example}, or -1 for the last column")
    return Column(target, sign * int(number.text), span=span)


__all__ = ["Ellipsis_", "Range", "column"]
