"""What a loss asks of its inputs' last axis: its columns ``x[..., k]`` and vector parameters.

Checked when the loss is compiled (against the vector parameters' length) and
when it is called (against the inputs' static width), so that ``one_hot(k)``
never silently picks nothing and a per-class weight never silently broadcasts.

    >>> from lossdsl.analysis.analyze import compile_expression
    >>> compiled = compile_expression("sum(w*y_pred[..., 2])", {"w": [1.0, 2.0]})
    Traceback (most recent call last):
    ...
    lossdsl.errors.DSLShapeError: The column index 2 is out of range: the last axis of the inputs has 2 elements (the length of the vector parameter `w`).
      line 1, column 7:
        sum(w*y_pred[..., 2])
              ^^^^^^^^^^^^^^
      hint: columns count from 0 to 1, or from -1 (the last) to -2
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lossdsl.errors import DSLShapeError, Span

if TYPE_CHECKING:
    from lossdsl.analysis.results import CompiledExpression


def check_last_axis(compiled: "CompiledExpression", width: int | None,
                    known_from: str = "") -> None:
    """Refuse inputs whose last axis has ``width`` elements (None: unknown) for this loss.

    Raises:
        DSLShapeError: a column index out of range, or a vector parameter of another
            length, located at its first use in the source.
    """
    if width is None:
        return
    for index, span in compiled.lowered.columns.items():
        if not -width <= index < width:
            raise DSLShapeError(
                f"The column index {index} is out of range: the last axis of the inputs has "
                f"{width} element{'s' if width != 1 else ''}{known_from}.",
                source=compiled.source, span=span,
                hint=f"columns count from 0 to {width - 1}, or from -1 (the last) to -{width}")
    for name in compiled.vectors:
        length = len(compiled.params[name])
        if length != width:
            raise DSLShapeError(
                f"The vector parameter `{name}` has {length} values, but the last axis of the "
                f"inputs has {width} elements.", source=compiled.source,
                span=compiled.lowered.first_use.get(name, Span(0, len(compiled.source))),
                hint="give one value per element of the last axis (per class)")


def check_at_compile_time(compiled: "CompiledExpression") -> None:
    """The columns against the vector parameters' length, when the loss has some."""
    length = compiled.vector_length()
    if length is not None:
        name = compiled.vectors[0]
        check_last_axis(compiled, length, f" (the length of the vector parameter `{name}`)")


__all__ = ["check_last_axis", "check_at_compile_time"]
