"""One lossdsl line as a gradient-boosting objective for XGBoost and LightGBM.

    >>> import numpy as np
    >>> from lossdsl import boosting
    >>> obj = boosting.objective("softplus(y_pred) - y_true*y_pred")  # logistic loss on the margin
    >>> print(obj.hessian)
    sigmoid(-y_pred)*sigmoid(y_pred)
    >>> grad, hess = obj(np.array([1.0, 0.0]), np.array([0.0, 0.0]))
    >>> grad.tolist(), hess.tolist()
    ([-0.5, 0.5], [0.25, 0.25])

``y_pred`` is the **raw margin** (the sum of the trees), never a probability:
write ``sigmoid(y_pred)`` for one. Neither library is imported here.
"""

from __future__ import annotations

from typing import Mapping

from lossdsl.boosting.metric import BoostingMetric
from lossdsl.boosting.diagnostics import FiniteDifferenceReport
from lossdsl.boosting.objective import BoostingObjective
from lossdsl.boosting.second_order import SecondOrder, second_order


def objective(source: str, *, name: str = "lossdsl", hessian_floor: float | None = None,
              hessian_scale: float = 1.0, num_class: int | None = None,
              params: Mapping[str, float] | None = None,
              **param_values: float) -> BoostingObjective:
    """Compile a one-line per-sample loss into an XGBoost/LightGBM custom objective.

    Args:
        source: the loss of one sample, with ``y_pred`` the **raw margin**
            (``sigmoid(y_pred)`` is the probability; ``log_softmax(y_pred)`` the
            log-probabilities of K classes, labels via ``one_hot(y_true)``).
        name: the metric's name in training logs.
        hessian_floor: if given, the Hessian is ``max(hessian, floor)`` (XGBoost's
            ``binary:logistic`` and ``multi:softprob`` floor at 1e-16,
            ``reg:squaredlogerror`` at 1e-6).
        hessian_scale: the Hessian is multiplied by this (XGBoost's
            ``multi:softprob`` uses ``2*p*(1-p)``: scale 2; LightGBM's ``multiclass``
            uses ``K/(K-1)*p*(1-p)``).
        num_class: the number of outputs, for the diagnostics' grid and
            :meth:`BoostingObjective.base_score` (the training call needs none).
        params, **param_values: parameter values (override source defaults).

    Returns:
        A :class:`BoostingObjective`; its ``metric`` is the matching metric.

    Raises:
        LossDSLError: for a mistake in the source or the parameters.

    Warns:
        LossDSLWarning: when the Hessian is negative or zero somewhere on a grid
            over the loss's domain (see :meth:`BoostingObjective.hessian_warnings`).
    """
    values = {**(params or {}), **param_values}
    return BoostingObjective(source, values, name=name, hessian_floor=hessian_floor,
                             hessian_scale=hessian_scale, num_class=num_class)


__all__ = ["objective", "BoostingObjective", "BoostingMetric", "FiniteDifferenceReport",
           "SecondOrder", "second_order"]
