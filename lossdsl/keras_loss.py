"""Stage 6: the Keras loss class. Importing this module imports Keras (and TF).

A :class:`DSLLoss` is a ``keras.losses.Loss`` whose ``call`` runs the compiled
formula. Keras's ``Loss.__call__`` does the rest as for its built-ins: dtype
conversion, masks, ``sample_weight`` and the batch reduction. Its config holds
the source text, the parameter values, name, reduction, dtype and gradient
mode, and ``from_config`` compiles the source again, so a saved model reloads
in safe mode with no pickled code.
"""

from __future__ import annotations

from typing import Any, Mapping

import keras
import sympy
import tensorflow as tf

from lossdsl.compiler import CompiledExpression, compile_expression
from lossdsl.errors import DSLConfigError, LossDSLError
from lossdsl.tf_lower import TFPlan

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)
GRADIENT_MODES = ("autodiff",)
_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "source": (str,), "params": (dict,), "name": (str, type(None)),
    "reduction": (str, type(None)), "dtype": (str, type(None)), "gradient": (str,),
}


def align_ranks(y_true: tf.Tensor, y_pred: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Make the ranks equal as Keras's built-ins do: drop a trailing 1, else add axes.

    ``y_true`` of shape ``(batch,)`` against ``y_pred`` of shape ``(batch, 1)``
    becomes ``(batch, 1)``; labels ``(batch,)`` against ``(batch, classes)``
    become ``(batch, 1)`` and broadcast along the classes.
    """
    true_rank, pred_rank = y_true.shape.rank, y_pred.shape.rank
    if true_rank == pred_rank + 1 and y_true.shape[-1] == 1:
        y_true = tf.squeeze(y_true, -1)
    elif pred_rank == true_rank + 1 and y_pred.shape[-1] == 1:
        y_pred = tf.squeeze(y_pred, -1)
    while y_true.shape.rank < y_pred.shape.rank:
        y_true = tf.expand_dims(y_true, -1)
    while y_pred.shape.rank < y_true.shape.rank:
        y_pred = tf.expand_dims(y_pred, -1)
    return y_true, y_pred


def forward_plan(compiled: CompiledExpression) -> TFPlan:
    """The TF plan of a compiled loss with its parameter values built in."""
    values = {symbol: sympy.Float(value) for symbol, value in compiled.values_by_symbol().items()}
    expression = compiled.expression.xreplace(values)
    return TFPlan({"loss": (expression, "per_sample")},
                  compiled.table.substituted(values), expression)


@keras.saving.register_keras_serializable(package="lossdsl", name="DSLLoss")
class DSLLoss(keras.losses.Loss):
    """A Keras loss compiled from a one-line lossdsl expression.

    Formula: the ``source`` expression, evaluated per sample; Keras then
    reduces over the batch with ``reduction``, weighting by ``sample_weight``.

    Args:
        source: the loss, e.g. ``"mean((y_true - y_pred)^2)"``.
        params: values of the expression's parameters (override source defaults).
        name: the loss's name; defaults to ``"lossdsl"``.
        reduction: any Keras reduction (``"sum_over_batch_size"``, ``"sum"``,
            ``"mean"``, ``"mean_with_sample_weight"``, ``"none"``, None).
        dtype: the dtype the loss computes in; defaults to ``keras.config.floatx()``.
        gradient: ``"autodiff"``: TensorFlow differentiates the forward ops.

    Examples:

    >>> import numpy as np, lossdsl
    >>> loss = lossdsl.compile("mean((y_true - y_pred)^2)")
    >>> float(loss(np.array([[0.0, 1.0]]), np.array([[1.0, 1.0]])))
    0.5
    >>> loss.gradient
    2*(y_pred - y_true)/n
    """

    def __init__(self, source: str, params: Mapping[str, float] | None = None,
                 name: str | None = None, reduction: str | None = "sum_over_batch_size",
                 dtype: str | None = None, gradient: str = "autodiff") -> None:
        if reduction not in REDUCTIONS:
            raise DSLConfigError(
                f"Invalid reduction. Expected one of {REDUCTIONS}. Received: {reduction!r}.")
        if gradient not in GRADIENT_MODES:
            raise DSLConfigError(
                f"Invalid gradient mode. Expected one of {GRADIENT_MODES}. Received: {gradient!r}.")
        self.compiled = compile_expression(source, params)
        try:
            super().__init__(name=name or "lossdsl", reduction=reduction, dtype=dtype)
        except (ValueError, TypeError) as error:  # Keras refuses the dtype policy
            raise DSLConfigError(f"Invalid dtype {dtype!r}: {error}") from error
        self.gradient_mode = gradient
        self._plan = forward_plan(self.compiled)

    # The symbolic side, for reading: formulas are SymPy expressions.
    source = property(lambda self: self.compiled.source, doc="The source text.")
    params = property(lambda self: dict(self.compiled.params), doc="Parameter values.")
    expression = property(lambda self: self.compiled.expression,
                          doc="The simplified per-sample loss, parameters as symbols.")
    gradient = property(lambda self: self.compiled.gradient,
                        doc="d loss / d y_pred, elementwise, simplified.")
    parameter_gradients = property(lambda self: dict(self.compiled.parameter_gradients),
                                   doc="d loss / d parameter, per sample.")

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        y_pred = tf.convert_to_tensor(y_pred)
        y_true = tf.cast(y_true, y_pred.dtype)
        y_true, y_pred = align_ranks(y_true, y_pred)
        return self._plan.run({"y_true": y_true, "y_pred": y_pred}, {})["loss"]

    def get_config(self) -> dict[str, Any]:
        return {"source": self.source, "params": self.params, "name": self.name,
                "reduction": self.reduction, "dtype": self.dtype,
                "gradient": self.gradient_mode}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DSLLoss":
        return cls(**validated_config(config))

    def __repr__(self) -> str:
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"lossdsl.compile({self.source!r}{params})"


def validated_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check a loaded config's keys and types before any of it is used."""
    if not isinstance(config, Mapping):
        raise DSLConfigError(f"A lossdsl config must be a dict. Received: {type(config).__name__}.")
    unknown = sorted(set(config) - set(_CONFIG_TYPES))
    if unknown:
        raise DSLConfigError(f"Unknown keys in a lossdsl config: {unknown}.")
    if "source" not in config:
        raise DSLConfigError("A lossdsl config has no `source`.")
    for key, value in config.items():
        if not isinstance(value, _CONFIG_TYPES[key]):
            raise DSLConfigError(
                f"The config field `{key}` has the wrong type: {type(value).__name__}.")
    for key, value in config.get("params", {}).items():
        if not isinstance(key, str) or isinstance(value, bool) or \
                not isinstance(value, (int, float)):
            raise DSLConfigError(f"The config parameter {key!r} must map to a number.")
    return dict(config)


__all__ = ["DSLLoss", "align_ranks", "forward_plan", "LossDSLError"]
