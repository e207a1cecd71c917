"""Stage 6: the Keras loss class. Importing this module imports Keras (and its backend).

A :class:`DSLLoss` is a ``keras.losses.Loss`` whose ``call`` runs the compiled
formula. Keras's ``Loss.__call__`` does the rest as for its built-ins: dtype
conversion, masks, ``sample_weight`` and the batch reduction. Its config holds
the source text, the parameter values, name, reduction, dtype and gradient
mode, and ``from_config`` compiles the source again, so a saved model reloads
in safe mode with no pickled code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

import keras

from lossdsl.analysis.analyze import CompiledExpression, compile_expression
from lossdsl.analysis.backward import separable
from lossdsl.analysis.formulas import CompiledFormulas
from lossdsl.analysis.precision import warn_lost_constants
from lossdsl.backends.current import backend_functions
from lossdsl.analysis.inputs import check_inputs_used, declared_inputs
from lossdsl.backends.labels import checked_labels, label_tensors
from lossdsl.errors import DSLConfigError, LossDSLError
from lossdsl.lower.plans import forward_plan
from lossdsl.analysis.last_axis import check_last_axis, run_time_requirement

if TYPE_CHECKING:
    from lossdsl.analysis.explain import Explanation

# Keras's reductions that divide by the replica's count or weight sum.
GLOBAL_MEANS = ("sum_over_batch_size", "mean", "mean_with_sample_weight")
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)
GRADIENT_MODES = ("autodiff", "symbolic")
_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "source": (str,), "params": (dict,), "name": (str, type(None)),
    "reduction": (str, type(None)), "dtype": (str, type(None)), "gradient": (str,),
    "inputs": (list, tuple, type(None)),
}


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
        gradient: ``"autodiff"`` (default): the backend's autodiff (TF's tape,
            ``jax.grad``, ``torch.autograd``) differentiates the forward ops;
            ``"symbolic"``: the derived, stabilised gradient formula is the backward
            pass (``tf.custom_gradient``, ``jax.custom_jvp``, a ``torch.autograd.Function``),
            see the README.
        inputs: names of extra elementwise inputs besides ``y_true`` and ``y_pred``
            (a mask, a weight map): ``y_true`` is then a dict ``{"y_true": labels,
            "mask": ...}``, each input brought to ``y_pred``'s rank as ``y_true`` is, and
            broadcast. Only ``y_pred`` is differentiated. In ``fit``, build the model as
            :class:`lossdsl.keras.model.LossInputsModel` so the dict reaches the loss.

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
                 dtype: str | None = None, gradient: str = "autodiff",
                 inputs: Iterable[str] | None = None) -> None:
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
        self.extra_inputs = extra_inputs(source, inputs, params)
        self.compiled = compile_expression(source, params,
                                           inputs=("y_true", "y_pred", *self.extra_inputs))
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
        backend = backend_functions()  # of KERAS_BACKEND: TF's runner, or keras.ops's
        backend.check_dtype(self.dtype)
        warn_lost_constants(self.compiled, self.dtype)
        self.gradient_mode = gradient
        self._batch_inputs = backend.batch_inputs
        # Reductions over the batch axis: global under (MultiWorker)MirroredStrategy, else refused.
        self._batch_statistics = self.compiled.analysis.batch_reductions
        self._check_batch = backend.check_batch_statistics
        plan = forward_plan(self.compiled)
        self._plan = backend.runner(plan)
        # A pair or triple loss may keep rows over the batch per sample, (batch, batch): a
        # weight of one number per sample weights the sample (the row), not the other one.
        self._kept_rows = plan.rows - len(plan.squeezed_axes(2)) if plan.has_pairs else 0
        self._per_sample = backend.symbolic_loss(self.compiled) if gradient == "symbolic" else \
            backend.autodiff_loss(self._plan, separable(self.source, self.compiled.inputs,
                                                        self.compiled.wrt, self.compiled.vectors))

    def explain(self) -> "Explanation":
        """The formulas of this loss, its gradients and where they break (see :func:`lossdsl.explain`)."""
        from lossdsl.analysis.explain import explain_analysis
        return explain_analysis(self.compiled.analysis, self.compiled.params)

    def _repr_latex_(self) -> str:
        return self.explain()._repr_latex_()

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        if self._kept_rows and sample_weight is not None:
            sample_weight = _per_row(sample_weight, self._kept_rows)
        loss = super().__call__(y_true, y_pred, sample_weight)
        if self._batch_statistics and self.reduction in GLOBAL_MEANS and \
                keras.backend.backend() == "tensorflow":
            from lossdsl.backends.tensorflow.replicas import global_loss, global_replica_context
            replica = global_replica_context()
            if replica is not None:  # Keras's mean is the shard's: make it the global batch's
                if _keras_mask(y_pred) is not None:
                    raise DSLConfigError(
                        f"The loss {self.source!r} computes a statistic of the whole batch, and "
                        "its predictions carry a Keras mask: across replicas Keras divides "
                        "by each replica's count of unmasked values, which lossdsl does not make "
                        "global.", hint="train on one replica, or pass the mask as sample_weight "
                                        "with reduction='mean_with_sample_weight'")
                loss = global_loss(replica, loss, keras.ops.convert_to_tensor(y_pred),
                                   sample_weight, self.reduction)
        return loss

    def call(self, y_true: Any, y_pred: Any) -> Any:
        if self._batch_statistics:
            self._check_batch(self._batch_statistics, self.source, global_statistics=True)
        if self.extra_inputs or isinstance(y_true, dict):  # {"y_true": ..., "mask": ...}
            y_true = checked_labels(y_true, self.extra_inputs, self.source)
        y_true, y_pred = self._batch_inputs(y_true, y_pred)
        y_pred = checked_last_axis(self.compiled, [*label_tensors(y_true), y_pred])
        return self._per_sample(y_true, y_pred)

    def get_config(self) -> dict[str, Any]:
        return {"source": self.source, "params": config_params(self.compiled.params),
                "name": self.name, "reduction": self.reduction, "dtype": self.dtype,
                "gradient": self.gradient_mode, **input_config(self.extra_inputs)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DSLLoss":
        return cls(**validated_config(config))

    def __repr__(self) -> str:
        return with_inputs(self._call_text("lossdsl.compile"), self.extra_inputs)


def checked_last_axis(compiled: CompiledExpression, tensors: list[Any]) -> Any:
    """The last of ``tensors`` (the prediction), its last axis checked for the loss's columns
    and vector parameters: from the static shapes (once per trace), else by an assertion
    that runs with the loss (:func:`lossdsl.analysis.last_axis.run_time_requirement`)."""
    prediction = tensors[-1]
    if not (compiled.lowered.columns or compiled.vectors):
        return prediction
    # Labels of a lower rank (class indices) broadcast; they do not set the width.
    shapes = [tuple(t.shape) for t in tensors if len(t.shape) == len(prediction.shape)]
    if check_last_axis(compiled, shapes) is not None:
        return prediction
    return backend_functions().assert_last_axis(prediction, *run_time_requirement(compiled))


def extra_inputs(source: str, inputs: Iterable[str] | None,
                 params: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The checked names of a loss's or metric's extra inputs, each read by ``source``."""
    names = declared_inputs(inputs, params)
    if names:
        from lossdsl.language.ir import parse_source
        check_inputs_used(parse_source(source), names, source)
    return names


def input_config(names: tuple[str, ...]) -> dict[str, list[str]]:
    """``{"inputs": [...]}`` for a config; empty without extra inputs (the config stays as it was)."""
    return {"inputs": list(names)} if names else {}


def with_inputs(call_text: str, names: tuple[str, ...]) -> str:
    """``lossdsl.compile('...', ...)`` with ``inputs=[...]`` added when there are extra inputs."""
    return f"{call_text[:-1]}, inputs={list(names)!r})" if names else call_text


_CONFIG_HINT = "a lossdsl config is what get_config() returns: a dict with `source` and `params`"


def config_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter values as a config holds them: numbers, and lists for vector parameters."""
    return {name: list(value) if isinstance(value, tuple) else value
            for name, value in params.items()}


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
    if any(not isinstance(name, str) for name in config.get("inputs") or ()):
        raise DSLConfigError("The config field `inputs` must be a list of names.",
                             hint="`inputs` lists the loss's extra inputs, e.g. ['mask']")
    for key, value in config.get("params", {}).items():
        items = value if isinstance(value, (list, tuple)) else [value]
        if not isinstance(key, str) or not items or \
                any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in items):
            raise DSLConfigError(f"The config parameter {key!r} must map to a number or a "
                                 "list of numbers.",
                                 hint="`params` maps each parameter's name to a number, or a "
                                      "vector parameter's to its list of values")
    return dict(config)


__all__ = ["DSLLoss", "forward_plan", "validated_config", "extra_inputs", "input_config",
           "with_inputs", "config_params",
           "LossDSLError"]


def _per_row(sample_weight: Any, rows: int) -> Any:
    """One weight per sample, (batch,) or (batch, 1), as (batch, 1, ...) against a per-sample
    loss with ``rows`` axes over the batch: Keras would line it up with the last one."""
    weight = keras.ops.convert_to_tensor(sample_weight)
    if len(weight.shape) == 1 or (len(weight.shape) == 2 and weight.shape[-1] == 1):
        return keras.ops.reshape(weight, (-1,) + (1,) * rows)
    return weight


def _keras_mask(tensor: Any) -> Any:
    """The Keras mask a tensor carries (``keras.src.backend.get_keras_mask``; private)."""
    try:
        from keras.src.backend import get_keras_mask
    except ImportError:  # pragma: no cover
        return getattr(tensor, "_keras_mask", None)
    return get_keras_mask(tensor)
