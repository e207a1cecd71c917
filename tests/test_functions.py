"""The functions of issue 13, value and gradient, against references written here by hand.

Each reference is the function's own math in float64 (the standard library's
``erf``/``lgamma``, derivatives written out, or central differences where no
closed form exists: the derivative of ``lgamma``), never lossdsl's NumPy forms.
Both gradient modes run through ``lossdsl.compile`` on TensorFlow: the tape of the
forward plan (``autodiff``) and the derived formula (``symbolic``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

import lossdsl
from lossdsl.analysis.analyze import analyze

MODES = ("autodiff", "symbolic")
RNG = np.random.default_rng(13)
Y_TRUE = RNG.integers(0, 4, (3, 5)).astype(np.float64)
Y_PRED = RNG.uniform(0.2, 2.5, (3, 5))
SQRT_PI = math.sqrt(math.pi)


def _elementwise(f):
    return np.vectorize(f, otypes=[np.float64])


def _value_and_gradient(source: str, mode: str, y_true=Y_TRUE, y_pred=Y_PRED, **params):
    loss = lossdsl.compile(source, dtype="float64", reduction="none", gradient=mode, **params)
    x = tf.constant(y_pred, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss.call(tf.constant(y_true, tf.float64), x)
        total = tf.reduce_sum(value)
    gradient = tape.gradient(total, x)
    return value.numpy(), np.zeros_like(y_pred) if gradient is None else gradient.numpy()


def _central(f, x: np.ndarray, step: float = 1e-5) -> np.ndarray:
    return (f(x + step) - f(x - step)) / (2 * step)


_lgamma = _elementwise(math.lgamma)

# source -> (value of y_true, y_pred; d value / d y_pred), elementwise (no reduction).
ELEMENTWISE = {
    "pow(y_pred, y_true)": (lambda t, x: x**t, lambda t, x: t * x ** (t - 1)),
    "pow(2, y_pred)": (lambda t, x: 2.0**x, lambda t, x: 2.0**x * math.log(2)),
    "pow(y_pred, 0.5)": (lambda t, x: np.sqrt(x), lambda t, x: 0.5 / np.sqrt(x)),
    "log2(y_pred)": (lambda t, x: np.log(x) / math.log(2), lambda t, x: 1 / (x * math.log(2))),
    "log10(y_pred)": (lambda t, x: np.log(x) / math.log(10), lambda t, x: 1 / (x * math.log(10))),
    "sinh(y_pred)": (lambda t, x: (np.exp(x) - np.exp(-x)) / 2,
                     lambda t, x: (np.exp(x) + np.exp(-x)) / 2),
    "erf(y_pred)": (lambda t, x: _elementwise(math.erf)(x),
                    lambda t, x: 2 / SQRT_PI * np.exp(-x**2)),
    "erfc(y_pred)": (lambda t, x: _elementwise(math.erfc)(x),
                     lambda t, x: -2 / SQRT_PI * np.exp(-x**2)),
    "lgamma(y_pred)": (lambda t, x: _lgamma(x), lambda t, x: _central(_lgamma, x)),
    "stop_gradient(y_pred^2)": (lambda t, x: x**2, lambda t, x: 0 * x),
    "y_pred*stop_gradient(y_pred)": (lambda t, x: x**2, lambda t, x: x),
    "pi*y_pred + e": (lambda t, x: math.pi * x + math.e, lambda t, x: math.pi + 0 * x),
    # Poisson NLL with the full term: lgamma(y_true + 1) = log(y_true!).
    "y_pred - y_true*log(y_pred) + lgamma(y_true + 1)": (
        lambda t, x: x - t * np.log(x) + _lgamma(t + 1), lambda t, x: 1 - t / x),
    "where(0 < y_pred - 1 < 0.5 and not y_true == 1 or y_true > 2, y_pred^2, -y_pred)": (
        lambda t, x: np.where(((0 < x - 1) & (x - 1 < 0.5) & ~(t == 1)) | (t > 2), x**2, -x),
        lambda t, x: np.where(((0 < x - 1) & (x - 1 < 0.5) & ~(t == 1)) | (t > 2), 2 * x, -1.0)),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("source", list(ELEMENTWISE))
def test_elementwise_value_and_gradient(source, mode):
    value, gradient = _value_and_gradient(source, mode)
    expected_value, expected_gradient = ELEMENTWISE[source]
    np.testing.assert_allclose(value, expected_value(Y_TRUE, Y_PRED), rtol=1e-12, atol=1e-14)
    # lgamma's symbolic derivative is digamma's series (within 1e-12); the reference is a
    # central difference (within ~1e-9).
    np.testing.assert_allclose(gradient, expected_gradient(Y_TRUE, Y_PRED), rtol=1e-8, atol=1e-10)


X3 = RNG.normal(size=(2, 3, 4)) + 0.5


def _reference(kind: str, x: np.ndarray, axes: tuple[int, ...]):
    """(value, d value / d x) of a reduction over ``axes``, keepdims, written from the math."""
    count = np.prod([x.shape[a] for a in axes])
    mean = x.sum(axis=axes, keepdims=True) / count
    if kind == "prod":
        value = np.prod(x, axis=axes, keepdims=True)
        return value, value / x
    if kind == "var":
        value = ((x - mean) ** 2).sum(axis=axes, keepdims=True) / count
        return value, 2 * (x - mean) / count
    if kind == "std":
        value = np.sqrt(((x - mean) ** 2).sum(axis=axes, keepdims=True) / count)
        return value, (x - mean) / (count * value)
    value = np.sqrt((x * x).sum(axis=axes, keepdims=True))  # norm
    return value, x / value


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("axis, axes", [("", (1, 2)), (", axis=-1", (2,)), (", axis=1", (1,))])
@pytest.mark.parametrize("kind", ["prod", "var", "std", "norm"])
def test_reductions_value_and_gradient(kind, axis, axes, mode):
    # 3*kind(...): a reduction as a factor, so the gradient flows through its broadcast.
    value, gradient = _value_and_gradient(f"y_pred*{kind}(y_pred{axis})", mode,
                                          np.zeros_like(X3), X3)
    reduced, slope = _reference(kind, X3, axes)
    count = np.prod([X3.shape[a] for a in axes])
    expected_value = X3 * reduced
    # d/dx_i of sum_j x_j r = r + x_i... summed: r (own) + sum over the group of x_j * slope_i.
    expected_gradient = reduced + X3.sum(axis=axes, keepdims=True) * slope
    np.testing.assert_allclose(value.reshape(X3.shape), expected_value, rtol=1e-11)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-9, atol=1e-11)
    assert count > 1


def test_var_is_the_mean_square_deviation_and_std_its_root():
    value, _ = _value_and_gradient("var(y_pred, axis=-1) - mean((y_pred - mean(y_pred, axis=-1))^2, "
                                   "axis=-1)", "autodiff", np.zeros_like(X3), X3)
    np.testing.assert_allclose(value, 0, atol=1e-13)


ASL = "mean(-stop_gradient((1 - sigmoid(y_pred))^2)*y_true*log(sigmoid(y_pred)))"


def test_asl_detached_weight_symbolic_gradient_is_the_tapes_and_not_the_undetached_one():
    y_true = (RNG.uniform(size=(4, 6)) > 0.5).astype(np.float64)
    y_pred = RNG.normal(size=(4, 6)) * 2
    _, tape = _value_and_gradient(ASL, "autodiff", y_true, y_pred)
    _, symbolic = _value_and_gradient(ASL, "symbolic", y_true, y_pred)
    np.testing.assert_allclose(symbolic, tape, rtol=1e-12, atol=1e-15)
    # By hand: the weight w = (1 - s)^2 is a constant; d/dx -w*t*log(s) = -w*t*(1 - s).
    s = 1 / (1 + np.exp(-y_pred))
    np.testing.assert_allclose(tape, -(1 - s) ** 2 * y_true * (1 - s) / y_pred.shape[1],
                               rtol=1e-12, atol=1e-15)
    _, attached = _value_and_gradient(ASL.replace("stop_gradient", ""), "symbolic", y_true, y_pred)
    assert not np.allclose(attached, tape)
    report = lossdsl.check_gradients(lossdsl.compile(ASL, dtype="float64"), y_true, y_pred)
    assert not report.mismatched


def test_stop_gradient_survives_simplification_and_stability_rewrites():
    analysis = analyze("mean(stop_gradient(log(sigmoid(y_pred)))*y_pred + stop_gradient(2)*y_pred)")
    assert "stop_gradient(" in str(analysis.expression)  # its argument rewritten, not it dropped
    assert "stop_gradient(-softplus(-y_pred))" in str(analysis.expression)
    assert "stop_gradient(log" not in str(analysis.gradient)


def test_lgamma_of_counts_is_the_log_factorial_and_its_domain_is_positive():
    value, _ = _value_and_gradient("lgamma(y_true + 1)", "autodiff",
                                   np.arange(6.0)[None, :], np.ones((1, 6)))
    np.testing.assert_allclose(value[0], [math.log(math.factorial(k)) for k in range(6)],
                               rtol=1e-13, atol=1e-14)
    conditions = [c.text for c in lossdsl.explain("mean(lgamma(y_pred))").conditions]
    assert "y_pred > 0" in conditions


def test_erfc_keeps_the_tail_that_one_minus_erf_loses():
    value, _ = _value_and_gradient("erfc(y_pred)", "autodiff", np.zeros((1, 2)),
                                   np.array([[6.0, 9.0]]))
    np.testing.assert_allclose(value[0], [math.erfc(6.0), math.erfc(9.0)], rtol=1e-12)
    assert value[0, 1] > 0  # 1 - erf(9) is exactly 0 in float64


@pytest.mark.parametrize("source", ["mean(pow(y_pred, 2))", "mean(y_pred^2)"])
def test_pow_is_the_power_operator(source):
    assert str(analyze(source).expression) == str(analyze("mean(y_pred^2)").expression)


def test_latex_and_readable_text_of_the_new_functions():
    analysis = lossdsl.explain("mean(lgamma(y_pred) + stop_gradient(y_pred)) + var(y_pred, "
                               "axis=-1) + prod(y_pred) + norm(y_pred) + std(y_pred)")
    latex = analysis.to_latex()
    for tex in (r"\ln\Gamma", r"\operatorname{sg}", r"\operatorname{var}", r"\prod",
                r"\lVert", r"\operatorname{std}"):
        assert tex in latex, (tex, latex)


def test_a_power_whose_exponent_depends_on_the_position_lowers():
    """Was a TypeError: one_hot(alpha) has no free symbol, so it passed for a number exponent."""
    value, _ = _value_and_gradient("alpha = 1; pow(2, one_hot(alpha)) + 0*y_pred", "autodiff",
                                   np.zeros((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(value, [[1, 2, 1], [1, 2, 1]])
