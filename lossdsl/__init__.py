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

from lossdsl.check import GradientReport, check_gradients
from lossdsl.compiler import CompiledExpression, analyze, compile_expression
from lossdsl.errors import (DSLArityError, DSLAxisError, DSLConfigError, DSLLimitError,
                            DSLNameError, DSLShapeError, DSLSyntaxError, DSLTypeError,
                            GradientMismatchError, LossDSLError, LossDSLWarning)
from lossdsl.ir import parse_source

if TYPE_CHECKING:
    from lossdsl.keras_loss import DSLLoss

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
        A :class:`lossdsl.keras_loss.DSLLoss`, which also carries ``source``,
        ``params``, ``expression``, ``gradient`` and ``parameter_gradients``.

    Raises:
        LossDSLError: for any mistake in the source or the parameters.

    Examples:

    >>> focal = compile("mean(-alpha*y_true*(1-y_pred)^gamma*log(y_pred))",
    ...                 alpha=0.25, gamma=2.0)
    >>> sorted(focal.params.items())
    [('alpha', 0.25), ('gamma', 2.0)]
    """
    from lossdsl.keras_loss import DSLLoss

    values = {**dict(params or {}), **param_values}
    return DSLLoss(source, values, name=name, reduction=reduction, dtype=dtype,
                   gradient=gradient)


def __getattr__(name: str) -> Any:
    # DSLLoss lives behind Keras; import it only when asked for.
    if name == "DSLLoss":
        from lossdsl.keras_loss import DSLLoss
        return DSLLoss
    raise AttributeError(f"module 'lossdsl' has no attribute {name!r}")


def _register_with_keras_when_loaded() -> None:
    """Make ``keras.models.load_model`` find lossdsl's classes after a plain ``import lossdsl``.

    Keras only finds registered classes, and registering needs Keras imported.
    If Keras is loaded already, register now; otherwise this stays lazy, and
    :func:`lossdsl.compile` or ``import lossdsl.keras_loss`` registers.
    """
    if "keras" in sys.modules and hasattr(sys.modules["keras"], "saving"):
        import lossdsl.keras_loss  # noqa: F401


_register_with_keras_when_loaded()

__all__ = [
    "compile", "check_gradients", "GradientReport", "analyze", "compile_expression",
    "CompiledExpression", "parse_source", "DSLLoss", "LossDSLError", "DSLSyntaxError",
    "DSLNameError", "DSLArityError", "DSLAxisError", "DSLTypeError", "DSLLimitError",
    "DSLShapeError", "DSLConfigError", "GradientMismatchError", "LossDSLWarning",
]
