"""Trust defects 3, 7 and 6b: a gradient check that compared nothing does not pass, default
points from the loss's own domain and rank, a plot of row-mixing losses along one element of a
row, and each CLI warning printed once."""

import dataclasses
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import lossdsl
from lossdsl.tools.check import MIN_COMPARED_FRACTION
from lossdsl.analysis.analyze import CompiledExpression, compile_expression

ROOT = Path(__file__).resolve().parents[1]
NOWHERE_REAL = "mean(sqrt(y_pred - y_true - 10))"  # real only where y_pred > y_true + 10


def _check(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lossdsl.LossDSLWarning)
        return lossdsl.check_gradients(*args, **kwargs)


def run(*args):
    """`python -m lossdsl ARGS` from the tree under test."""
    return subprocess.run([sys.executable, "-m", "lossdsl", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=240,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": str(ROOT)})


# ------------------------------------------------------------------ 3: nothing compared

def test_a_check_that_compared_nothing_is_inconclusive_not_passed():
    report = _check(NOWHERE_REAL)
    assert report.points == 0 and report.skipped == report.symbolic.size > 0
    assert not report.passed and report.inconclusive and not report.mismatched
    assert str(report).startswith("gradient check INCONCLUSIVE: only 0 of 40")


def test_an_empty_batch_is_inconclusive():
    report = _check("mean((y_true-y_pred)^2)", shape=(0, 5))
    assert not report.passed and report.inconclusive
    assert "no gradient entries" in str(report)


def test_fewer_than_half_the_entries_compared_is_inconclusive():
    # d/dy_pred mean(log(y_pred)) = 1/(n*y_pred): infinite at y_pred = 0 on both sides.
    assert MIN_COMPARED_FRACTION == 0.5
    one_of_four = _check("mean(log(y_pred))", np.zeros((1, 4)), np.array([[0, 0, 0, 0.5]]))
    assert one_of_four.points == 1 and one_of_four.inconclusive and not one_of_four.passed
    half = _check("mean(log(y_pred))", np.zeros((1, 4)), np.array([[0, 0, 0.5, 0.25]]))
    assert half.points == 2 and half.passed
    np.testing.assert_allclose(half.tape[0, 2:], [1 / (4 * 0.5), 1 / (4 * 0.25)])


def test_an_inconclusive_check_raises_when_asked():
    with pytest.raises(lossdsl.GradientMismatchError, match="INCONCLUSIVE"):
        _check(NOWHERE_REAL, raise_on_mismatch=True)


def test_a_parameter_gradient_that_is_not_finite_is_not_a_pass():
    # d/dalpha sum(mean(-alpha*log(y_pred))) is -inf with a y_pred at 0, on both sides.
    report = _check("mean(-alpha*log(y_pred))", np.zeros((1, 3)), np.array([[0.0, 0.5, 0.25]]),
                    alpha=2.0)
    assert report.points == 2 and report.inconclusive and not report.passed
    assert "d/dalpha is not finite" in str(report)


class _WrongParameterGradient:
    """A loss whose d/dalpha formula is deliberately off by a factor of 2 (d/dy_pred is right)."""

    def __init__(self, source: str, **params: float) -> None:
        compiled = compile_expression(source, params)
        wrong = dict(compiled.parameter_gradients, alpha=2 * compiled.parameter_gradients["alpha"])
        analysis = dataclasses.replace(compiled.analysis, parameter_gradients=wrong)
        self.compiled = CompiledExpression(analysis, compiled.params)


def test_a_parameter_gradient_disagreement_names_the_parameter():
    report = _check(_WrongParameterGradient("mean(alpha*(y_true-y_pred)^2)", alpha=0.5))
    assert report.mismatched == ("alpha",) and not report.passed and not report.inconclusive
    assert report.max_abs_error < 1e-12  # d/dy_pred agrees: the first line must not blame it
    text = str(report)
    assert text.splitlines()[0].startswith("symbolic gradient and tf.GradientTape DISAGREE on d/dalpha:")
    symbolic, tape = report.parameters["alpha"]
    # d/dalpha of the batch total is sum(mean((y_true-y_pred)^2)), by hand from the points.
    by_hand = np.mean((report.y_true - report.y_pred) ** 2, axis=1).sum()
    assert tape == pytest.approx(by_hand, rel=1e-12) and symbolic == pytest.approx(2 * by_hand)
    assert f"d/dalpha: symbolic={symbolic:.10g}, tape={tape:.10g}  DISAGREE" in text


# ------------------------------------------------------------------ 3: default points

def test_default_points_lie_in_the_domain_of_xlog1py():
    source = "mean(-(1-y_true)*log(1-y_pred))"  # mean(xlog1py(y_true - 1, -y_pred))
    report = _check(source)
    assert report.passed and report.points == report.symbolic.size
    with np.errstate(all="raise"):  # the loss itself, in NumPy: finite at every point
        loss = np.mean(-(1 - report.y_true) * np.log(1 - report.y_pred), axis=1)
    assert np.all(np.isfinite(loss))
    np.testing.assert_allclose(report.tape, (1 - report.y_true) / (1 - report.y_pred) / 5)


def test_default_points_respect_a_bound_from_the_domain():
    report = _check("mean(log(y_pred - 2))")
    assert report.passed and report.points == 40
    assert np.all(report.y_pred > 2)
    np.testing.assert_allclose(report.tape, 1 / (report.y_pred - 2) / 5)


def test_default_shape_has_the_rank_the_axes_need():
    report = _check("mean((y_true-y_pred)^2, axis=(1, 2))")
    assert report.passed and report.y_pred.shape == (8, 3, 5)
    np.testing.assert_allclose(report.tape, 2 * (report.y_pred - report.y_true) / 15)
    assert _check("mean((y_true-y_pred)^2)").y_pred.shape == (8, 5)


def test_default_labels_are_class_indices():
    report = _check("-sum(one_hot(y_true)*log_softmax(y_pred, axis=-1), axis=-1)")
    labels = report.y_true[:, 0]
    assert report.passed and np.all(report.y_true == labels[:, None])
    assert np.all((labels == np.round(labels)) & (labels >= 0) & (labels < 5))
    logits = report.y_pred
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    one_hot = np.arange(5)[None, :] == labels[:, None]
    np.testing.assert_allclose(report.tape, softmax - one_hot, atol=1e-12)


# ------------------------------------------------------------------ 3 and 6b: the CLI

def test_cli_check_exits_non_zero_when_inconclusive():
    result = run("check", NOWHERE_REAL)
    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith("gradient check INCONCLUSIVE")
    assert "error: the gradient check is inconclusive" in result.stderr
    assert run("check", "mean((y_true-y_pred)^2)", "--shape", "0", "5").returncode == 3


@pytest.mark.parametrize("args", [
    ["check", "mean(log(y_pred))"],
    ["plot", "mean(log(y_pred))", "--y-true", "0", "--y-true", "1", "--points", "5"]])
def test_cli_prints_each_warning_once_without_the_source_line(args, tmp_path):
    if args[0] == "plot":
        pytest.importorskip("matplotlib")
        args = [*args, "-o", str(tmp_path / "x.png")]
    result = run(*args)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "log(y_pred)" in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("LossDSLWarning: `log(y_pred)` is infinite where")
    assert "warnings.warn" not in result.stderr and "args.run" not in result.stderr
    assert ".py:" not in result.stderr


# ------------------------------------------------------------------ 7: the plot

def _lines(figure):
    loss, gradient = figure.axes[0].lines[0], figure.axes[1].lines[0]
    return loss.get_xdata(), loss.get_ydata(), gradient.get_ydata()


def test_plot_of_a_row_loss_varies_one_element_of_a_row():
    pytest.importorskip("matplotlib")
    from lossdsl.tools.plot import build_figure

    figure = build_figure("-sum(y_true*log_softmax(y_pred))", [1.0], y_pred_range=(-3, 3),
                          points=9)
    x, loss, gradient = _lines(figure)
    # The row is y_pred = [x, 0, 0, 0], y_true = [1, 0, 0, 0]: -log softmax_0 by hand.
    np.testing.assert_allclose(loss, np.log(np.exp(x) + 3) - x, rtol=1e-12)
    np.testing.assert_allclose(gradient, np.exp(x) / (np.exp(x) + 3) - 1, atol=1e-12)
    assert figure.axes[0].get_title() == "loss of a row y_pred = [x, 0, 0, 0]"
    assert "the other 3 elements: y_pred = 0, y_true = 0" in figure.axes[0].get_xlabel()
    assert figure.axes[0].get_legend_handles_labels()[1] == ["y_true = [1, 0, 0, 0]"]


def test_plot_of_a_loss_on_labels_uses_the_label():
    pytest.importorskip("matplotlib")
    from lossdsl.tools.plot import build_figure

    figure = build_figure("-sum(one_hot(y_true)*log_softmax(y_pred, axis=-1), axis=-1)", [2.0],
                          y_pred_range=(-3, 3), points=9)
    x, loss, gradient = _lines(figure)
    np.testing.assert_allclose(loss, np.log(np.exp(x) + 3), rtol=1e-12)  # -log softmax_2
    np.testing.assert_allclose(gradient, np.exp(x) / (np.exp(x) + 3), atol=1e-12)
    assert figure.axes[0].get_legend_handles_labels()[1] == ["y_true = class 2"]


def test_plot_of_an_elementwise_loss_stays_one_element_per_sample():
    pytest.importorskip("matplotlib")
    from lossdsl.tools.plot import build_figure

    figure = build_figure("mean((y_true-y_pred)^2)", [0.5], y_pred_range=(-1, 2), points=7)
    x, loss, gradient = _lines(figure)
    np.testing.assert_allclose(loss, (0.5 - x) ** 2, rtol=1e-12)
    np.testing.assert_allclose(gradient, 2 * (x - 0.5), atol=1e-12)
    assert figure.axes[0].get_xlabel() == "y_pred"


@pytest.mark.parametrize("source, mixes", [
    ("mean((y_true-y_pred)^2)", False),
    ("(y_true-y_pred)^2", False),
    ("mean((y_true-y_pred)^2) + 0.1*mean((0.5-y_pred)^2)", False),
    ("-sum(y_true*log_softmax(y_pred))", True),
    ("mean((y_pred-mean(y_pred))^2)", True),
    ("y_pred - mean(y_pred)", True),
    ("mean(y_pred)^2", True),
    ("max(y_pred)", True),
    ("mean(one_hot(1)*y_pred)", True),
])
def test_which_losses_mix_a_row(source, mixes):
    from lossdsl.tools.plot import mixes_row

    assert mixes_row(source) is mixes


def test_agreeing_gradients_where_the_loss_is_not_finite_prove_nothing():
    # Was "agree ... 0 skipped": both gradients are 1/(y_pred - y_true - 3), finite at
    # every default point, while the loss, log of a negative number, is NaN at all of them.
    report = lossdsl.check_gradients("mean(log(y_pred - y_true - 3))", np.zeros((4, 5)),
                                     np.full((4, 5), 0.5))
    assert report.inconclusive and not report.passed and "loss is NaN at every one" in report.reason
