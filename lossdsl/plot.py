"""Plot a loss and its derivative w.r.t. ``y_pred`` over a range, for fixed ``y_true`` values.

Each point of the range is one sample (a batch of shape ``(points, 1)``), so
the curves are the per-sample loss and its gradient from ``tf.GradientTape``,
in float64. matplotlib is an optional extra (``pip install 'lossdsl[plot]'``);
without it, :func:`plot_loss` raises :class:`MissingDependency` saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

DPI = 100
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
    from lossdsl.explain import explain

    report = explain(source, **params)
    bounded = any(c.kind == "domain" and any(s.name == "y_pred" for s in
                                             c.requirement.free_symbols)
                  for c in report.conditions)
    return (_EDGE, 1 - _EDGE) if bounded else (-3.0, 3.0)


def loss_and_gradient(source: str, y_true: float, y_pred: np.ndarray,
                      **params: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample loss and d loss / d y_pred at each ``y_pred``, with ``y_true`` fixed."""
    import tensorflow as tf

    import lossdsl

    loss = lossdsl.compile(source, reduction="none", dtype="float64", **params)
    predictions = tf.constant(np.asarray(y_pred, np.float64).reshape(-1, 1))
    targets = tf.fill(tf.shape(predictions), tf.constant(y_true, tf.float64))
    with tf.GradientTape() as tape:
        tape.watch(predictions)
        values = loss(targets, predictions)
        total = tf.reduce_sum(values)
    gradient = tape.gradient(total, predictions)
    return values.numpy().reshape(-1), gradient.numpy().reshape(-1)


def plot_loss(source: str, y_true_values: Sequence[float], *, output: str | Path,
              y_pred_range: Sequence[float] | None = None, size: tuple[int, int] = (900, 450),
              points: int = 400, **params: float) -> Path:
    """Write a PNG of ``size`` pixels: the loss (left) and its derivative (right).

    Raises:
        MissingDependency: matplotlib is not installed.
        LossDSLError: a mistake in the source or the parameters.
    """
    _, Figure, FigureCanvasAgg = _matplotlib()
    low, high = y_pred_range or default_range(source, **params)
    y_pred = np.linspace(low, high, points)
    figure = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, gradient_axes = figure.subplots(1, 2)
    for y_true in y_true_values:
        values, gradient = loss_and_gradient(source, y_true, y_pred, **params)
        loss_axes.plot(y_pred, values, label=f"y_true = {y_true:g}")
        gradient_axes.plot(y_pred, gradient, label=f"y_true = {y_true:g}")
    loss_axes.set(xlabel="y_pred", ylabel="loss", title="loss")
    gradient_axes.set(xlabel="y_pred", ylabel="d loss / d y_pred", title="gradient")
    for axes in (loss_axes, gradient_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    params_text = ", ".join(f"{k}={v:g}" for k, v in params.items())
    figure.suptitle(source + (f"   ({params_text})" if params_text else ""), fontsize=10)
    path = Path(output)
    figure.savefig(path, dpi=DPI, format="png")
    return path
