"""Stage 1: source text -> Lark parse tree, with syntax errors that point at the column.

The grammar is ``lossdsl/language/grammar.lark``, package data shipped in the
wheel; the repository's ``grammar/lossdsl.lark`` is the same file for readers
(``tests/test_layout.py`` checks that they are identical).

    >>> from lossdsl.language.parse import parse_tree
    >>> str(parse_tree("mean(y_pred)").data)
    'program'
"""

from __future__ import annotations

import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path

import lark
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from lossdsl.errors import DSLLimitError, DSLSyntaxError, Span
from lossdsl.language.hints import dotted_call_hint
from lossdsl.limits import MAX_SOURCE_LENGTH

# How Lark's terminal names read in an error message.
_TERMINAL_WORDS = {
    "NAME": "a name", "NUMBER": "a number", "LPAR": "'('", "RPAR": "')'", "COMMA": "','",
    "SEMICOLON": "';'", "EQUAL": "'='", "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'",
    "SLASH": "'/'", "POW": "'^'", "COMPARE": "a comparison", "$END": "the end of the source",
    "AND": "'and'", "OR": "'or'", "NOT": "'not'", "LSQB": "'['", "RSQB": "']'", "COLON": "':'",
    "ELLIPSIS": "'...'",
}

# Python's and C's spellings of what the language writes otherwise.
_FOREIGN_OPERATORS = {"'&'": "and", "'&&'": "and", "'|'": "or", "'||'": "or", "'!'": "not"}

_lock = threading.Lock()


def grammar_path() -> Path:
    """The grammar file, package data beside this module."""
    return Path(str(resources.files("lossdsl.language") / "grammar.lark"))


@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    return lark.Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
    )


def parse_tree(source: str) -> lark.Tree:
    """Parse ``source`` into a Lark tree, or raise :class:`DSLSyntaxError`."""
    if not isinstance(source, str):
        raise DSLSyntaxError(
            f"A loss source must be a string. Received: {type(source).__name__}.",
            hint='write the loss as text, e.g. lossdsl.compile("mean((y_true - y_pred)^2)")')
    if len(source) > MAX_SOURCE_LENGTH:
        raise DSLLimitError(
            f"The source is {len(source)} characters long; the limit is {MAX_SOURCE_LENGTH}.",
            source=source, span=Span(MAX_SOURCE_LENGTH, len(source)),
            hint="split the loss into named parts with `name = ...;` bindings")
    if not source.strip():
        raise DSLSyntaxError("The source is empty.", source=source, span=Span(0, 0),
                             hint="write an expression such as mean((y_true - y_pred)^2)")
    with _lock:  # building the LALR tables once is not thread-safe
        parser = _parser()
    try:
        return parser.parse(source)
    except UnexpectedInput as error:
        raise _syntax_error(source, error) from None


def _syntax_error(source: str, error: UnexpectedInput) -> DSLSyntaxError:
    position = min(max(getattr(error, "pos_in_stream", None) or 0, 0), len(source))
    if isinstance(error, UnexpectedToken) and error.token.type == "$END":
        position = len(source)
    if isinstance(error, UnexpectedToken):
        found = "the end of the source" if error.token.type == "$END" else repr(str(error.token))
        expected = _expected_words(error.accepts or error.expected)
        width = max(1, len(str(error.token))) if error.token.type != "$END" else 1
    elif isinstance(error, UnexpectedCharacters):
        found = repr(source[position])
        expected = _expected_words(error.allowed or set())
        width = 1
    else:  # UnexpectedEOF
        found, expected, width = "the end of the source", _expected_words(error.expected), 1
        position = len(source)
    message = ("Syntax error: the source ends too early." if found == "the end of the source"
               else f"Syntax error: unexpected {found}.")
    if expected:
        message += f" Expected {expected}."
    return DSLSyntaxError(message, source=source, span=Span(position, position + width),
                          hint=_hint(source, found))


def _expected_words(names: set[str] | list[str]) -> str:
    words = sorted({_TERMINAL_WORDS.get(name, name.lower()) for name in names
                    if not name.startswith("__")})
    if len(words) > 6:
        words = words[:6] + ["..."]
    return " or ".join(words)


def _hint(source: str, found: str) -> str | None:
    # The mistakes that teach the language come first: a bracket count is only a symptom.
    if found in ("'if'", "'else'"):
        return "lossdsl has no `a if c else b`: write where(c, a, b)"
    if found == "'.'":
        dotted = dotted_call_hint(source)
        if dotted:
            return dotted
    if found in _FOREIGN_OPERATORS:
        return f"the language writes `{_FOREIGN_OPERATORS[found]}`, as Python: conditions combine " \
               "with and, or, not, e.g. where(y_pred > 0 and not y_true == 1, a, b)"
    if source.count("(") > source.count(")"):
        return "a '(' is not closed"
    if source.count(")") > source.count("("):
        return "there is a ')' without its '('"
    if found == "'='":
        return "bindings look like `name = expr;` and must come before the final expression"
    return None
