"""check_gradients: its report, its failure path, and that it can fail at all."""

import dataclasses

import numpy as np
import pytest
import sympy

import lossdsl
from lossdsl.analysis.analyze import CompiledExpression, compile_expression


def test_report_fields_on_agreement():
    report = lossdsl.check_gradients("mean(-alpha*y_true*log(y_pred))", alpha=0.3,
                                     shape=(5, 2), seed=3)
    assert report.passed
    assert report.points == 10 and report.skipped == 0
    assert report.y_pred.shape == (5, 2)
    assert np.all((report.y_pred > 0) & (report.y_pred < 1)), "log needs y_pred in (0, 1)"
    assert report.max_abs_error < 1e-12
    symbolic, tape = report.parameters["alpha"]
    assert symbolic == pytest.approx(tape, rel=1e-12)
    assert "agree" in str(report)


def test_points_given_by_the_user_are_used():
    y_true = np.array([[1.0, 2.0]])
    y_pred = np.array([[3.0, 5.0]])
    report = lossdsl.check_gradients("sum((y_true - y_pred)^2)", y_true, y_pred)
    np.testing.assert_allclose(report.tape, [[4.0, 6.0]])  # 2*(y_pred - y_true) by hand
    np.testing.assert_allclose(report.symbolic, [[4.0, 6.0]])


class _WrongGradient:
    """A loss whose carried gradient formula is deliberately off by a factor of 2."""

    def __init__(self, source: str) -> None:
        compiled = compile_expression(source)
        wrong = dataclasses.replace(compiled.analysis, gradient=2 * compiled.gradient)
        self.compiled = CompiledExpression(wrong, compiled.params)


def test_a_wrong_gradient_is_caught_and_located():
    report = lossdsl.check_gradients(_WrongGradient("mean((y_true - y_pred)^2)"))
    assert not report.passed
    assert report.max_rel_error == pytest.approx(1.0)
    assert "DISAGREE" in str(report) and "worst at index" in str(report)
    with pytest.raises(lossdsl.GradientMismatchError, match="symbolic=.*tape="):
        lossdsl.check_gradients(_WrongGradient("mean((y_true - y_pred)^2)"),
                                raise_on_mismatch=True)


def test_non_finite_points_are_skipped_not_compared():
    report = lossdsl.check_gradients("mean(log(y_pred))", np.zeros((1, 3)),
                                     np.array([[0.0, 0.5, 0.25]]))
    assert report.skipped == 1 and report.points == 2 and report.passed


def test_check_accepts_a_compiled_loss():
    loss = lossdsl.compile("mean(sigmoid(y_pred)*y_true)")
    assert lossdsl.check_gradients(loss).passed
    assert isinstance(loss.gradient.sympy, sympy.Expr)
