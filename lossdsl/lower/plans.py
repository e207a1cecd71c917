"""Every plan a consumer runs, built here and nowhere else.

- :func:`forward_plan`: the loss (and metric, and penalty) value, parameter values
  built in, reductions fused back (one pass over the data);
- :func:`seeded_gradient_plan`: the backward pass of ``gradient="symbolic"``
  (:func:`lossdsl.analysis.backward.backward`), never differentiated;
  :func:`symbolic_plans` pairs it with its forward plan for every backend, and
  :func:`value_and_unit_gradient_plan` computes a separable loss's value and unit
  gradient together (PyTorch's eager backward pass);
- :func:`penalty_gradient_plan`: a penalty's derived gradient (``gradient_of``);
- :func:`check_plan`: the gradient check's loss (the formula the forward plan
  runs), gradients and parameter gradients, parameters given as values so the
  tape can differentiate them;
- :func:`export_plan`: what the exporter prints: the forward plan with the
  parameters as symbols (they become constructor arguments).

All of them go through :func:`plan_of`, so the shape rule, the guards and the
lowering are the same for every use. No TensorFlow here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping

import sympy

from lossdsl.analysis.analyze import (COMPILE_CACHE_SIZE, Analysis, CompiledExpression, analyze,
                                      vector_names)
from lossdsl.analysis.backward import UPSTREAM, backward, separable
from lossdsl.errors import LossDSLError
from lossdsl.lower.build import build
from lossdsl.lower.plan import Output, Plan
from lossdsl.lower.shapes import output_reductions
from lossdsl.ops import PerClassValues, varies_by_position
from lossdsl.symbolic.counts import Count
from lossdsl.symbolic.fuse import fuse_reductions
from lossdsl.symbolic.translate import ReductionTable


def plan_of(outputs: Mapping[str, tuple[sympy.Expr, str]], table: ReductionTable,
            loss: sympy.Expr, loss_table: ReductionTable, *, differentiable: bool = True,
            inputs: frozenset | None = None, wrt: str = "y_pred") -> Plan:
    """The plan computing ``outputs`` (name -> (formula, finish)).

    Args:
        table: what the reduction symbols of the formulas stand for.
        loss, loss_table: the loss formula with its parameters as symbols, and its
            reductions: they decide the per-sample shape (:mod:`lossdsl.lower.shapes`).
        differentiable: whether a tape will differentiate the plan (then risky
            ``where`` branches are guarded).
        inputs: the symbols given by name when the plan runs (default: the table's).
        wrt: the input the elementwise outputs (gradients) are taken with respect to.
    """
    split = {name: _split_backward(formula, table) if finish == "elementwise" else (formula, [])
             for name, (formula, finish) in outputs.items()}
    roots = [direct for direct, _ in split.values()] + [
        term for _, terms in split.values() for term in terms]
    nodes, indices = build(roots, table, inputs=inputs, differentiable=differentiable)
    results, added = [], iter(indices[len(outputs):])
    for (name, (_, finish)), index in zip(outputs.items(), indices):
        results.append(Output(name, index, finish,
                              tuple(next(added) for _ in split[name][1])))
    # Decided once here: runners and the symbolic backward pass ask it on every call.
    rows = _reads_pairs(loss, loss_table) or any(
        node.kind in ("pair", "pair_backward") for node in nodes)
    rows = (2 if loss_table.triples else 1) if rows else 0
    return Plan(nodes, tuple(results), output_reductions(loss, loss_table), differentiable,
                rows, wrt)


def _reads_pairs(loss: sympy.Expr, table: ReductionTable) -> bool:
    """Whether the loss reads a pair function, directly or inside its reductions."""
    pending, seen = list(sympy.sympify(loss).free_symbols), set()
    while pending:
        symbol = pending.pop()
        if symbol in table.pairs:
            return True
        if symbol in table and symbol not in seen:
            seen.add(symbol)
            pending.extend(table[symbol].arg.free_symbols)
    return False


def _split_backward(formula: sympy.Expr, table: ReductionTable
                    ) -> tuple[sympy.Expr, list[sympy.Expr]]:
    """A gradient as (its part at the full shape, the backward passes of pair functions).

    The derivative adds each backward pass once (:mod:`lossdsl.symbolic.derive`), at the
    input's shape, which is not the (batch, batch) shape of the rest: they are added after
    the rest is brought to the input's shape. A gradient is linear in them.
    """
    backward = sorted((s for s in sympy.sympify(formula).free_symbols
                       if s in table.pairs and table.pairs[s].upstream is not None), key=str)
    if not backward:
        return formula, []
    direct = formula.xreplace({symbol: sympy.Integer(0) for symbol in backward})
    terms = []
    for symbol in backward:
        scale = sympy.simplify(sympy.diff(formula, symbol))
        if not scale.is_number:
            raise LossDSLError(f"Internal error: the backward pass {symbol} is scaled by "
                               f"{scale}, which is not a number. Please report this.")
        terms.append(scale * symbol)
    return direct, terms


def _compiled(source: str, inputs: tuple[str, ...], wrt: str,
              params: tuple[tuple[str, float | tuple[float, ...]], ...]) -> CompiledExpression:
    """The compiled loss a cached plan function is keyed by (its analysis is cached too)."""
    return CompiledExpression(analyze(source, inputs, wrt, vector_names(dict(params))),
                              dict(params))


def _values(compiled: CompiledExpression) -> dict[sympy.Symbol, sympy.Expr]:
    values = {symbol: sympy.Float(value) for symbol, value in compiled.values_by_symbol().items()}
    return {**values, **_vectors(compiled)}


def _vectors(compiled: CompiledExpression) -> dict[sympy.Symbol, sympy.Expr]:
    """A vector parameter's values, as one constant of shape (classes,) in every plan."""
    return {compiled.parameters[name]: PerClassValues(name, compiled.params[name])
            for name in compiled.vectors}


def forward_plan(compiled: CompiledExpression, differentiable: bool = True) -> Plan:
    """The plan of a compiled loss's per-sample value, parameter values built in (cached).

    ``differentiable=False`` for a plan no tape differentiates (inside ``tf.custom_gradient``).
    """
    return _forward_plan(compiled.source, compiled.inputs, compiled.wrt,
                         tuple(sorted(compiled.params.items())), differentiable)


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def _forward_plan(source: str, inputs: tuple[str, ...], wrt: str,
                  params: tuple[tuple[str, float], ...], differentiable: bool) -> Plan:
    compiled = _compiled(source, inputs, wrt, params)
    values = _values(compiled)
    # Reductions split for the symbolic work are merged back: one pass over the data.
    expression, table = fuse_reductions(compiled.expression.xreplace(values),
                                        compiled.table.substituted(values))
    return plan_of({"loss": (expression, "per_sample")}, table, compiled.expression,
                   compiled.table, differentiable=differentiable)


def seeded_gradient_plan(compiled: CompiledExpression) -> Plan:
    """The seeded gradient, parameter values built in; inputs ``y_true``, ``y_pred``, ``upstream``."""
    seeded = backward(compiled.source, compiled.inputs, compiled.wrt, compiled.vectors)
    values = _values(compiled)
    formula, table = fuse_reductions(seeded.formula.xreplace(values),
                                     seeded.table.substituted(values))
    # Evaluated, never differentiated: no double-where guard needed.
    return plan_of({"gradient": (formula, "elementwise")}, table, compiled.expression,
                   compiled.table, differentiable=False, inputs=table.inputs | {UPSTREAM},
                   wrt=compiled.wrt)


def symbolic_plans(compiled: CompiledExpression) -> tuple[Plan, Plan, bool]:
    """What ``gradient="symbolic"`` runs: (forward, seeded gradient, separable), cached.

    The forward plan is not differentiated (the derived gradient is the backward
    pass); ``separable``: the gradient is the upstream gradient times a formula of
    the inputs alone (:func:`lossdsl.analysis.backward.separable`), which lets a
    backend evaluate it before the upstream is known (TF's fused path, JAX's ``custom_jvp``).
    Compiling a loss again costs no SymPy work.
    """
    return _symbolic_plans(compiled.source, compiled.inputs, compiled.wrt,
                           tuple(sorted(compiled.params.items())))


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def _symbolic_plans(source: str, inputs: tuple[str, ...], wrt: str, params: tuple[tuple, ...]
                    ) -> tuple[Plan, Plan, bool]:
    compiled = _compiled(source, inputs, wrt, params)
    return (forward_plan(compiled, differentiable=False), seeded_gradient_plan(compiled),
            separable(source, inputs, wrt, compiled.vectors))


def value_and_unit_gradient_plan(compiled: CompiledExpression) -> Plan | None:
    """For a separable loss: its per-sample value and its gradient for an upstream gradient
    of 1 (outputs ``loss``, ``gradient``), in one plan that computes their shared
    reductions once; None for any other loss (cached).

    A backend whose backward pass runs eagerly (PyTorch) computes both in the forward
    pass, so the backward pass is one multiplication by the upstream gradient, as
    autodiff's backward reuses what the forward kept.
    """
    return _value_and_unit_gradient_plan(compiled.source, compiled.inputs, compiled.wrt,
                                         tuple(sorted(compiled.params.items())))


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def _value_and_unit_gradient_plan(source: str, inputs: tuple[str, ...], wrt: str,
                                  params: tuple[tuple, ...]
                                  ) -> Plan | None:
    compiled = _compiled(source, inputs, wrt, params)
    if not separable(source, inputs, wrt, compiled.vectors):
        return None
    seeded = backward(source, inputs, wrt, compiled.vectors)
    values = _values(compiled)
    unit = {**values, UPSTREAM: sympy.Integer(1)}  # a re-derived gradient has it in reductions too
    table = seeded.table.substituted(unit)
    # `sum(upstream, axis=-1)` became `sum(1, axis=-1)`: a count, not a pass over the data.
    counted = {symbol: reduction.arg * (Count(reduction.axis) if reduction.kind == "sum" else 1)
               for symbol, reduction in table.reductions.items()
               if reduction.kind in ("sum", "mean") and not reduction.arg.free_symbols
               and not varies_by_position(reduction.arg)}  # sum(one_hot(1)) is no count
    both = sympy.Tuple(compiled.expression, seeded.formula.xreplace(unit).xreplace(counted))
    (loss, gradient), table = fuse_reductions(both.xreplace(unit), table)
    return plan_of({"loss": (loss, "per_sample"), "gradient": (gradient, "elementwise")}, table,
                   compiled.expression, compiled.table, differentiable=False, wrt=compiled.wrt)


def penalty_gradient_plan(compiled: CompiledExpression) -> Plan:
    """A penalty's derived gradient, parameter values built in, at the input's shape."""
    values = _values(compiled)
    return plan_of({"gradient": (compiled.gradient.xreplace(values), "elementwise")},
                   compiled.table.substituted(values), compiled.expression, compiled.table,
                   wrt=compiled.wrt)


def check_plan(compiled: CompiledExpression) -> Plan:
    """The gradient check's plan: loss, gradient and parameter gradients, parameters as given values.

    Its loss is the formula :func:`forward_plan` runs (reductions fused the same
    way), so the tape differentiates what training differentiates; only the
    parameters stay symbols (given as variables, so the tape also differentiates them).
    """
    vectors = _vectors(compiled)  # no gradient is checked for them: built in as constants
    loss, table = fuse_reductions(compiled.expression.xreplace(vectors),
                                  compiled.table.substituted(vectors))
    outputs = {"loss": (loss, "per_sample"),
               "gradient": (compiled.gradient.xreplace(vectors), "elementwise")}
    outputs.update({f"d/{name}": (formula.xreplace(vectors), "total")
                    for name, formula in compiled.parameter_gradients.items()})
    return plan_of(outputs, table, compiled.expression, compiled.table, wrt=compiled.wrt)


def export_plan(analysis: Analysis) -> Plan:
    """What the exporter prints: the forward plan, reductions fused, parameters as symbols."""
    expression, table = fuse_reductions(analysis.expression, analysis.table)
    return plan_of({"loss": (expression, "per_sample")}, table, analysis.expression,
                   analysis.table)


__all__ = ["plan_of", "forward_plan", "seeded_gradient_plan", "symbolic_plans",
           "value_and_unit_gradient_plan", "penalty_gradient_plan", "check_plan", "export_plan"]
