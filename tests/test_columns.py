"""Columns of the last axis, ``x[..., k]``: values and gradients against plain TensorFlow.

The references are written independently of lossdsl: TensorFlow's own slicing
``y[..., k:k+1]`` (a size-1 last axis that broadcasts against whole rows, as the
README says a column does), reductions over the broadcast shape, and
``tf.GradientTape`` for their gradients. lossdsl's side is differentiated by the
current backend's autodiff (tests/backend_support.py), in both gradient modes, so
the tests marked ``backends`` check TensorFlow, JAX and PyTorch alike.

Also here: the located errors (an index out of range when the loss is called, each
refused subscript when it is compiled), a fit and a safe-mode reload, the printed
formula (``explain``, ``loss.expression``, LaTeX) and ``check_gradients``.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from backend_support import (float64_enabled, tape_value_and_gradient, to_numpy,
                             value_and_gradient)

import lossdsl
from lossdsl.analysis.analyze import analyze
from lossdsl.analysis.latex import formula_latex

MODES = ["autodiff", "symbolic"]
pytestmark = pytest.mark.filterwarnings("ignore::lossdsl.errors.LossDSLWarning")  # log at 0


def _inputs(shape_true: tuple, shape_pred: tuple, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.1, 0.9, shape_true), rng.uniform(0.1, 0.9, shape_pred)


def _full(x, t, p):
    """``x`` broadcast to the shape of the inputs together (every subexpression is full-shape)."""
    return tf.broadcast_to(x, tf.broadcast_dynamic_shape(tf.shape(t), tf.shape(p)))


def _sample_mean(x, t, p):
    """``mean(x)`` of each sample: over every axis but the batch axis, at full shape."""
    x = _full(x, t, p)
    return tf.reduce_mean(x, axis=list(range(1, len(x.shape))))


# (source, y_true shape, y_pred shape, per-sample reference in TF ops of (y_true, y_pred)).
CASES = {
    "first column": (
        "mean((y_true - y_pred[..., 0])^2)", (4, 3), (4, 3),
        lambda t, p: _sample_mean((t - p[..., 0:1]) ** 2, t, p)),
    "negative indices": (
        "mean((y_true[..., -1] - y_pred[..., -2])^2 + y_pred[..., -3])", (4, 3), (4, 3),
        lambda t, p: _sample_mean((t[..., -1:] - p[..., -2:-1]) ** 2 + p[..., -3:-2], t, p)),
    "bound names (Gaussian NLL), y_true (batch, 1)": (
        "mu = y_pred[..., 0]; log_var = y_pred[..., 1]; "
        "mean(0.5*(log_var + (y_true - mu)^2*exp(-log_var)))", (5, 1), (5, 2),
        lambda t, p: _sample_mean(
            0.5 * (p[..., 1:2] + (t - p[..., 0:1]) ** 2 * tf.exp(-p[..., 1:2])), t, p)),
    "a column of a call": (
        "-mean(y_true * log(y_pred)[..., 2])", (4, 3), (4, 3),
        lambda t, p: -_sample_mean(t * tf.math.log(p)[..., 2:3], t, p)),
    "a column of a parenthesised expression": (
        "mean((y_pred - y_true)[..., -1]^2 + y_pred)", (4, 3), (4, 3),
        lambda t, p: _sample_mean((p - t)[..., -1:] ** 2 + p, t, p)),
    "a column of a normalizer": (
        "-mean(y_true[..., 0] * log_softmax(y_pred)[..., 1])", (4, 3), (4, 3),
        lambda t, p: -_sample_mean(t[..., 0:1] * tf.nn.log_softmax(p, axis=-1)[..., 1:2], t, p)),
    "y_true (batch, 1) against one column of y_pred (batch, 3)": (
        "-mean(y_true*log(sigmoid(y_pred[..., 1])) + "
        "(1 - y_true)*log(1 - sigmoid(y_pred[..., 1])))",
        (6, 1), (6, 3),
        lambda t, p: -_sample_mean(t * tf.math.log(tf.sigmoid(p[..., 1:2])) +
                                   (1 - t) * tf.math.log(1 - tf.sigmoid(p[..., 1:2])), t, p)),
    "columns in where": (
        "mean(where(y_pred[..., 0] > 0.5, y_pred[..., 1], y_pred[..., 2]^2) * y_true)",
        (6, 3), (6, 3),
        lambda t, p: _sample_mean(tf.where(p[..., 0:1] > 0.5, p[..., 1:2], p[..., 2:3] ** 2) * t,
                                  t, p)),
    "a column of a column": (
        "mean(y_pred[..., 0][..., 1] * y_true)", (4, 3), (4, 3),
        lambda t, p: _sample_mean(_full(p[..., 0:1], t, p)[..., 1:2] * t, t, p)),
    "rank 3": (
        "mean(abs(y_true - y_pred[..., 3]) * y_pred[..., -4])", (2, 3, 4), (2, 3, 4),
        lambda t, p: _sample_mean(tf.abs(t - p[..., 3:4]) * p[..., -4:-3], t, p)),
    "rank 3, a row sum of a column counts it once per element": (
        "mean(sum(y_pred[..., 1], axis=-1) * y_true + mean(y_pred[..., 2], axis=1))",
        (2, 3, 4), (2, 3, 4),
        lambda t, p: _sample_mean(
            tf.reduce_sum(_full(p[..., 1:2], t, p), axis=-1, keepdims=True) * t +
            tf.reduce_mean(_full(p[..., 2:3], t, p), axis=1, keepdims=True), t, p)),
}




def _value_cases():
    for case in CASES:
        for mode in MODES:
            yield pytest.param(case, mode, id=f"{case}-{mode}")


@pytest.mark.backends
@pytest.mark.parametrize("case, mode", list(_value_cases()))
def test_value_and_gradient_match_tensorflow_slicing(case, mode):
    source, shape_true, shape_pred, reference = CASES[case]
    y_true, y_pred = _inputs(shape_true, shape_pred, seed=len(case))
    with float64_enabled():
        loss = lossdsl.compile(source, gradient=mode, dtype="float64", reduction="none")
    value, gradient = value_and_gradient(loss, y_true, y_pred, "float64")
    expected_value, expected_gradient = tape_value_and_gradient(reference, y_true, y_pred)
    assert value.dtype == np.float64 and value.shape == expected_value.shape
    np.testing.assert_allclose(value, expected_value, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-10, atol=1e-13)
    assert np.abs(gradient).max() > 0  # a comparison of zeros would prove nothing


@pytest.mark.backends
@pytest.mark.parametrize("mode", MODES)
def test_the_gradient_of_a_column_is_one_hot(mode):
    """d sum(y_pred[..., k]) / d y_pred is 1 in column k, 0 elsewhere (k = 1 and k = -1)."""
    y_true, y_pred = _inputs((3, 4), (3, 4))
    for index, column in ((1, 1), (-1, 3)):
        with float64_enabled():
            loss = lossdsl.compile(f"mean(y_pred[..., {index}])", gradient=mode,
                                   dtype="float64", reduction="sum")
        value, gradient = value_and_gradient(loss, y_true, y_pred, "float64")
        np.testing.assert_allclose(value, y_pred[:, column].sum(), rtol=1e-14)
        expected = np.zeros_like(y_pred)
        expected[:, column] = 1.0
        np.testing.assert_array_equal(gradient, expected)


# ---------------------------------------------------------------- located errors

@pytest.mark.backends
@pytest.mark.parametrize("source, shown, index, width", [
    ("mean((y_true - y_pred[..., 3])^2)", "y_pred[..., 3]", 3, 3),
    ("mean((y_true - y_pred[..., -4])^2)", "y_pred[..., -4]", -4, 3),
    ("a = y_pred[..., 0];\nmean(a * log(y_pred)[..., 2])", "log(y_pred)[..., 2]", 2, 2),
    ("mean((y_pred - y_true)[..., 5])", "(y_pred - y_true)[..., 5]", 5, 3),
])
def test_an_index_out_of_range_is_a_located_error_when_the_loss_is_called(source, shown, index,
                                                                          width):
    loss = lossdsl.compile(source)  # compiles: the width is known only from the inputs
    y_true, y_pred = _inputs((2, width), (2, width))
    with pytest.raises(lossdsl.DSLShapeError) as caught:
        loss(y_true, y_pred)
    error = caught.value
    assert error.source == source and source[error.span.start:error.span.end] == shown
    assert f"column index {index} is out of range" in error.message
    assert f"has {width} element" in error.message
    assert f"from 0 to {width - 1}" in error.hint and f"to -{width}" in error.hint
    assert shown in str(error) and "^" * len(shown) in str(error)  # the caret under the column


@pytest.mark.backends
def test_a_metric_with_an_index_out_of_range_is_a_located_error():
    metric = lossdsl.metric("mean(abs(y_true - y_pred[..., 3]))", name="col")
    y_true, y_pred = _inputs((2, 3), (2, 3))
    with pytest.raises(lossdsl.DSLShapeError) as caught:
        metric.update_state(y_true, y_pred)
    source = caught.value.source
    assert source[caught.value.span.start:caught.value.span.end] == "y_pred[..., 3]"
    metric.update_state(*_inputs((2, 4), (2, 4)))  # in range for 4 columns
    assert np.isfinite(float(to_numpy(metric.result())))


# (source, error, message fragment, the text the error points at, hint fragment)
REFUSED = [
    ("mean(y_pred[0])", lossdsl.DSLSyntaxError, "A subscript needs `...` first", "y_pred[0]",
     "write y_pred[..., 0]"),
    ("mean(y_true*y_pred[-1])", lossdsl.DSLSyntaxError, "`x[k]` reads as the k-th sample",
     "y_pred[-1]", "y_pred[..., 0]"),
    ("mean(y_pred[:, 0])", lossdsl.DSLSyntaxError, "Only the last axis can be indexed",
     "y_pred[:, 0]", "e.g. y_pred[..., 0]"),
    ("mean(log(y_pred)[:, 1])", lossdsl.DSLSyntaxError, "Only the last axis can be indexed",
     "log(y_pred)[:, 1]", "e.g. log(y_pred)[..., 0]"),
    ("mean(y_pred[..., 0, 1])", lossdsl.DSLSyntaxError, "Only the last axis can be indexed",
     "y_pred[..., 0, 1]", "axis="),
    ("mean(y_pred[...])", lossdsl.DSLSyntaxError, "Only the last axis can be indexed",
     "y_pred[...]", "y_pred[..., 0]"),
    ("mean(y_pred[..., ...])", lossdsl.DSLSyntaxError, "Only the last axis can be indexed",
     "y_pred[..., ...]", "y_pred[..., 0]"),
    ("mean(y_pred[..., 0:2])", lossdsl.DSLSyntaxError, "A range `a:b`", "0:2",
     "x0 = y_pred[..., 0]"),
    ("p = y_pred;\nmean(p[..., 1:])", lossdsl.DSLSyntaxError, "A range `a:b`", "1:",
     "pick each column"),
    ("mean(y_pred[..., k])", lossdsl.DSLTypeError, "must be an integer literal", "k",
     "-1 for the last column"),
    ("mean(y_pred[..., 1.5])", lossdsl.DSLTypeError, "must be an integer literal", "1.5",
     "y_pred[..., 0]"),
    ("alpha = 1; mean(y_pred[..., alpha])", lossdsl.DSLTypeError, "must be an integer literal",
     "alpha", "y_pred[..., 0]"),
    ("mean(y_pred[..., --1])", lossdsl.DSLTypeError, "must be an integer literal", "--1",
     "y_pred[..., 0]"),
]


@pytest.mark.parametrize("source, kind, message, shown, hint", REFUSED,
                         ids=[case[0] for case in REFUSED])
def test_each_refused_subscript_is_a_located_error_at_compile_time(source, kind, message, shown,
                                                                   hint):
    with pytest.raises(kind) as caught:
        lossdsl.compile_expression(source)
    error = caught.value
    assert message in error.message
    assert error.source == source and source[error.span.start:error.span.end] == shown
    assert hint in error.hint
    assert error.line == source.count("\n", 0, error.span.start) + 1


def test_the_hint_for_a_parenthesised_operand_keeps_its_parentheses():
    """`(y_true - y_pred)[2]`: the hint must not suggest `y_true - y_pred[..., 0]`, which
    takes the column of y_pred alone."""
    with pytest.raises(lossdsl.DSLSyntaxError) as caught:
        lossdsl.compile_expression("mean((y_true - y_pred)[2])")
    assert "(y_true - y_pred)[..., 0]" in caught.value.hint


# ---------------------------------------------------------------- Keras: fit, save, reload

NLL = ("mu = y_pred[..., 0]; log_var = y_pred[..., 1]; "
       "mean(0.5*(log_var + (y_true - mu)^2*exp(-log_var)))")


@pytest.mark.backends
def test_fit_and_reload_in_safe_mode(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=lossdsl.compile(NLL, name="nll"))
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # 2 steps
    assert np.isfinite(history.history["loss"][0])
    path = tmp_path / "columns.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(reloaded.loss, lossdsl.DSLLoss)
    assert (reloaded.loss.source, reloaded.loss.name) == (NLL, "nll")
    prediction = to_numpy(model(x))
    np.testing.assert_allclose(to_numpy(reloaded.loss(y, prediction)),
                               to_numpy(model.loss(y, prediction)), rtol=1e-6)
    np.testing.assert_allclose(reloaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0),
                               rtol=1e-5)
    with pytest.raises(lossdsl.DSLShapeError):  # the reloaded loss checks its columns too
        reloaded.loss(y, prediction[..., :1])


# ---------------------------------------------------------------- printed formulas

def test_explain_and_the_expression_print_the_column_as_written():
    loss = lossdsl.compile("mean((y_true - y_pred[..., 0])^2)")
    assert str(loss.expression) == "mean((y_true - y_pred[..., 0])^2)"
    text = str(lossdsl.explain("mean((y_true - y_pred[..., 0])^2)"))
    assert "y_pred[..., 0]" in text and "one_hot(0) * y_pred" not in text
    gradient = str(lossdsl.explain("mean(log(y_pred)[..., -1] * y_true)").gradient)
    assert "one_hot(" in gradient and "log(y_pred)" not in gradient, gradient
    bound = str(lossdsl.explain(NLL))
    assert "mu = y_pred[..., 0]" in bound and "log_var = y_pred[..., 1]" in bound
    assert str(lossdsl.compile("mean(y_pred[..., -1]^2)").expression) == \
        "mean(y_pred[..., -1]^2)"


def test_a_negative_column_prints_as_written_where_the_count_is_named():
    """The gradient names n[-1] `n_last` (it is a factor too); its columns x[..., -1] then
    print as `sum(x * one_hot(n_last - 1), axis=-1)` instead of as written."""
    gradient = str(lossdsl.explain("mean((y_pred - y_true)[..., -1]^2)").gradient)
    assert "(y_pred - y_true)[..., -1]" in gradient, gradient


@pytest.mark.parametrize("source", [
    "mean((y_true - y_pred[..., 0])^2)",
    "-mean(y_true * log(y_pred)[..., 2])",
    "mean((y_pred - y_true)[..., -2]^2)",
    NLL,
])
def test_printed_formulas_parse_back_with_their_columns(source):
    """The canonical text of the loss and gradient is DSL that names the same columns."""
    loss = lossdsl.compile(source)
    for formula in (loss.expression, loss.gradient):
        lossdsl.compile_expression(str(formula))  # parses and lowers
    assert re.findall(r"\[\.\.\., -?\d+\]", str(loss.expression))


@pytest.mark.parametrize("source, fragment", [
    ("mean((y_true - y_pred[..., 0])^2)", r"y_{\mathrm{pred}}[\ldots, 0]"),
    ("-mean(y_true * log(y_pred)[..., 2])", r"\log{\left(y_{\mathrm{pred}} \right)}[\ldots, 2]"),
    ("mean((y_pred - y_true)[..., -2]^2)",
     r"\left(y_{\mathrm{pred}} - y_{\mathrm{true}}\right)[\ldots, -2]^{2}"),
    ("mean((y_pred^2)[..., 1])", r"\left(y_{\mathrm{pred}}^{2}\right)[\ldots, 1]"),
    ("mean(y_true[..., -1] * y_pred)", r"y_{\mathrm{true}}[\ldots, -1]"),
])
def test_latex_prints_a_column_as_written(source, fragment):
    analysis = analyze(source)
    tex = formula_latex(analysis.expression, analysis.table)
    assert fragment in tex, tex
    for formula in (analysis.expression, analysis.gradient):
        tex = formula_latex(formula, analysis.table)
        assert "one\\_hot" not in tex and "\\sum\\left(\\mathbb{1}" not in tex, tex
        assert not re.search(r"\\sum\\left\([^)]*\\mathbb\{1\}", tex), tex


def test_the_jupyter_latex_of_a_loss_shows_its_columns():
    shown = lossdsl.compile("mean((y_true - y_pred[..., 0])^2)")._repr_latex_()
    assert r"y_{\mathrm{pred}}[\ldots, 0]" in shown


# ---------------------------------------------------------------- check_gradients

@pytest.mark.backends
@pytest.mark.parametrize("source, shapes", [
    ("mean((y_true - y_pred[..., 0])^2)", ((4, 3), (4, 3))),
    (NLL, ((4, 1), (4, 2))),
    ("-mean(y_true * log_softmax(y_pred)[..., -1])", ((4, 3), (4, 3))),
    ("mean(abs(y_true - y_pred[..., 3]) * y_pred[..., -4])", ((2, 3, 4), (2, 3, 4))),
])
def test_check_gradients_agrees(source, shapes):
    y_true, y_pred = _inputs(*shapes)
    report = lossdsl.check_gradients(lossdsl.compile(source), y_true, y_pred)
    assert report.passed and not report.inconclusive, str(report)


@pytest.mark.parametrize("index", [5, -5])
def test_an_unknown_width_is_checked_when_the_loss_runs(index):
    """A tf.function traced with [None, None] knows the width only when it runs: the
    assertion fires then, instead of a column that silently reads 0."""
    import tensorflow as tf

    loss = lossdsl.compile(f"mean((y_true - y_pred[..., {index}])^2)")
    run = tf.function(loss, input_signature=[tf.TensorSpec([None, None])] * 2)
    needed = index + 1 if index >= 0 else -index
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"at least {needed} elements for "
                                                             f"its column index {index}"):
        run(np.zeros((2, 3), "float32"), np.zeros((2, 3), "float32"))
    assert float(run(np.zeros((2, 6), "float32"), np.ones((2, 6), "float32"))) == 1.0


def test_a_known_prediction_width_is_enough_to_check_at_trace_time():
    import tensorflow as tf

    loss = lossdsl.compile("mean((y_true - y_pred[..., 5])^2)")
    run = tf.function(loss, autograph=False,  # as Keras traces: errors as raised
                      input_signature=[tf.TensorSpec([None, None]), tf.TensorSpec([None, 3])])
    with pytest.raises(lossdsl.DSLShapeError, match="out of range"):
        run(np.zeros((2, 3), "float32"), np.zeros((2, 3), "float32"))


def test_check_gradients_draws_points_wide_enough_for_the_columns():
    report = lossdsl.check_gradients(lossdsl.compile("mean((y_true - y_pred[..., 7])^2)"))
    assert report.passed and report.y_pred.shape[-1] > 7
    assert np.any(report.symbolic[..., 7] != 0)  # the column was compared, not zeros


def test_a_regularizer_checks_its_columns_against_the_kernel():
    with pytest.raises(lossdsl.DSLShapeError, match="out of range"):
        lossdsl.regularizer("sum(w[..., 7]^2)")(np.ones((4, 3), "float32"))
