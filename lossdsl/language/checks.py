"""Checks of a parsed source that no single node can make: size, names, comparisons, nesting.

Each raises the :mod:`lossdsl.errors` error for the first problem, with its
position. The bounds are in :mod:`lossdsl.limits`, the one home of every limit.

    >>> from lossdsl.language.ir import parse_source
    >>> parse_source("a = 1; a = 2; a*y_pred")
    Traceback (most recent call last):
    ...
    lossdsl.errors.DSLNameError: `a` is bound twice.
    ...
"""

from __future__ import annotations

import lark

from lossdsl.errors import DSLLimitError, DSLNameError, DSLTypeError, Span
from lossdsl.language.nodes import (CONDITIONS, Call, Column, Compare, Expr, Logic, Name, Not,
                                    Program, children, names_in)
from lossdsl.limits import MAX_DEPTH, MAX_NODES, MAX_REDUCTION_NESTING
from lossdsl.ops import INPUT_NAMES, REGISTRY


def check_size(tree: lark.Tree, source: str) -> None:
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


def check_bindings(program: Program, source: str) -> None:
    """A name is bound once, before its use, never to itself, never an input's or a function's."""
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


def check_comparisons(program: Program, source: str) -> None:
    """A condition (comparison, and/or/not) may only stand as the condition of ``where``."""
    roots = [binding.value for binding in program.bindings] + [program.body]
    stack = [(root, False) for root in roots]
    while stack:
        node, allowed = stack.pop()
        if isinstance(node, CONDITIONS) and not allowed:
            what = "A comparison" if isinstance(node, Compare) else \
                f"`{'not' if isinstance(node, Not) else node.op}`"
            raise DSLTypeError(
                f"{what} is only allowed as the first argument of `where`.",
                source=source, span=node.span,
                hint="write where(condition, value_if_true, value_if_false)")
        is_where = isinstance(node, Call) and node.function == "where"
        # The operands of and/or/not are conditions too; a comparison's are numbers.
        logic = isinstance(node, (Logic, Not))
        stack.extend((child, logic or (is_where and index == 0))
                     for index, child in enumerate(children(node)))


def check_reduction_nesting(program: Program, source: str) -> None:
    """Refuse reductions nested more than :data:`~lossdsl.limits.MAX_REDUCTION_NESTING` deep."""
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
            stack.extend((child, False) for child in children(node))
            continue
        inner = max((level_of[id(child)] for child in children(node)), default=0)
        if isinstance(node, Name):
            inner = levels.get(node.id, 0)
        # A column x[..., k] is a reduction too: the sum of one_hot(k) * x over the last axis.
        if isinstance(node, Column) or \
                isinstance(node, Call) and REGISTRY[node.function].kind != "elementwise":
            inner += 1
            if inner > MAX_REDUCTION_NESTING:
                raise DSLLimitError(
                    f"Reductions are nested more than {MAX_REDUCTION_NESTING} deep here.",
                    source=source, span=node.span,
                    hint="the gradient through nested reductions grows exponentially with "
                         "their depth; realistic losses nest two or three")
        level_of[id(node)] = inner
    return level_of[id(root)]
