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

from typing import TYPE_CHECKING, Sequence

from lossdsl.errors import DSLShapeError, Span

if TYPE_CHECKING:
    from lossdsl.analysis.results import CompiledExpression


def check_last_axis(compiled: "CompiledExpression", shapes: Sequence[tuple],
                    known_from: str = "") -> int | None:
    """Refuse inputs of these static shapes for this loss; the last axis's size, or None.

    The size is the largest known last dimension (the inputs broadcast to it); None
    when none is known, and then :func:`run_time_requirement` says what to assert.

    Raises:
        DSLShapeError: inputs without a last axis of classes (rank 1), a column index out
            of range, or a vector parameter of another length, located at its first use.
    """
    if not (compiled.lowered.columns or compiled.vectors) or not shapes:
        return None
    if min(len(shape) for shape in shapes) < 2:
        name = next(iter(compiled.vectors), None)
        what = f"the vector parameter `{name}`" if name else "a column x[..., k]"
        span = compiled.lowered.first_use.get(name) if name else \
            next(iter(compiled.lowered.columns.values()))
        raise DSLShapeError(
            f"Inputs of rank 1 are one number per sample: {what} needs a last axis "
            "(of classes, or of a sample's values).", source=compiled.source, span=span,
            hint="give the inputs the shape (batch, classes)")
    sizes = [int(shape[-1]) for shape in shapes if shape[-1] is not None]
    width = max(sizes) if sizes else None
    if width is not None:
        _check_width(compiled, width, known_from)
    return width


def _check_width(compiled: "CompiledExpression", width: int, known_from: str) -> None:
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


def run_time_requirement(compiled: "CompiledExpression") -> tuple[int, int | None, str]:
    """``(at_least, exactly, message)`` for a last axis whose size is unknown until the
    loss runs (a ``tf.function`` traced with ``[None, None]``): the backend asserts it."""
    columns = compiled.lowered.columns
    at_least = max([k + 1 if k >= 0 else -k for k in columns], default=0)
    exactly = compiled.vector_length()
    needs = [f"at least {at_least} elements for its column index "
             f"{max(columns, key=abs)}"] if at_least else []
    if exactly is not None:
        needs.append(f"exactly {exactly} elements, the length of the vector parameter "
                     f"`{compiled.vectors[0]}`")
    message = (f"lossdsl: the loss `{compiled.source}` needs a last axis of "
               f"{' and '.join(needs)}.")
    return at_least, exactly, message


def check_at_compile_time(compiled: "CompiledExpression") -> None:
    """The columns against the vector parameters' length, when the loss has some."""
    length = compiled.vector_length()
    if length is not None:
        name = compiled.vectors[0]
        _check_width(compiled, length, f" (the length of the vector parameter `{name}`)")


__all__ = ["check_last_axis", "run_time_requirement", "check_at_compile_time"]
