"""Plot a loss and its derivative w.r.t. ``y_pred`` over a range, for fixed ``y_true`` values.

Each point of the range is one sample, and the curves are the per-sample loss
and its gradient from the backend's autodiff (TF's tape, ``jax.grad``, ``torch.autograd``),
in float64. For a loss that works
elementwise a sample is one element. A loss that mixes the elements of a row
(``log_softmax``, ``y_pred - mean(y_pred)``, ``one_hot``: see :func:`mixes_row`)
would be meaningless on one element, so a sample is a row of :data:`ROW`
elements: element 0 varies, the others are held at a value the plot states.
matplotlib is an optional extra (``pip install 'lossdsl[plot]'``); without it,
:func:`plot_loss` raises :class:`MissingDependency` saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lossdsl.errors import DSLConfigError

DPI = 100
ROW = 4  # elements of the row plotted for a loss that mixes a row's elements
_EDGE = 1e-3  # how far a bounded default range stays from 0 and 1


class MissingDependency(RuntimeError):
    """An optional dependency of a command is not installed."""


def _matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependency(
            "`lossdsl plot` needs matplotlib, which is not installed. "
            "Install it with: pip install 'lossdsl[plot]'  (or: pip install matplotlib)") from None
    return matplotlib, Figure, FigureCanvasAgg


def default_range(source: str, **params: float) -> tuple[float, float]:
    """``(0, 1)`` (ends excluded) when the loss restricts ``y_pred``, else ``(-3, 3)``."""
    from lossdsl.analysis.explain import explain

    report = explain(source, **params)
    bounded = any(c.kind == "domain" and any(s.name == "y_pred" for s in
                                             c.requirement.free_symbols)
                  for c in report.conditions)
    return (_EDGE, 1 - _EDGE) if bounded else (-3.0, 3.0)


def mixes_row(source: str) -> bool:
    """Whether a sample's loss is more than a sum or mean of a function of each element.

    Separable losses are elementwise (``(y_true - y_pred)^2``) or linear in
    means/sums of reduction-free elementwise terms (``mean(a) + 0.1*sum(b)``);
    anything else (``log_softmax``, ``y_pred - mean(y_pred)``, ``max``,
    ``one_hot``) mixes the elements of a row, so one element alone says nothing.
    """
    from lossdsl.analysis.analyze import analyze
    from lossdsl.ops import varies_by_position
    from lossdsl.symbolic.translate import _LINEAR_REDUCTIONS

    analysis = analyze(source)
    expression, table = analysis.expression, analysis.table
    reductions = expression.free_symbols & set(table.reductions)
    if varies_by_position(expression):
        return True
    if not reductions:
        return False
    if expression.free_symbols & table.inputs:  # an element next to a reduction of its row
        return True
    return any(table[r].kind not in _LINEAR_REDUCTIONS or varies_by_position(table[r].arg)
               or table[r].arg.free_symbols & set(table.reductions)
               or expression.diff(r).free_symbols & reductions for r in reductions)


def _takes_labels(source: str) -> bool:
    from lossdsl.tools.check import takes_labels
    from lossdsl.analysis.analyze import analyze

    return takes_labels(analyze(source))


@dataclass(frozen=True)
class Curve:
    """The per-sample loss and d loss / d ``y_pred[0]`` along ``y_pred[0]``.

    Attributes:
        y_pred: the values of element 0 (the x axis).
        loss, gradient: the curves.
        label: the ``y_true`` of the curve, for the legend.
    """

    y_pred: np.ndarray
    loss: np.ndarray
    gradient: np.ndarray
    label: str


def loss_curve(source: str, y_true: float, y_pred: np.ndarray, *, others: float | None = None,
               **params: float) -> Curve:
    """The loss along ``y_pred`` with ``y_true`` fixed.

    With ``others=None`` a sample is one element. Otherwise it is a row of
    :data:`ROW`: ``y_pred = [x, others, ...]`` and ``y_true = [y_true, 0, ...]``
    (one-hot like), or the class label ``y_true`` when the loss takes labels.
    A loss that keeps elements is averaged over the row, as Keras does.
    """
    from lossdsl.analysis.analyze import compile_expression
    from lossdsl.backends.current import backend_functions
    from lossdsl.lower.plans import check_plan

    compiled = compile_expression(source, params)
    if compiled.batch_reductions:  # the grid is fed as one batch: its curve would mix points
        raise DSLConfigError(
            f"A loss with a batch statistic ({', '.join(compiled.batch_reductions)}) has no curve "
            "along one prediction: every sample's value depends on the whole batch.",
            source=source, hint="plot the loss without its axis=0 reductions, or check it "
                                "with `lossdsl check` on a batch")
    x = np.asarray(y_pred, np.float64).reshape(-1)
    width = 1 if others is None else ROW
    rows = np.full((x.size, width), 0.0 if others is None else others)
    rows[:, 0] = x
    if _takes_labels(source):
        targets, label = np.full((x.size,), y_true), f"y_true = class {y_true:g}"
    else:
        targets = np.zeros((x.size, width))
        targets[:, 0] = y_true
        label = f"y_true = {y_true:g}" if width == 1 else \
            f"y_true = [{y_true:g}{', 0' * (width - 1)}]"
    # The plan the gradient check runs: the loss as training runs it, differentiated by
    # the backend's autodiff (TF's tape, jax.grad, torch.autograd), in float64.
    _, _, values, gradient, _ = backend_functions().check_values(
        check_plan(compiled), targets, rows, compiled.values_by_symbol())
    values = values["loss"].reshape(x.size, -1)  # a loss that keeps elements: averaged per row
    return Curve(x, values.mean(axis=1), gradient[:, 0] / values.shape[1], label)


def build_figure(source: str, y_true_values: Sequence[float], *,
                 y_pred_range: Sequence[float] | None = None, size: tuple[int, int] = (900, 450),
                 points: int = 400, **params: float) -> Any:
    """The matplotlib ``Figure``: the loss (left) and its derivative (right), a curve per ``y_true``.

    Raises:
        MissingDependency: matplotlib is not installed.
        LossDSLError: a mistake in the source or the parameters.
    """
    _, Figure, FigureCanvasAgg = _matplotlib()
    low, high = y_pred_range or default_range(source, **params)
    y_pred = np.linspace(low, high, points)
    others = (low + high) / 2 if mixes_row(source) else None
    labels = _takes_labels(source)
    figure = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, gradient_axes = figure.subplots(1, 2)
    for y_true in y_true_values:
        curve = loss_curve(source, y_true, y_pred, others=others, **params)
        loss_axes.plot(curve.y_pred, curve.loss, label=curve.label)
        gradient_axes.plot(curve.y_pred, curve.gradient, label=curve.label)
    if others is None:
        x_label, loss_title, slope = "y_pred", "loss", "d loss / d y_pred"
    else:
        x_label = f"y_pred[0]  (the other {ROW - 1} elements: y_pred = {others:g}" + \
            ("" if labels else ", y_true = 0") + ")"
        loss_title = f"loss of a row y_pred = [x{f', {others:g}' * (ROW - 1)}]"
        slope = "d loss / d y_pred[0]"
    loss_axes.set(xlabel=x_label, ylabel="loss", title=loss_title)
    gradient_axes.set(xlabel=x_label, ylabel=slope, title="gradient")
    for axes in (loss_axes, gradient_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    params_text = ", ".join(f"{k}={v:g}" for k, v in params.items())
    figure.suptitle(source + (f"   ({params_text})" if params_text else ""), fontsize=10)
    return figure


def plot_loss(source: str, y_true_values: Sequence[float], *, output: str | Path,
              y_pred_range: Sequence[float] | None = None, size: tuple[int, int] = (900, 450),
              points: int = 400, **params: float) -> Path:
    """Write a PNG of ``size`` pixels: the loss (left) and its derivative (right).

    See :func:`build_figure`, which draws it.

    Raises:
        MissingDependency: matplotlib is not installed.
        LossDSLError: a mistake in the source or the parameters.
    """
    figure = build_figure(source, y_true_values, y_pred_range=y_pred_range, size=size,
                          points=points, **params)
    path = Path(output)
    figure.savefig(path, dpi=DPI, format="png")
    return path
