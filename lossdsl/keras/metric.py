"""A Keras metric from a one-line lossdsl expression. Importing this module imports Keras.

A :class:`DSLMetric` evaluates the expression per sample, exactly as
:class:`lossdsl.keras.loss.DSLLoss` does, and keeps Keras's running mean of
those values over every batch seen since the last ``reset_state``, weighted by
``sample_weight`` (it is a ``keras.metrics.MeanMetricWrapper``, as
``keras.metrics.MeanSquaredError`` is). Its config holds the source and the
parameter values; ``from_config`` compiles the source again.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import keras

from lossdsl.analysis.analyze import compile_expression
from lossdsl.analysis.formulas import CompiledFormulas
from lossdsl.errors import DSLConfigError
from lossdsl.backends.current import backend_functions
from lossdsl.backends.labels import checked_labels, label_tensors
from lossdsl.keras.loss import (checked_last_axis, config_params, extra_inputs, input_config,
                                validated_config, with_inputs)
from lossdsl.lower.plans import forward_plan
from lossdsl.analysis.precision import warn_lost_constants

_METRIC_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "source": (str,), "params": (dict,), "name": (str, type(None)), "dtype": (str, type(None)),
    "direction": (str, type(None)), "inputs": (list, tuple, type(None)),
}
DIRECTIONS = ("down", "up", None)


@keras.saving.register_keras_serializable(package="lossdsl", name="DSLMetric")
class DSLMetric(CompiledFormulas, keras.metrics.MeanMetricWrapper):
    """A Keras metric: the mean of a lossdsl expression over the samples seen.

    Formula: ``result = sum_i(sample_weight_i * value_i) / sum_i(sample_weight_i)``
    over every sample ``i`` of every batch since the last ``reset_state``, where
    ``value_i`` is the ``source`` expression for sample ``i``.

    Args:
        source: the per-sample value, in ``y_true`` and ``y_pred``.
        params: values of the expression's parameters (override source defaults).
        name: the metric's name (the key in ``fit``'s history); defaults to
            ``"lossdsl_metric"``.
        dtype: the dtype the metric computes and accumulates in; defaults to
            ``keras.config.floatx()``, also under a mixed precision policy. A constant
            this dtype cannot hold is named in a ``LossDSLWarning``.
        direction: ``"down"`` (lower is better) or ``"up"``, for callbacks such
            as ``EarlyStopping(mode="auto")``; None leaves it unknown to Keras.
        inputs: names of extra elementwise inputs (a mask): ``y_true`` is then a dict
            ``{"y_true": labels, "mask": ...}``, as for :class:`lossdsl.keras.loss.DSLLoss`.

    Examples:

    >>> import numpy as np, lossdsl
    >>> metric = lossdsl.metric("mean(abs(y_true - y_pred))", name="mae")
    >>> metric.update_state(np.array([[0.0, 1.0]]), np.array([[1.0, 1.0]]))
    >>> metric.update_state(np.array([[0.0, 0.0]]), np.array([[1.0, 1.0]]))
    >>> float(metric.result())
    0.75
    """

    def __init__(self, source: str, params: Mapping[str, float] | None = None,
                 name: str | None = None, dtype: str | None = None,
                 direction: str | None = None, inputs: Iterable[str] | None = None) -> None:
        if direction not in DIRECTIONS:
            raise DSLConfigError(
                f"Invalid direction. Expected one of {DIRECTIONS}. Received: {direction!r}.",
                hint="'down' when lower is better (a loss), 'up' when higher is (an accuracy)")
        self.extra_inputs = extra_inputs(source, inputs, params)
        self.compiled = compile_expression(source, params,
                                           inputs=("y_true", "y_pred", *self.extra_inputs))
        super().__init__(fn=self._values, name=name or "lossdsl_metric", dtype=dtype)
        if not keras.backend.is_float_dtype(self.dtype):  # TF would fail at the first call
            raise DSLConfigError(f"Invalid dtype {dtype!r}: a loss computes in a float dtype.",
                                 hint="'float32', 'float64', ... or None for keras.config.floatx()")
        backend = backend_functions()
        backend.check_dtype(self.dtype)
        warn_lost_constants(self.compiled, self.dtype)
        self._plan = backend.runner(forward_plan(self.compiled))
        self._per_sample_values = backend.per_sample_values
        self._batch_statistics = self.compiled.analysis.batch_reductions
        self._check_batch = backend.check_batch_statistics
        self.direction = direction
        if direction is not None:
            self._direction = direction  # read by Keras's monitor callbacks

    def _values(self, y_true: Any, y_pred: Any) -> Any:
        # Compute in the metric's dtype, as Keras's metrics cast their inputs.
        y_pred = keras.ops.cast(y_pred, self.dtype)
        if self._batch_statistics:  # global under tf.distribute's mirrored strategies
            self._check_batch(self._batch_statistics, self.source, global_statistics=True)
        if self.extra_inputs or isinstance(y_true, dict):  # {"y_true": ..., "mask": ...}
            y_true = checked_labels(y_true, self.extra_inputs, self.source)
        y_pred = checked_last_axis(self.compiled, [*label_tensors(y_true), y_pred])
        return self._per_sample_values(self._plan, y_true, y_pred)

    def get_config(self) -> dict[str, Any]:
        return {"source": self.source, "params": config_params(self.compiled.params),
                "name": self.name, "dtype": self.dtype, "direction": self.direction,
                **input_config(self.extra_inputs)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DSLMetric":
        return cls(**validated_config(config, _METRIC_CONFIG_TYPES))

    def __repr__(self) -> str:
        return with_inputs(self._call_text("lossdsl.metric"), self.extra_inputs)


__all__ = ["DSLMetric"]
