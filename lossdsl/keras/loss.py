"""Stage 6: the Keras loss class. Importing this module imports Keras (and its backend).

A :class:`DSLLoss` is a ``keras.losses.Loss`` whose ``call`` runs the compiled
formula. Keras's ``Loss.__call__`` does the rest as for its built-ins: dtype
conversion, masks, ``sample_weight`` and the batch reduction. Its config holds
the source text, the parameter values, name, reduction, dtype and gradient
mode, and ``from_config`` compiles the source again, so a saved model reloads
in safe mode with no pickled code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import keras

from lossdsl.analysis.analyze import compile_expression
from lossdsl.analysis.backward import separable
from lossdsl.analysis.formulas import CompiledFormulas
from lossdsl.analysis.precision import warn_lost_constants
from lossdsl.backends.current import backend_functions
from lossdsl.errors import DSLConfigError, LossDSLError
from lossdsl.lower.plans import forward_plan
from lossdsl.lower.shapes import check_columns, last_axis_width

if TYPE_CHECKING:
    from lossdsl.analysis.explain import Explanation

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)
GRADIENT_MODES = ("autodiff", "symbolic")
_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "source": (str,), "params": (dict,), "name": (str, type(None)),
    "reduction": (str, type(None)), "dtype": (str, type(None)), "gradient": (str,),
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
        backend = backend_functions()  # of KERAS_BACKEND: TF's runner, or keras.ops's
        backend.check_dtype(self.dtype)
        warn_lost_constants(self.compiled, self.dtype)
        self.gradient_mode = gradient
        self._batch_inputs = backend.batch_inputs
        self._plan = backend.runner(forward_plan(self.compiled))
        self._per_sample = backend.symbolic_loss(self.compiled) if gradient == "symbolic" else \
            backend.autodiff_loss(self._plan, separable(self.source, self.compiled.inputs,
                                                        self.compiled.wrt))

    def explain(self) -> "Explanation":
        """The formulas of this loss, its gradients and where they break (see :func:`lossdsl.explain`)."""
        from lossdsl.analysis.explain import explain_analysis
        return explain_analysis(self.compiled.analysis, self.compiled.params)

    def _repr_latex_(self) -> str:
        return self.explain()._repr_latex_()

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true, y_pred = self._batch_inputs(y_true, y_pred)
        if self.compiled.lowered.columns:  # static shapes: checked once per trace in graphs
            check_columns(self.compiled.lowered.columns,
                          last_axis_width((tuple(y_true.shape), tuple(y_pred.shape))), self.source)
        return self._per_sample(y_true, y_pred)

    def get_config(self) -> dict[str, Any]:
        return {"source": self.source, "params": dict(self.compiled.params),
                "name": self.name, "reduction": self.reduction, "dtype": self.dtype,
                "gradient": self.gradient_mode}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DSLLoss":
        return cls(**validated_config(config))

    def __repr__(self) -> str:
        return self._call_text("lossdsl.compile")


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


__all__ = ["DSLLoss", "forward_plan", "validated_config",
           "LossDSLError"]
