"""Stage 3: IR -> SymPy, with every reduction lifted to a symbol of its own.

The per-sample loss becomes a SymPy expression over real symbols: the inputs
``y_true``/``y_pred``, the parameters, the *reduction symbols* and the *count
symbols* (see :mod:`lossdsl.symbolic.reductions`, whose :class:`ReductionTable`
holds what each reduction symbol means). Parts that no input makes real
(``sqrt(-exp(y_pred))``) are refused here, at the call that builds them.

Semantics (the README's language reference states them for users): every
subexpression is conceptually of the sample's full shape; a reduction's value
is broadcast back over the elements it reduced, as with ``keepdims``.

    >>> from lossdsl.language.ir import parse_source
    >>> lowered = lower(parse_source("mean((y_pred - mean(y_pred))^2)"))
    >>> lowered.output
    mean((-mean(y_pred) + y_pred)**2)
    >>> lower(parse_source("mean(y_pred - mean(y_pred))")).output
    0
    >>> lowered = lower(parse_source("sum(2*y_pred)"))
    >>> lowered.output
    2*sum(y_pred)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from lossdsl import limits
from lossdsl.errors import DSLAxisError, DSLNameError, DSLTypeError, Span
from lossdsl.language import ir
from lossdsl.ops import CONSTANTS, INPUT_NAMES, REGISTRY, Op, PerClass
from lossdsl.ops.rules import power, where
from lossdsl.symbolic.counts import Axis
# Re-exported: derive, stability, fuse, plan, export, latex, explain, domains, backward,
# numpy_eval and tests import the table from here (its home is symbolic/reductions.py).
from lossdsl.symbolic.reductions import (ELEMENTWISE_INPUTS, LINEAR_REDUCTIONS, Reduction,
                                         ReductionTable, axis_text, count_symbol)

_LINEAR_REDUCTIONS = LINEAR_REDUCTIONS  # the old private name, read by lossdsl/tools/plot.py


@dataclass(frozen=True)
class Lowered:
    """A loss in SymPy: the per-sample ``output`` and what its symbols mean."""

    output: sympy.Expr
    table: ReductionTable
    parameters: dict[str, sympy.Symbol]
    defaults: dict[str, float]
    first_use: dict[str, Span]
    columns: dict[int, Span] = field(default_factory=dict)  # x[..., k]: each k's first use


def lower(program: ir.Program, source: str | None = None,
          inputs: tuple[str, ...] = INPUT_NAMES, vectors: tuple[str, ...] = ()) -> Lowered:
    """Lower a checked IR program to SymPy (see the module docstring).

    ``source`` is only used to point at the offending text in errors; the
    parameters named in ``vectors`` take one value per element of the last axis.
    """
    return _Lowerer(program, source, inputs, vectors).run()


class _Lowerer:
    def __init__(self, program: ir.Program, source: str | None,
                 inputs: tuple[str, ...], vectors: tuple[str, ...]) -> None:
        self.program, self.source, self.vectors = program, source, vectors
        self.inputs = {name: sympy.Symbol(name, real=True) for name in inputs}
        self.table = ReductionTable(inputs=frozenset(self.inputs.values()))
        self.locals: dict[str, sympy.Expr] = {}
        self.parameters: dict[str, sympy.Symbol] = {}
        self.defaults: dict[str, float] = {}
        self.first_use: dict[str, Span] = {}
        self.pending = {binding.name for binding in program.bindings}
        self.checked_real: set[sympy.Basic] = set()  # subexpressions with a real value somewhere
        self.columns: dict[int, Span] = {}

    def run(self) -> Lowered:
        for binding in self.program.bindings:
            self.pending.discard(binding.name)
            if binding.is_parameter_default:
                self.defaults[binding.name] = _number_value(binding.value)
                self._parameter(binding.name, binding.span)
            else:
                self.locals[binding.name] = self.expr(binding.value)
        output = self.expr(self.program.body)
        vectors = [name for name in self.vectors if name in self.parameters]
        if vectors and self.table.pairs:  # the last axis of a pair row is the batch, no class
            raise DSLTypeError(
                f"`{vectors[0]}` has one value per element of the last axis, but next to pair "
                "functions the last axis is the batch (the other sample), not a class.",
                source=self.source, span=self.first_use[vectors[0]],
                hint="give it one number, or weight through an extra input (inputs=[...])")
        return Lowered(output, self.table, self.parameters, self.defaults, self.first_use,
                       self.columns)

    def _parameter(self, name: str, span: Span) -> sympy.Symbol:
        self.first_use.setdefault(name, span)
        symbol = PerClass(name) if name in self.vectors else sympy.Symbol(name, real=True)
        return self.parameters.setdefault(name, symbol)

    def expr(self, node: ir.Expr) -> sympy.Expr:
        method = getattr(self, "_" + type(node).__name__.lower())
        value = method(node)
        if not isinstance(node, ir.CONDITIONS):
            limits.check_real_constant(value, self.source, node.span)
            self._check_real_somewhere(value, node)
        return value

    def _check_real_somewhere(self, value: sympy.Expr, node: ir.Expr) -> None:
        """Refuse a part that no input makes real: ``sqrt(-exp(y_pred))``, ``log(-1 - y_pred^2)``.

        SymPy would carry on with ``I`` in the formulas (or a formula TF only
        computes as NaN); it is the user's mistake, so it is reported here, at the call.
        """
        if value.is_number or not _never_real(value, self.checked_real):
            self.checked_real.add(value)
            return
        text = self.source[node.span.start:node.span.end] if self.source else str(node)
        raise DSLTypeError(
            f"`{text}` is not a real number for any input: its argument is negative "
            "whatever the inputs are (or zero at isolated points at best), where TensorFlow "
            "computes NaN.", source=self.source, span=node.span,
            hint="sqrt, log and fractional powers need an argument that can be positive; "
                 "check the signs (e.g. sqrt(exp(y_pred)), log(1 + y_pred^2))")

    def _number(self, node: ir.Number) -> sympy.Expr:
        limits.check_number(node.text, self.source, node.span)
        value = sympy.Float(node.text) if any(c in node.text for c in ".eE") else \
            sympy.Integer(node.text)
        return value

    def _name(self, node: ir.Name) -> sympy.Expr:
        if node.id in self.inputs:
            return self.inputs[node.id]
        if node.id in self.locals:
            return self.locals[node.id]
        if node.id in self.pending:  # before the constants: `x = 2*e; e = ...` is an error
            raise DSLNameError(f"`{node.id}` is used before its binding.",
                               source=self.source, span=node.span,
                               hint="bindings are read left to right; move it earlier")
        if node.id in self.defaults:  # `e = 2;` makes `e` a parameter: bindings shadow constants
            return self._parameter(node.id, node.span)
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        return self._parameter(node.id, node.span)

    def _negate(self, node: ir.Negate) -> sympy.Expr:
        return -self.expr(node.operand)

    def _binary(self, node: ir.Binary) -> sympy.Expr:
        left, right = self.expr(node.left), self.expr(node.right)
        if node.op == "+":
            return left + right
        if node.op == "-":
            return left - right
        if node.op == "*":
            return left * right
        if node.op == "/":
            return left / right
        return self._power(left, right, node.span)

    def _power(self, base: sympy.Expr, exponent: sympy.Expr, span: Span) -> sympy.Expr:
        """``a^b`` and ``pow(a, b)``: one power, one set of limits."""
        limits.check_exponent(exponent, self.source, span)
        limits.check_constant_power(base, exponent, self.source, span)
        return power(base, exponent)

    def _compare(self, node: ir.Compare) -> sympy.Basic:
        left, right = self.expr(node.left), self.expr(node.right)
        relation = {"==": sympy.Eq, "!=": sympy.Ne, "<": sympy.Lt, "<=": sympy.Le,
                    ">": sympy.Gt, ">=": sympy.Ge}[node.op]
        return _without_ite(relation(left, right))

    def _logic(self, node: ir.Logic) -> sympy.Basic:
        join = sympy.And if node.op == "and" else sympy.Or
        return _without_ite(join(self.expr(node.left), self.expr(node.right)))

    def _not(self, node: ir.Not) -> sympy.Basic:
        return _without_ite(sympy.Not(self.expr(node.operand)))

    def _call(self, node: ir.Call) -> sympy.Expr:
        op: Op = REGISTRY[node.function]
        args = [self.expr(arg) for arg in node.args]
        if op.kind == "reduction":
            return self.table.reduce(op.name, args[0], node.axis)
        if op.kind == "normalizer":
            return self._normalizer(op, args[0], node.axis)
        if op.kind == "pairwise":
            return self._pair(op, node, args)
        if op.sympy is power:
            return self._power(*args, node.span)
        if op.sympy is where:  # its Piecewise may fold a comparison with a where into an ITE
            return _without_ite(op.sympy(*args))
        return _real_parts(op.sympy(*args))

    def _column(self, node: ir.Column) -> sympy.Expr:
        """``x[..., k]``: ``sum(one_hot(k) * x, axis=-1)``, so that the gradient scatters
        back into column ``k`` (zeros elsewhere) through the reductions' own rule."""
        x = self.expr(node.operand)
        position = sympy.Integer(node.index) if node.index >= 0 else \
            count_symbol((-1,)) + node.index  # -1: the last column, n[-1] - 1
        self.columns.setdefault(node.index, node.span)
        return self.table.reduce("sum", REGISTRY["one_hot"].sympy(position) * x, (-1,))

    def _pair(self, op: Op, node: ir.Call, args: list[sympy.Expr]) -> sympy.Expr:
        """``pair_dist(y_pred)``: a symbol standing for the (batch, batch) rows of an input
        (``axis=-2``: along the first other sample of a triple)."""
        if node.axis not in ((-1,), (-2,)):
            raise DSLAxisError(
                f"`{op.name}` runs the other sample along axis=-1 (pairs) or axis=-2 (the "
                f"first other sample of a triple), not{axis_text(node.axis)[1:]}.",
                source=self.source, span=node.span,
                hint=f"e.g. {op.name}({'y_pred' if args else ''}) over pairs; "
                     f"{op.name}({'y_pred, ' if args else ''}axis=-2) - "
                     f"{op.name}({'y_pred' if args else ''}) compares (a, p) with (a, n)")
        axis = node.axis[0]
        if not args:
            return self.table.pair(op.name, None, axis)
        (arg,) = args
        if arg not in self.inputs.values():
            raise DSLTypeError(
                f"`{op.name}` compares the samples of an input with each other: its argument "
                f"must be an input as given ({', '.join(self.inputs)}), not a parameter or "
                "an expression.",
                source=self.source, span=node.args[0].span,
                hint=f"e.g. {op.name}(y_pred); pair_cos normalises the vectors itself, and "
                     "a scale goes outside: pair_dot(y_pred) / 0.5")
        return self.table.pair(op.name, arg, axis)

    def _normalizer(self, op: Op, x: sympy.Expr, axis: Axis) -> sympy.Expr:
        # softmax and log_softmax go through logsumexp, whose gradient is the stable softmax.
        log_normalizer = self.table.reduce("logsumexp", x, axis)
        log_softmax = x - log_normalizer
        return log_softmax if op.name == "log_softmax" else sympy.exp(log_softmax)


def _real_parts(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` without ``re``/``im``: every value of the language is real (or NaN where TF's
    real op has none, as ``(-1)^0.5``), but SymPy cannot prove ``y^1.5`` real and writes
    ``abs(2^(y^1.5))`` as ``2^re(y^1.5)``, which no stage after this one knows. (For a root,
    ``abs(exp(sqrt(y)))``, SymPy evaluates ``re`` further, into ``atan2``: not handled.)"""
    if not expr.has(sympy.re, sympy.im):
        return expr
    return expr.replace(sympy.im, lambda x: sympy.Integer(0)).replace(sympy.re, lambda x: x)


def _without_ite(condition: sympy.Basic) -> sympy.Basic:
    """``condition`` with SymPy's if-then-else of conditions as and/or/not.

    SymPy folds a comparison with a ``where`` (``Eq(Piecewise(...), y)``) into an ``ITE``,
    which neither the plan nor the printed DSL has; and/or/not of comparisons say the same.
    """
    if not condition.has(sympy.ITE):
        return condition
    return condition.replace(lambda node: isinstance(node, sympy.ITE), lambda node: node.to_nnf())


def _never_real(value: sympy.Expr, checked: set[sympy.Basic]) -> bool:
    """Whether SymPy can tell that ``value`` is not real for any real inputs and parameters.

    ``checked`` holds subexpressions found real already: the walk skips them, so
    a binding used many times is looked at once, not once per use.
    """
    if value.is_extended_real is False or _has_imaginary_unit(value, checked):
        return True
    # SymPy leaves (-1 - y^2)**0.5 as it is, with no verdict on its realness.
    return (isinstance(value, sympy.Pow) and value.exp.is_number and not value.exp.is_integer
            and bool(value.base.is_extended_negative))


def _has_imaginary_unit(expr: sympy.Basic, checked: set[sympy.Basic]) -> bool:
    pending, seen = [expr], set()
    while pending:
        node = pending.pop()
        if node is sympy.I:
            return True
        for arg in node.args:
            if arg not in seen and arg not in checked:
                seen.add(arg)
                pending.append(arg)
    return False


def _number_value(node: ir.Expr) -> float:
    if isinstance(node, ir.Negate):
        return -_number_value(node.operand)
    assert isinstance(node, ir.Number)
    return node.value

