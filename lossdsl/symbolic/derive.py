"""Stage 4: differentiate a lowered loss, chaining through every reduction.

Reverse mode over the reduction symbols. The total being differentiated is the
sum of the per-sample loss over its own elements (what ``tf.GradientTape``
differentiates when given the output of ``Loss.call``). Working with every
expression at the sample's full shape (reductions broadcast back), each step is:

* an expression ``E`` with adjoint ``a`` sends ``a * dE/dx`` to the input ``x``
  and ``sum over R's axes of a * dE/dR`` to each reduction symbol ``R`` in it;
* a reduction ``R = kind(e)`` with adjoint ``a_R`` gives ``e`` the adjoint
  ``a_R * dR/de``: ``1/n`` for mean, ``1`` for sum, ``exp(e - R)`` for
  logsumexp, the tie-shared indicator for max and min.

Reductions are visited last-made first, which is a reverse topological order
because a reduction's argument can only mention reductions made before it.
The result is elementwise, in the inputs, parameters, reductions and counts; a pair
function of ``wrt`` (``pair_dist(y_pred)``) adds one backward-pass symbol, the gradient of
``sum(g * pair)`` for the derived gradient ``g`` w.r.t. its rows (:func:`_through_pair`):

    >>> from lossdsl.language.ir import parse_source
    >>> from lossdsl.symbolic.translate import lower, ELEMENTWISE_INPUTS
    >>> lowered = lower(parse_source("mean((y_true - y_pred)^2)"))
    >>> derive(lowered, ELEMENTWISE_INPUTS["y_pred"])
    (2*y_pred - 2*y_true)/n
"""

from __future__ import annotations

import sympy

from lossdsl import limits
from lossdsl.ops import OPS, REGISTRY, DSLFunction, real_stand_in
from lossdsl.symbolic.counts import Count
from lossdsl.symbolic.pairs import Pair
from lossdsl.symbolic.simplify import simplify
from lossdsl.symbolic.translate import Axis, Lowered, Reduction, ReductionTable, count_symbol


def derive(lowered: Lowered, wrt: sympy.Symbol, seed: sympy.Expr = sympy.Integer(1)
           ) -> sympy.Expr:
    """d (sum of the per-sample loss, each element times ``seed``) / d ``wrt``, elementwise.

    For an input (``y_pred``) this is the gradient at each element. For a
    parameter, which is one number for every element, it is the per-sample
    total, already summed over the sample's axes. ``seed`` is the upstream
    gradient of each output element (a symbol the table counts as an input, so
    that it is never pulled out of a reduction); 1 by default, as for the tape.
    """
    direct = _Backward(lowered.table, wrt).run(lowered.output, seed)
    pairs = [pair for pair in list(lowered.table.pairs.values()) if pair.input == wrt
             and pair.upstream is None and REGISTRY[pair.kind].derivatives]
    return direct + sum((_through_pair(lowered, pair, seed) for pair in pairs), sympy.Integer(0))


def _through_pair(lowered: Lowered, pair: Pair, seed: sympy.Expr) -> sympy.Expr:
    """The part of the gradient that flows through ``pair``: its backward pass (a symbol,
    computed by the backend's ``pair_vjp``) of the gradient w.r.t. the pair rows.

    Sample k is both a row (i = k) and a column (j = k) of ``pair_dot(x)``, so its
    gradient mixes every sample's: it cannot be one elementwise formula, and is one node.
    """
    upstream = _Backward(lowered.table, pair.symbol).run(lowered.output, seed)
    if upstream == 0:
        return sympy.Integer(0)
    return lowered.table.pair_backward(pair, simplify(upstream))


class _Backward:
    def __init__(self, table: ReductionTable, wrt: sympy.Symbol) -> None:
        self.table, self.wrt = table, wrt
        self.adjoints: dict[sympy.Symbol, sympy.Expr] = {}
        self.per_element: list[sympy.Expr] = []
        self.work = 0  # tree nodes differentiated so far, bounded by limits

    def run(self, output: sympy.Expr, seed: sympy.Expr) -> sympy.Expr:
        forward = self.table.in_order()  # snapshot: backward sums are added as we go
        self._send(output, seed / _copies(self.table, output))
        for reduction in reversed(forward):
            adjoint = self.adjoints.pop(reduction.symbol, sympy.Integer(0))
            if adjoint != 0:
                self._send(reduction.arg, adjoint * _local_derivative(self.table, reduction))
        total = _drop_dirac(sympy.Add(*self.per_element))
        if self.wrt in self.table.inputs:
            return total
        return self.table.reduce("sum", total, None)  # a parameter: total per sample

    def _send(self, expr: sympy.Expr, adjoint: sympy.Expr) -> None:
        """Propagate ``adjoint`` (of the full-shape ``expr``) to its inputs and reductions."""
        limits.check_formula_size(adjoint, "derived gradient")
        for symbol in sorted(expr.free_symbols & set(self.table.reductions), key=str):
            partial = self._partial(expr, symbol)
            if partial != 0:
                axis = self.table[symbol].axis
                contribution = self.table.reduce("sum", adjoint * partial, axis)
                self.adjoints[symbol] = self.adjoints.get(symbol, 0) + contribution
                limits.check_formula_size(self.adjoints[symbol], "derived gradient")
        partial = self._partial(expr, self.wrt)
        if partial != 0:
            self.per_element.append(adjoint * partial)
            limits.check_formula_size(self.per_element[-1], "derived gradient")

    def _partial(self, expr: sympy.Expr, symbol: sympy.Symbol) -> sympy.Expr:
        """d ``expr`` / d ``symbol``, refused up front when it would be too large to build."""
        # Only the terms that mention the symbol: a loss summing R reductions would
        # otherwise differentiate all R terms for each of them (R * R work).
        terms = [term for term in sympy.Add.make_args(expr) if term.has(symbol)]
        self.work += sum(limits.check_derivative_work(term, symbol) for term in terms)
        limits.check_total_work(self.work)
        return _drop_dirac(sympy.Add(*(_real_diff(term, symbol) for term in terms)))


# SymPy heads of real arguments that SymPy differentiates as complex (Abs, sign), each
# with a stand-in that differentiates by its row's `derivatives` (d|u|/du = sign(u), as TF).
_STAND_INS: dict[type, type] = {
    op.sympy: real_stand_in(op) for op in OPS
    if isinstance(op.sympy, type) and not issubclass(op.sympy, DSLFunction) and op.derivatives}


def _real_diff(expr: sympy.Expr, symbol: sympy.Symbol) -> sympy.Expr:
    """``sympy.diff`` with the DSL's real semantics for ``abs`` and ``sign``.

    SymPy only uses sign(u) for d|u|/du when it can prove ``u`` real; for
    ``abs(log(y_pred))`` it returns a complex formula in re/im/atan2, and for
    ``sign(log(y_pred))`` an unevaluated Derivative, neither of which TF can run
    (found by tests/test_fuzz.py). Every DSL value is real, so both are masked
    by stand-ins that differentiate by their rows (:data:`_STAND_INS`).
    """
    if not expr.has(*_STAND_INS):
        return sympy.diff(expr, symbol)
    masked = expr
    for head, stand_in in _STAND_INS.items():
        masked = masked.replace(head, stand_in)
    derivative = sympy.diff(masked, symbol)
    for head, stand_in in _STAND_INS.items():
        derivative = derivative.replace(stand_in, head)
    return derivative


def _copies(table: ReductionTable, output: sympy.Expr) -> sympy.Expr:
    """How many full-shape elements each element of the output stands for."""
    axis = table.constant_axis(output)
    if axis == ():
        return sympy.Integer(1)
    if axis == "mixed":
        return _output_count(table, output)
    return count_symbol(axis)


def _output_count(table: ReductionTable, output: sympy.Expr) -> sympy.Expr:
    """The output's copies when its reductions run over different axes.

    The plan drops the axes that every reduction of the output reduces
    (``lossdsl.lower.shapes.output_axes``); when all of them count from the same end,
    that intersection is known now (``mean(y, axis=1) + f(mean(y, axis=2))``: none, 1
    copy), and the formula stays printable. Otherwise only the plan knows it: ``n_out``.
    """
    specs = table.constant_specs(output) - {None}
    if not all(spec and (all(a > 0 for a in spec) or all(a < 0 for a in spec)) for spec in specs) \
            or len({spec[0] > 0 for spec in specs}) > 1:
        return Count("output")
    common = set.intersection(*(set(spec) for spec in specs))
    return count_symbol(tuple(sorted(common))) if common else sympy.Integer(1)


def _local_derivative(table: ReductionTable, reduction: Reduction) -> sympy.Expr:
    """d reduction / d one element of its argument: the rule in the reduction's row."""
    (rule,) = REGISTRY[reduction.kind].derivatives
    return rule(reduction.arg, reduction.symbol, count_symbol(reduction.axis),
                lambda expr: table.reduce("sum", expr, reduction.axis))


def _drop_dirac(expr: sympy.Expr) -> sympy.Expr:
    """Derivatives of steps and signs are 0 wherever they are defined, as in TF."""
    if not expr.has(sympy.DiracDelta):
        return expr
    return expr.replace(lambda e: isinstance(e, sympy.DiracDelta), lambda e: sympy.Integer(0))


__all__ = ["derive", "Axis"]
