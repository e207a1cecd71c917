"""Stage 2: Lark tree -> IR, a small tree of frozen dataclasses, checked.

The IR knows every function's arity and keywords (from :data:`lossdsl.ops.REGISTRY`),
where comparisons may stand, and how names are bound. ``str(program)`` prints
the canonical form, which parses back to an equal program (spans are not
compared):

    >>> from lossdsl.language.ir import parse_source
    >>> program = parse_source("alpha=.25;  mean(-alpha*y_true*log(y_pred))")
    >>> print(program)
    alpha = .25; mean(-alpha * y_true * log(y_pred))
    >>> parse_source(str(program)) == program
    True
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Union

import lark
from lark import Transformer_NonRecursive
from lark.exceptions import VisitError

from lossdsl.errors import (DSLArityError, DSLAxisError, DSLLimitError, DSLNameError,
                            DSLSyntaxError, DSLTypeError, LossDSLError, Span)
from lossdsl.ops import INPUT_NAMES, REGISTRY
from lossdsl.language.parse import parse_tree

MAX_DEPTH = 64
"""Deepest accepted nesting of the expression tree."""
MAX_NODES = 2_000
"""Most IR nodes accepted in one source."""
MAX_REDUCTION_NESTING = 8
"""Most reductions/normalizers nested inside one another (through bindings too).

The chain rule through nested reductions revisits each inner one, so the
gradient's size and the time to derive it grow exponentially with nesting
(``softmax`` 16 deep takes seconds, 30 deep hours); realistic losses nest 2 or 3.
"""

_NO_SPAN = Span(0, 0)


@dataclass(frozen=True)
class Node:
    """Base of IR nodes; ``span`` locates the node in the source and is never compared."""

    span: Span = field(default=_NO_SPAN, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Number(Node):
    text: str

    @property
    def value(self) -> float:
        return float(self.text)


@dataclass(frozen=True)
class Name(Node):
    id: str


@dataclass(frozen=True)
class Negate(Node):
    operand: "Expr"


@dataclass(frozen=True)
class Binary(Node):
    op: str  # one of + - * / ^
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class Compare(Node):
    op: str  # one of == != < <= > >=
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class Call(Node):
    function: str
    args: tuple["Expr", ...]
    axis: tuple[int, ...] | None = None  # None: the op's default


Expr = Union[Number, Name, Negate, Binary, Compare, Call]


@dataclass(frozen=True)
class Binding(Node):
    name: str
    value: Expr

    @property
    def is_parameter_default(self) -> bool:
        """A binding to a plain number gives a parameter its default value."""
        value = self.value.operand if isinstance(self.value, Negate) else self.value
        return isinstance(value, Number)


@dataclass(frozen=True)
class Program(Node):
    bindings: tuple[Binding, ...]
    body: Expr

    def __str__(self) -> str:
        parts = [f"{b.name} = {to_text(b.value)}" for b in self.bindings]
        return "; ".join(parts + [to_text(self.body)])


# ---------------------------------------------------------------- building

def parse_source(source: str) -> Program:
    """Parse and check ``source``; the first stage of every lossdsl pipeline.

    Raises:
        LossDSLError: a subclass naming the problem, with its position.
    """
    tree = parse_tree(source)
    _check_size(tree, source)
    try:
        program = _Builder(source).transform(tree)
    except VisitError as error:  # Lark wraps errors raised in callbacks
        if isinstance(error.orig_exc, LossDSLError):
            raise error.orig_exc from None
        raise
    _check_bindings(program, source)
    _check_comparisons(program, source)
    _check_reduction_nesting(program, source)
    return program


def _check_reduction_nesting(program: Program, source: str) -> None:
    """Refuse reductions nested more than :data:`MAX_REDUCTION_NESTING` deep."""
    levels: dict[str, int] = {}
    for binding in program.bindings:
        levels[binding.name] = _reduction_level(binding.value, levels, source)
    _reduction_level(program.body, levels, source)


def _reduction_level(root: Expr, levels: dict[str, int], source: str) -> int:
    """How many reductions are nested in ``root``, names counting as what they are bound to."""
    level_of: dict[int, int] = {}
    stack: list[tuple[Expr, bool]] = [(root, False)]
    while stack:  # post-order without recursion
        node, children_done = stack.pop()
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
            continue
        inner = max((level_of[id(child)] for child in _children(node)), default=0)
        if isinstance(node, Name):
            inner = levels.get(node.id, 0)
        if isinstance(node, Call) and REGISTRY[node.function].kind != "elementwise":
            inner += 1
            if inner > MAX_REDUCTION_NESTING:
                raise DSLLimitError(
                    f"Reductions are nested more than {MAX_REDUCTION_NESTING} deep here.",
                    source=source, span=node.span,
                    hint="the gradient through nested reductions grows exponentially with "
                         "their depth; realistic losses nest two or three")
        level_of[id(node)] = inner
    return level_of[id(root)]


def _check_comparisons(program: Program, source: str) -> None:
    """A comparison may only stand as the condition of ``where``."""
    roots = [binding.value for binding in program.bindings] + [program.body]
    stack = [(root, False) for root in roots]
    while stack:
        node, allowed = stack.pop()
        if isinstance(node, Compare) and not allowed:
            raise DSLTypeError(
                "A comparison is only allowed as the first argument of `where`.",
                source=source, span=node.span,
                hint="write where(condition, value_if_true, value_if_false)")
        is_where = isinstance(node, Call) and node.function == "where"
        stack.extend((child, is_where and index == 0)
                     for index, child in enumerate(_children(node)))


def _check_size(tree: lark.Tree, source: str) -> None:
    """Refuse trees too deep or too large before any recursive stage sees them."""
    count = 0
    stack: list[tuple[lark.Tree, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            span = Span(node.meta.start_pos, node.meta.end_pos) if not node.meta.empty else None
            raise DSLLimitError(
                f"The expression is nested more than {MAX_DEPTH} levels deep.",
                source=source, span=span, hint="name inner parts with `name = ...;` bindings")
        if count > MAX_NODES:
            raise DSLLimitError(f"The expression has more than {MAX_NODES} nodes.",
                                source=source, span=Span(0, len(source)),
                                hint="name repeated parts with `name = ...;` bindings")
        stack.extend((child, depth + 1) for child in node.children
                     if isinstance(child, lark.Tree))


def _span(meta: lark.tree.Meta) -> Span:
    return _NO_SPAN if meta.empty else Span(meta.start_pos, meta.end_pos)


@lark.v_args(inline=True, meta=True)
class _Builder(Transformer_NonRecursive):
    """Turns the Lark tree into IR, checking each call against the function table."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def _error(self, kind: type[LossDSLError], message: str, span: Span,
               hint: str | None = None) -> LossDSLError:
        return kind(message, source=self.source, span=span, hint=hint)

    def number(self, meta, token):
        return Number(str(token), span=_span(meta))

    def name(self, meta, token):
        if str(token).startswith("__"):
            raise self._error(DSLNameError, f"Names starting with '__' are not allowed: `{token}`.",
                              _span(meta))
        return Name(str(token), span=_span(meta))

    def neg(self, meta, operand):
        return Negate(self._value(operand), span=_span(meta))

    def pos(self, meta, operand):
        return self._value(operand)

    def _binary(op):  # noqa: N805 - builds the methods below
        def method(self, meta, left, *rest):
            right = rest[-1]  # `pow` also passes the operator token
            return Binary(op, self._value(left), self._value(right), span=_span(meta))
        return method

    add, sub, mul, div, pow = _binary("+"), _binary("-"), _binary("*"), _binary("/"), _binary("^")

    def compare(self, meta, left, op, right):
        return Compare(str(op), self._value(left), self._value(right), span=_span(meta))

    def tuple(self, meta, *items):
        return _Tuple(tuple(item for item in items if item is not None), span=_span(meta))

    def keyword(self, meta, name, value):
        return _Keyword(str(name), value, span=_span(meta))

    def arguments(self, meta, *arguments):
        return list(arguments)

    def call(self, meta, name, arguments):
        return _CallChecker(self, str(name), arguments or [], _span(meta)).build()

    def binding(self, meta, name, value):
        if isinstance(value, _Keyword):  # not reachable from the grammar; kept defensive
            raise self._error(DSLSyntaxError, "Unexpected keyword argument.", value.span)
        return Binding(str(name), self._value(value), span=_span(meta))

    def program(self, meta, *items):
        *bindings, body = items
        return Program(tuple(bindings), self._value(body), span=_span(meta))

    def _value(self, node) -> Expr:
        """Tuples only make sense as an ``axis=`` value."""
        if isinstance(node, _Tuple):
            raise self._error(DSLTypeError, "A tuple is only allowed as an `axis=` value.",
                              node.span)
        return node


@dataclass(frozen=True)
class _Tuple(Node):
    items: tuple


@dataclass(frozen=True)
class _Keyword(Node):
    name: str
    value: object


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
            raise self.builder._error(
                DSLArityError,
                f"`{op.name}` takes {op.arity} argument{plural}; it was given {len(positional)}.",
                self.span, hint=f"{op.name}: {op.doc}")
        axis = self._axis(op, keywords)
        args = tuple(self._argument(op, index, arg) for index, arg in enumerate(positional))
        return Call(op.name, args, axis, span=self.span)

    def _unknown_function(self) -> DSLNameError:
        close = difflib.get_close_matches(self.function, list(REGISTRY), n=1)
        message = f"Unknown function `{self.function}`."
        if close:
            message += f" Did you mean `{close[0]}`?"
        return self.builder._error(
            DSLNameError, message, Span(self.span.start, self.span.start + len(self.function)),
            hint="`lossdsl ops` lists every function")

    def _argument(self, op, index: int, arg) -> Expr:
        if op.name == "where" and index == 0 and not isinstance(arg, Compare):
            raise self.builder._error(
                DSLTypeError, "The first argument of `where` must be a comparison.",
                arg.span, hint="e.g. where(y_true > 0.5, a, b)")
        return self.builder._value(arg)

    def _axis(self, op, keywords: list[_Keyword]) -> tuple[int, ...] | None:
        for keyword in keywords:
            if keyword.name != "axis" or op.kind == "elementwise":
                raise self.builder._error(
                    DSLArityError, f"`{op.name}` takes no keyword argument `{keyword.name}`.",
                    keyword.span, hint="only reductions and softmax/log_softmax take axis=")
        if len(keywords) > 1:
            raise self.builder._error(DSLArityError, "`axis` is given twice.", keywords[1].span)
        if not keywords:
            return None if op.default_axis is None else (op.default_axis,)
        return _axis_value(self.builder, keywords[0].value, keywords[0].span)


def _axis_value(builder: _Builder, value, span: Span) -> tuple[int, ...]:
    items = value.items if isinstance(value, _Tuple) else (value,)
    axes = tuple(_axis_integer(builder, item, span) for item in items)
    if not axes:
        raise builder._error(DSLAxisError, "`axis` must name at least one axis.", span)
    if len(set(axes)) != len(axes):
        raise builder._error(DSLAxisError, f"`axis` repeats an axis: {axes}.", span)
    if 0 in axes:
        raise builder._error(
            DSLAxisError, "`axis=0` is the batch axis, which Keras reduces itself.", span,
            hint="axes count from 1 (the first axis of a sample), or from -1 (the last)")
    return axes


def _axis_integer(builder: _Builder, item, span: Span) -> int:
    sign, node = (-1, item.operand) if isinstance(item, Negate) else (1, item)
    if isinstance(node, Number) and node.text.isdigit():
        return sign * int(node.text)
    raise builder._error(DSLAxisError, "`axis` must be an integer or a tuple of integers.",
                         getattr(item, "span", span), hint="e.g. axis=-1 or axis=(1, 2)")


def _check_bindings(program: Program, source: str) -> None:
    bound: set[str] = set()
    for binding in program.bindings:
        name_span = Span(binding.span.start, binding.span.start + len(binding.name))
        problem = None
        rename = f"give it another name, e.g. `{binding.name.strip('_')}_1 = ...`"
        if binding.name in INPUT_NAMES:
            problem = f"`{binding.name}` is an input and cannot be rebound."
        elif binding.name in REGISTRY:
            problem = f"`{binding.name}` is a function name and cannot be rebound."
        elif binding.name in bound:
            problem = f"`{binding.name}` is bound twice."
            rename = "a name is bound once; give the second one another name"
        elif binding.name.startswith("__"):
            problem = f"Names starting with '__' are not allowed: `{binding.name}`."
        if problem:
            raise DSLNameError(problem, source=source, span=name_span, hint=rename)
        for name in names_in(binding.value):
            if name.id == binding.name:
                raise DSLNameError(f"`{binding.name}` is defined in terms of itself.",
                                   source=source, span=name.span,
                                   hint="a binding can use only the names bound before it")
        bound.add(binding.name)


def names_in(expr: Expr) -> list[Name]:
    """Every :class:`Name` node in ``expr``, in source order."""
    found, stack = [], [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Name):
            found.append(node)
        stack.extend(reversed(_children(node)))
    return found


def _children(node: Expr) -> tuple:
    if isinstance(node, Negate):
        return (node.operand,)
    if isinstance(node, (Binary, Compare)):
        return (node.left, node.right)
    if isinstance(node, Call):
        return node.args
    return ()


# ---------------------------------------------------------------- printing

# Binding strength, loosest first; the canonical printer adds only the parentheses needed.
_PRECEDENCE = {"compare": 1, "+": 2, "-": 2, "*": 3, "/": 3, "neg": 4, "^": 5, "atom": 6}


def _precedence(node: Expr) -> int:
    if isinstance(node, Compare):
        return _PRECEDENCE["compare"]
    if isinstance(node, Binary):
        return _PRECEDENCE[node.op]
    if isinstance(node, Negate):
        return _PRECEDENCE["neg"]
    return _PRECEDENCE["atom"]


def to_text(node: Expr) -> str:
    """The canonical DSL text of an expression (minimal parentheses)."""
    if isinstance(node, Number):
        return node.text
    if isinstance(node, Name):
        return node.id
    if isinstance(node, Negate):
        return "-" + _wrapped(node.operand, _precedence(node.operand) < _PRECEDENCE["neg"])
    if isinstance(node, Compare):
        return f"{_wrapped(node.left, _precedence(node.left) <= 1)} {node.op} " \
               f"{_wrapped(node.right, _precedence(node.right) <= 1)}"
    if isinstance(node, Binary):
        return _binary_text(node)
    return _call_text(node)


def _binary_text(node: Binary) -> str:
    mine = _PRECEDENCE[node.op]
    if node.op == "^":  # right-associative; the exponent may be a bare unary minus
        left = _wrapped(node.left, _precedence(node.left) <= mine)
        right = _wrapped(node.right, _precedence(node.right) < _PRECEDENCE["neg"])
        return f"{left}^{right}"
    left = _wrapped(node.left, _precedence(node.left) < mine)
    right = _wrapped(node.right, _precedence(node.right) <= mine)
    return f"{left} {node.op} {right}"


def _call_text(node: Call) -> str:
    args = [to_text(arg) for arg in node.args]
    op = REGISTRY[node.function]
    default = None if op.default_axis is None else (op.default_axis,)
    if node.axis is not None and node.axis != default:
        axis = str(node.axis[0]) if len(node.axis) == 1 else f"({', '.join(map(str, node.axis))})"
        args.append(f"axis={axis}")
    return f"{node.function}({', '.join(args)})"


def _wrapped(node: Expr, needs_parentheses: bool) -> str:
    text = to_text(node)
    return f"({text})" if needs_parentheses else text
