"""A lossdsl source as a gradient-boosting objective and metric (XGBoost, LightGBM).

``y_pred`` in the source is the **raw margin** the trees add up, never a
probability: write ``sigmoid(y_pred)`` (or ``softmax(y_pred)``) for one. The
objective returns, per sample and output, the gradient and the diagonal of the
Hessian of the per-sample loss w.r.t. the margin, times the sample's weight;
both are derived symbolically (:mod:`lossdsl.boosting.second_order`) and
evaluated in NumPy float64 (:mod:`lossdsl.boosting.numpy_eval`).
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np
import sympy

from lossdsl.analysis.parameters import bind_parameters
from lossdsl.analysis.formulas import ReadOnlyParams
from lossdsl.errors import DSLTypeError, LossDSLWarning
from lossdsl.boosting.diagnostics import ObjectiveDiagnostics
from lossdsl.boosting.metric import BoostingMetric, labels_and_weights, library_of
from lossdsl.boosting.numpy_eval import NumpyPlan
from lossdsl.boosting.second_order import SecondOrder, second_order


class BoostingObjective(ObjectiveDiagnostics):
    """A custom objective for XGBoost and LightGBM, from one lossdsl line.

    Call it as the library calls it: ``obj(preds, dtrain)`` (``xgb.train(obj=)``),
    ``obj(preds, dataset)`` (LightGBM's ``params["objective"]``), or
    ``obj(y_true, y_pred, sample_weight)`` (the sklearn APIs of both). It returns
    ``(grad, hess)`` shaped like the margins (``(n,)`` or ``(n, K)``), each times the
    sample's weight. :attr:`metric` is the matching evaluation metric.
    """

    def __init__(self, source: str, params: Mapping[str, float], *, name: str = "lossdsl",
                 hessian_floor: float | None = None, hessian_scale: float = 1.0,
                 num_class: int | None = None) -> None:
        self.source, self.name = source, name
        self.formulas: SecondOrder = second_order(source)
        # Read-only: the values are built into the formulas' plans (pickling rebuilds from them).
        self.params = ReadOnlyParams(bind_parameters(self.formulas.analysis, params))
        if num_class is not None and (isinstance(num_class, bool) or not isinstance(num_class, int)
                                      or num_class < 1):
            raise DSLTypeError(f"`num_class` must be a positive integer. Received: {num_class!r}.",
                               hint="the number of margins per sample, e.g. num_class=3")
        for label, value in (("hessian_scale", hessian_scale), ("hessian_floor", hessian_floor)):
            if value is not None and not (np.isfinite(value) and value >= 0):
                raise DSLTypeError(f"`{label}` must be a finite number >= 0. Received: {value!r}.",
                                   hint="see lossdsl.boosting.objective's docstring for what "
                                        "each built-in objective uses")
        self.hessian_floor, self.hessian_scale, self.num_class = \
            hessian_floor, float(hessian_scale), num_class
        f = self.formulas
        self._values = {f.analysis.parameters[k]: v for k, v in self.params.items()}
        self._plan = NumpyPlan([f.gradient, f.hessian], f.table)
        self._loss_plan = NumpyPlan([f.expression], f.table)
        self._elementwise_loss = f.table.constant_axis(f.expression) == ()
        self.metric = BoostingMetric(self)
        self.warnings = self.hessian_warnings()
        for message in self.warnings:
            warnings.warn(LossDSLWarning(message), stacklevel=3)

    def __reduce__(self) -> tuple:
        # Rebuilt from the source on unpickling (joblib, sklearn's clone, LightGBM's
        # deepcopy of params): the SymPy formulas and plans are derived, never stored.
        options = {"name": self.name, "hessian_floor": self.hessian_floor,
                   "hessian_scale": self.hessian_scale, "num_class": self.num_class}
        return _rebuild, (self.source, dict(self.params), options)

    def __deepcopy__(self, memo: dict) -> "BoostingObjective":
        return self  # immutable once built

    def __repr__(self) -> str:
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"lossdsl.boosting.objective({self.source!r}{params})"

    # ------------------------------------------------------------ formulas

    @property
    def expression(self) -> sympy.Expr:
        """The per-sample loss, simplified and stabilised (``y_pred`` is the margin)."""
        return self.formulas.expression

    @property
    def gradient(self) -> sympy.Expr:
        """d loss / d margin, elementwise."""
        return self.formulas.gradient

    @property
    def hessian(self) -> sympy.Expr:
        """d^2 loss / d margin^2, the diagonal, elementwise (before floor and scale)."""
        return self.formulas.hessian

    def explain(self) -> str:
        """The loss, gradient and Hessian as text, with the Hessian's warnings."""
        values = ", ".join(f"{k} = {v!r}" for k, v in self.params.items())
        lines = [f"source      {self.source}",
                 f"parameters  {values or 'none'}",
                 "y_pred is the raw margin", "", "loss", f"  {self.expression}",
                 "d loss / d y_pred", f"  {self.gradient}",
                 "d2 loss / d y_pred2 (diagonal)", f"  {self.hessian}"]
        if self.hessian_scale != 1.0 or self.hessian_floor is not None:
            lines.append(f"  used as max({self.hessian_scale!r} * that, {self.hessian_floor!r})")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    # ------------------------------------------------------------ evaluation

    def _shaped(self, y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray, tuple]:
        margin = np.asarray(y_pred, np.float64)
        shape = margin.shape
        # Explicit sizes, not -1: an empty batch (no point left to check) has no size to infer.
        margin = margin.reshape(len(margin), int(np.prod(shape[1:])))
        labels = np.asarray(y_true, np.float64)
        labels = labels.reshape(len(margin), int(np.prod(labels.shape[1:])))  # (n, 1) or (n, K)
        return labels, margin, shape

    def derivatives(self, y_true: Any, y_pred: Any, sample_weight: Any = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """``(grad, hess)`` at margins ``y_pred``, scaled, floored, weighted, like ``y_pred``."""
        labels, margin, shape = self._shaped(y_true, y_pred)
        grad, hess = self._plan.run({"y_true": labels, "y_pred": margin}, self._values)
        hess = hess * self.hessian_scale
        if self.hessian_floor is not None:
            hess = np.maximum(hess, self.hessian_floor)
        if sample_weight is not None:
            weight = np.asarray(sample_weight, np.float64).reshape(-1, 1)
            grad, hess = grad * weight, hess * weight
        return np.ascontiguousarray(grad).reshape(shape), np.ascontiguousarray(hess).reshape(shape)

    def loss(self, y_true: Any, y_pred: Any) -> np.ndarray:
        """The per-sample loss, shape ``(n,)`` (an elementwise loss is summed over the outputs)."""
        labels, margin, _ = self._shaped(y_true, y_pred)
        (value,) = self._loss_plan.run({"y_true": labels, "y_pred": margin}, self._values)
        return value.sum(axis=1) if self._elementwise_loss else value[:, 0].copy()

    def __call__(self, y_true_or_preds: Any, y_pred_or_data: Any, sample_weight: Any = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        # Exactly three parameters, one named sample_weight: LightGBM's sklearn API
        # passes (y_true, y_pred, weight) when a function takes 3, XGBoost's passes
        # sample_weight= by name; both native APIs pass (preds, data).
        if library_of(y_pred_or_data) is not None:
            labels, weight = labels_and_weights(y_pred_or_data)
            return self.derivatives(labels, y_true_or_preds, weight)
        return self.derivatives(y_true_or_preds, y_pred_or_data, sample_weight)

    def base_score(self, y_true: Any, sample_weight: Any = None, *, num_class: int | None = None,
                   steps: int = 100) -> float | np.ndarray:
        """The best constant margin: argmin over c of sum_i w_i * loss(y_true_i, c).

        Found by Newton's method on the derived gradient and Hessian (halving a
        step that does not lower the loss). A float for one output (XGBoost's
        ``base_score``; LightGBM's ``init_score`` filled with it), a ``(K,)``
        array for ``num_class=K`` outputs (use it as ``base_margin``/``init_score``).
        """
        labels = np.asarray(y_true, np.float64).reshape(-1)
        classes = num_class or self.num_class or 1
        weight = np.ones(len(labels)) if sample_weight is None \
            else np.asarray(sample_weight, np.float64).reshape(-1)
        c = np.zeros(classes)

        def total(c: np.ndarray) -> float:
            margin = np.broadcast_to(c, (len(labels), classes))
            return float(np.sum(weight * self.loss(labels, margin)))

        current = total(c)
        for _ in range(steps):
            grad, hess = self.derivatives(labels, np.broadcast_to(c, (len(labels), classes)),
                                          weight)
            g, h = grad.sum(axis=0), hess.sum(axis=0)
            step = np.where(h > 0, -g / np.where(h > 0, h, 1.0), -np.sign(g))
            for _ in range(40):
                trial = c + step
                value = total(trial)
                if np.isfinite(value) and value <= current:
                    break
                step = step / 2
            else:
                break
            if np.max(np.abs(trial - c)) < 1e-12:
                c, current = trial, value
                break
            c, current = trial, value
        return float(c[0]) if classes == 1 and not (num_class or self.num_class) else c


def _rebuild(source: str, params: dict, options: dict) -> BoostingObjective:
    with warnings.catch_warnings():  # warned when first built
        warnings.simplefilter("ignore", LossDSLWarning)
        return BoostingObjective(source, params, **options)
