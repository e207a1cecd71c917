"""Stage 2: source -> IR, a small tree of frozen dataclasses, checked.

:func:`parse_source` is the first stage of every lossdsl pipeline: Lark parses
(:mod:`~lossdsl.language.parse`), the tree becomes IR with every call checked
against the function table (:mod:`~lossdsl.language.tree_to_ir`), and the
checks that need the whole program run (:mod:`~lossdsl.language.checks`). The
node classes and the canonical printer are in :mod:`~lossdsl.language.nodes`
and importable from here. ``str(program)`` prints the canonical form, which
parses back to an equal program (spans are not compared):

    >>> from lossdsl.language.ir import parse_source
    >>> program = parse_source("alpha=.25;  mean(-alpha*y_true*log(y_pred))")
    >>> print(program)
    alpha = .25; mean(-alpha * y_true * log(y_pred))
    >>> parse_source(str(program)) == program
    True
"""

from __future__ import annotations

from lossdsl.language.checks import (check_bindings, check_comparisons,
                                     check_reduction_nesting, check_size)
from lossdsl.language.nodes import (CONDITIONS, Binary, Binding, Call, Column, Compare, Expr, Logic,
                                    Name, Negate, Node, Not, Number, Program, children, names_in,
                                    to_text)
from lossdsl.language.parse import parse_tree
from lossdsl.language.tree_to_ir import tree_to_program
# Re-exported for tests/test_limits.py, which reads them as ir.MAX_*; their home is limits.
from lossdsl.limits import MAX_DEPTH, MAX_NODES, MAX_REDUCTION_NESTING

_children = children  # the old private name, still read by lossdsl/analysis/precision.py


def parse_source(source: str) -> Program:
    """Parse and check ``source``; the first stage of every lossdsl pipeline.

    Raises:
        LossDSLError: a subclass naming the problem, with its position.
    """
    tree = parse_tree(source)
    check_size(tree, source)  # before any recursive step walks the tree
    program = tree_to_program(tree, source)
    check_bindings(program, source)
    check_comparisons(program, source)
    check_reduction_nesting(program, source)
    return program


__all__ = ["parse_source", "Node", "Number", "Name", "Negate", "Binary", "Compare", "Logic",
           "Not", "CONDITIONS", "Call", "Column",
           "Expr", "Binding", "Program", "children", "names_in", "to_text",
           "MAX_DEPTH", "MAX_NODES", "MAX_REDUCTION_NESTING"]
