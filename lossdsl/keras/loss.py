"""Stage 6: the Keras loss class. Importing this module imports Keras (and TF).

A :class:`DSLLoss` is a ``keras.losses.Loss`` whose ``call`` runs the compiled
formula. Keras's ``Loss.__call__`` does the rest as for its built-ins: dtype
conversion, masks, ``sample_weight`` and the batch reduction. Its config holds
the source text, the parameter values, name, reduction, dtype and gradient
mode, and ``from_config`` compiles the source again, so a saved model reloads
in safe mode with no pickled code.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Mapping

import keras
import tensorflow as tf

from lossdsl.analysis.analyze import compile_expression
from lossdsl.analysis.backward import separable
from lossdsl.analysis.formulas import CompiledFormulas
from lossdsl.analysis.precision import warn_lost_constants
from lossdsl.backends.tensorflow.custom_gradient import symbolic_loss
from lossdsl.backends.tensorflow.fused import LossFunction, fused_loss, worth_fusing
from lossdsl.backends.tensorflow.run import Runner, run_loss, runner
from lossdsl.errors import DSLConfigError, LossDSLError
from lossdsl.lower.plans import forward_plan

if TYPE_CHECKING:
    from lossdsl.analysis.explain import Explanation

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)
GRADIENT_MODES = ("autodiff", "symbolic")
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


@keras.saving.register_keras_serializable(package="lossdsl", name="DSLLoss")
class DSLLoss(CompiledFormulas, keras.losses.Loss):
    """A Keras loss compiled from a one-line lossdsl expression.

    Formula: the ``source`` expression, evaluated per sample; Keras then
    reduces over the batch with ``reduction``, weighting by ``sample_weight``.

    Args:
        source: the loss, e.g. ``"mean((y_true - y_pred)^2)"``.
        params: values of the expression's parameters (override source defaults).
            ``loss.params`` gives them back read-only: they are built into the
            compiled plan. To change one, compile again
            (``lossdsl.compile(loss.source, beta=5.0)``) or call ``from_config``
            with new ``params``.
        name: the loss's name; defaults to ``"lossdsl"``.
        reduction: any Keras reduction (``"sum_over_batch_size"``, ``"sum"``,
            ``"mean"``, ``"mean_with_sample_weight"``, ``"none"``, None).
        dtype: the dtype the loss computes in; defaults to ``keras.config.floatx()``,
            also under a mixed precision policy (inputs are cast to it, as for Keras's
            losses). A constant of the source that this dtype cannot hold
            (``1 - 1e-7`` is 1.0 in float16) is named in a ``LossDSLWarning``.
        gradient: ``"autodiff"`` (default): TensorFlow differentiates the forward
            ops; ``"symbolic"``: the derived, stabilised gradient formula is the
            backward pass (``tf.custom_gradient``), see the README.

    Examples:

    >>> import numpy as np, lossdsl
    >>> loss = lossdsl.compile("mean((y_true - y_pred)^2)")
    >>> float(loss(np.array([[0.0, 1.0]]), np.array([[1.0, 1.0]])))
    0.5
    >>> loss.gradient
    n = sum(1); 2 * (y_pred - y_true) / n
    """

    def __init__(self, source: str, params: Mapping[str, float] | None = None,
                 name: str | None = None, reduction: str | None = "sum_over_batch_size",
                 dtype: str | None = None, gradient: str = "autodiff") -> None:
        if reduction not in REDUCTIONS:
            raise DSLConfigError(
                f"Invalid reduction. Expected one of {REDUCTIONS}. Received: {reduction!r}.",
                hint="Keras reduces the per-sample losses over the batch: "
                     "'sum_over_batch_size' (the default) averages them")
        if gradient not in GRADIENT_MODES:
            raise DSLConfigError(
                f"Invalid gradient mode. Expected one of {GRADIENT_MODES}. Received: {gradient!r}.",
                hint="'autodiff' lets TensorFlow differentiate; 'symbolic' runs the derived "
                     "gradient (README: Gradient modes)")
        self.compiled = compile_expression(source, params)
        try:
            super().__init__(name=name or "lossdsl", reduction=reduction, dtype=dtype)
        except (ValueError, TypeError) as error:  # Keras refuses the dtype policy
            raise DSLConfigError(f"Invalid dtype {dtype!r}: {error}",
                                 hint="a float dtype such as 'float32' or 'float64', "
                                      "or None for keras.config.floatx()") from error
        # Keras's Loss computes in floatx under a mixed precision policy too; an explicit
        # float16/bfloat16 dtype (or a constant too fine for float32) rounds constants away.
        if not keras.backend.is_float_dtype(self.dtype):  # TF would fail at the first call
            raise DSLConfigError(f"Invalid dtype {dtype!r}: a loss computes in a float dtype.",
                                 hint="'float32', 'float64', ... or None for keras.config.floatx()")
        warn_lost_constants(self.compiled, self.dtype)
        self.gradient_mode = gradient
        self._plan = runner(forward_plan(self.compiled))
        self._per_sample = symbolic_loss(self.compiled) if gradient == "symbolic" else \
            autodiff_loss(self._plan, separable(self.source, self.compiled.inputs, self.compiled.wrt))

    def explain(self) -> "Explanation":
        """The formulas of this loss, its gradients and where they break (see :func:`lossdsl.explain`)."""
        from lossdsl.analysis.explain import explain_analysis
        return explain_analysis(self.compiled.analysis, self.compiled.params)

    def _repr_latex_(self) -> str:
        return self.explain()._repr_latex_()

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return self._per_sample(*batch_inputs(y_true, y_pred))

    def get_config(self) -> dict[str, Any]:
        return {"source": self.source, "params": dict(self.compiled.params),
                "name": self.name, "reduction": self.reduction, "dtype": self.dtype,
                "gradient": self.gradient_mode}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DSLLoss":
        return cls(**validated_config(config))

    def __repr__(self) -> str:
        return self._call_text("lossdsl.compile")


def autodiff_loss(plan: Runner, separable: bool) -> LossFunction:
    """``(y_true, y_pred) -> per-sample loss`` differentiated by TF's tape.

    A large batch of a separable loss inside a graph takes the fused path of
    :mod:`lossdsl.backends.tensorflow.fused`: the tape runs inside one XLA call with the forward ops.
    """
    value = partial(run_loss, plan)
    fused = fused_loss(value, partial(_unit_gradient_by_tape, value),
                       labels_differentiable=True) if separable else None

    def per_sample_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        if fused is not None and worth_fusing(y_true, y_pred):
            return fused(y_true, y_pred, plan.squeezed_axes(y_pred.shape.rank))
        return value(y_true, y_pred)

    return per_sample_loss


def _unit_gradient_by_tape(value: LossFunction, y_true: tf.Tensor, y_pred: tf.Tensor
                           ) -> tf.Tensor:
    """d sum(value) / d y_pred per element of the broadcast shape (not summed where y_pred broadcasts)."""
    y_pred = tf.broadcast_to(y_pred, tf.broadcast_dynamic_shape(tf.shape(y_true), tf.shape(y_pred)))
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        result = value(y_true, y_pred)
    return tape.gradient(result, y_pred, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def batch_inputs(y_true: tf.Tensor, y_pred: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A batch as the plans take it: ``y_true`` cast to ``y_pred``'s dtype, ranks aligned."""
    y_pred = tf.convert_to_tensor(y_pred)
    return align_ranks(tf.cast(y_true, y_pred.dtype), y_pred)


def per_sample_values(plan: Runner, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Run a loss plan on a batch (see :func:`batch_inputs`)."""
    return run_loss(plan, *batch_inputs(y_true, y_pred))


_CONFIG_HINT = "a lossdsl config is what get_config() returns: a dict with `source` and `params`"


def validated_config(config: Mapping[str, Any],
                     field_types: Mapping[str, tuple[type, ...]] = _CONFIG_TYPES
                     ) -> dict[str, Any]:
    """Check a loaded config's keys and types before any of it is used.

    ``field_types`` maps each allowed key to its allowed types (the metric and
    the regularizers pass their own); ``source`` is always required.
    """
    if not isinstance(config, Mapping):
        raise DSLConfigError(f"A lossdsl config must be a dict. Received: {type(config).__name__}.",
                             hint=_CONFIG_HINT)
    unknown = sorted(set(config) - set(field_types))
    if unknown:
        raise DSLConfigError(f"Unknown keys in a lossdsl config: {unknown}.",
                             hint=f"its keys are: {', '.join(field_types)}")
    if "source" not in config:
        raise DSLConfigError("A lossdsl config has no `source`.", hint=_CONFIG_HINT)
    for key, value in config.items():
        if not isinstance(value, field_types[key]):
            expected = " or ".join(t.__name__ for t in field_types[key])
            raise DSLConfigError(
                f"The config field `{key}` has the wrong type: {type(value).__name__}.",
                hint=f"`{key}` must be {expected}")
    for key, value in config.get("params", {}).items():
        if not isinstance(key, str) or isinstance(value, bool) or \
                not isinstance(value, (int, float)):
            raise DSLConfigError(f"The config parameter {key!r} must map to a number.",
                                 hint="`params` maps each parameter's name to a number")
    return dict(config)


__all__ = ["DSLLoss", "align_ranks", "forward_plan", "per_sample_values", "validated_config",
           "LossDSLError"]
