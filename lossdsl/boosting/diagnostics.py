"""Checks a :class:`~lossdsl.boosting.objective.BoostingObjective` offers on itself.

Where the Hessian is negative or zero on a grid over the loss's usual domain
(a Newton step of XGBoost or LightGBM then points the wrong way or blows up),
and the symbolic gradient and Hessian against central finite differences.

    >>> from lossdsl import boosting
    >>> report = boosting.objective("softplus(y_pred) - y_true*y_pred").check()
    >>> report.passed, report.compared
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

from lossdsl.boosting.numpy_eval import NumpyPlan
from lossdsl.ops import one_hot

# Off the labels by 0.01, so that no point sits exactly on a kink such as y_pred == y_true.
DEFAULT_MARGINS = np.linspace(-8.0, 8.0, 161) + 0.01
DEFAULT_LABELS = (0.0, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class FiniteDifferenceReport:
    """Symbolic gradient and Hessian against central finite differences of the loss.

    Attributes:
        passed: both agree within ``rtol``/``atol`` at one point at least.
        gradient_error, hessian_error: the largest
            ``|symbolic - numeric| / (atol + rtol*|numeric|)``.
        y_true, y_pred: the points checked.
        compared: whether any point had finite differences (a check that compared
            nothing is not a pass, and says so).
    """

    passed: bool
    gradient_error: float
    hessian_error: float
    y_true: np.ndarray
    y_pred: np.ndarray
    compared: bool = True

    def __str__(self) -> str:
        if not self.compared:
            return ("gradient and Hessian check INCONCLUSIVE: no point where the loss is "
                    "defined around it (pass y_true and y_pred inside the loss's domain)")
        verdict = "agree" if self.passed else "DISAGREE"
        return (f"gradient and Hessian {verdict} with finite differences "
                f"(worst error/tolerance: gradient {self.gradient_error:.3g}, "
                f"Hessian {self.hessian_error:.3g})")


class ObjectiveDiagnostics:
    """The checks of :class:`~lossdsl.boosting.objective.BoostingObjective`, as a base class.

    They read the objective's source, formulas and plans, and evaluate its loss.
    """

    source: str
    num_class: int | None
    expression: sympy.Expr
    gradient: sympy.Expr
    _plan: NumpyPlan
    _values: dict[sympy.Symbol, float]

    def loss(self, y_true: Any, y_pred: Any) -> np.ndarray:
        raise NotImplementedError

    def _shaped(self, y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray, tuple]:
        raise NotImplementedError

    def _grid(self, y_true: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Labels and margins covering the loss's usual domain, as ``(n, K)`` arrays."""
        classes = self.num_class or (3 if self.expression.has(one_hot) or
                                     self.gradient.has(one_hot) else 1)
        if y_true is None:
            labels = np.arange(classes, dtype=np.float64) if classes > 1 \
                else np.asarray(DEFAULT_LABELS)
        else:
            labels = np.unique(np.asarray(y_true, np.float64).reshape(-1))[:50]
        margin = np.repeat(DEFAULT_MARGINS[:, None], classes, axis=1)
        if classes > 1:  # one margin varies, the others sit at 0
            margin = np.where(np.arange(classes) == 0, margin, 0.0)
        y = np.repeat(labels, len(margin))[:, None]
        return y, np.tile(margin, (len(labels), 1))

    def hessian_warnings(self, y_true: Any = None) -> tuple[str, ...]:
        """Where the Hessian (before floor and scale) is negative or zero on a grid.

        The grid: margins in [-8, 8] and ``y_true`` in ``{0, 0.5, 1, 2, 5}`` (the
        class labels 0..K-1 when the loss uses ``one_hot``), or the distinct
        values of ``y_true`` given; points where the loss is not finite are skipped.
        """
        labels, margin = self._grid(y_true)
        _, hess = self._plan.run({"y_true": labels, "y_pred": margin}, self._values)
        (value,) = self._loss_plan.run({"y_true": labels, "y_pred": margin}, self._values)
        defined = np.isfinite(value) & np.isfinite(hess)
        found = []
        for test, what in ((hess < 0, "negative"), (hess == 0, "zero")):
            bad = np.argwhere(test & defined)
            if len(bad):
                row, col = bad[0]
                found.append(
                    f"The Hessian of `{self.source}` is {what} at y_true={labels[row, 0]:g}, "
                    f"y_pred={margin[row, col]:g} (and {len(bad) - 1} more grid points). XGBoost "
                    "and LightGBM take a Newton step of -sum(grad)/sum(hess) per leaf: a "
                    f"{what} Hessian makes it point the wrong way or blow up. Pass "
                    "hessian_floor=... (the built-ins use 1e-16 or 1e-6).")
        return tuple(found)

    def check(self, y_true: Any = None, y_pred: Any = None, *, step: float = 1e-5,
              rtol: float = 1e-5, atol: float = 1e-7) -> FiniteDifferenceReport:
        """Compare the gradient with central differences of the loss and the Hessian with
        central differences of the gradient, in float64, at the points given or on the grid.

        Points where a difference is not finite (the loss is undefined next to
        them) are skipped; ``passed`` is False when no point is left.
        """
        if y_true is None or y_pred is None:
            labels, margin = self._grid(y_true)
            keep = np.isfinite(self.loss(labels, margin))
            labels, margin = labels[keep], margin[keep]
        else:
            labels, margin, _ = self._shaped(y_true, y_pred)
        grad, hess = self._plan.run({"y_true": labels, "y_pred": margin}, self._values)
        fd_grad, fd_hess = np.zeros_like(margin), np.zeros_like(margin)
        for k in range(margin.shape[1]):
            bump = np.zeros_like(margin)
            bump[:, k] = step * np.maximum(1.0, np.abs(margin[:, k]))
            up, down = self.loss(labels, margin + bump), self.loss(labels, margin - bump)
            fd_grad[:, k] = (up - down) / (2 * bump[:, k])
            g_up, _ = self._plan.run({"y_true": labels, "y_pred": margin + bump}, self._values)
            g_down, _ = self._plan.run({"y_true": labels, "y_pred": margin - bump}, self._values)
            fd_hess[:, k] = (g_up[:, k] - g_down[:, k]) / (2 * bump[:, k])
        errors = [_worst(a, b, rtol, atol) for a, b in ((grad, fd_grad), (hess, fd_hess))]
        compared = bool(np.isfinite(fd_grad).any() and np.isfinite(fd_hess).any())
        return FiniteDifferenceReport(compared and max(errors) <= 1.0, errors[0], errors[1],
                                      labels, margin, compared)


def _worst(symbolic: np.ndarray, numeric: np.ndarray, rtol: float, atol: float) -> float:
    """The largest error/tolerance where the finite difference exists (the loss is defined
    around the point); a symbolic value that is not finite there counts as infinite error."""
    where = np.isfinite(numeric)
    with np.errstate(invalid="ignore"):
        error = np.abs(symbolic[where] - numeric[where]) / (atol + rtol * np.abs(numeric[where]))
    return float(np.max(np.where(np.isfinite(error), error, np.inf), initial=0.0))
