"""The plan: what a loss computes, as plain data that every backend interprets.

A :class:`Plan` is an ordered tuple of :class:`Node` (children before parents,
shared subexpressions once) and the outputs read from it. A node says *what*
is computed (its kind, the :data:`lossdsl.ops.OPS` row it calls, attributes such
as axes or signs), never *how*: the TensorFlow runner
(:mod:`lossdsl.backends.tensorflow.run`) and the text printer
(:mod:`lossdsl.backends.text`) read the same plan, so the exported module cannot
drift from what ``lossdsl.compile`` runs. Plans are built by
:mod:`lossdsl.lower.build`, for each use by :mod:`lossdsl.lower.plans`.

No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import sympy

from lossdsl.lower.shapes import Reduced, resolve_axes
from lossdsl.ops import Op

# The kinds of node, with the attributes each carries (a completeness test checks
# that every backend handles every kind).
KINDS: dict[str, str] = {
    "input": "name: a tensor given by name when the plan runs (y_true, y_pred, upstream)",
    "parameter": "name: a parameter given as a value when the plan runs (the gradient check)",
    "given": "index: a leaf of a guarded branch, the value of its guarded where's leaf `index`",
    "constant": "value: a float (inf and nan included), in the inputs' dtype; or a tuple of "
                "floats, one per element of the last axis (a vector parameter)",
    "boolean": "value: True or False",
    "count": "axis: how many elements a sample has along `axis` (a Count)",
    "call": "a function of OPS (op); by_position: it needs the full shape; "
            "broadcast_first: the first argument is broadcast against the others; "
            "first_full: that argument has an input, so it has the full shape already",
    "reduction": "kind, axis, broadcast (the argument is smaller than a sample: broadcast it)",
    "add": "signs: +1/-1 per child",
    "mul": "split: the first `split` children multiply, the others divide",
    "power": "exponent: a float (one child) or None (the exponent is the second child); "
             "form: square, sqrt, rsqrt, reciprocal, identity, cube or pow",
    "where": "has_default: children are value, condition pairs (the last value alone if so)",
    "guarded_where": "conditions, has_default, masked (per leaf), branches (Branch); "
                     "children are the conditions then the leaves",
    "step": "at_zero: the Heaviside step, `at_zero` at 0",
    "relation": "name: equal, not_equal, less, less_equal, greater, greater_equal",
    "logic": "name: and, or, xor (folded left over the children)",
    "not": "logical not",
    "ite": "if-then-else of (condition, then, else)",
    "sinh": "hyperbolic sine (derivatives make it: d/dx cosh(x))",
    "pair": "kind (a pairwise row), input: that input as given against itself, (batch, batch); "
            "input None: pair_self(); axis: -1, or -2 along the first other sample of a triple",
    "pair_backward": "kind, input, axis: d (sum of the child * kind(input)) / d input, at its shape",
}

FINISHES = ("per_sample", "total", "elementwise")
"""How an output is shaped: the per-sample loss (reduced axes squeezed), one number
per sample (a parameter gradient), or the inputs' full shape (a gradient w.r.t. an input)."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, eq=False)
class Node:
    """One value of a plan.

    Attributes:
        kind: one of :data:`KINDS`.
        expr: the SymPy expression it computes (for comments and error messages).
        children: indices of earlier nodes of the same plan (or branch).
        op: the row of :data:`lossdsl.ops.OPS` it calls (``call`` and ``reduction``).
        attrs: the kind's attributes (see :data:`KINDS`), read-only.
    """

    kind: str
    expr: sympy.Basic
    children: tuple[int, ...] = ()
    op: Op | None = None
    attrs: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __getitem__(self, key: str) -> Any:
        return self.attrs[key]


@dataclass(frozen=True, eq=False)
class Branch:
    """A branch of a guarded where: its own nodes, fed by the where's leaves (``given`` nodes)."""

    nodes: tuple[Node, ...]
    result: int  # the index of the branch's value in ``nodes``


@dataclass(frozen=True)
class Output:
    """An output of a plan: the node it reads and how it is shaped (one of :data:`FINISHES`).

    ``added``: nodes added after the finish, already at the input's shape: the backward
    passes of pair functions in a gradient (the rest of it is at the (batch, batch) shape).
    """

    name: str
    index: int
    finish: str
    added: tuple[int, ...] = ()


@dataclass(frozen=True, eq=False)
class Plan:
    """An ordered program of nodes and its outputs.

    Attributes:
        nodes: children before parents.
        outputs: what a run returns, by name.
        reduced: what decides the per-sample shape: the axis specs of the loss's
            reductions, or None when the loss varies along every axis (see
            :mod:`lossdsl.lower.shapes`).
        differentiable: whether a tape may differentiate it (then risky ``where``
            branches are guarded).
        rows: the batch axes after the batch axis, 1 when the loss reads pair functions or
            the plan computes some (or their backward passes): the full shape is (batch,
            batch); 2 when one runs along ``axis=-2`` (triples): (batch, batch, batch). A
            gradient may have no pair node left (``mean(pair_self()*y_pred)``) and keeps it.
        wrt: the input whose shape an elementwise output (a gradient) takes.
    """

    nodes: tuple[Node, ...]
    outputs: tuple[Output, ...]
    reduced: Reduced
    differentiable: bool = True
    rows: int = 0  # pair functions somewhere: rows over the batch (decided by plan_of)
    wrt: str = "y_pred"  # the input an elementwise output is the gradient of

    @property
    def has_pairs(self) -> bool:
        """Whether it computes pair functions or their backward passes: its full shape is then
        (batch,) + (batch,) * ``rows``, the rows over the batch."""
        return self.rows > 0

    def squeezed_axes(self, rank: int) -> list[int]:
        """The axes of rank-``rank`` inputs that the per-sample loss output drops (with pair
        functions, of the rows over the batch, whatever the inputs' rank)."""
        return resolve_axes(1 + self.rows if self.has_pairs else rank, "output", self.reduced)

    def kinds(self) -> set[str]:
        """Every kind of node in the plan, branches included."""
        return set(_kinds(self.nodes))


def _kinds(nodes: tuple[Node, ...]):
    for node in nodes:
        yield node.kind
        for branch in node.attrs.get("branches", ()):
            yield from _kinds(branch.nodes)


TAIL_KINDS = ("add", "mul", "power", "call", "constant", "count", "reduction")


def per_sample_tail(plan: Plan) -> tuple[int, tuple[int, ...]] | None:
    """The per-sample output when it is arithmetic on reductions and constants: (its index, the reductions').

    ``1 - 2*sum(a)/(sum(b) + 1e-7)`` (Dice): when every such reduction reduces the
    axes the output drops, a backend may reduce without keeping them and compute
    the rest on one number per sample, as Keras's built-ins do, instead of keeping
    the axes and squeezing the output (one more op). None for any other plan.
    """
    if len(plan.outputs) != 1 or plan.outputs[0].finish != "per_sample":
        return None
    output = plan.outputs[0].index
    readers: dict[int, set[int]] = {}
    for index, node in enumerate(plan.nodes):
        for child in node.children:
            readers.setdefault(child, set()).add(index)
    tail: set[int] = {output}
    inner = set() if plan.nodes[output].kind == "reduction" else {output}  # read by the tail
    for index in range(output - 1, -1, -1):  # readers come after the nodes they read
        if readers.get(index) and readers[index] <= inner:
            tail.add(index)
            if plan.nodes[index].kind != "reduction":
                inner.add(index)
    reductions = []
    for index in tail:
        node = plan.nodes[index]
        if node.kind not in TAIL_KINDS or (node.kind == "call" and (
                node["by_position"] or node["broadcast_first"])):
            return None
        if node.kind == "reduction":
            reductions.append(index)
        elif not set(node.children) <= tail:
            return None  # a value that is not one number per sample
    return (output, tuple(sorted(reductions))) if reductions else None


def late_broadcast_inputs(plan: Plan) -> frozenset[str]:
    """Inputs read only by elementwise outputs that are sums or products of their children.

    Such an input (the upstream gradient of a seeded gradient, one number per
    sample) may stay smaller than a sample: the sum or product broadcasts it, and
    the output is brought to the full shape anyway.
    """
    outputs = {output.index for output in plan.outputs if output.finish == "elementwise"}
    readers: dict[int, set[int]] = {}
    for index, node in enumerate(plan.nodes):
        for child in node.children:
            readers.setdefault(child, set()).add(index)
    return frozenset(node["name"] for index, node in enumerate(plan.nodes)
                     if node.kind == "input" and readers.get(index)
                     and all(reader in outputs and plan.nodes[reader].kind in ("mul", "add")
                             for reader in readers[index]))


def log_softmax_nodes(plan: Plan) -> dict[int, tuple[int, int, bool]]:
    """``x - logsumexp(x)`` nodes: add index -> (x index, logsumexp index, read only there).

    A backend with a log-softmax kernel may compute them as one op, when the
    logsumexp's axes are the last axis (and skip the logsumexp if nothing else reads it).
    """
    readers: dict[int, int] = {}
    for node in plan.nodes:
        for child in node.children:
            readers[child] = readers.get(child, 0) + 1
    for output in plan.outputs:  # an output is read too (the loss logsumexp(x) and its gradient)
        readers[output.index] = readers.get(output.index, 0) + 1
    found = {}
    for index, node in enumerate(plan.nodes):
        if node.kind != "add" or len(node.children) != 2 or sorted(node["signs"]) != [-1, 1]:
            continue
        x, lse = node.children if node["signs"][0] > 0 else node.children[::-1]
        reduction = plan.nodes[lse]
        if reduction.kind == "reduction" and reduction["kind"] == "logsumexp" and \
                reduction.children == (x,) and not reduction["broadcast"]:
            found[index] = (x, lse, readers[lse] == 1)
    return found


def frozen(**attrs: Any) -> Mapping[str, Any]:
    """Read-only node attributes."""
    return MappingProxyType(attrs)


__all__ = ["KINDS", "FINISHES", "Node", "Branch", "Output", "Plan", "frozen", "per_sample_tail",
           "late_broadcast_inputs", "log_softmax_nodes"]
