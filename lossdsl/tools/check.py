"""The gradient check: the symbolic gradient against the backend's autodiff, in float64.

The autodiff is the one of the Keras backend in use: ``tf.GradientTape``,
``jax.grad`` or ``torch.autograd`` (the report's ``autodiff`` names it).

    >>> import lossdsl
    >>> report = lossdsl.check_gradients("mean((y_true - y_pred)^2)")
    >>> report.passed
    True

A check that compared too little is *inconclusive*, which is not a pass: fewer
than :data:`MIN_COMPARED_FRACTION` of the gradient entries finite on both sides
(or none at all, as for an empty batch), a loss that is NaN at every point, or
a parameter gradient that is not finite. Default points come from the loss itself: candidate ranges are tried and
the one where the loss and both gradients are finite at the most entries wins.

    >>> lossdsl.check_gradients("mean(sqrt(y_pred - y_true - 10))").inconclusive
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from lossdsl.analysis.analyze import CompiledExpression, compile_expression
from lossdsl.analysis.last_axis import check_last_axis
from lossdsl.errors import DSLShapeError, GradientMismatchError
from lossdsl.tools.check_points import candidate_ranges, default_shape, takes_labels

MIN_COMPARED_FRACTION = 0.5  # of the gradient entries; below it the check concludes nothing


@dataclass
class GradientReport:
    """How the symbolic gradient compares with the backend's autodiff (``tape``, by its TF name).

    Attributes:
        passed: the check was conclusive and every compared value agrees within
            ``atol + rtol * |tape|``.
        max_abs_error, max_rel_error: the largest disagreements w.r.t. ``wrt``.
        points: how many gradient entries were compared.
        skipped: entries left out because either side is not finite there.
        y_true, y_pred: the points tried.
        symbolic, tape: the two gradients w.r.t. ``wrt`` at those points (``tape``: the
            backend's autodiff, whichever it is).
        worst_index: where the largest relative disagreement is.
        parameters: per parameter, ``(symbolic, tape)`` batch totals.
        mismatched: the gradients that disagree: ``wrt`` and/or parameter names.
        reason: why the check is inconclusive; empty when it is conclusive.
        wrt: the input the gradient is taken with respect to.
        autodiff: the autodiff compared against (``tf.GradientTape``, ``jax.grad``,
            ``torch.autograd``).
    """

    passed: bool
    max_abs_error: float
    max_rel_error: float
    points: int
    skipped: int
    y_true: np.ndarray = field(repr=False)
    y_pred: np.ndarray = field(repr=False)
    symbolic: np.ndarray = field(repr=False)
    tape: np.ndarray = field(repr=False)
    worst_index: tuple[int, ...] = ()
    parameters: dict[str, tuple[float, float]] = field(default_factory=dict)
    mismatched: tuple[str, ...] = ()
    reason: str = ""
    wrt: str = "y_pred"
    autodiff: str = "tf.GradientTape"

    @property
    def inconclusive(self) -> bool:
        """Too little was compared to say the gradients agree (:data:`MIN_COMPARED_FRACTION`)."""
        return bool(self.reason) and not self.mismatched

    def __str__(self) -> str:
        stats = (f"max abs error {self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g} "
                 f"over {self.points} entries ({self.skipped} skipped as non-finite)")
        if self.mismatched:
            names = ", ".join(f"d/d{name}" for name in self.mismatched)
            lines = [f"symbolic gradient and {self.autodiff} DISAGREE on {names}: d/d{self.wrt} {stats}"]
        elif self.reason:
            lines = [f"gradient check INCONCLUSIVE: {self.reason}", f"  d/d{self.wrt}: {stats}"]
        else:
            lines = [f"symbolic gradient and {self.autodiff} agree: {stats}"]
        if self.worst_index and self.points:
            i = self.worst_index
            label = "" if np.isnan(self.y_true[i]) else f"y_true={self.y_true[i]:.6g}, "
            lines.append(f"  worst at index {i}: {label}"
                         f"y_pred={self.y_pred[i]:.6g}, symbolic={self.symbolic[i]:.10g}, "
                         f"tape={self.tape[i]:.10g}")
        for name, (symbolic, tape) in self.parameters.items():
            note = "  DISAGREE" if name in self.mismatched else \
                "  (not compared: not finite)" if not np.isfinite([symbolic, tape]).all() else ""
            lines.append(f"  d/d{name}: symbolic={symbolic:.10g}, tape={tape:.10g}{note}")
        return "\n".join(lines)


def check_gradients(loss: Any, y_true: Any = None, y_pred: Any = None, *,
                    shape: tuple[int, ...] | None = None, seed: int = 0,
                    rtol: float = 1e-6, atol: float = 1e-9,
                    raise_on_mismatch: bool = False, **params: float) -> GradientReport:
    """Compare the derived gradient with the backend's autodiff gradient of the compiled loss.

    Args:
        loss: a loss from :func:`lossdsl.compile`, a compiled expression, or a
            source string.
        y_true, y_pred: the points; when omitted, random points of ``shape``
            from the range where the loss and its gradients are finite at the
            most entries (see :func:`candidate_ranges`). For a loss with extra
            inputs, ``y_true`` is a dict ``{"y_true": ..., "mask": ...}`` (a source
            string then takes its extra inputs from the keys); extra inputs not
            given are drawn in (0.05, 0.95).
        shape: default :func:`default_shape`, the smallest rank the loss's axes need.
        rtol, atol: the tolerance, in float64.
        raise_on_mismatch: raise :class:`GradientMismatchError` instead of
            returning a report that did not pass (a mismatch or an inconclusive check).
        **params: parameter values, when ``loss`` is a source string.

    Returns:
        A :class:`GradientReport`; ``passed`` is False when the gradients
        disagree and when the check is inconclusive.
    """
    extra = {}
    if isinstance(y_true, Mapping):  # y_true and extra inputs
        extra = {name: np.asarray(value, dtype=np.float64) for name, value in y_true.items()
                 if name != "y_true"}
        y_true = y_true.get("y_true")
    compiled = _compiled(loss, params, tuple(extra))
    names = tuple(name for name in compiled.inputs if name not in ("y_true", "y_pred", compiled.wrt))
    unknown = sorted(set(extra) - set(names))
    if unknown:
        raise DSLShapeError(f"y_true holds inputs the loss does not take: {', '.join(unknown)}.",
                            source=compiled.source, hint="compile the loss with "
                            f"inputs={unknown!r}, or leave them out of the dict")
    given = (None if y_true is None else np.asarray(y_true, dtype=np.float64),
             None if y_pred is None else np.asarray(y_pred, dtype=np.float64))
    # Drawn labels take the predictions' shape when those are given.
    shape = tuple(shape) if shape is not None else \
        given[1].shape if given[1] is not None else default_shape(compiled)
    # The points must suit the loss's columns and vector parameters, as its inputs must.
    check_last_axis(compiled, [shape] if given[1] is None else [given[1].shape])
    if given[0] is not None and given[1] is not None and set(names) <= set(extra):
        best = _evaluate(compiled, _with_extra(given[0], extra, names), given[1])
    else:
        best = None
        for draw_true, draw_pred in candidate_ranges(compiled):
            rng = np.random.default_rng(seed)
            labels = draw_true(rng, shape) if given[0] is None else given[0]
            drawn = {name: extra[name] if name in extra else rng.uniform(0.05, 0.95, shape)
                     for name in names}
            points = (_with_extra(labels, drawn, names),
                      draw_pred(rng, shape) if given[1] is None else given[1])
            evaluation = _evaluate(compiled, *points)
            if best is None or evaluation.usable > best.usable:
                best = evaluation
            if best.usable == 1.0:
                break
    from lossdsl.backends.current import backend_functions

    report = _compare(best, compiled.wrt, rtol, atol, backend_functions().AUTODIFF)
    if raise_on_mismatch and not report.passed:
        hint = ("pass y_true and y_pred where the loss and its gradient are finite"
                if report.inconclusive else
                "the derived formula and the backend's autodiff disagree at these points: "
                "please report it "
                "with the source, the points and this report")
        raise GradientMismatchError(f"Gradient check failed for {compiled.source!r}.\n{report}",
                                    source=compiled.source, hint=hint)
    return report


def _compiled(loss: Any, params: dict[str, float], extra: tuple[str, ...] = ()
              ) -> CompiledExpression:
    if isinstance(loss, str):
        return compile_expression(loss, params, inputs=("y_true", "y_pred", *extra))
    if isinstance(loss, CompiledExpression):
        return loss
    return loss.compiled


def _with_extra(y_true: np.ndarray, extra: Mapping[str, np.ndarray], names: tuple[str, ...]
                ) -> np.ndarray | dict[str, np.ndarray]:
    """``y_true``, or the dict of ``y_true`` and the extra inputs a loss with them takes."""
    return {"y_true": y_true, **{name: extra[name] for name in names}} if names else y_true


@dataclass
class _Evaluation:
    y_true: np.ndarray
    y_pred: np.ndarray
    symbolic: np.ndarray
    tape: np.ndarray
    parameters: dict[str, tuple[float, float]]
    usable: float  # the fraction of entries where the loss and both gradients are finite
    loss_defined: np.ndarray  # per gradient entry: whether its sample's loss is a number (not NaN)


def _evaluate(compiled: CompiledExpression, y_true: np.ndarray | dict, y_pred: np.ndarray
              ) -> _Evaluation:
    from lossdsl.backends.current import backend_functions
    from lossdsl.lower.plans import check_plan

    # Built by the module that builds the loss's own plans (lossdsl.lower.plans).
    plan = check_plan(compiled)
    yt, yp, values, by_autodiff, by_parameter = backend_functions().check_values(
        plan, y_true, y_pred, compiled.values_by_symbol())
    yt = yt["y_true"] if isinstance(yt, dict) else yt  # the report shows the labels
    # Vector parameters have no derived gradient to check (see lossdsl.analysis.analyze).
    parameters = {name: (float(np.sum(values[f"d/{name}"])), by_parameter[symbol])
                  for name, symbol in compiled.parameters.items() if name not in compiled.vectors}
    symbolic = values["gradient"]
    # The per-sample loss lacks the axes it reduced; put them back to mask whole samples.
    loss = np.asarray(values["loss"])
    if plan.has_pairs:  # rows over the batch, not the input's elements: one verdict per sample
        loss = np.isfinite(loss.reshape(len(loss), -1)).all(axis=1) / 1.0
        loss = np.where(loss > 0, 0.0, np.nan).reshape((-1,) + (1,) * (symbolic.ndim - 1))
    else:
        loss = np.expand_dims(loss, plan.squeezed_axes(len(symbolic.shape)))
    usable = np.isfinite(symbolic) & np.isfinite(by_autodiff) & np.isfinite(loss)
    return _Evaluation(yt, yp, symbolic, by_autodiff, parameters,
                       float(usable.mean()) if usable.size else 0.0,
                       np.broadcast_to(~np.isnan(loss), symbolic.shape))


def _compare(evaluation: _Evaluation, wrt: str, rtol: float, atol: float, autodiff: str
             ) -> GradientReport:
    symbolic, tape = evaluation.symbolic, evaluation.tape
    finite = np.isfinite(symbolic) & np.isfinite(tape)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite entries are masked
        error = np.where(finite, np.abs(symbolic - tape), 0.0)
    relative = error / np.maximum(np.abs(tape), 1e-300)
    within = error <= atol + rtol * np.abs(tape)
    mismatched = [wrt] if not np.all(within[finite]) else []
    unknown = []
    for name, (s, t) in evaluation.parameters.items():
        if not (np.isfinite(s) and np.isfinite(t)):
            unknown.append(f"d/d{name}")
        elif abs(s - t) > atol + rtol * abs(t):
            mismatched.append(name)
    points = int(finite.sum())
    # A loss undefined everywhere (log of a negative number: NaN, not an infinity) makes
    # agreeing gradients prove nothing.
    reason = _reason(points, finite.size, unknown, bool(evaluation.loss_defined.any()))
    worst = np.unravel_index(int(np.argmax(np.where(finite, relative, -1.0))), error.shape) \
        if error.size else ()
    return GradientReport(
        passed=not mismatched and not reason,
        max_abs_error=float(error.max(initial=0.0)),
        max_rel_error=float(np.where(finite, relative, 0.0).max(initial=0.0)),
        points=points, skipped=int((~finite).sum()),
        y_true=_labels_at(evaluation.y_true, symbolic.shape), y_pred=evaluation.y_pred,
        symbolic=symbolic, tape=tape, worst_index=tuple(int(i) for i in worst),
        parameters=evaluation.parameters, mismatched=tuple(mismatched), reason=reason, wrt=wrt,
        autodiff=autodiff)


def _labels_at(y_true: np.ndarray, shape: tuple) -> np.ndarray:
    """The labels at each gradient entry; NaN where they have another layout (a
    (batch, batch) matrix read next to pair functions: no one label per entry)."""
    try:
        return np.broadcast_to(y_true, shape)
    except ValueError:
        return np.full(shape, np.nan)


def _reason(points: int, size: int, unknown: list[str], loss_defined_somewhere: bool) -> str:
    """Why the comparison concludes nothing, or ``""``."""
    if size == 0:
        return "there are no gradient entries to compare (the batch is empty)"
    if points == 0 or points < MIN_COMPARED_FRACTION * size:
        return (f"only {points} of {size} gradient entries are finite on both sides; a check "
                f"needs at least {MIN_COMPARED_FRACTION:.0%} of them (pass y_true and y_pred "
                "inside the loss's domain)")
    if not loss_defined_somewhere:
        return ("the loss is NaN at every one of these points (pass y_true and y_pred "
                "inside the loss's domain)")
    if unknown:
        return f"{', '.join(unknown)} is not finite at these points, so it was not compared"
    return ""


__all__ = ["MIN_COMPARED_FRACTION", "GradientReport", "check_gradients", "default_shape",
           "takes_labels", "candidate_ranges"]
