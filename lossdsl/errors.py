"""The one exception family of lossdsl.

Every mistake in a user's source, parameters or saved config surfaces as a
:class:`LossDSLError` (or a subclass), carrying the source text, the span of
the offending characters, and a hint. ``str(error)`` draws the caret picture:

    >>> import lossdsl
    >>> try:
    ...     lossdsl.parse_source("mean(lgo(y_pred))")
    ... except lossdsl.LossDSLError as error:
    ...     print(error)
    Unknown function `lgo`. Did you mean `log`?
      line 1, column 6:
        mean(lgo(y_pred))
             ^^^
      hint: `lossdsl ops` lists every function
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """Half-open character range ``[start, end)`` in the source text."""

    start: int
    end: int

    def line_and_column(self, source: str) -> tuple[int, int]:
        """1-based line and column of ``start`` in ``source``."""
        before = source[: self.start]
        line = before.count("\n") + 1
        column = self.start - (before.rfind("\n") + 1) + 1
        return line, column


class LossDSLError(Exception):
    """Base class of every error lossdsl raises for a user's mistake.

    Attributes:
        message: what went wrong, in one sentence.
        source: the source text, when the error concerns one.
        span: the offending characters of ``source``, when known.
        hint: how to fix it, when there is a known fix.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        span: Span | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.span = span
        self.hint = hint

    @property
    def line(self) -> int | None:
        """1-based line of the error, or None when it has no position."""
        return self._position()[0]

    @property
    def column(self) -> int | None:
        """1-based column of the error, or None when it has no position."""
        return self._position()[1]

    def _position(self) -> tuple[int | None, int | None]:
        if self.source is None or self.span is None:
            return None, None
        return self.span.line_and_column(self.source)

    def __str__(self) -> str:
        parts = [self.message]
        if self.source is not None and self.span is not None:
            parts.append(_caret_picture(self.source, self.span))
        if self.hint:
            parts.append(f"  hint: {self.hint}")
        return "\n".join(parts)


def _caret_picture(source: str, span: Span) -> str:
    line, column = span.line_and_column(source)
    # Split on "\n" only, as line_and_column counts: splitlines() also splits on
    # \r, \x1c, \u2028 ... and drops a final empty line, so an error at the end of
    # "mean(\n" had no line to show (IndexError while printing the error).
    text = source.split("\n")[line - 1]
    # Long lines are windowed around the caret so the picture stays readable.
    start = max(0, column - 1 - 60)
    shown = text[start : start + 120]
    width = max(1, min(span.end - span.start, len(text) - (column - 1)))
    caret = " " * (column - 1 - start) + "^" * min(width, 120)
    return f"  line {line}, column {column}:\n    {shown}\n    {caret}"


class DSLSyntaxError(LossDSLError):
    """The source is not a well-formed expression."""


class DSLNameError(LossDSLError):
    """An unknown function, a missing or unknown parameter, a bad binding."""


class DSLArityError(LossDSLError):
    """A function was called with the wrong number or kind of arguments."""


class DSLAxisError(LossDSLError):
    """An ``axis=`` argument is malformed (not an integer, repeated, out of range)."""


class DSLTypeError(LossDSLError):
    """A comparison where a number is expected, or a number where a condition is."""


class DSLLimitError(LossDSLError):
    """The source exceeds a documented size, depth or work limit."""


class DSLShapeError(LossDSLError):
    """The inputs' shapes do not fit the expression (e.g. an axis out of range)."""


class DSLConfigError(LossDSLError):
    """A saved config (e.g. inside a ``.keras`` file) is malformed."""


class GradientMismatchError(LossDSLError):
    """The symbolic gradient disagrees with TensorFlow's tape."""


class LossDSLWarning(UserWarning):
    """A compile-time warning: the source is valid, but something about it deserves a look.

    Emitted, for example, when the loss is mathematically infinite somewhere on its
    inputs' natural domain (``log(y_pred)`` at ``y_pred = 0``): no rewrite can make
    an infinite value finite, so lossdsl says so instead of silently producing ``inf``.
    """
