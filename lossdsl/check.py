"""The gradient check: the symbolic gradient against ``tf.GradientTape``, in float64.

    >>> import lossdsl
    >>> report = lossdsl.check_gradients("mean((y_true - y_pred)^2)")
    >>> report.passed
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy

from lossdsl.compiler import CompiledExpression, compile_expression
from lossdsl.errors import GradientMismatchError

# Functions whose argument must stay positive (or above -1): where the loss
# applies them to an input, points are drawn in (0, 1) instead of around 0.
_RESTRICTED = ("log", "log1p", "xlogy", "xdivy", "sqrt")


@dataclass
class GradientReport:
    """How the symbolic gradient compares with the tape's.

    Attributes:
        passed: every compared value agrees within ``atol + rtol * |tape|``.
        max_abs_error, max_rel_error: the largest disagreements.
        points: how many gradient entries were compared.
        skipped: entries left out because either side is not finite there.
        y_true, y_pred: the points tried.
        symbolic, tape: the two gradients w.r.t. ``y_pred`` at those points.
        worst_index: where the largest relative disagreement is.
        parameters: per parameter, ``(symbolic, tape)`` batch totals.
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

    def __str__(self) -> str:
        verdict = "agree" if self.passed else "DISAGREE"
        lines = [f"symbolic gradient and tape {verdict}: max abs error "
                 f"{self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g} over "
                 f"{self.points} entries ({self.skipped} skipped as non-finite)"]
        if self.worst_index:
            i = self.worst_index
            lines.append(f"  worst at index {i}: y_true={self.y_true[i]:.6g}, "
                         f"y_pred={self.y_pred[i]:.6g}, symbolic={self.symbolic[i]:.10g}, "
                         f"tape={self.tape[i]:.10g}")
        for name, (symbolic, tape) in self.parameters.items():
            lines.append(f"  d/d{name}: symbolic={symbolic:.10g}, tape={tape:.10g}")
        return "\n".join(lines)


def check_gradients(loss: Any, y_true: Any = None, y_pred: Any = None, *,
                    shape: tuple[int, ...] = (8, 5), seed: int = 0,
                    rtol: float = 1e-6, atol: float = 1e-9,
                    raise_on_mismatch: bool = False, **params: float) -> GradientReport:
    """Compare the derived gradient with the tape's gradient of the compiled loss.

    Args:
        loss: a loss from :func:`lossdsl.compile`, or a source string.
        y_true, y_pred: the points; when omitted, random points of ``shape``
            from a domain where the loss is defined.
        rtol, atol: the tolerance, in float64.
        raise_on_mismatch: raise :class:`GradientMismatchError` instead of
            returning a failed report.
        **params: parameter values, when ``loss`` is a source string.

    Returns:
        A :class:`GradientReport`.
    """
    import tensorflow as tf

    from lossdsl.keras_loss import align_ranks
    from lossdsl.tf_lower import TFPlan

    compiled = _compiled(loss, params)
    y_true, y_pred = _points(compiled, y_true, y_pred, shape, seed)
    yt, yp = align_ranks(tf.constant(y_true, tf.float64), tf.constant(y_pred, tf.float64))
    variables = {symbol: tf.Variable(value, dtype=tf.float64)
                 for symbol, value in compiled.values_by_symbol().items()}
    outputs = {"loss": (compiled.expression, "per_sample"),
               "gradient": (compiled.gradient, "elementwise")}
    outputs.update({f"d/{name}": (formula, "total")
                    for name, formula in compiled.parameter_gradients.items()})
    plan = TFPlan(outputs, compiled.table, compiled.expression)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(yp)
        values = plan.run({"y_true": yt, "y_pred": yp}, variables)
        total = tf.reduce_sum(values["loss"])
    tape_gradient = tape.gradient(total, yp)
    tape_gradient = np.zeros(yp.shape) if tape_gradient is None else tape_gradient.numpy()
    parameters = {}
    for name, symbol in compiled.parameters.items():
        by_tape = tape.gradient(total, variables[symbol])
        parameters[name] = (float(tf.reduce_sum(values[f"d/{name}"])),
                            0.0 if by_tape is None else float(by_tape))
    report = _compare(yt.numpy(), yp.numpy(), values["gradient"].numpy(), tape_gradient,
                      parameters, rtol, atol)
    if raise_on_mismatch and not report.passed:
        raise GradientMismatchError(f"Gradient check failed for {compiled.source!r}.\n{report}",
                                    source=compiled.source)
    return report


def _compiled(loss: Any, params: dict[str, float]) -> CompiledExpression:
    if isinstance(loss, str):
        return compile_expression(loss, params)
    return loss.compiled


def _points(compiled: CompiledExpression, y_true: Any, y_pred: Any,
            shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if _needs_positive_inputs(compiled):
        draw = lambda: rng.uniform(0.05, 0.95, shape)  # noqa: E731
    else:
        draw = lambda: rng.normal(0.0, 1.0, shape)  # noqa: E731
    y_true = draw() if y_true is None else np.asarray(y_true, dtype=np.float64)
    y_pred = draw() if y_pred is None else np.asarray(y_pred, dtype=np.float64)
    return y_true, y_pred


def _needs_positive_inputs(compiled: CompiledExpression) -> bool:
    """Whether the loss applies a log-like function or a fractional power to an input."""
    inputs = compiled.table.inputs
    formulas = [compiled.expression] + [r.arg for r in compiled.table.in_order()]
    for formula in formulas:
        for node in sympy.preorder_traversal(formula):
            name = type(node).__name__
            restricted = name in _RESTRICTED or (
                isinstance(node, sympy.Pow) and not (node.exp.is_integer is True))
            if restricted and _mentions(node, inputs, compiled):
                return True
    return False


def _mentions(node: sympy.Basic, inputs: frozenset, compiled: CompiledExpression) -> bool:
    free = node.free_symbols
    if free & inputs:
        return True
    return any(_mentions(compiled.table[s].arg, inputs, compiled)
               for s in free if s in compiled.table)


def _compare(y_true: np.ndarray, y_pred: np.ndarray, symbolic: np.ndarray, tape: np.ndarray,
             parameters: dict[str, tuple[float, float]], rtol: float, atol: float
             ) -> GradientReport:
    finite = np.isfinite(symbolic) & np.isfinite(tape)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite entries are masked
        error = np.where(finite, np.abs(symbolic - tape), 0.0)
    relative = error / np.maximum(np.abs(tape), 1e-300)
    within = error <= atol + rtol * np.abs(tape)
    passed = bool(np.all(within[finite])) and all(
        abs(s - t) <= atol + rtol * abs(t) for s, t in parameters.values())
    worst = np.unravel_index(int(np.argmax(np.where(finite, relative, -1.0))), error.shape) \
        if error.size else ()
    return GradientReport(
        passed=passed, max_abs_error=float(error.max(initial=0.0)),
        max_rel_error=float(np.where(finite, relative, 0.0).max(initial=0.0)),
        points=int(finite.sum()), skipped=int((~finite).sum()),
        y_true=np.broadcast_to(y_true, symbolic.shape), y_pred=y_pred,
        symbolic=symbolic, tape=tape, worst_index=tuple(int(i) for i in worst),
        parameters=parameters)
