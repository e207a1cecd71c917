"""Trust defects 1, 5 and 6a: stability rewrites keep finite values finite, nowhere-real
losses are located errors, and compile-time warnings are about the source, at the user's line.

The property at the end compares the compiled loss with the program as written (no
simplification, no rewrite): its values with tests/dsl_strategies.py's NumPy interpreter, its
tape gradient and derived parameter gradients with the tape of the same walk in TF ops
(:class:`AsWrittenTF`), at exact zeros and ones as well as inside (0.1, 0.9).
"""

import math
import warnings

import numpy as np
import pytest
import tensorflow as tf
from dsl_strategies import SHAPE, NumpyInterpreter, programs
from hypothesis import event, given, settings
from hypothesis import strategies as st

import lossdsl
from lossdsl.language import ir
from lossdsl.tools.cli import main as cli_main
from lossdsl.ops import REGISTRY
from lossdsl.backends.tensorflow.functions import tf_function

# The losses here are infinite somewhere on purpose; the warnings are tested where recorded.
pytestmark = pytest.mark.filterwarnings("ignore::lossdsl.LossDSLWarning")

# ---------------------------------------------------------------- defect 1: x*log(y) guards


def _tape(loss, y_true, y_pred):
    """The loss per sample and the tape's d(sum of it)/d y_pred, in float64."""
    y_pred = tf.Variable(np.asarray(y_pred, np.float64))
    with tf.GradientTape() as tape:
        values = loss.call(tf.constant(y_true, tf.float64), y_pred)
        total = tf.reduce_sum(values)
    gradient = tape.gradient(total, y_pred)
    return values.numpy(), np.zeros(y_pred.shape) if gradient is None else gradient.numpy()


def test_a_label_times_y_log_y_is_finite_at_zero():
    """The issue's repro: y_pred*xlogy(y_true, y_pred) was 0*(-inf) = NaN at y_pred = 0."""
    loss = lossdsl.compile("mean(y_true*y_pred*log(y_pred))")
    value = float(loss(np.ones((1, 2), "float32"), np.array([[0.0, 0.5]], "float32")))
    assert value == pytest.approx((0.0 + 0.5 * math.log(0.5)) / 2, rel=1e-6)  # -0.1733
    # The label multiplies from outside; the guard is the factor that vanishes with log's argument.
    assert str(loss.expression) == "mean(y_true * xlogy(y_pred, y_pred))"


def test_a_label_times_y_log_y_has_the_tapes_gradient_at_zero():
    loss = lossdsl.compile("mean(y_true*y_pred*log(y_pred))", dtype="float64")
    y_true, y_pred = np.ones((1, 3)), np.array([[0.0, 0.5, 1.0]])
    _, tape = _tape(loss, y_true, y_pred)
    # d/dy y*log(y) = log(y) + 1; TF's xlogy takes 0 at y = 0 (its gradient convention there).
    np.testing.assert_allclose(tape, [[0.0, (math.log(0.5) + 1) / 3, 1 / 3]], rtol=1e-12)
    report = lossdsl.check_gradients(loss, y_true, y_pred)
    assert report.passed, report


def test_the_parameter_gradient_of_a_power_with_a_zero_base_is_finite():
    """d/dp relu(x)^p = relu(x)^p*log(relu(x)), 0 where relu(x) = 0 (it was NaN; the tape 1.386)."""
    y_true, y_pred = np.ones((1, 2)), np.array([[-1.0, 2.0]])
    report = lossdsl.check_gradients("mean(y_true*relu(y_pred)^p)", y_true, y_pred, p=2.0)
    symbolic, tape = report.parameters["p"]
    assert symbolic == pytest.approx((0.0 + 4 * math.log(2.0)) / 2, rel=1e-12)  # 1.386
    assert tape == pytest.approx(symbolic, rel=1e-12)
    assert report.passed, report


def test_xlog1py_takes_the_factor_that_vanishes_with_one_plus_its_argument():
    """log(1 - y) with (1 - y) and a label as factors: at y_pred = 1 the value is 0, not NaN."""
    loss = lossdsl.compile("mean(y_true*(1 - y_pred)*log(1 - y_pred))", dtype="float64")
    y_true, y_pred = np.ones((1, 2)), np.array([[1.0, 0.5]])
    values, tape = _tape(loss, y_true, y_pred)
    np.testing.assert_allclose(values, [(0.0 + 0.5 * math.log(0.5)) / 2], rtol=1e-12)
    assert np.all(np.isfinite(tape))
    assert str(loss.expression) == "mean(y_true * xlog1py(1 - y_pred, -y_pred))"


def test_the_focal_gradient_in_gamma_is_finite_where_the_base_is_zero():
    """d/dgamma (1 - y)^gamma = (1 - y)^gamma*log(1 - y): 0 at y_pred = 1 (xlog1py's guard)."""
    y_true, y_pred = np.ones((1, 2)), np.array([[1.0, 0.5]])
    report = lossdsl.check_gradients("mean(y_true*(1 - y_pred)^gamma)", y_true, y_pred,
                                     gamma=2.0)
    symbolic, tape = report.parameters["gamma"]
    assert symbolic == pytest.approx((0.0 + 0.25 * math.log(0.5)) / 2, rel=1e-12)
    assert tape == pytest.approx(symbolic, rel=1e-12)


@pytest.mark.parametrize("source, expected", [
    # Without a vanishing factor the label is the guard, as before.
    ("mean(-y_true*log(y_pred))", "-mean(xlogy(y_true, y_pred))"),
    ("g = 2; mean(-y_true*(1 - y_pred)^g*log(y_pred))",
     "-mean((1 - y_pred)**g*xlogy(y_true, y_pred))"),
    ("mean(y_pred*log(y_pred))", "mean(xlogy(y_pred, y_pred))"),
])
def test_labels_still_guard_when_no_factor_vanishes_with_the_log(source, expected):
    assert str(lossdsl.compile_expression(source).expression) == expected


# ---------------------------------------------------------------- defect 5: nowhere real


@pytest.mark.parametrize("source, call", [
    ("mean(sqrt(-exp(y_pred)))", "sqrt(-exp(y_pred))"),
    ("mean(sqrt(-1 - abs(y_pred)))", "sqrt(-1 - abs(y_pred))"),
    ("mean(log(-exp(y_pred)))", "log(-exp(y_pred))"),
    ("mean((-1-y_pred^2)^0.5)", "(-1-y_pred^2)^0.5"),
    ("a = -exp(y_pred); mean(y_true*log(a))", "log(a)"),
])
def test_a_loss_that_is_nowhere_real_is_a_located_type_error(source, call):
    with pytest.raises(lossdsl.DSLTypeError) as caught:
        lossdsl.compile_expression(source)
    error = caught.value
    assert error.source == source
    assert source[error.span.start:error.span.end] == call
    assert error.hint and "real" in error.message
    assert "Internal error" not in str(error)


def test_show_reports_a_nowhere_real_loss_instead_of_a_complex_gradient(capsys):
    assert cli_main(["show", "mean(sqrt(-1 - abs(y_pred)))"]) != 0
    out, err = capsys.readouterr()
    assert "I" not in out.replace("\n", " ").split()  # no imaginary unit printed
    assert "not a real number" in err and "^" in err


@pytest.mark.parametrize("source, y_pred, expected", [
    ("mean(sqrt(y_pred))", 0.25, 0.5),
    ("mean(log(y_pred))", math.e, 1.0),
    ("mean(log(-y_pred))", -math.e, 1.0),
    ("mean((y_pred - 1)^0.5)", 5.0, 2.0),
])
def test_losses_that_are_real_somewhere_still_compile(source, y_pred, expected):
    loss = lossdsl.compile(source, dtype="float64")
    assert float(loss(np.zeros((1, 1)), np.full((1, 1), y_pred))) == pytest.approx(expected)


# ---------------------------------------------------------------- defect 6a: warnings


def _loss_dsl_warnings(make) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make()
    return [w for w in caught if issubclass(w.category, lossdsl.LossDSLWarning)]


def test_no_warning_about_a_log_that_only_the_parameter_gradient_has():
    """d/dgamma of (1 - y)^gamma has log(1 - y_pred); the source has none."""
    assert _loss_dsl_warnings(lambda: lossdsl.compile("mean((1 - y_pred)^gamma)",
                                                      gamma=2.0)) == []


@pytest.mark.parametrize("make", [
    lambda: lossdsl.compile("mean(-y_true*log(y_pred))"),
    lambda: lossdsl.DSLLoss("mean(-y_true*log(y_pred))"),
    lambda: lossdsl.metric("mean(-y_true*log(y_pred))"),
    lambda: lossdsl.regularizer("sum(log(w))"),
    lambda: lossdsl.activity_penalty("mean(log(a))"),
    lambda: lossdsl.compile_expression("mean(log(1 - y_pred))"),
], ids=["compile", "DSLLoss", "metric", "regularizer", "activity_penalty", "compile_expression"])
def test_a_warning_points_at_the_users_line(make):
    found = _loss_dsl_warnings(make)
    assert found, "the source has a log that is infinite at 0: it should warn"
    assert {w.filename for w in found} == {__file__}


# ---------------------------------------------------------------- property

GRID = (0.0, 0.5, 1.0, -1.0, 2.0)
_REDUCE = {"mean": tf.reduce_mean, "sum": tf.reduce_sum, "max": tf.reduce_max,
           "min": tf.reduce_min, "logsumexp": tf.reduce_logsumexp, "prod": tf.reduce_prod,
           "var": tf.math.reduce_variance, "std": tf.math.reduce_std,
           "norm": tf.math.reduce_euclidean_norm}
_BINARY = {"+": tf.add, "-": tf.subtract, "*": tf.multiply, "/": tf.divide, "^": tf.pow}
_COMPARE = {"==": tf.equal, "!=": tf.not_equal, "<": tf.less, "<=": tf.less_equal,
            ">": tf.greater, ">=": tf.greater_equal}


class AsWrittenTF(NumpyInterpreter):
    """The NumPy interpreter's walk with TF ops, for the tape of the program as written.

    No simplification, no rewrite: ``y_true*y_pred*log(y_pred)`` is two products
    and a log. Functions come from OPS's TF column; every argument is broadcast
    to the full shape (as the README's semantics say) so each TF op gets one shape.
    """

    def full(self, value):
        return tf.broadcast_to(tf.cast(value, tf.float64), self.shape)

    def eval(self, node):
        return self._eval(node)

    def _eval(self, node):
        if isinstance(node, ir.Number):
            return tf.constant(float(node.text), tf.float64)
        if isinstance(node, ir.Compare):
            return _COMPARE[node.op](self.full(self.eval(node.left)),
                                     self.full(self.eval(node.right)))
        if isinstance(node, ir.Binary):
            return _BINARY[node.op](self.full(self.eval(node.left)),
                                    self.full(self.eval(node.right)))
        if isinstance(node, ir.Logic):
            join = tf.logical_and if node.op == "and" else tf.logical_or
            return join(self.eval(node.left), self.eval(node.right))
        if isinstance(node, ir.Not):
            return tf.logical_not(self.eval(node.operand))
        if isinstance(node, (ir.Name, ir.Negate, ir.Column)):
            return super()._eval(node)
        op = REGISTRY[node.function]
        args = [self.eval(arg) for arg in node.args]
        args = [arg if arg.dtype == tf.bool else self.full(arg) for arg in args]
        if op.kind == "elementwise":
            return tf_function(op.tf)(*args)
        axes = list(self.axes(node.axis))
        if op.kind == "reduction":
            return self.full(_REDUCE[op.name](args[0], axes, keepdims=True))
        log_softmax = args[0] - tf.reduce_logsumexp(args[0], axes, keepdims=True)
        return log_softmax if op.name == "log_softmax" else tf.exp(log_softmax)


def _as_written_gradients(program, y_true, y_pred, params) -> tuple[np.ndarray, dict]:
    """The tape's d(sum of the loss) / d y_pred and / d each parameter, of the program as written."""
    y_pred = tf.Variable(y_pred)
    variables = {name: tf.Variable(value, dtype=tf.float64) for name, value in params.items()}
    with tf.GradientTape() as tape:
        interpreter = AsWrittenTF(program, tf.constant(y_true), y_pred, {})
        interpreter.names.update(variables)
        total = tf.reduce_sum(interpreter.run())
    by_input, by_parameter = tape.gradient(total, (y_pred, variables))
    by_input = np.zeros(SHAPE) if by_input is None else by_input.numpy()
    return by_input, {name: 0.0 if g is None else float(g) for name, g in by_parameter.items()}


_VANISHING = ("y_pred", "relu(y_pred)^alpha", "(1 - y_pred)^beta", "relu(1 - y_pred)^alpha")
_LOGS = ("log(y_pred)", "log(1 - y_pred)", "log(relu(y_pred))", "log1p(-y_pred)", "1")


@st.composite
def log_products(draw) -> ir.Program:
    """``mean(y_true*f*log(h))``: a label, a factor that is 0 somewhere, a log or none.

    The factor may vanish where the log's argument does (the guard xlogy needs);
    d/dalpha of ``relu(y_pred)^alpha`` has a log of its own (defect 1).
    """
    factor = draw(st.sampled_from(_VANISHING))
    reduction = draw(st.sampled_from(("mean", "sum")))
    return ir.parse_source(f"alpha = 2; beta = 1.5; "
                           f"{reduction}(y_true*({factor})*{draw(st.sampled_from(_LOGS))})")


def scaled(factor: float) -> settings:
    """``factor`` times the profile's example count, as in tests/test_fuzz.py."""
    return settings(max_examples=max(1, int(settings.default.max_examples * factor)))


@st.composite
def _on_grid(draw) -> np.ndarray:
    # A few of the grid's values per array, so that a parameter's gradient, a total over
    # the sample, is often free of the NaNs of other values (log1p(-2)) and can be checked.
    values = draw(st.lists(st.sampled_from(GRID), min_size=1, max_size=3, unique=True))
    size = int(np.prod(SHAPE))
    elements = draw(st.lists(st.sampled_from(values), min_size=size, max_size=size))
    return np.array(elements, np.float64).reshape(SHAPE)


def _inputs() -> st.SearchStrategy[np.ndarray]:
    """Arrays of exact zeros, ones, halves, -1 and 2, or of values inside (0.1, 0.9)."""
    inside = st.integers(0, 2**16).map(
        lambda seed: np.random.default_rng(seed).uniform(0.1, 0.9, SHAPE))
    return st.one_of(_on_grid(), _on_grid(), inside)


def _full_shape(per_sample: np.ndarray) -> np.ndarray:
    """Undo the squeeze of the axes along which the loss is constant (sizes are distinct)."""
    squeezed = [axis for axis, size in enumerate(SHAPE) if size not in per_sample.shape]
    return np.broadcast_to(np.expand_dims(per_sample, squeezed), SHAPE)


def test_the_as_written_reference_has_the_tapes_gradient_of_a_hand_worked_loss():
    """mean(y_true*y_pred^a*log(y_pred)) as written, summed over the full shape (the mean
    broadcast back to its 12 elements): d/dy = a*y^(a-1)*log(y) + y^(a-1) per element,
    d/da = sum of y^a*log(y)^2 over the 24 elements; at y = 0 the tape has 0*inf = NaN."""
    program = ir.parse_source("a = 2; mean(y_true*y_pred^a*log(y_pred))")
    y_pred = np.full(SHAPE, 0.5)
    _, by_parameter = _as_written_gradients(program, np.ones(SHAPE), y_pred, {"a": 2.0})
    assert by_parameter["a"] == pytest.approx(24 * 0.25 * math.log(0.5) ** 2, rel=1e-12)
    y_pred[0, 0, 0] = 0.0
    by_input, by_parameter = _as_written_gradients(program, np.ones(SHAPE), y_pred, {"a": 2.0})
    expected = np.full(SHAPE, 2 * 0.5 * math.log(0.5) + 0.5)
    expected[0, 0, 0] = np.nan
    np.testing.assert_allclose(by_input, expected, rtol=1e-12)
    assert math.isnan(by_parameter["a"])


@scaled(0.4)
@given(st.one_of(programs(depth=3), log_products(), log_products()), _inputs(), _inputs())
def test_finite_wherever_the_program_as_written_is_finite(program, y_true, y_pred):
    """Rewrites never make a finite value, tape gradient or parameter gradient non-finite."""
    try:
        loss = lossdsl.compile(str(program), dtype="float64")
    except (lossdsl.DSLTypeError, lossdsl.DSLLimitError) as error:
        event(f"refused: {type(error).__name__}")
        return
    reference = NumpyInterpreter(program, y_true, y_pred, loss.params).run()
    values, gradient = _tape(loss, y_true, y_pred)
    finite = np.isfinite(reference)
    event(f"reference finite: {'all' if finite.all() else 'some' if finite.any() else 'none'}")
    context = f"{program}\ny_true={y_true.ravel()}\ny_pred={y_pred.ravel()}"
    assert np.all(np.isfinite(_full_shape(values)[finite])), context
    by_input, by_parameter = _as_written_gradients(program, y_true, y_pred, loss.params)
    finite = np.isfinite(by_input)
    event(f"tape finite: {'all' if finite.all() else 'some' if finite.any() else 'none'}")
    assert np.all(np.isfinite(gradient[finite])), context
    # The derived d/dparameter (lossdsl's formula; TF has no tape of it in the compiled loss).
    derived = lossdsl.check_gradients(loss, y_true, y_pred).parameters
    for name, as_written in by_parameter.items():
        if math.isfinite(as_written):
            assert math.isfinite(derived[name][0]), f"d/d{name}: {derived[name]}\n{context}"


# ---------------------------------------------------------------- the per-sample shape

@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_a_parameter_value_does_not_change_the_per_sample_shape(gradient):
    # `alpha*y_true` vanished from the plan at alpha = 0, so the per-sample loss lost its
    # axes and `reduction="sum"` counted each sample once instead of once per element.
    y_true, y_pred = np.ones((2, 3)), np.full((2, 3), 0.5)
    for alpha, expected in ((0.0, 6 * 0.5), (1.0, 6 * 1.5)):
        loss = lossdsl.compile("mean(y_pred) + alpha*y_true", alpha=alpha, reduction="sum",
                               gradient=gradient, dtype="float64")
        assert loss.call(y_true, y_pred).shape == (2, 3)
        assert float(loss(y_true, y_pred)) == pytest.approx(expected)


@pytest.mark.parametrize("source, value", [("mean(log(a) + y_pred)", -1.0),
                                           ("mean(sqrt(a)*y_pred)", -1.0),
                                           ("mean(y_pred/a)", 0.0)])
def test_a_parameter_value_without_a_real_value_is_a_located_error(source, value):
    # Was "Internal error: cannot lower ImaginaryUnit" when the loss was built.
    with pytest.raises(lossdsl.DSLTypeError, match="has no finite real value") as caught:
        lossdsl.compile(source, a=value)
    assert source[caught.value.span.start:caught.value.span.end] == "a"
    assert lossdsl.compile(source, a=2.0)  # a value in the domain compiles
