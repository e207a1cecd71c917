"""lossdsl: write a loss as one line, get a Keras loss with its gradient derived and checked.

    >>> import lossdsl
    >>> loss = lossdsl.compile("mean((y_true - y_pred)^2) + 0.1*mean((0.5 - y_pred)^2)")
    >>> loss.gradient
    (2.2*y_pred - 2*y_true - 0.1)/n
    >>> lossdsl.check_gradients(loss).passed
    True

Importing lossdsl, parsing and differentiating do not import TensorFlow; building
a Keras object does.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Mapping

from lossdsl.analysis.analyze import CompiledExpression, analyze, compile_expression
from lossdsl.errors import (DSLArityError, DSLAxisError, DSLConfigError, DSLLimitError,
                            DSLNameError, DSLShapeError, DSLSyntaxError, DSLTypeError,
                            GradientMismatchError, LossDSLError, LossDSLWarning)
from lossdsl.analysis.explain import Explanation, explain
from lossdsl.language.ir import parse_source
from lossdsl import losses  # the loss library; TF is imported only when a loss is built

if TYPE_CHECKING:
    from lossdsl.tools.check import GradientReport, check_gradients
    from lossdsl.keras.loss import DSLLoss
    from lossdsl.keras.metric import DSLMetric
    from lossdsl.keras.penalty import DSLActivityPenalty, DSLRegularizer

__version__ = "0.1.0"


def compile(source: str, *, name: str | None = None,  # noqa: A001 - the public name
            reduction: str | None = "sum_over_batch_size", dtype: str | None = None,
            gradient: str = "autodiff", params: Mapping[str, float] | None = None,
            **param_values: float) -> "DSLLoss":
    """Compile a one-line loss into a ``keras.losses.Loss``.

    Args:
        source: the loss of one sample, e.g. ``"mean((y_true - y_pred)^2)"``.
        name, reduction, dtype: as for any Keras loss.
        gradient: how the backward pass is computed (see the README).
        params: parameter values as a mapping (for names that clash with the
            keywords above).
        **param_values: parameter values, e.g. ``alpha=0.25``; they override
            defaults bound in the source.

    Returns:
        A :class:`lossdsl.keras.loss.DSLLoss`, which also carries ``source``,
        ``params``, ``expression``, ``gradient`` and ``parameter_gradients``.

    Raises:
        LossDSLError: for any mistake in the source or the parameters.

    Examples:

    >>> focal = compile("mean(-alpha*y_true*(1-y_pred)^gamma*log(y_pred))",
    ...                 alpha=0.25, gamma=2.0)
    >>> sorted(focal.params.items())
    [('alpha', 0.25), ('gamma', 2.0)]
    """
    from lossdsl.keras.loss import DSLLoss

    values = {**dict(params or {}), **param_values}
    return DSLLoss(source, values, name=name, reduction=reduction, dtype=dtype,
                   gradient=gradient)


def metric(source: str, *, name: str | None = None, dtype: str | None = None,
           direction: str | None = None, params: Mapping[str, float] | None = None,
           **param_values: float) -> "DSLMetric":
    """Compile a one-line expression into a ``keras.metrics.Metric`` (a running mean).

    See :class:`lossdsl.keras.metric.DSLMetric`; arguments as for :func:`compile`;
    ``direction`` (``"down"``/``"up"``) tells Keras's callbacks which way is better.

    >>> mae = metric("mean(abs(y_true - y_pred))", name="mae")
    >>> mae.name
    'mae'
    """
    from lossdsl.keras.metric import DSLMetric

    return DSLMetric(source, {**dict(params or {}), **param_values}, name=name, dtype=dtype,
                     direction=direction)


def regularizer(source: str, *, params: Mapping[str, float] | None = None,
                **param_values: float) -> "DSLRegularizer":
    """Compile a one-line expression in the weight ``w`` into a ``keras.regularizers.Regularizer``.

    See :class:`lossdsl.keras.penalty.DSLRegularizer` (a weight is a batch of one).

    >>> regularizer("0.5*alpha*sum(w^2)", alpha=0.01).gradient
    1.0*alpha*w
    """
    from lossdsl.keras.penalty import DSLRegularizer

    return DSLRegularizer(source, {**dict(params or {}), **param_values})


def activity_penalty(source: str, *, params: Mapping[str, float] | None = None,
                     **param_values: float) -> "DSLActivityPenalty":
    """Compile a per-sample expression in activations ``a`` for ``activity_regularizer=``.

    See :class:`lossdsl.keras.penalty.DSLActivityPenalty`; for a layer that
    calls ``add_loss`` itself, use :class:`lossdsl.ActivityPenalty`.

    >>> activity_penalty("beta*mean(a^2)", beta=0.1).gradient
    2*a*beta/n
    """
    from lossdsl.keras.penalty import DSLActivityPenalty

    return DSLActivityPenalty(source, {**dict(params or {}), **param_values})


_KERAS_CLASSES = {"DSLLoss": "lossdsl.keras.loss", "DSLMetric": "lossdsl.keras.metric",
                  "DSLRegularizer": "lossdsl.keras.penalty",
                  "DSLActivityPenalty": "lossdsl.keras.penalty",
                  "ActivityPenalty": "lossdsl.keras.penalty"}


def __getattr__(name: str) -> Any:
    # The Keras classes live behind Keras; import them only when asked for.
    if name in _KERAS_CLASSES:
        import importlib
        return getattr(importlib.import_module(_KERAS_CLASSES[name]), name)
    # The gradient check needs numpy; `lossdsl show`/`ops`/`export` start faster without it.
    if name in ("check_gradients", "GradientReport"):
        from lossdsl.tools import check
        return getattr(check, name)
    raise AttributeError(f"module 'lossdsl' has no attribute {name!r}")


def _register_with_keras_when_loaded() -> None:
    """Make ``keras.models.load_model`` find lossdsl's classes after a plain ``import lossdsl``.

    Keras only finds registered classes, and registering needs Keras imported.
    If Keras is loaded already, register now; otherwise this stays lazy, and
    :func:`lossdsl.compile` or ``import lossdsl.keras.loss`` registers.
    """
    if "keras" in sys.modules and hasattr(sys.modules["keras"], "saving"):
        import lossdsl.keras.loss  # noqa: F401
        import lossdsl.keras.metric  # noqa: F401
        import lossdsl.keras.penalty  # noqa: F401


_register_with_keras_when_loaded()

__all__ = [
    "compile", "metric", "regularizer", "activity_penalty", "check_gradients", "losses",
    "explain", "Explanation", "GradientReport", "analyze", "compile_expression",
    "CompiledExpression", "parse_source", "DSLLoss", "DSLMetric",
    "DSLRegularizer", "DSLActivityPenalty", "ActivityPenalty", "LossDSLError", "DSLSyntaxError",
    "DSLNameError", "DSLArityError", "DSLAxisError", "DSLTypeError", "DSLLimitError",
    "DSLShapeError", "DSLConfigError", "GradientMismatchError", "LossDSLWarning",
]
