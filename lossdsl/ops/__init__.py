"""The function table: every function of the language, defined once.

Each row of :data:`OPS` (an :class:`Op`) gives a DSL function's name, arity,
kind, SymPy form, TensorFlow form (a dotted path under ``tensorflow``, resolved
only when a Keras object is built), NumPy form, LaTeX template, one-line doc,
derivative rules, domain and kinks. Every other table about functions (domain
conditions, infinity warnings, the double-where guard, NumPy evaluation) is
read from these columns. Functions that SymPy lacks (``sigmoid``,
``softplus``, ``xlogy`` ...) are SymPy ``Function`` classes made here
(:mod:`lossdsl.ops.functions`); their derivative rules are a column of the
same row, so a derivative stays in the stable form written there
(``d/dx log(sigmoid(x)) = sigmoid(-x)``) instead of being re-derived from ``exp``.

Modules: :mod:`~lossdsl.ops.row` (the columns), :mod:`~lossdsl.ops.functions`
(SymPy classes), :mod:`~lossdsl.ops.rules` (shared derivative rules, domains,
kinks), :mod:`~lossdsl.ops.table` (:data:`OPS` and its lookups),
:mod:`~lossdsl.ops.latex_template`, :mod:`~lossdsl.ops.numpy_forms` (imports NumPy).
Nothing here imports TensorFlow.

    >>> from lossdsl.ops import REGISTRY
    >>> REGISTRY["softplus"].doc
    'log(1 + exp(x)), computed without overflow'
    >>> REGISTRY["mean"].kind
    'reduction'
"""

from __future__ import annotations

from lossdsl.ops.functions import (DSLFunction, RealStandIn, clip, expm1, lgamma, log1p, maximum,
                                   minimum, one_hot, real_stand_in, relu, sigmoid, softplus, step,
                                   stop_gradient, xdivy, xlog1py, xlogy)
from lossdsl.ops.row import DerivativeRule, Domain, Kind, Kink, Op
from lossdsl.ops.table import (BY_SYMPY_HEAD, CONSTANTS, INPUT_NAMES, OPS, REGISTRY, derivative_may_blow_up,
                               varies_by_position)
from lossdsl.ops.vectors import PerClass, PerClassValues

__all__ = [
    "OPS", "REGISTRY", "BY_SYMPY_HEAD", "INPUT_NAMES", "CONSTANTS", "Op", "Domain", "Kink", "Kind",
    "DerivativeRule", "DSLFunction", "RealStandIn", "real_stand_in", "step",
    "derivative_may_blow_up", "varies_by_position",
    "sigmoid", "softplus", "relu", "log1p", "expm1", "maximum", "minimum", "clip", "xlogy",
    "xdivy", "one_hot", "xlog1py", "lgamma", "stop_gradient", "PerClass", "PerClassValues",
]
