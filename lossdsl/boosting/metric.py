"""The matching evaluation metric, and how each library's call is recognised.

Neither library is imported: a ``DMatrix`` or ``Dataset`` is recognised only if
its library has already been imported (which it has, if it made one).
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

import numpy as np


class ScoredObjective(Protocol):
    """What the metric reads of its objective (a ``BoostingObjective``, which imports this
    module: a protocol rather than an import keeps the two modules free of a cycle)."""

    name: str

    def loss(self, y_true: Any, y_pred: Any) -> np.ndarray: ...


def library_of(data: Any) -> str | None:
    """``"xgboost"`` for a DMatrix, ``"lightgbm"`` for a Dataset, else None (no import)."""
    xgb, lgb = sys.modules.get("xgboost"), sys.modules.get("lightgbm")
    if xgb is not None and isinstance(data, xgb.DMatrix):
        return "xgboost"
    if lgb is not None and isinstance(data, lgb.Dataset):
        return "lightgbm"
    return None


def labels_and_weights(data: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The labels and the weights (None when there are none) of a DMatrix or Dataset, float64."""
    weight = data.get_weight()
    weight = None if weight is None or np.size(weight) == 0 else np.asarray(weight, np.float64)
    return np.asarray(data.get_label(), np.float64), weight


class BoostingMetric:
    """The weighted mean of the per-sample loss, as an evaluation metric.

    ``metric(preds, dtrain)`` -> ``(name, value)`` for ``xgb.train(custom_metric=)``;
    ``metric(preds, dataset)`` -> ``(name, value, False)`` for LightGBM's ``feval``;
    ``metric(y_true, y_pred, sample_weight)`` -> the value, for XGBoost's sklearn
    ``eval_metric``. (LightGBM's sklearn ``eval_metric`` wants a tuple: use
    :meth:`lightgbm_sklearn`.)
    """

    def __init__(self, objective: ScoredObjective) -> None:
        self.objective = objective
        self.__name__ = objective.name  # XGBoost's sklearn API names the metric after this

    def __reduce__(self) -> tuple:
        return getattr, (self.objective, "metric")

    def __deepcopy__(self, memo: dict) -> "BoostingMetric":
        return self

    def value(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        """sum(w * loss) / sum(w) over the samples."""
        per_sample = self.objective.loss(y_true, y_pred)
        if sample_weight is None:
            return float(np.mean(per_sample))
        weight = np.asarray(sample_weight, np.float64).reshape(-1)
        return float(np.sum(weight * per_sample) / np.sum(weight))

    def __call__(self, y_true_or_preds: Any, y_pred_or_data: Any, sample_weight: Any = None):
        library = library_of(y_pred_or_data)
        if library is None:
            return self.value(y_true_or_preds, y_pred_or_data, sample_weight)
        labels, weight = labels_and_weights(y_pred_or_data)
        value = self.value(labels, y_true_or_preds, weight)
        return (self.__name__, value) if library == "xgboost" else (self.__name__, value, False)

    def lightgbm_sklearn(self, y_true: Any, y_pred: Any, weight: Any = None
                         ) -> tuple[str, float, bool]:
        """For ``LGBMModel.fit(eval_metric=...)``: ``(name, value, is_higher_better)``."""
        return self.__name__, self.value(y_true, y_pred, weight), False
