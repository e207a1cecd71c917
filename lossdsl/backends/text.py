'''The text interpreter of a plan: the same nodes the TF runner runs, printed as Python/TF source.

:func:`print_plan` writes one line ``tN = ...`` per node of a
:class:`lossdsl.lower.plan.Plan`, in its order, each node as
:mod:`lossdsl.backends.tensorflow.run` computes it: a function of
:data:`lossdsl.ops.OPS` by its ``tf`` path (a TF function lossdsl defines itself
is copied by reading its source), SymPy's own nodes by kind, a guarded where
as the "double where". The printed code needs only ``tf`` and the helpers it
names (:data:`lossdsl.backends.text_support.HELPERS`, and the shape rule of :mod:`lossdsl.lower.shapes`,
copied). It differs from the runner only in the TF-only fast paths (XLA forms,
small-first ordering), which change rounding, never values.

Nothing here imports TensorFlow.

    >>> from lossdsl.analysis.analyze import analyze
    >>> from lossdsl.lower.plans import export_plan
    >>> printed = print_plan(export_plan(analyze("mean(abs(y_pred))")), {})
    >>> printed.lines[0]
    't0 = tf.math.abs(y_pred)  # Abs(y_pred)'
'''

from __future__ import annotations

from itertools import count
from typing import Callable, Iterator, Mapping

import sympy

from lossdsl.backends.interpret import broadcast_axis
from lossdsl.backends.text_support import Printed
from lossdsl.errors import LossDSLError
from lossdsl.lower.guards import taken_masks
from lossdsl.lower.plan import Node, Plan

POWER_FUNCTIONS = {"square": "math.square", "sqrt": "math.sqrt", "rsqrt": "math.rsqrt",
                   "reciprocal": "math.reciprocal"}
RELATIONS = {name: f"math.{name}" for name in
             ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal")}
LOGIC = {"and": "math.logical_and", "or": "math.logical_or", "xor": "math.logical_xor"}
_NAN = 'tf.constant(float("nan"), dtype)'
_INLINE = ("input", "parameter", "constant")  # written in place, not named


def print_plan(plan: Plan, parameters: Mapping[str, str],
               fresh: Iterator[str] | None = None) -> Printed:
    """The plan as statements; inputs are the variables of their names.

    Args:
        parameters: parameter name -> the variable holding its value.
        fresh: names for the intermediate values (default ``t0``, ``t1``...).
    """
    printer = _Printer(parameters, fresh or (f"t{i}" for i in count()))
    names = printer.nodes(plan.nodes, plan, [])
    for output in plan.outputs:  # backward passes of pair functions: at the input's shape
        printer.out.outputs[output.name] = printer.finish(names[output.index], output.finish,
                                                          plan) + "".join(
            f" + {names[index]}" for index in output.added)
    return printer.out


class _Printer:
    def __init__(self, parameters: Mapping[str, str], fresh: Iterator[str]) -> None:
        self.parameters, self.fresh, self.out = parameters, fresh, Printed()

    def line(self, code: str, comment: str) -> str:
        """Append ``tN = code`` and return ``tN``."""
        name = next(self.fresh)
        self.out.lines.append(f"{name} = {code}  # {comment}")
        return name

    def nodes(self, nodes: tuple[Node, ...], plan: Plan, given: list[str]) -> list[str]:
        """The code naming each node's value (a line per node but the leaves)."""
        names: list[str] = []
        for node in nodes:
            if node.kind == "given":
                names.append(given[node["index"]])
                continue
            args = [names[i] for i in node.children]
            if node.kind == "guarded_where":
                kinds = [nodes[i].kind for i in node.children]
                names.append(self.guarded_where(node, args, kinds, plan))
                continue
            code = PRINT[node.kind](self, node, args, plan)
            names.append(code if node.kind in _INLINE else self.line(code, _comment(node.expr)))
        return names

    def guarded_where(self, node: Node, args: list[str], kinds: list[str], plan: Plan) -> str:
        """The double where: each branch from its leaves, their gradient cut where it is not taken."""
        conditions, leaves = args[:node["conditions"]], args[node["conditions"]:]
        taken_by = taken_masks(
            conditions, node["has_default"],
            lambda a, b: self.line(f"tf.math.logical_and({a}, {b})", "where the branch applies"),
            lambda a: f"tf.math.logical_not({a})")
        branches = []
        for taken, branch in zip(taken_by, node["branches"]):
            used = {n["index"] for n in branch.nodes if n.kind == "given"}
            given = list(leaves)
            for i in sorted(used):
                # Parameters and counts are constants to the tape (compile has numbers there).
                if node["masked"][i] and kinds[node["conditions"] + i] != "parameter":
                    given[i] = self.line(f"tf.where({taken}, {leaves[i]}, "
                                         f"tf.stop_gradient({leaves[i]}))",
                                         f"{node['leaves'][i]}, differentiated only where "
                                         "this branch is taken")
            branches.append(self.nodes(branch.nodes, plan, given)[branch.result])
        result = branches[-1] if node["has_default"] else _NAN
        for condition, branch_value in reversed(list(zip(conditions, branches))):
            result = f"tf.where({condition}, {branch_value}, {result})"
        return self.line(result, _comment(node.expr))

    def axes(self, axis: object, plan: Plan) -> str:
        """Code for the axes of an axis spec, by the rule of :mod:`lossdsl.lower.shapes`."""
        if axis == "output":
            self.out.helpers.add("output_axes")
            return f"output_axes(rank, {plan.reduced!r})"
        self.out.helpers.add("sample_axes")
        return f"sample_axes(rank, {axis!r})"

    def finish(self, value: str, how: str, plan: Plan) -> str:
        """An output shaped as the TF runner shapes it (lossdsl.lower.plan.FINISHES)."""
        if how == "elementwise":
            return f"tf.broadcast_to({value}, shape)"
        self.out.helpers.add("_per_sample")
        # "total": one number per sample, as if every axis were reduced (reduced = ()).
        reduced = plan.reduced if how == "per_sample" else ()
        return f"_per_sample({value}, shape, rank, {reduced!r})"


def _call(printer: _Printer, node: Node, args: list[str], plan: Plan) -> str:
    """A function of OPS, its arguments shaped as the TF runner shapes them."""
    path = node.op.tf
    function = f"tf.{path}"
    if path.startswith("lossdsl."):  # a TF function lossdsl defines: copied into the module
        function = path.rpartition(".")[2]
        printer.out.functions[function] = path
    if node["by_position"]:  # its value depends on where each element sits: the full shape
        args = [f"tf.broadcast_to({arg}, shape)" for arg in args]
    elif node["broadcast_first"] and not node["first_full"]:
        # Not every TF function broadcasts its first argument (clip_by_value(2, lo, hi));
        # one of an input already has the full shape.
        printer.out.helpers.add("_broadcast_against")
        args = [f"_broadcast_against({args[0]}, [{', '.join(args[1:])}])", *args[1:]]
    return f"{function}({', '.join(args)})"


def _symbol(printer: _Printer, node: Node, args: list[str], plan: Plan) -> str:
    name = node["name"]
    if node.kind == "input":
        return name
    if name not in printer.parameters:
        raise LossDSLError(f"Internal error: cannot export the symbol `{name}`. Please report "
                           "this with the source that produced it.")
    return printer.parameters[name]


def _constant(printer: _Printer, node: Node, args: list[str], plan: Plan) -> str:
    value = node["value"]
    text = repr(value) if value == value and abs(value) != float("inf") else f'float("{value}")'
    return f"tf.constant({text}, dtype)"


def _count(printer: _Printer, node: Node, args: list[str], plan: Plan) -> str:
    printer.out.helpers.add("_count")
    return f"_count(shape, {printer.axes(node['axis'], plan)}, dtype)"


def _reduction(printer: _Printer, node: Node, args: list[str], plan: Plan) -> str:
    arg = f"tf.broadcast_to({args[0]}, shape)" if node["broadcast"] else args[0]  # sum(1)
    return f"tf.{node.op.tf}({arg}, axis={printer.axes(node['axis'], plan)}, keepdims=True)"


def _add(printer: _Printer, node: Node, args: list[str], plan: Plan) -> str:
    signs = node["signs"]
    text = args[0] if signs[0] > 0 else f"-{args[0]}"
    return text + "".join(f" {'+' if s > 0 else '-'} {a}" for s, a in zip(signs[1:], args[1:]))


def _mul(printer: _Printer, node: Node, args: list[str], plan: Plan) -> str:
    split = node["split"]
    return " * ".join(args[:split]) + "".join(f" / {a}" for a in args[split:])


def _power(printer: _Printer, node: Node, args: list[str], plan: Plan) -> str:
    form = node["form"]
    if form in POWER_FUNCTIONS:
        return f"tf.{POWER_FUNCTIONS[form]}({args[0]})"
    if form == "identity":
        return args[0]
    if form == "cube":
        return f"{args[0]} * {args[0]} * {args[0]}"
    if node["exponent"] is None:
        return f"tf.pow({args[0]}, {args[1]})"
    return f"tf.pow({args[0]}, tf.constant({node['exponent']!r}, dtype))"


def _where(printer: _Printer, node: Node, args: list[str], plan: Plan) -> str:
    result = args[-1] if node["has_default"] else _NAN
    for value, condition in reversed(list(zip(args[0::2], args[1::2]))):
        result = f"tf.where({condition}, {value}, {result})"
    return result


def _step(printer: _Printer, node: Node, args: list[str], plan: Plan) -> str:
    printer.out.helpers.add("_step")
    return f"_step({args[0]}, {node['at_zero']!r})"


def _logic(printer: _Printer, node: Node, args: list[str], plan: Plan) -> str:
    result = args[0]
    for arg in args[1:]:
        result = f"tf.{LOGIC[node['name']]}({result}, {arg})"
    return result


PAIRS_MODULE = "lossdsl.backends.tensorflow.pairs"


def _pair(printer: _Printer, node: Node, args: list[str], plan: Plan) -> str:
    """A pair function (or its backward pass) of an input as given: ``<name>_given``."""
    _copy_pair_functions(printer)
    given = f"{node['input'] or 'y_pred'}_given"  # pair_self() takes the batch's size from it
    triples = plan.rows == 2  # placed along j (axis=-2) or k, as lossdsl.backends.interpret's
    if node.kind == "pair":
        value = f"{node['kind']}({given})"
        placed = f"tf.expand_dims({value}, {broadcast_axis(node['axis'])})"
        return f"tf.broadcast_to({placed}, shape)" if triples else value
    upstream = f"tf.broadcast_to({args[0]}, shape)"
    if triples:
        upstream = f"tf.reduce_sum({upstream}, axis={broadcast_axis(node['axis'])})"
    return f"pair_vjp({node['kind']!r}, {upstream}, {given})"


def _copy_pair_functions(printer: _Printer) -> None:
    from lossdsl.backends.text_support import pair_support_names
    for name in pair_support_names(PAIRS_MODULE):
        printer.out.functions[name] = f"{PAIRS_MODULE}.{name}"


Print = Callable[[_Printer, Node, list, Plan], str]

PRINT: dict[str, Print] = {
    "input": _symbol, "parameter": _symbol, "constant": _constant,
    "boolean": lambda printer, node, args, plan: f"tf.constant({node['value']})",
    "count": _count, "call": _call, "reduction": _reduction, "add": _add, "mul": _mul,
    "power": _power, "where": _where, "step": _step, "logic": _logic,
    "relation": lambda printer, node, args, plan:
        f"tf.{RELATIONS[node['name']]}({', '.join(args)})",
    "not": lambda printer, node, args, plan: f"tf.math.logical_not({args[0]})",
    "ite": lambda printer, node, args, plan: f"tf.where({', '.join(args)})",
    "sinh": lambda printer, node, args, plan: f"tf.math.sinh({args[0]})",
    "pair": _pair, "pair_backward": _pair,
}
# "given" and "guarded_where" are printed by the walk itself (they see other nodes).
HANDLED_KINDS = frozenset(PRINT) | {"given", "guarded_where"}


def _comment(expr: sympy.Basic) -> str:
    text = sympy.sstr(expr, full_prec=False)
    return text if len(text) <= 70 else text[:67] + "..."


__all__ = ["print_plan", "PRINT", "HANDLED_KINDS"]
