"""The IR: a small tree of frozen dataclasses, how to walk it, and its canonical text.

``str(program)`` prints the canonical form, which parses back to an equal
program (spans are not compared). The printer adds only the parentheses the
grammar needs:

    >>> expr = Binary("*", Negate(Name("alpha")), Binary("+", Name("y_pred"), Number("1")))
    >>> to_text(expr)
    '-alpha * (y_pred + 1)'
    >>> [name.id for name in names_in(expr)]
    ['alpha', 'y_pred']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from lossdsl.errors import Span
from lossdsl.ops import REGISTRY

NO_SPAN = Span(0, 0)
"""The span of a node built by code rather than parsed."""


@dataclass(frozen=True)
class Node:
    """Base of IR nodes; ``span`` locates the node in the source and is never compared."""

    span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Number(Node):
    """A numeric literal, kept as written (``.25`` stays ``.25``)."""

    text: str

    @property
    def value(self) -> float:
        return float(self.text)


@dataclass(frozen=True)
class Name(Node):
    """An input, a parameter or a bound name."""

    id: str


@dataclass(frozen=True)
class Negate(Node):
    """Unary minus."""

    operand: "Expr"


@dataclass(frozen=True)
class Binary(Node):
    """An arithmetic operation."""

    op: str  # one of + - * / ^
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class Compare(Node):
    """A comparison; it may only stand as the condition of ``where``."""

    op: str  # one of == != < <= > >=
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class Logic(Node):
    """``a and b``, ``a or b`` of conditions; a chain ``a < b < c`` is ``a < b and b < c``."""

    op: str  # "and" or "or"
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class Not(Node):
    """``not a``, of a condition."""

    operand: "Expr"


CONDITIONS = (Compare, Logic, Not)
"""The node classes that are conditions (the first argument of ``where``), not numbers."""


@dataclass(frozen=True)
class Call(Node):
    """A call of a function of :data:`lossdsl.ops.REGISTRY`."""

    function: str
    args: tuple["Expr", ...]
    axis: tuple[int, ...] | None = None  # None: the op's default


@dataclass(frozen=True)
class Column(Node):
    """``x[..., k]``: column ``k`` of the last axis (negative counts from the end).

    Like every reduction, its value is broadcast back along the row it was taken
    from: ``(y_true - y_pred[..., 0])^2`` compares each element of ``y_true`` with
    the row's first prediction, and ``sum(y_pred[..., 0], axis=-1)`` counts it once
    per element of the row (``mean`` takes it once).
    """

    operand: "Expr"
    index: int


Expr = Union[Number, Name, Negate, Binary, Compare, Logic, Not, Call, Column]


@dataclass(frozen=True)
class Binding(Node):
    """``name = value;`` before the loss's body."""

    name: str
    value: Expr

    @property
    def is_parameter_default(self) -> bool:
        """A binding to a plain number gives a parameter its default value."""
        value = self.value.operand if isinstance(self.value, Negate) else self.value
        return isinstance(value, Number)


@dataclass(frozen=True)
class Program(Node):
    """A whole source: its bindings, then the expression of the per-sample loss."""

    bindings: tuple[Binding, ...]
    body: Expr

    def __str__(self) -> str:
        parts = [f"{b.name} = {to_text(b.value)}" for b in self.bindings]
        return "; ".join(parts + [to_text(self.body)])


# ---------------------------------------------------------------- walking

def children(node: Expr) -> tuple[Expr, ...]:
    """The operands of ``node``, left to right (none for a number or a name)."""
    if isinstance(node, (Negate, Not, Column)):
        return (node.operand,)
    if isinstance(node, (Binary, Compare, Logic)):
        return (node.left, node.right)
    if isinstance(node, Call):
        return node.args
    return ()


def names_in(expr: Expr) -> list[Name]:
    """Every :class:`Name` node in ``expr``, in source order."""
    found, stack = [], [expr]
    while stack:  # without recursion: trees may be deep
        node = stack.pop()
        if isinstance(node, Name):
            found.append(node)
        stack.extend(reversed(children(node)))
    return found


# ---------------------------------------------------------------- printing

# Binding strength, loosest first; the canonical printer adds only the parentheses needed.
_PRECEDENCE = {"or": 1, "and": 2, "not": 3, "compare": 4, "+": 5, "-": 5, "*": 6, "/": 6,
               "neg": 7, "^": 8, "atom": 9}


def _precedence(node: Expr) -> int:
    if isinstance(node, Logic):
        return _PRECEDENCE[node.op]
    if isinstance(node, Not):
        return _PRECEDENCE["not"]
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
        return _compare_text(node)
    if isinstance(node, Logic):  # left-associative, as + and *
        links = _chain(node)
        if links:  # `a < b and b < c` is the chain `a < b < c`, printed as one
            return _compare_text(links[0]) + "".join(
                f" {link.op} {_wrapped(link.right, _precedence(link.right) <= _PRECEDENCE['compare'])}"
                for link in links[1:])
        mine = _PRECEDENCE[node.op]
        return f"{_wrapped(node.left, _precedence(node.left) < mine)} {node.op} " \
               f"{_wrapped(node.right, _precedence(node.right) <= mine)}"
    if isinstance(node, Not):
        return "not " + _wrapped(node.operand, _precedence(node.operand) < _PRECEDENCE["not"])
    if isinstance(node, Binary):
        return _binary_text(node)
    if isinstance(node, Column):
        return f"{_wrapped(node.operand, _precedence(node.operand) < _PRECEDENCE['atom'])}" \
               f"[..., {node.index}]"
    return _call_text(node)


def _compare_text(node: Compare) -> str:
    # An operand that is itself a condition keeps its brackets: `(a < b) < c` is no chain.
    loose = _PRECEDENCE["compare"]
    return f"{_wrapped(node.left, _precedence(node.left) <= loose)} {node.op} " \
           f"{_wrapped(node.right, _precedence(node.right) <= loose)}"


def _chain(node: Expr) -> list[Compare] | None:
    """The links of a chain, as the parser builds ``a < b < c``: ``(a < b) and (b < c)``,
    left-nested, each link's left operand the previous link's right one; else None."""
    if isinstance(node, Compare):
        return [node]
    if not (isinstance(node, Logic) and node.op == "and" and isinstance(node.right, Compare)):
        return None
    links = _chain(node.left)
    if links is None or links[-1].right != node.right.left:
        return None
    return links + [node.right]


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
