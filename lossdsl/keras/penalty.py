"""Penalties from one-line lossdsl expressions: weight regularizers and activity penalties.

Importing this module imports Keras. Two inputs name what a penalty sees:

- ``w`` in a :class:`DSLRegularizer` (``kernel_regularizer=`` and friends): a
  weight tensor, which has no batch axis. lossdsl treats it as **a batch of
  one sample**: a reduction with no ``axis`` reduces every axis of the weight,
  and ``axis=1`` is the weight's first axis (sample axes count from 1, as in a
  loss). ``0.5*alpha*sum(w^2)`` is ``0.5*alpha*Σ w²``.
- ``a`` in a :class:`DSLActivityPenalty` (``activity_regularizer=``) and the
  :class:`ActivityPenalty` layer: a layer's activations, batch axis first.
  The expression is the penalty of one sample, as for a loss.

An expression with no reduction is elementwise; its values are summed (as
Keras's ``L1``/``L2`` sum theirs). An input narrower than ``keras.config.floatx()``
(float16 activations under a mixed precision policy) is penalised in floatx.
The gradient w.r.t. the input is derived symbolically like a loss's
(``.gradient``) and evaluated by ``gradient_of``;
training itself differentiates the forward ops with the backend's autodiff, as
``DSLLoss`` does.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import keras

from lossdsl.analysis.analyze import CompiledExpression, analyze, compile_expression
from lossdsl.analysis.formulas import CompiledFormulas
from lossdsl.errors import DSLAxisError, DSLNameError, DSLShapeError
from lossdsl.backends.current import backend_functions
from lossdsl.keras.loss import checked_last_axis, config_params, validated_config
from lossdsl.lower.plans import forward_plan, penalty_gradient_plan

WEIGHT_INPUT = "w"
ACTIVITY_INPUT = "a"
# Names that are an input somewhere in lossdsl; in a penalty only its own one is.
_KNOWN_INPUTS = ("y_true", "y_pred", WEIGHT_INPUT, ACTIVITY_INPUT)
Tensor = Any  # a tensor of the Keras backend in use
_PENALTY_CONFIG_TYPES: dict[str, tuple[type, ...]] = {"source": (str,), "params": (dict,)}


def compile_penalty(source: str, params: Mapping[str, float] | None, input_name: str,
                    role: str) -> CompiledExpression:
    """Compile ``source`` over the single input ``input_name``, gradient w.r.t. it.

    Raises:
        DSLNameError: the source uses another lossdsl input (``y_pred`` in a
            regularizer, say), binds the input's name, or misses a parameter.
    """
    analysis = analyze(source, (input_name,), input_name)
    for binding in analysis.program.bindings:
        if binding.name == input_name:
            raise DSLNameError(
                f"`{input_name}` is the input of {role}; it cannot be bound.",
                source=source, span=binding.span, hint="choose another name for the binding")
    for name in analysis.parameters:
        if name in _KNOWN_INPUTS and name not in analysis.defaults:
            raise DSLNameError(
                f"`{name}` is not an input of {role}.", source=source,
                span=analysis.lowered.first_use.get(name),
                hint=f"{role} sees one input, `{input_name}`")
    pairs = [name for name in analysis.batch_reductions if name.startswith("pair_")]
    if input_name == WEIGHT_INPUT and pairs:
        raise DSLAxisError(
            f"A weight has no batch of samples to compare: {', '.join(pairs)} in {role}.",
            source=source, hint="pair functions compare the samples of a batch (a loss or an "
                                "activity penalty); the weight `w` is one sample")
    if input_name == WEIGHT_INPUT and analysis.batch_reductions:
        raise DSLAxisError(
            f"A weight has no batch axis: {', '.join(analysis.batch_reductions)} reduces "
            f"over axis 0 in {role}.", source=source,
            hint="the weight `w` is one sample: its axes count from 1")
    return compile_expression(source, params, inputs=(input_name,), wrt=input_name)


class _PenaltyBase(CompiledFormulas, keras.regularizers.Regularizer):
    """What both penalties share: compiled formulas, plans, config, gradient."""

    input_name: ClassVar[str]
    role: ClassVar[str]

    def __init__(self, source: str, params: Mapping[str, float] | None = None) -> None:
        self.compiled = compile_penalty(source, params, self.input_name, self.role)
        backend = backend_functions()
        self._plan = backend.runner(forward_plan(self.compiled))
        self._gradient_plan = backend.Runner(penalty_gradient_plan(self.compiled))
        self._batch_statistics = self.compiled.analysis.batch_reductions  # activities only
        self._check_batch = backend.check_batch_statistics

    def _batched(self, x: Tensor) -> Tensor:
        return keras.ops.convert_to_tensor(x)

    def _unbatched(self, x: Tensor) -> Tensor:
        return x

    def _shape_note(self, x: Tensor) -> str:
        return ""

    def _run(self, plan: Any, x: Tensor) -> dict[str, Tensor]:
        try:
            batch = checked_last_axis(self.compiled, [self._batched(_widened(x))])
            return plan.run({self.input_name: batch})
        except DSLShapeError as error:
            raise DSLShapeError(error.message + self._shape_note(x), source=self.source,
                                span=error.span, hint=error.hint) from None

    def __call__(self, x: Tensor) -> Tensor:
        if self._batch_statistics:  # per replica under tf.distribute: refused
            self._check_batch(self._batch_statistics, self.source)
        return keras.ops.sum(self._run(self._plan, x)["loss"])

    def gradient_of(self, x: Tensor) -> Tensor:
        """The derived gradient of ``self(x)`` w.r.t. ``x``, evaluated (shape of ``x``)."""
        x = keras.ops.convert_to_tensor(x)
        gradient = self._unbatched(self._run(self._gradient_plan, x)["gradient"])
        # Computed in floatx (see _widened), returned in the dtype of x, as the tape would.
        return keras.ops.cast(gradient, x.dtype) if keras.backend.is_float_dtype(x.dtype) \
            else gradient

    def get_config(self) -> dict[str, Any]:
        return {"source": self.source, "params": config_params(self.compiled.params)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "_PenaltyBase":
        return cls(**validated_config(config, _PENALTY_CONFIG_TYPES))

    def __repr__(self) -> str:
        return self._call_text(type(self).__name__)


_FLOAT_BITS = {"float16": 16, "bfloat16": 16, "float32": 32, "float64": 64}


def _widened(x: Tensor) -> Tensor:
    """``x`` in ``keras.config.floatx()`` when its float dtype is narrower (mixed precision).

    Layers of a mixed precision model output float16/bfloat16, in which constants
    such as ``1 - 1e-7`` round to 1.0; the penalty computes in floatx, as the loss
    does, and Keras adds a float32 penalty to a float32 loss without a dtype clash.
    """
    x = keras.ops.convert_to_tensor(x)
    dtype, floatx = keras.backend.standardize_dtype(x.dtype), keras.config.floatx()
    narrower = _FLOAT_BITS.get(dtype, 64) < _FLOAT_BITS.get(floatx, 32)
    return keras.ops.cast(x, floatx) if narrower else x


@keras.saving.register_keras_serializable(package="lossdsl", name="DSLRegularizer")
class DSLRegularizer(_PenaltyBase):
    """A ``keras.regularizers.Regularizer`` from a one-line expression in ``w``.

    Formula: the ``source`` expression of the whole weight tensor ``w``, taken
    as a batch of one sample (see the module docstring); elementwise values
    are summed.

    Args:
        source: the penalty, e.g. ``"0.5*alpha*sum(w^2)"``.
        params: values of the expression's parameters (override source defaults).

    Examples:

    >>> import numpy as np, lossdsl
    >>> l2 = lossdsl.regularizer("0.5*alpha*sum(w^2)", alpha=0.5)
    >>> float(l2(np.array([[1.0, 2.0], [0.0, 3.0]])))
    3.5
    >>> l2.gradient
    alpha * w
    """

    input_name = WEIGHT_INPUT
    role = "a weight regularizer"

    def _batched(self, x: Tensor) -> Tensor:
        return keras.ops.expand_dims(keras.ops.convert_to_tensor(x), 0)

    def _unbatched(self, x: Tensor) -> Tensor:
        return keras.ops.squeeze(x, 0)

    def _shape_note(self, x: Tensor) -> str:
        return (f" Here that one sample is the weight `w`, of shape {tuple(x.shape)}: "
                f"its axes are 1 to {len(x.shape)}.")


@keras.saving.register_keras_serializable(package="lossdsl", name="DSLActivityPenalty")
class DSLActivityPenalty(_PenaltyBase):
    """An activity penalty from a one-line expression in ``a``, a layer's activations.

    Formula: the ``source`` expression per sample (elementwise values summed),
    summed over the batch. Used as ``activity_regularizer=``, Keras divides
    that by the batch size and adds it with ``add_loss``: the batch mean of
    the per-sample penalty, as for Keras's own activity regularizers.

    Args:
        source: the per-sample penalty, e.g. ``"beta*sum(abs(a))"``.
        params: values of the expression's parameters (override source defaults).

    Examples:

    >>> import numpy as np, lossdsl
    >>> sparse = lossdsl.activity_penalty("beta*sum(abs(a))", beta=0.5)
    >>> float(sparse(np.array([[1.0, -2.0], [0.0, 3.0]])))
    3.0
    >>> sparse.gradient
    beta * sign(a)
    """

    input_name = ACTIVITY_INPUT
    role = "an activity penalty"


@keras.saving.register_keras_serializable(package="lossdsl", name="ActivityPenalty")
class ActivityPenalty(keras.layers.Layer):
    """A layer that passes its input through and adds a lossdsl penalty of it via ``add_loss``.

    The loss added is the batch mean of the per-sample penalty: the same number
    as ``activity_regularizer=lossdsl.activity_penalty(source)`` on the layer
    before.

    Args:
        source: the per-sample penalty in ``a``, e.g. ``"beta*mean(a^2)"``.
        params: values of the expression's parameters.
        **kwargs: as for any Keras layer (``name``, ``dtype``...).

    Examples:

    >>> import numpy as np, lossdsl
    >>> layer = lossdsl.ActivityPenalty("beta*sum(a^2)", {"beta": 0.5})
    >>> _ = layer(np.array([[1.0, 2.0], [3.0, 0.0]]))
    >>> [float(loss) for loss in layer.losses]
    [3.5]
    """

    def __init__(self, source: str, params: Mapping[str, float] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.penalty = DSLActivityPenalty(source, params)
        self.supports_masking = True

    def call(self, inputs: Tensor) -> Tensor:
        total = self.penalty(inputs)
        batch_size = keras.ops.cast(keras.ops.shape(inputs)[0], total.dtype)
        self.add_loss(keras.ops.divide_no_nan(total, batch_size))
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self.penalty.get_config()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "ActivityPenalty":
        config = dict(config)
        own = {key: config.pop(key) for key in _PENALTY_CONFIG_TYPES if key in config}
        return super().from_config({**config, **validated_config(own, _PENALTY_CONFIG_TYPES)})


__all__ = ["DSLRegularizer", "DSLActivityPenalty", "ActivityPenalty", "compile_penalty",
           "WEIGHT_INPUT", "ACTIVITY_INPUT"]
