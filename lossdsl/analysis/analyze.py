"""The symbolic pipeline as one straight line, without TensorFlow:

    source --parse_source--> IR --lower--> SymPy --stabilize--> --derive--> gradients
           --simplify--> --stabilize--> Analysis

:func:`analyze` is cached by source text (the work does not depend on
parameter values, which stay symbols); :func:`compile_expression` adds the
parameter values and checks them.

    >>> compiled = compile_expression("mean((y_true - y_pred)^2)")
    >>> compiled.gradient
    2*(y_pred - y_true)/n
    >>> compile_expression("mean(-alpha*log(y_pred))", {"alpha": 0.5}).params
    {'alpha': 0.5}
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
import sys
import warnings
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType
from typing import Mapping

import sympy

from lossdsl import limits
from lossdsl.language import ir
from lossdsl.errors import DSLNameError, DSLTypeError, LossDSLWarning, Span
from lossdsl.symbolic.derive import derive
from lossdsl.ops import INPUT_NAMES
from lossdsl.symbolic.simplify import simplify
from lossdsl.symbolic.stability import infinity_warnings, stabilize
from lossdsl.symbolic.translate import Lowered, ReductionTable, lower

COMPILE_CACHE_SIZE = 512


@dataclass(frozen=True)
class Analysis:
    """Everything lossdsl derives from a source text, independent of parameter values.

    Attributes:
        source: the text as given.
        program: the checked IR.
        canonical: the canonical form of the source (parses back to ``program``).
        expression: the per-sample loss, simplified, parameters as symbols.
        gradient: d loss / d ``wrt`` (elementwise), simplified.
        gradient_as_derived: the same before simplification.
        parameter_gradients: per-sample d loss / d parameter, simplified.
        table: what each reduction symbol in the formulas stands for.
        parameters: the parameters' SymPy symbols, in order of first use.
        defaults: parameter defaults bound in the source.
        wrt: the input the gradient is taken with respect to.
        rewrites: names of the stability rewrites that fired (see ``lossdsl.symbolic.stability``).
        inputs: the names of the elementwise inputs.
        warnings: why the loss is infinite somewhere, when that is visible in the
            formula; :func:`compile_expression` emits each as a ``LossDSLWarning``.
    """

    source: str
    program: ir.Program
    canonical: str
    expression: sympy.Expr
    gradient: sympy.Expr
    gradient_as_derived: sympy.Expr
    parameter_gradients: Mapping[str, sympy.Expr]
    table: ReductionTable = field(repr=False)
    parameters: Mapping[str, sympy.Symbol] = field(repr=False)
    defaults: Mapping[str, float] = field(repr=False)
    lowered: Lowered = field(repr=False)
    wrt: str = "y_pred"
    inputs: tuple[str, ...] = INPUT_NAMES
    rewrites: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def analyze(source: str, inputs: tuple[str, ...] = INPUT_NAMES,
            wrt: str = "y_pred") -> Analysis:
    """Parse, lower, stabilize, differentiate and simplify ``source`` (cached by its text)."""
    program = ir.parse_source(source)
    lowered = lower(program, source, inputs)
    # Stable forms first, so that derivatives are taken of them (d softplus = sigmoid).
    forward = stabilize(lowered.table, [lowered.output])
    lowered = replace(lowered, output=forward.exprs[0], table=forward.table)
    names = list(lowered.parameters)
    with limits.located_in(source):  # a derivative too large to build concerns all the source
        raw_gradient = derive(lowered, sympy.Symbol(wrt, real=True))
        formulas = [simplify(lowered.output), simplify(raw_gradient)] + [
            simplify(derive(lowered, lowered.parameters[name])) for name in names]
    # Again after differentiating and simplifying, which can build unstable forms.
    final = stabilize(lowered.table, formulas)
    expression, gradient, *parameter_gradients = final.exprs
    as_derived = raw_gradient.xreplace(final.renamed)
    return Analysis(
        source=source,
        program=program,
        canonical=str(program),
        expression=expression,
        gradient=gradient,
        gradient_as_derived=as_derived,
        parameter_gradients=MappingProxyType(dict(zip(names, parameter_gradients))),
        table=final.table,
        parameters=MappingProxyType(dict(lowered.parameters)),
        defaults=MappingProxyType(dict(lowered.defaults)),
        lowered=replace(lowered, output=expression, table=final.table),
        wrt=wrt,
        inputs=inputs,
        rewrites=tuple(dict.fromkeys(forward.fired + final.fired)),
        warnings=infinity_warnings([expression], final.table),
    )


@dataclass(frozen=True)
class CompiledExpression:
    """An :class:`Analysis` with every parameter given a value."""

    analysis: Analysis
    params: dict[str, float]

    def __getattr__(self, name: str):
        # Formulas and tables are the analysis's; only the values are ours.
        return getattr(self.analysis, name)

    def values_by_symbol(self) -> dict[sympy.Symbol, float]:
        return {self.analysis.parameters[name]: value for name, value in self.params.items()}


def compile_expression(source: str, params: Mapping[str, object] | None = None, *,
                       inputs: tuple[str, ...] = INPUT_NAMES,
                       wrt: str = "y_pred") -> CompiledExpression:
    """Analyze ``source`` and bind its parameters: keywords override source defaults.

    Raises:
        DSLNameError: a parameter has no value, or a keyword names no parameter.
        DSLTypeError: a parameter value is not a finite real number, or makes part of
            the loss a constant without a real value (``log(a)`` at ``a = -1``).
    """
    analysis = analyze(source, tuple(inputs), wrt)
    values = bind_parameters(analysis, params or {})  # a mistake is reported before warnings
    _check_values_keep_it_real(source, tuple(inputs), wrt, tuple(sorted(values.items())))
    for message in analysis.warnings:
        warnings.warn(LossDSLWarning(message), stacklevel=first_level_outside_lossdsl())
    return CompiledExpression(analysis, values)


# The lossdsl package directory (this module is in lossdsl/analysis/).
_PACKAGE_DIRECTORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def first_level_outside_lossdsl() -> int:
    """The ``stacklevel`` that makes a warning of our caller point at the user's line.

    The call chain from the user's ``lossdsl.compile``, ``lossdsl.losses.focal``,
    ``lossdsl.metric`` or ``regularizer`` differs in length, so it is counted.
    """
    frame, level = sys._getframe(1), 1  # level 1: the function that warns
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIRECTORY):
        frame, level = frame.f_back, level + 1
    return level


def bind_parameters(analysis: Analysis, given: Mapping[str, object], *,
                    require_all: bool = True) -> dict[str, float]:
    """The parameters' values: keywords over source defaults, each checked.

    With ``require_all=False`` a parameter without a value is left out
    instead of raising (for showing formulas, which keep parameters as symbols).

    Raises:
        DSLNameError: a parameter has no value, or a keyword names no parameter.
        DSLTypeError: a parameter value is not a finite real number.
    """
    _check_known(analysis, given)
    values = {}
    for name in analysis.parameters:
        if name in given:
            values[name] = _number(analysis, name, given[name])
        elif name in analysis.defaults:
            values[name] = analysis.defaults[name]
        elif require_all:
            raise _missing(analysis, name)
    return values


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def _check_values_keep_it_real(source: str, inputs: tuple[str, ...], wrt: str,
                               items: tuple[tuple[str, float], ...]) -> None:
    """Refuse values that make a part of the loss or its gradient complex or infinite.

    With values in, SymPy folds ``log(a)`` at ``a = -1`` to ``I*pi``, which no backend
    can compute; the part is reported with the parameters it depends on. Cached, as
    ``analyze`` is: compiling the same loss again costs no SymPy work.
    """
    analysis, values = analyze(source, inputs, wrt), dict(items)
    substitution = {analysis.parameters[name]: sympy.Float(value)
                    for name, value in values.items()}
    symbols = set(substitution)
    if not symbols:
        return
    formulas = [analysis.expression, analysis.gradient] + \
        [reduction.arg for reduction in analysis.table.in_order()]
    bad = (sympy.I, sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)
    for formula in formulas:
        for node in sympy.preorder_traversal(formula):
            free = node.free_symbols
            if not free or not free <= symbols:
                continue  # only parts made of parameters and numbers fold to a constant
            used = sorted(str(s) for s in free)
            if not node.xreplace(substitution).has(*bad):
                continue
            if not node.xreplace(substitution).has(*bad):
                continue
            named = ", ".join(f"{name} = {values[name]!r}" for name in used)
            raise DSLTypeError(
                f"With {named}, `{node}` has no finite real value.",
                source=analysis.source,
                span=analysis.lowered.first_use.get(used[0], Span(0, len(analysis.source))),
                hint="choose a value in the part's domain (e.g. log(a) needs a > 0)")


def _check_known(analysis: Analysis, given: Mapping[str, object]) -> None:
    for name in given:
        if name in analysis.parameters:
            continue
        known = list(analysis.parameters)
        close = difflib.get_close_matches(name, known, n=1)
        message = f"`{name}` is not a parameter of this loss."
        if close:
            message += f" Did you mean `{close[0]}`?"
        hint = (f"its parameters are: {', '.join(known)}" if known
                else "this loss has no parameters")
        if name in analysis.inputs or any(b.name == name for b in analysis.program.bindings):
            hint = f"`{name}` is an input or a local definition, not a parameter"
        # The keyword is not in the source: point at the parameter it most likely meant,
        # else at the whole source, so the message still shows what was compiled.
        span = analysis.lowered.first_use.get(close[0]) if close else None
        raise DSLNameError(message, source=analysis.source,
                           span=span or Span(0, len(analysis.source)), hint=hint)


def _missing(analysis: Analysis, name: str) -> DSLNameError:
    nearby = list(analysis.inputs) + [b.name for b in analysis.program.bindings]
    close = difflib.get_close_matches(name, nearby, n=1)
    message = f"The parameter `{name}` has no value."
    if close:
        message += f" Did you mean `{close[0]}`?"
    return DSLNameError(
        message, source=analysis.source, span=analysis.lowered.first_use.get(name),
        hint=f"pass it as lossdsl.compile(..., {name}=VALUE), "
             f"or give a default in the source: `{name} = VALUE; ...`")


def _number(analysis: Analysis, name: str, value: object) -> float:
    is_real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_real or not _is_finite_float(value):
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        hint = (f"pass one number, e.g. {name}=0.5; a parameter is a scalar"
                if isinstance(value, (list, tuple, dict, set)) or hasattr(value, "shape")
                else f"pass a finite number, e.g. {name}=0.5")
        raise DSLTypeError(
            f"The parameter `{name}` must be a finite real number. Received: {shown}.",
            source=analysis.source,
            span=analysis.lowered.first_use.get(name, Span(0, len(analysis.source))), hint=hint)
    return float(value)


def _is_finite_float(value: numbers.Real) -> bool:
    # float() of a 400-digit int raises OverflowError (seen in a crafted .keras config).
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False
