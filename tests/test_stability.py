"""Stability rewrites: naive one-liners stay finite at extreme inputs and match float64 references.

The references are written independently of lossdsl, in TensorFlow float64 with
TF's own stable primitives (``sigmoid_cross_entropy_with_logits``, ``log_sigmoid``,
``softmax_cross_entropy_with_logits``, ``xlogy`` ...), differentiated by the tape.
"""

import warnings

import numpy as np
import pytest
import sympy
import tensorflow as tf

import lossdsl
from lossdsl.keras.loss import GRADIENT_MODES
from lossdsl.symbolic.stability import RULES, stabilize
from lossdsl.symbolic.translate import ReductionTable

LOGITS = np.array([-1e4, -100.0, -20.0, -1.0, 0.0, 0.5, 20.0, 100.0, 1e4])
LOGIT_PAIRS = np.stack([LOGITS, -LOGITS], axis=1)           # (9, 2)
BINARY_LABELS = np.tile([1.0, 0.0], (len(LOGITS), 1))         # one of each per sample
PM1_LABELS = np.tile([1.0, -1.0], (len(LOGITS), 1))
CLASS_LOGITS = np.array([[1e4, -1e4, 0.0], [-100.0, 100.0, 0.0], [0.0, 0.0, 0.0],
                         [20.0, -20.0, 1e4], [-1e4, -1e4, -1e4]])
ONE_HOT = np.eye(3)[[0, 0, 2, 1, 1]]
# Probabilities at exactly 0 and 1 where the label agrees (the loss is finite there).
PROBS = np.array([[0.0, 1.0, 0.3], [1.0, 0.0, 0.7], [0.0, 0.0, 1.0]])
PROB_LABELS = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
ERRORS = np.array([[-1e6, -1e4, -3.0], [-0.5, 0.25, 2.0], [10.0, 1e4, 1e6]])
SMALL = np.array([[1e-7, -1e-7, 1e-4], [2e-6, 0.5, -0.3]])
DISTRIBUTIONS = np.array([[0.0, 0.25, 0.75], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
PREDICTED = np.array([[0.2, 0.3, 0.5], [1e-6, 0.9, 0.1], [0.6, 0.3, 0.1]])


def _row_mean(values):
    return tf.reduce_mean(values, axis=-1)


def _bce_logits(t, x):
    return _row_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=x))


def _focal_logits(t, x, alpha=0.25, gamma=2.0):
    positive = -alpha * t * tf.sigmoid(-x) ** gamma * tf.math.log_sigmoid(x)
    negative = -(1 - alpha) * (1 - t) * tf.sigmoid(x) ** gamma * tf.math.log_sigmoid(-x)
    return _row_mean(positive + negative)


def _cce_logits(t, x):
    return tf.nn.softmax_cross_entropy_with_logits(labels=t, logits=x)


def _stable_log_cosh(e):
    a = tf.abs(e)
    return a + tf.nn.softplus(-2.0 * a) - tf.math.log(tf.constant(2.0, tf.float64))


def _huber(t, p, delta=1.0):
    e = tf.abs(t - p)
    return _row_mean(tf.where(e <= delta, 0.5 * e**2, delta * (e - 0.5 * delta)))


def _bce_probs(t, p):
    return _row_mean(-(tf.math.xlogy(t, p) + tf.math.xlog1py(1 - t, -p)))


def _where_log(t, p):
    safe = tf.where(p > 0, p, tf.ones_like(p))
    return _row_mean(tf.where(p > 0, tf.math.log(safe), p))


# (name, source, params, reference(y_true, y_pred) -> per-sample loss in float64, y_true, y_pred).
# Module-level so that the losses of the library can be appended to the matrix.
STABILITY_CASES = [
    ("bce_logits_via_log_sigmoid",
     "mean(-(y_true*log(sigmoid(y_pred)) + (1-y_true)*log(1-sigmoid(y_pred))))", {},
     _bce_logits, BINARY_LABELS, LOGIT_PAIRS),
    ("bce_logits_via_exp",
     "mean(-(y_true*log(1/(1+exp(-y_pred))) + (1-y_true)*log(1-1/(1+exp(-y_pred)))))", {},
     _bce_logits, BINARY_LABELS, LOGIT_PAIRS),
    ("bce_logits_exp_over_one_plus_exp",
     "p = exp(y_pred)/(1 + exp(y_pred)); mean(-(y_true*log(p) + (1-y_true)*log(1-p)))", {},
     _bce_logits, BINARY_LABELS, LOGIT_PAIRS),
    ("logistic_softplus_by_hand", "mean(log(1 + exp(-y_true*y_pred)))", {},
     lambda t, x: _row_mean(tf.nn.softplus(-t * x)), PM1_LABELS, LOGIT_PAIRS),
    ("bce_from_logits_textbook", "mean(log(1 + exp(y_pred)) - y_true*y_pred)", {},
     _bce_logits, BINARY_LABELS, LOGIT_PAIRS),
    ("focal_on_logits",
     "p = sigmoid(y_pred); mean(-alpha*y_true*(1-p)^gamma*log(p)"
     " - (1-alpha)*(1-y_true)*p^gamma*log(1-p))", {"alpha": 0.25, "gamma": 2.0},
     _focal_logits, BINARY_LABELS, LOGIT_PAIRS),
    ("focal_on_logits_keras_p_t_form",
     "p = sigmoid(y_pred); p_t = y_true*p + (1 - y_true)*(1 - p);"
     " mean((1 - p_t)^gamma*-(y_true*log(p) + (1 - y_true)*log(1 - p)))", {"gamma": 2.0},
     lambda t, x: _row_mean(tf.where(t > 0, tf.sigmoid(-x), tf.sigmoid(x)) ** 2
                            * tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=x)),
     BINARY_LABELS, LOGIT_PAIRS),
    ("focal_fractional_gamma",
     "p = sigmoid(y_pred); p_t = y_true*p + (1 - y_true)*(1 - p);"
     " mean((1 - p_t)^gamma*-(y_true*log(p) + (1 - y_true)*log(1 - p)))", {"gamma": 1.5},
     lambda t, x: _row_mean(tf.where(t > 0, tf.sigmoid(-x), tf.sigmoid(x)) ** 1.5
                            * tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=x)),
     BINARY_LABELS, LOGIT_PAIRS),
    ("bce_probabilities_at_0_and_1", "mean(-(y_true*log(y_pred) + (1-y_true)*log(1-y_pred)))",
     {}, _bce_probs, PROB_LABELS, PROBS),
    ("cce_via_log_softmax", "-sum(y_true*log(softmax(y_pred)))", {},
     _cce_logits, ONE_HOT, CLASS_LOGITS),
    ("cce_via_exp_over_sum", "-sum(y_true*log(exp(y_pred)/sum(exp(y_pred), axis=-1)))", {},
     _cce_logits, ONE_HOT, CLASS_LOGITS),
    ("cce_via_log_sum_exp", "sum(y_true*(log(sum(exp(y_pred), axis=-1)) - y_pred))", {},
     _cce_logits, ONE_HOT, CLASS_LOGITS),
    ("kl_divergence_with_zero_labels", "sum(y_true*log(y_true/y_pred))", {},
     lambda t, p: tf.reduce_sum(tf.math.xlogy(t, t) - tf.math.xlogy(t, p), -1),
     DISTRIBUTIONS, PREDICTED),
    ("log_cosh_huge_errors", "mean(log(cosh(y_pred - y_true)))", {},
     lambda t, p: _row_mean(_stable_log_cosh(p - t)), np.zeros_like(ERRORS), ERRORS),
    ("huber_huge_errors",
     "e = y_true - y_pred; mean(where(abs(e) <= delta, 0.5*e^2, delta*(abs(e) - 0.5*delta)))",
     {"delta": 1.0}, _huber, np.zeros_like(ERRORS), ERRORS),
    ("cauchy_huge_errors", "mean(log(1 + ((y_pred - y_true)/c)^2))", {"c": 2.0},
     lambda t, p: _row_mean(tf.math.log1p(((p - t) / 2.0) ** 2)), np.zeros_like(ERRORS), ERRORS),
    ("geman_mcclure_huge_errors", "e = y_pred - y_true; mean(e^2/(e^2 + c^2))", {"c": 1.0},
     lambda t, p: _row_mean((p - t) ** 2 / ((p - t) ** 2 + 1.0)), np.zeros_like(ERRORS), ERRORS),
    ("log_one_plus_small", "mean(log(1 + y_pred))", {},
     lambda t, p: _row_mean(tf.math.log1p(p)), np.zeros_like(SMALL), SMALL),
    ("exp_minus_one_small", "mean((exp(y_pred) - 1)^2)", {},
     lambda t, p: _row_mean(tf.math.expm1(p) ** 2), np.zeros_like(SMALL), SMALL),
    ("where_with_log_in_untaken_branch", "mean(where(y_pred > 0, log(y_pred), y_pred))", {},
     _where_log, np.zeros((2, 4)), np.array([[-1.0, 0.0, 2.0, 1e4], [0.0, 0.0, 0.5, -3.0]])),
]


def _ours(source, params, mode, y_true, y_pred, dtype="float32"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lossdsl.LossDSLWarning)
        loss = lossdsl.compile(source, reduction="sum", gradient=mode, dtype=dtype, **params)
    variable = tf.Variable(y_pred.astype(dtype))
    with tf.GradientTape() as tape:
        value = loss(y_true.astype(dtype), variable)
    return value.numpy(), tape.gradient(value, variable).numpy()


def _reference(function, y_true, y_pred, dtype="float32"):
    # The same (possibly rounded) inputs, evaluated in float64.
    y_true = tf.constant(y_true.astype(dtype).astype("float64"))
    variable = tf.Variable(y_pred.astype(dtype).astype("float64"))
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(function(y_true, variable))
    return value.numpy(), tape.gradient(value, variable).numpy()


@pytest.mark.parametrize("mode", GRADIENT_MODES)
@pytest.mark.parametrize("name, source, params, reference, y_true, y_pred", STABILITY_CASES,
                         ids=[case[0] for case in STABILITY_CASES])
def test_naive_spelling_is_finite_and_matches_float64(name, source, params, reference,
                                                      y_true, y_pred, mode):
    value, gradient = _ours(source, params, mode, y_true, y_pred)
    want_value, want_gradient = _reference(reference, y_true, y_pred)
    assert np.isfinite(value) and np.all(np.isfinite(gradient)), (value, gradient)
    np.testing.assert_allclose(value, want_value, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(gradient, want_gradient, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name, source, params, reference, y_true, y_pred",
                         STABILITY_CASES[:8], ids=[case[0] for case in STABILITY_CASES[:8]])
def test_symbolic_and_autodiff_agree_in_float64(name, source, params, reference, y_true, y_pred):
    by_tape = _ours(source, params, "autodiff", y_true, y_pred, dtype="float64")
    by_formula = _ours(source, params, "symbolic", y_true, y_pred, dtype="float64")
    want = _reference(reference, y_true, y_pred, dtype="float64")
    for got in (by_tape, by_formula):
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-12)


def test_naive_forms_really_are_unstable_without_the_rewrites():
    # The matrix is not vacuous: written by hand in TF, these spellings fail at the same points.
    x = tf.constant(LOGIT_PAIRS, tf.float32)
    t = tf.constant(BINARY_LABELS, tf.float32)
    naive = -(t * tf.math.log(tf.sigmoid(x)) + (1 - t) * tf.math.log(1 - tf.sigmoid(x)))
    assert not np.all(np.isfinite(naive.numpy()))
    p, labels = tf.constant(PROBS, tf.float32), tf.constant(PROB_LABELS, tf.float32)
    naive = -(labels * tf.math.log(p) + (1 - labels) * tf.math.log(1 - p))
    assert np.isnan(naive.numpy()).any()
    assert not np.isfinite(np.log(np.cosh(np.float32(1e4))))


# Each rule on a minimal DSL source, with a naive numpy spelling of the same value at
# moderate points where the naive form is accurate.
RULE_EXAMPLES = {
    "log_one_minus_sigmoid": ("log(1 - sigmoid(y_pred))", lambda t, p: np.log(1 - 1 / (1 + np.exp(-p)))),
    "log_sigmoid": ("log(sigmoid(y_pred))", lambda t, p: np.log(1 / (1 + np.exp(-p)))),
    "log_one_plus_exp": ("log(1 + exp(y_pred))", lambda t, p: np.log(1 + np.exp(p))),
    "log_softmax": ("log(exp(y_pred)/sum(exp(y_pred), axis=-1))",
                    lambda t, p: p - np.log(np.exp(p).sum(-1, keepdims=True))),
    "log_sum_exp": ("log(sum(exp(y_pred)))", lambda t, p: np.log(np.exp(p).sum(-1))),
    "log_cosh": ("log(cosh(y_pred))", lambda t, p: np.log(np.cosh(p))),
    "exp_over_one_plus_exp": ("exp(y_pred)/(1 + exp(y_pred))", lambda t, p: np.exp(p) / (1 + np.exp(p))),
    "softmax": ("y_true*exp(y_pred)/sum(exp(y_pred), axis=-1)",
                lambda t, p: t * np.exp(p) / np.exp(p).sum(-1, keepdims=True)),
    "log_one_plus": ("log(1 + y_pred^2)", lambda t, p: np.log(1 + p**2)),
    "one_minus_sigmoid": ("1 - sigmoid(y_pred)", lambda t, p: 1 - 1 / (1 + np.exp(-p))),
    "tanh": ("y_true - 2*sigmoid(-2*y_pred) + 1", lambda t, p: t + np.tanh(p)),
    "sign_times_tanh_abs": ("sign(y_pred)*tanh(abs(y_pred))", lambda t, p: np.tanh(p)),
    "exp_minus_one": ("exp(y_pred) - 1 + y_true", lambda t, p: np.exp(p) - 1 + t),
    "reciprocal_one_plus_exp": ("1/(1 + exp(y_pred))", lambda t, p: 1 / (1 + np.exp(p))),
    "sigmoid_pair": ("(1 - y_true)*sigmoid(y_pred) - y_true*sigmoid(-y_pred)",
                     lambda t, p: (1 - t) / (1 + np.exp(-p)) - t / (1 + np.exp(p))),
    "softplus_pair": ("(1 - y_true)*softplus(y_pred) + y_true*softplus(-y_pred)",
                      lambda t, p: (1 - t) * np.log1p(np.exp(p)) + t * np.log1p(np.exp(-p))),
    "combine_powers": ("(y_true + y_pred^2)^y_true/(y_true + y_pred^2)",
                       lambda t, p: (t + p**2) ** (t - 1)),
    "cancel_power_division": ("(1 + y_pred^2)^y_true*(y_true/(1 + y_pred^2) + y_pred)",
                              lambda t, p: (1 + p**2) ** t * (t / (1 + p**2) + p)),
    "xlogy": ("y_true*log(y_pred^2)", lambda t, p: t * np.log(p**2)),
    "xlog1py": ("y_true*log(1 + y_pred^2)", lambda t, p: t * np.log1p(p**2)),
}


def test_every_rule_has_an_example():
    assert set(RULE_EXAMPLES) == {rule.name for rule in RULES}


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_each_rule_fires_and_keeps_the_value(rule):
    source, naive = RULE_EXAMPLES[rule.name]
    assert rule.name in lossdsl.analyze(source).rewrites
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.uniform(0, 1, (3, 4)), rng.uniform(-2, 2, (3, 4))
    loss = lossdsl.compile(source, reduction="none", dtype="float64")
    expected = np.broadcast_to(naive(y_true, y_pred), loss(y_true, y_pred).shape) \
        if np.ndim(naive(y_true, y_pred)) < 2 else naive(y_true, y_pred)
    np.testing.assert_allclose(loss(y_true, y_pred), expected, rtol=1e-12, atol=1e-12)


def test_rewrites_reach_reduction_arguments_and_rename_them():
    analysis = lossdsl.analyze("mean(-y_true*log(sigmoid(y_pred)))")
    assert str(analysis.expression) == "mean(y_true*softplus(-y_pred))"
    assert [str(r.symbol) for r in analysis.table.in_order()] == ["mean(y_true*softplus(-y_pred))"]


def test_rewrites_are_recorded_in_order_and_once():
    analysis = lossdsl.analyze(STABILITY_CASES[0][1])
    assert analysis.rewrites == ("log_sigmoid", "log_one_minus_sigmoid", "sigmoid_pair")
    assert lossdsl.analyze("mean((y_true - y_pred)^2)").rewrites == ()


def test_a_constant_factor_is_not_turned_into_xlogy():
    x = sympy.Symbol("y_pred", real=True)
    result = stabilize(ReductionTable(), [-2 * sympy.log(x)])
    assert result.exprs[0] == -2 * sympy.log(x) and result.fired == ()


def test_gradient_is_stabilised_too():
    # exp(y)/(1+exp(y)) appears in the *gradient* of log(1 + exp(y)) as derived by SymPy
    # from exp; here the user writes its derivative's ingredients directly.
    analysis = lossdsl.analyze("mean(log(1 + exp(y_pred)))")
    assert str(analysis.gradient) == "sigmoid(y_pred)/n"


@pytest.mark.parametrize("source, words, remedy", [
    ("mean(-y_true*log(y_pred))", "`log(y_pred)` is infinite where `y_pred` = 0",
     "clip it (`clip(y_pred, 1e-7, 1 - 1e-7)`) or write the loss on logits."),
    ("mean(-(1 - y_true)*log(1 - y_pred))", "`log(1 - y_pred)` is infinite",
     "clip it (`clip(y_pred, 1e-7, 1 - 1e-7)`) or write the loss on logits."),
    # The remedy names the input that reaches the bad point, and logits only for predictions.
    ("mean(abs(y_true - y_pred)/y_true)", "`1/(y_true)` is infinite",
     "clip it (`clip(y_true, 1e-7, 1 - 1e-7)`)."),
])
def test_infinite_values_warn_at_compile_time(source, words, remedy):
    with pytest.warns(lossdsl.LossDSLWarning) as caught:
        lossdsl.compile(source)
    messages = [str(w.message) for w in caught]
    assert any(words in m and m.endswith(remedy) for m in messages), messages


@pytest.mark.parametrize("source", [
    "mean(-y_true*log(clip(y_pred, 1e-7, 1 - 1e-7)))",
    "mean(-y_true*log(y_pred + 1e-7))",
    STABILITY_CASES[0][1],
    "mean(where(y_pred > 0, log(y_pred), 0))",
    "mean((y_true - y_pred)^2)",
])
def test_finite_losses_do_not_warn(source):
    with warnings.catch_warnings():
        warnings.simplefilter("error", lossdsl.LossDSLWarning)
        lossdsl.compile(source)


@pytest.mark.parametrize("name, source, params, reference, y_true, y_pred",
                         STABILITY_CASES[:9], ids=[case[0] for case in STABILITY_CASES[:9]])
def test_symbolic_mode_under_xla_at_extreme_inputs(name, source, params, reference,
                                                   y_true, y_pred):
    # Under XLA the symbolic plans lower sigmoid/softplus through a shared exp(-|x|).
    loss = lossdsl.compile(source, reduction="sum", gradient="symbolic", **params)
    variable = tf.Variable(y_pred.astype("float32"))

    @tf.function(jit_compile=True)
    def step(labels):
        with tf.GradientTape() as tape:
            value = loss(labels, variable)
        return value, tape.gradient(value, variable)

    value, gradient = (t.numpy() for t in step(tf.constant(y_true.astype("float32"))))
    want_value, want_gradient = _reference(reference, y_true, y_pred)
    np.testing.assert_allclose(value, want_value, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(gradient, want_gradient, rtol=2e-5, atol=1e-6)


def test_readme_lists_every_rule():
    import pathlib
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Numerical stability", 1)[1].split("\n## ", 1)[0]
    for rule in RULES:
        assert f"| `{rule.name}` |" in section, rule.name
