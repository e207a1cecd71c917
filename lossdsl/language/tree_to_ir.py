"""Lark tree -> IR: each call is checked against its row of the function table.

The builder knows every function's arity and keywords (from
:data:`lossdsl.ops.REGISTRY`) and where a tuple may stand (only as ``axis=``);
it raises the :mod:`lossdsl.errors` error for a mistake, with its position.

    >>> from lossdsl.language.parse import parse_tree
    >>> source = "mean((y_true - y_pred)^2, axis=-1)"
    >>> tree_to_program(parse_tree(source), source).body.axis
    (-1,)
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import lark
from lark import Transformer_NonRecursive
from lark.exceptions import VisitError

from lossdsl.errors import (DSLArityError, DSLAxisError, DSLNameError, DSLSyntaxError,
                            DSLTypeError, LossDSLError, Span)
from lossdsl.language.hints import ELEMENTWISE_TWINS, lossdsl_name
from lossdsl.language.subscripts import Ellipsis_, Range, column
from lossdsl.language.nodes import (CONDITIONS, NO_SPAN, Binary, Binding, Call, Compare, Expr,
                                    Logic, Name, Negate, Node, Not, Number, Program)
from lossdsl.ops import REGISTRY, Op


KEYWORDS = frozenset({"and", "or", "not"})


def tree_to_program(tree: lark.Tree, source: str) -> Program:
    """The IR of a parsed source; ``source`` is only used to locate errors.

    Raises:
        LossDSLError: a subclass naming the problem, with its position.
    """
    try:
        return _Builder(source).transform(tree)
    except VisitError as error:  # Lark wraps errors raised in callbacks
        if isinstance(error.orig_exc, LossDSLError):
            raise error.orig_exc from None
        raise


def _span(meta: lark.tree.Meta) -> Span:
    return NO_SPAN if meta.empty else Span(meta.start_pos, meta.end_pos)


@dataclass(frozen=True)
class _Tuple(Node):
    """``(a, b)``: only meaningful as an ``axis=`` value, never in the IR."""

    items: tuple


@dataclass(frozen=True)
class _Keyword(Node):
    """``name=value`` in a call's arguments, before the call is checked."""

    name: str
    value: object


@lark.v_args(inline=True, meta=True)
class _Builder(Transformer_NonRecursive):
    """Turns the Lark tree into IR, checking each call against the function table."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def error(self, kind: type[LossDSLError], message: str, span: Span,
              hint: str | None = None) -> LossDSLError:
        return kind(message, source=self.source, span=span, hint=hint)

    def number(self, meta, token):
        return Number(str(token), span=_span(meta))

    def name(self, meta, token):
        self._not_a_keyword(token, _span(meta))
        if str(token).startswith("__"):
            raise self.error(DSLNameError, f"Names starting with '__' are not allowed: `{token}`.",
                             _span(meta))
        return Name(str(token), span=_span(meta))

    def neg(self, meta, operand):
        return Negate(self.value(operand), span=_span(meta))

    def pos(self, meta, operand):
        return self.value(operand)

    def _binary(op):  # noqa: N805 - builds the methods below
        def method(self, meta, left, *rest):
            right = rest[-1]  # `pow` also passes the operator token
            return Binary(op, self.value(left), self.value(right), span=_span(meta))
        return method

    add, sub, mul, div, pow = _binary("+"), _binary("-"), _binary("*"), _binary("/"), _binary("^")

    def compare(self, meta, first, *rest):
        # A chain `a < b < c` means `a < b and b < c`, as in Python (b is one expression,
        # so it is computed once however often the IR mentions it).
        operands = [self.value(first)] + [self.value(node) for node in rest[1::2]]
        result = None
        for index, op in enumerate(rest[0::2]):
            left, right = operands[index], operands[index + 1]
            span = Span(left.span.start, right.span.end) if left.span != NO_SPAN else _span(meta)
            link = Compare(str(op), left, right, span=span)
            result = link if result is None else Logic("and", result, link, span=_span(meta))
        return result

    def _condition(self, node: Any, word: str) -> Expr:
        node = self.value(node)
        if not isinstance(node, CONDITIONS):
            raise self.error(DSLTypeError, f"`{word}` applies to conditions, not to numbers.",
                             node.span, hint="compare first, e.g. where(y_pred > 0 and "
                                             "y_true == 1, a, b)")
        return node

    def logic_and(self, meta, left, right):
        return Logic("and", self._condition(left, "and"), self._condition(right, "and"),
                     span=_span(meta))

    def logic_or(self, meta, left, right):
        return Logic("or", self._condition(left, "or"), self._condition(right, "or"),
                     span=_span(meta))

    def logic_not(self, meta, operand):
        return Not(self._condition(operand, "not"), span=_span(meta))

    def tuple(self, meta, *items):
        return _Tuple(tuple(item for item in items if item is not None), span=_span(meta))

    def ellipsis(self, meta, token):
        return Ellipsis_(span=_span(meta))

    def range(self, meta, start, stop):
        return Range(span=_span(meta))

    def indexed(self, meta, target, *subscripts):
        return column(self.source, self.value(target), subscripts, _span(meta))

    def keyword(self, meta, name, value):
        return _Keyword(str(name), value, span=_span(meta))

    def arguments(self, meta, *arguments):
        return list(arguments)

    def call(self, meta, name, arguments):
        return _CallChecker(self, str(name), arguments or [], _span(meta)).build()

    def _not_a_keyword(self, token: Any, span: Span) -> None:
        # Lark's contextual lexer reads `and` as a name where the keyword cannot stand
        # (`and = 1`); refused, so a name never reads differently in another place.
        if str(token) in KEYWORDS:
            raise self.error(DSLSyntaxError, f"`{token}` is a keyword, not a name.",
                             Span(span.start, span.start + len(str(token))),
                             hint="and, or, not combine the conditions of where; "
                                  "choose another name")

    def binding(self, meta, name, value):
        self._not_a_keyword(name, _span(meta))
        if isinstance(value, _Keyword):  # not reachable from the grammar; kept defensive
            raise self.error(DSLSyntaxError, "Unexpected keyword argument.", value.span)
        return Binding(str(name), self.value(value), span=_span(meta))

    def program(self, meta, *items):
        *bindings, body = items
        return Program(tuple(bindings), self.value(body), span=_span(meta))

    def value(self, node: Any) -> Expr:
        """``node`` as an expression: tuples only make sense as an ``axis=`` value."""
        if isinstance(node, _Tuple):
            raise self.error(DSLTypeError, "A tuple is only allowed as an `axis=` value.",
                             node.span)
        return node


class _CallChecker:
    """Checks one call against its row of the function table."""

    def __init__(self, builder: _Builder, function: str, arguments: list, span: Span) -> None:
        self.builder, self.function, self.arguments, self.span = builder, function, arguments, span

    def build(self) -> Call:
        op = REGISTRY.get(self.function)
        if op is None:
            raise self._unknown_function()
        positional = [a for a in self.arguments if not isinstance(a, _Keyword)]
        keywords = [a for a in self.arguments if isinstance(a, _Keyword)]
        if len(positional) != op.arity:
            plural = "s" if op.arity != 1 else ""
            raise self.builder.error(
                DSLArityError,
                f"`{op.name}` takes {op.arity} argument{plural}; it was given {len(positional)}.",
                self.span, hint=self._arity_hint(op, len(positional)))
        axis = self._axis(op, keywords)
        args = tuple(self._argument(op, index, arg) for index, arg in enumerate(positional))
        return Call(op.name, args, axis, span=self.span)

    def _arity_hint(self, op: Op, given: int) -> str:
        if op.kind == "elementwise" or given != 2:
            return f"{op.name}: {op.doc}"
        if op.name in ELEMENTWISE_TWINS:  # max(a, b): Python's max of two
            twin = ELEMENTWISE_TWINS[op.name]
            return f"use {twin}(a, b) for the elementwise {twin} of two tensors; " \
                   f"{op.name}(x) reduces one over axes"
        return f"the axis is a keyword: {op.name}(x, axis=-1)"

    def _unknown_function(self) -> DSLNameError:
        ours = lossdsl_name(self.function)
        close = [ours] if ours else difflib.get_close_matches(self.function, list(REGISTRY), n=1)
        message = f"Unknown function `{self.function}`."
        if ours:
            message += f" lossdsl calls it `{ours}`."
        elif close:
            message += f" Did you mean `{close[0]}`?"
        return self.builder.error(
            DSLNameError, message, Span(self.span.start, self.span.start + len(self.function)),
            hint="`lossdsl ops` lists every function")

    def _argument(self, op: Op, index: int, arg: Any) -> Expr:
        if op.name == "where" and index == 0 and not isinstance(arg, CONDITIONS):
            raise self.builder.error(
                DSLTypeError, "The first argument of `where` must be a comparison "
                "(or comparisons joined with and, or, not).",
                arg.span, hint="e.g. where(y_true > 0.5, a, b) or where(0 < y_pred < 1, a, b)")
        return self.builder.value(arg)

    def _axis(self, op: Op, keywords: list[_Keyword]) -> tuple[int, ...] | None:
        for keyword in keywords:
            if keyword.name != "axis" or op.kind == "elementwise":
                raise self.builder.error(
                    DSLArityError, f"`{op.name}` takes no keyword argument `{keyword.name}`.",
                    keyword.span, hint="only reductions, softmax/log_softmax and pair functions take axis=")
        if len(keywords) > 1:
            raise self.builder.error(DSLArityError, "`axis` is given twice.", keywords[1].span)
        if not keywords:
            return None if op.default_axis is None else (op.default_axis,)
        return _axis_value(self.builder, keywords[0].value, keywords[0].span)


def _axis_value(builder: _Builder, value: Any, span: Span) -> tuple[int, ...]:
    items = value.items if isinstance(value, _Tuple) else (value,)
    axes = tuple(_axis_integer(builder, item, span) for item in items)
    if not axes:
        raise builder.error(DSLAxisError, "`axis` must name at least one axis.", span)
    if len(set(axes)) != len(axes):
        raise builder.error(DSLAxisError, f"`axis` repeats an axis: {axes}.", span)
    return axes  # 0 is the batch axis: a batch statistic, broadcast back to every sample


def _axis_integer(builder: _Builder, item: Any, span: Span) -> int:
    sign, node = (-1, item.operand) if isinstance(item, Negate) else (1, item)
    if isinstance(node, Number) and node.text.isdigit():
        return sign * int(node.text)
    raise builder.error(DSLAxisError, "`axis` must be an integer or a tuple of integers.",
                        getattr(item, "span", span), hint="e.g. axis=-1 or axis=(1, 2)")
