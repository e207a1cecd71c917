"""What every interpreter of a plan shares: preparing a program, walking it, and the node
kinds whose meaning is the same on every backend.

A backend's context (:class:`lossdsl.backends.tensorflow.context.Context`,
:class:`lossdsl.backends.keras_ops.context.Context`) provides ``given`` (values
by name), ``programs`` (prepared guarded branches), ``constant(value)``, and the
few primitives these steps use: ``where``, ``stop_gradient``, ``logical_and``,
``logical_or``, ``logical_xor``, ``logical_not``. The kinds whose fastest form
differs per backend (``add``'s order, ``mul``, ``call``, ``reduction``) stay in
each backend's runner.

No backend is imported here.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from lossdsl.analysis.backward import UPSTREAM
from lossdsl.errors import DSLShapeError, LossDSLError
from lossdsl.lower.guards import taken_masks
from lossdsl.lower.plan import Node, Plan, log_softmax_nodes

Tensor = Any
Step = Callable[[Any, Node, list], Tensor]
Program = tuple[tuple[Step | None, Node, tuple[int, ...]], ...]  # None: a guarded branch's leaf


def prepare(nodes: Sequence[Node], dispatch: Mapping[str, Step],
            programs: dict[int, Program]) -> Program:
    """Each node paired with its step once; the programs of guarded branches go to ``programs``."""
    for node in nodes:
        for branch in node.attrs.get("branches", ()):
            programs[id(branch)] = prepare(branch.nodes, dispatch, programs)
    return tuple((None if node.kind == "given" else dispatch[node.kind], node, node.children)
                 for node in nodes)


def execute(context: Any, program: Program, given: Sequence[Tensor] = ()) -> list[Tensor]:
    """The value of every node of ``program``; ``given`` are a guarded branch's leaves."""
    values: list[Tensor] = []
    for step, node, children in program:
        values.append(given[node.attrs["index"]] if step is None else
                      step(context, node, [values[i] for i in children]))
    return values


def given_value(context: Any, node: Node, args: list) -> Tensor:
    """An input or a parameter: its value by name."""
    value = context.given.get(node["name"])
    if value is None:
        raise LossDSLError(f"Internal error: no value for the symbol `{node['name']}`.")
    return value


def where_chain(context: Any, node: Node, args: list) -> Tensor:
    """``where``: value, condition pairs, the first that holds wins (NaN where none does)."""
    pairs = list(zip(args[0::2], args[1::2]))
    result = args[-1] if node["has_default"] else context.constant(float("nan"))
    for value, condition in reversed(pairs):
        result = context.where(condition, value, result)
    return result


def guarded_where(context: Any, node: Node, args: list) -> Tensor:
    """Each branch computed from its leaves with the gradient cut where it is not taken.

    TF's, JAX's and PyTorch's ``where`` all pass NaN gradients from an untaken
    branch that is infinite: the same guard holds on every backend.
    """
    count = node["conditions"]
    conditions, leaves = args[:count], args[count:]
    taken_by = taken_masks(conditions, node["has_default"], context.logical_and,
                           context.logical_not)
    branches = []
    for taken, branch in zip(taken_by, node["branches"]):
        given = [context.where(taken, leaf, context.stop_gradient(leaf)) if masked else leaf
                 for leaf, masked in zip(leaves, node["masked"])]
        branches.append(execute(context, context.programs[id(branch)], given)[branch.result])
    result = branches[-1] if node["has_default"] else context.constant(float("nan"))
    for condition, branch_value in reversed(list(zip(conditions, branches))):
        result = context.where(condition, branch_value, result)
    return result


def logic(context: Any, node: Node, args: list) -> Tensor:
    """``and``, ``or``, ``xor``, folded left over the children."""
    function, result = getattr(context, f"logical_{node['name']}"), args[0]
    for arg in args[1:]:
        result = function(result, arg)
    return result


def add_terms(node: Node, args: list, order: Sequence[int]) -> Tensor:
    """``add``: the terms with their signs, taken in ``order`` (a backend puts cheap terms first)."""
    signs, total = node["signs"], None
    for i in order:
        if total is None:
            total = args[i] if signs[i] > 0 else -args[i]
        else:
            total = total + args[i] if signs[i] > 0 else total - args[i]
    return total


def product(context: Any, node: Node, args: list, small_first: bool) -> Tensor:
    """``mul``: the first ``split`` children multiply, the others divide.

    ``small_first``: the small factors (constants, one number per sample:
    ``context.is_small``) are combined first and scale the full-size ones once; eagerly
    each op on a full-size tensor is one more pass over memory.
    """
    split = node["split"]
    if not small_first:
        return _quotient(context, args[:split], args[split:])
    small = [context.is_small(arg) for arg in args]

    def factors(of_small: bool, start: int, stop: int) -> list[Tensor]:
        return [args[i] for i in range(start, stop) if small[i] == of_small]
    scale = _quotient(context, factors(True, 0, split), factors(True, split, len(args)))
    return _quotient(context, [scale] + factors(False, 0, split), factors(False, split, len(args)))


def _quotient(context: Any, numerator: list, denominator: list) -> Tensor | None:
    """The product of ``numerator`` (None factors skipped) over that of ``denominator``."""
    value = None
    for factor in numerator:
        if factor is not None:
            value = factor if value is None else value * factor
    for factor in denominator:
        value = (context.constant(1.0) if value is None else value) / factor
    return value


def with_log_softmax(plan: Plan, program: Program,
                     log_softmax: Callable[[Any, Tensor], Tensor]) -> tuple[Program, list] | None:
    """``program`` with each ``x - logsumexp(x)`` as one log-softmax kernel, and the axis
    specs of those logsumexps (the kernel applies only where they reduce the last axis alone).

    ``log_softmax(context, x)`` is the backend's kernel over the last axis. None when
    the plan has no such node. A logsumexp read nowhere else is not computed at all.
    """
    found = log_softmax_nodes(plan)
    if not found:
        return None
    steps = list(program)
    for index, (x, lse, only_here) in found.items():
        node = plan.nodes[index]
        position = node.children.index(x)
        steps[index] = (lambda context, node, args, position=position:
                        log_softmax(context, args[position]), node, node.children)
        if only_here:  # its value is not needed: nothing runs
            steps[lse] = (lambda context, node, args: None, plan.nodes[lse], ())
    return tuple(steps), [plan.nodes[lse]["axis"] for _, lse, _ in found.values()]


def pair_layout(plan: Plan) -> tuple[frozenset[str], str]:
    """For a plan with pair functions: the inputs its other nodes read (brought to the
    (batch, batch) full shape; the pair functions read every input as given), and the input
    whose shape an elementwise output (a gradient) takes (``Plan.wrt``)."""
    direct = frozenset(node["name"] for node in plan.nodes if node.kind == "input")
    return direct, plan.wrt


def check_pair_shapes(shapes: Mapping[str, Sequence], direct: frozenset[str], rows: int) -> None:
    """Refuse an input read directly next to rows over the batch that cannot sit there: next
    to (batch, batch) pair rows it needs rank 2 at most and a last axis of 1 or the batch
    size; next to a triple's (batch, batch, batch) rows, one number per sample (pair
    functions read any input, each sample's elements flattened). Static shapes (None:
    unknown, then the TF runner checks when it runs: ``assert_fits_pair_rows``)."""
    allowed = "(batch,), (batch, 1) or (batch, batch)" if rows == 1 else "(batch,) or (batch, 1)"
    for name in sorted(direct - {UPSTREAM.name}):  # the upstream gradient: at the output's shape
        shape = shapes[name]
        if len(shape) <= 1:  # one number per sample
            continue
        batch, last = shape[0], shape[-1]
        fits = (1, batch) if rows == 1 else (1,)
        if len(shape) > 1 + rows or (len(shape) == 3 and shape[1] not in (1, None)) or (
                None not in (batch, last) and last not in fits):
            raise DSLShapeError(
                f"`{name}` has shape {tuple(shape)} (ranks aligned with the other input's), "
                "and is read outside pair functions: next to their rows, one element per "
                f"sample of the batch, it must be {allowed}.",
                hint="compare embeddings only through pair functions (pair_dist(y_pred)); read "
                     "labels (batch, 1) directly" + (" or a (batch, batch) matrix" if rows == 1
                                                     else ", and a matrix only next to pairs"))


def rows_input(ops: Any, tensor: Tensor, rows: int) -> Tensor:
    """An input read directly next to rows over the batch, with their rank: one number per
    sample as (batch, 1) or (batch, 1, 1) (a triple's), a (batch, batch) matrix, or the
    upstream gradient of a per-sample output that keeps a triple's axes, as given
    (:func:`check_pair_shapes` has refused any other)."""
    while len(tensor.shape) < 1 + rows:  # a gradient's upstream comes as (batch, 1, 1)
        tensor = ops.expand_dims(tensor, -1)
    return tensor


def broadcast_axis(axis: int) -> int:
    """Over triples (a, j, k), the axis a pair function along ``axis`` is broadcast over:
    k (2) for ``axis=-2``, j (1) for ``axis=-1``."""
    return 2 if axis == -2 else 1


def placed_pair(ops: Any, value: Tensor, axis: int, rank: int, full: Any) -> Tensor:
    """A pair function's (batch, batch) value in a plan of rank ``rank``: as it is over pairs;
    over triples (a, j, k), along j (``axis=-2``) or k, brought to the full shape by ``full``
    (a reduction reads an input's value as full-size: ``sum(pair_dist(y_pred, axis=-2),
    axis=-1)`` counts every k)."""
    if rank == 2:
        return value
    return full(ops.expand_dims(value, broadcast_axis(axis)))


def pair_upstream(ops: Any, g: Tensor, axis: int, rank: int) -> Tensor:
    """The gradient w.r.t. a pair function's (batch, batch) value, from ``g`` at the plan's
    full shape: over triples, summed along the axis the function is broadcast over."""
    if rank == 2:
        return g
    return ops.sum(g, axis=broadcast_axis(axis))


def pair_gradient(ops: Any, context: Any, plan: Plan, output: Any, values: list, like: Tensor,
                  rows: Any, like_dynamic: Any) -> Tensor:
    """A gradient in a plan with pair functions, at the shape of its input ``like``.

    The output's node is the part at the (batch, batch) full shape (the constant 0 where the
    input is read only by pair functions). Seen as ``rows`` = (batch, the input's last axis,
    the rest) it is summed over the rest: over the whole row for an input of one number per
    sample, nothing for a (batch, batch) one (the chain rule through the broadcast, decided
    at run time, so an axis unknown when traced is fine). The backward passes of the pair
    functions (``output.added``), at the input's shape already, are added after.
    """
    total, node = None, plan.nodes[output.index]
    if not (node.kind == "constant" and node["value"] == 0.0):
        total = ops.sum(ops.reshape(context.full(values[output.index]), rows), axis=-1)
        total = ops.reshape(total, like_dynamic)
    for index in output.added:
        total = values[index] if total is None else total + values[index]
    return ops.zeros_like(like) if total is None else total  # nothing differentiable: 0


SHARED_STEPS: dict[str, Step] = {
    "input": given_value, "parameter": given_value, "where": where_chain,
    "guarded_where": guarded_where, "logic": logic,
    "constant": lambda context, node, args: context.constant(node["value"]),
    "not": lambda context, node, args: context.logical_not(args[0]),
    "ite": lambda context, node, args: context.where(*args),
}
"""The steps whose meaning is the same on every backend, by kind."""


__all__ = ["Step", "Program", "prepare", "execute", "SHARED_STEPS", "given_value", "where_chain",
           "guarded_where", "logic", "with_log_softmax", "add_terms", "product", "pair_layout",
           "check_pair_shapes", "rows_input", "broadcast_axis", "placed_pair", "pair_upstream", "pair_gradient"]
