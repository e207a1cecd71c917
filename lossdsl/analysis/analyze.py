"""The symbolic pipeline as one straight line, without TensorFlow:

    source --parse_source--> IR --lower--> SymPy --stabilize--> --derive--> gradients
           --simplify--> --stabilize--> Analysis

:func:`analyze` is cached by source text (the work does not depend on
parameter values, which stay symbols); :func:`compile_expression` adds the
parameter values and checks them (:mod:`~lossdsl.analysis.parameters`). What
both return is defined in :mod:`~lossdsl.analysis.results`.

    >>> compiled = compile_expression("mean((y_true - y_pred)^2)")
    >>> compiled.gradient
    2*(y_pred - y_true)/n
    >>> compile_expression("mean(-alpha*log(y_pred))", {"alpha": 0.5}).params
    {'alpha': 0.5}
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import replace
from functools import lru_cache
from types import MappingProxyType
from typing import Mapping

import sympy

from lossdsl import limits
from lossdsl.analysis.last_axis import check_at_compile_time
from lossdsl.analysis.parameters import (bind_parameters, check_values_keep_it_real,
                                         vector_names)
from lossdsl.analysis.results import Analysis, CompiledExpression
from lossdsl.errors import LossDSLWarning
from lossdsl.language import ir
from lossdsl.limits import COMPILE_CACHE_SIZE
from lossdsl.ops import INPUT_NAMES
from lossdsl.symbolic.derive import derive
from lossdsl.symbolic.simplify import simplify
from lossdsl.symbolic.stability import infinity_warnings, stabilize
from lossdsl.symbolic.translate import lower

# Re-exported (importers across the package read them from here): COMPILE_CACHE_SIZE,
# Analysis, CompiledExpression, bind_parameters.
__all__ = ["analyze", "compile_expression", "first_level_outside_lossdsl", "Analysis",
           "CompiledExpression", "bind_parameters", "vector_names", "COMPILE_CACHE_SIZE"]


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def analyze(source: str, inputs: tuple[str, ...] = INPUT_NAMES,
            wrt: str = "y_pred", vectors: tuple[str, ...] = ()) -> Analysis:
    """Parse, lower, stabilize, differentiate and simplify ``source`` (cached by its text).

    ``vectors`` names the parameters given one value per element of the last axis
    (``w=[1, 2, 5]``): the formulas keep them inside reductions, and no parameter
    gradient is derived for them (it would be one per class, summed over the batch).
    """
    program = ir.parse_source(source)
    lowered = lower(program, source, inputs, vectors)
    # Stable forms first, so that derivatives are taken of them (d softplus = sigmoid).
    forward = stabilize(lowered.table, [lowered.output])
    lowered = replace(lowered, output=forward.exprs[0], table=forward.table)
    names = [name for name in lowered.parameters if name not in vectors]
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
        vectors=tuple(name for name in vectors if name in lowered.parameters),
        rewrites=tuple(dict.fromkeys(forward.fired + final.fired)),
        warnings=infinity_warnings([expression], final.table),
    )


def compile_expression(source: str, params: Mapping[str, object] | None = None, *,
                       inputs: tuple[str, ...] = INPUT_NAMES,
                       wrt: str = "y_pred") -> CompiledExpression:
    """Analyze ``source`` and bind its parameters: keywords override source defaults.

    Raises:
        DSLNameError: a parameter has no value, or a keyword names no parameter.
        DSLTypeError: a parameter value is not a finite real number, or makes part of
            the loss a constant without a real value (``log(a)`` at ``a = -1``).
    """
    analysis = analyze(source, tuple(inputs), wrt, vector_names(params or {}))
    values = bind_parameters(analysis, params or {})  # a mistake is reported before warnings
    _check_values_keep_it_real(source, tuple(inputs), wrt, tuple(sorted(values.items())))
    compiled = CompiledExpression(analysis, values)
    check_at_compile_time(compiled)
    for message in analysis.warnings:
        warnings.warn(LossDSLWarning(message), stacklevel=first_level_outside_lossdsl())
    return compiled


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


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def _check_values_keep_it_real(source: str, inputs: tuple[str, ...], wrt: str,
                               items: tuple[tuple[str, float], ...]) -> None:
    """:func:`check_values_keep_it_real` cached by source and values, as ``analyze`` is.

    Compiling the same loss with the same values again then costs no SymPy work.
    """
    values = dict(items)
    check_values_keep_it_real(analyze(source, inputs, wrt, vector_names(values)), values)
