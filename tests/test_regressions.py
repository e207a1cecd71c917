"""One test per bug that hardening found, each against an independent reference.

(The hangs and blow-ups are in tests/test_limits.py, one per pathological input.)
"""

import numpy as np
import pytest
import sympy

import lossdsl
from lossdsl.symbolic import simplify


@pytest.mark.parametrize("source", ["mean(\n", "y_pred +\n\n", "mean(y_pred)\n)"])
def test_error_at_the_end_of_a_source_ending_in_a_newline_prints(source):
    """str(error) raised IndexError: splitlines() drops the final empty line."""
    with pytest.raises(lossdsl.DSLSyntaxError) as caught:
        lossdsl.compile_expression(source)
    lines = source.split("\n")
    assert f"line {caught.value.line}, column {caught.value.column}" in str(caught.value)
    assert caught.value.line <= len(lines)


def test_too_long_source_error_has_a_position():
    source = "y_pred+" * 2000 + "y_pred"
    with pytest.raises(lossdsl.DSLLimitError) as caught:
        lossdsl.compile_expression(source)
    assert (caught.value.line, caught.value.column) == (1, 10_001)


def test_clip_of_a_constant_between_tensor_bounds():
    """clip(2, y_true, y_pred) raised TF's ValueError: clip_by_value does not broadcast x."""
    y_true = np.array([[0.1, 0.5, 3.0]])
    y_pred = np.array([[0.9, 4.0, 5.0]])
    loss = lossdsl.compile("clip(2, y_true, y_pred)", reduction="none", dtype="float64")
    np.testing.assert_allclose(loss(y_true, y_pred), [[0.9, 2.0, 3.0]])  # by hand


def test_constant_without_a_real_value_is_a_located_error_not_an_internal_one():
    """y_pred + sqrt(-1) used to fail in TF lowering with 'Internal error: ... ImaginaryUnit'."""
    with pytest.raises(lossdsl.DSLTypeError) as caught:
        lossdsl.compile("mean(y_pred) + sqrt(-1)")
    assert (caught.value.line, caught.value.column) == (1, 16)


def test_huge_literal_is_a_limit_error_not_a_value_error():
    """Python refuses int() of a 4,300+ digit string with ValueError."""
    with pytest.raises(lossdsl.DSLLimitError):
        lossdsl.compile_expression("9" * 5000)


def test_huge_integer_parameter_is_a_type_error_not_an_overflow():
    with pytest.raises(lossdsl.DSLTypeError):
        lossdsl.compile_expression("mean(alpha*y_pred)", {"alpha": 10**400})


def test_bad_dtype_is_a_config_error_not_a_keras_value_error():
    with pytest.raises(lossdsl.DSLConfigError):
        lossdsl.compile("mean(y_pred)", dtype="not_a_dtype")


def test_simplify_result_does_not_depend_on_the_clock(monkeypatch):
    """A 50 ms wall-clock deadline made one source simplify differently under load."""
    source = "p = clip(y_pred, 1e-7, 1 - 1e-7); mean(-y_true*(1-p)^2*log(p))"
    lossdsl.analyze.cache_clear()
    relaxed = str(lossdsl.analyze(source).gradient)
    lossdsl.analyze.cache_clear()
    ticks = iter(range(10**6))
    monkeypatch.setattr(simplify.time, "perf_counter", lambda: float(next(ticks)))
    assert str(lossdsl.analyze(source).gradient) == relaxed  # each clock read: +1 s
    lossdsl.analyze.cache_clear()


def test_long_reduction_argument_does_not_spell_out_huge_names():
    """Names embedded inner names: nested softmax built exponentially long strings."""
    analysis = lossdsl.analyze("softmax(softmax(softmax(softmax(softmax(y_pred)))))")
    assert max(len(str(symbol)) for symbol in analysis.table.reductions) < 200


def test_symbolic_exponent_of_a_dsl_function_is_not_a_type_error():
    """`x^-softplus(2)`: check_exponent compared abs(-softplus(2)) > 1000, undecidable."""
    loss = lossdsl.compile("mean(exp(y_true)^-softplus(2))", dtype="float64")
    y_true = np.array([[0.2, 0.4]])
    expected = np.mean(np.exp(y_true) ** -np.logaddexp(0.0, 2.0))  # NumPy, by hand
    np.testing.assert_allclose(loss(y_true, y_true), expected, rtol=1e-12)


@pytest.mark.parametrize("y_true, y_pred", [
    ([[0.61, 0.2, 0.9]], [[0.59, 0.5, 0.3]]),   # lo > hi: the value is lo
    ([[0.3, 0.3, 0.7]], [[0.5, 0.3, 0.7]]),     # ties at both bounds
])
def test_clip_gradient_matches_the_tape_even_when_lo_exceeds_hi(y_true, y_pred):
    """The rules assumed lo <= hi; TF computes maximum(minimum(x, hi), lo)."""
    for source in ("clip(y_true, y_true, y_pred)", "clip(y_pred, y_true, 0.6)",
                   "clip(0.4, y_true, y_pred)", "clip(y_pred, 0.5, y_true)"):
        report = lossdsl.check_gradients(source, y_true, y_pred)
        assert report.passed, f"{source}\n{report}"


def test_comparison_of_a_where_lowers_to_tensorflow():
    """SymPy folds Eq(Piecewise, x) into ITE, which had no TF lowering (internal error)."""
    y_true = np.array([[0.5, -0.5]])
    for source, by_hand in [
        ("where(where(y_true == abs(y_true), abs(y_true), y_true) == y_true, y_true, 2)",
         [[0.5, -0.5]]),  # the condition always holds
        ("where(where(y_true > 0, abs(y_true), 0) == y_true, y_true, 2)", [[0.5, 2.0]]),
    ]:
        loss = lossdsl.compile(source, reduction="none", dtype="float64")
        np.testing.assert_allclose(loss(y_true, y_true), by_hand)


@pytest.mark.parametrize("source", ["abs(log(y_pred))", "sign(y_true + log(y_pred))",
                                    "mean(abs(sqrt(y_pred) - y_true))",
                                    "sign(sqrt(y_pred))*y_pred"])
def test_abs_and_sign_of_arguments_not_provably_real_differentiate_like_tf(source):
    """SymPy gave re/im/atan2 formulas or an unevaluated Derivative: internal errors."""
    analysis = lossdsl.analyze(source)
    assert not analysis.gradient.has(sympy.re, sympy.im, sympy.atan2, sympy.Derivative)
    y_true, y_pred = np.array([[0.2, 0.7, 0.4]]), np.array([[0.3, 0.9, 0.5]])
    report = lossdsl.check_gradients(source, y_true, y_pred)
    assert report.passed, report


def test_xlogy_of_a_where_with_a_constant_condition_derives() -> None:
    """SymPy raised a bare KeyError building `x == 0` for an x that is a where on a constant."""
    report = lossdsl.check_gradients("mean(xlogy(where(log(2) == one_hot(2), y_true, y_pred), "
                                     "y_pred + 2))")
    assert report.passed, report


def test_a_loss_that_is_a_logsumexp_checks_its_gradient() -> None:
    """Its eager log-softmax program skipped the logsumexp that only `x - logsumexp(x)` read,
    though the check plan's loss output read it too: check_gradients raised AttributeError
    (found by the generated pair programs of tests/test_metric_learning.py)."""
    report = lossdsl.check_gradients("logsumexp(y_pred, axis=-1)", np.full((3, 4), 0.5),
                                     np.linspace(0.1, 0.9, 12).reshape(3, 4))
    assert report.passed and report.points == 12, report


@pytest.mark.parametrize("source, by_hand", [
    ("sigmoid(0) + y_true", lambda t: t + 0.5),
    ("sigmoid(y_pred - y_pred) + y_true", lambda t: t + 0.5),
    ("softplus(0) + y_true", lambda t: t + np.log(2.0)),
    ("softplus(0*y_pred) - y_true", lambda t: np.log(2.0) - t),
])
def test_a_sigmoid_or_softplus_of_zero_is_its_value(source, by_hand) -> None:
    """The rewrite a*f(-z) + b*f(z) took f(0)'s term as its own partner (0 = -0): sigmoid(0)
    became 1 and softplus(0) 2^32*softplus(0) (found by the generated triple programs)."""
    y_true, y_pred = np.array([[1.0, -2.0]]), np.array([[0.3, 0.9]])
    loss = lossdsl.compile(source, reduction="none", dtype="float64")
    np.testing.assert_allclose(loss(y_true, y_pred), by_hand(y_true), rtol=1e-12)
