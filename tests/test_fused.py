"""The speed paths give the plain paths' numbers: the fused XLA call inside graphs, and XLA lowerings.

Each test runs the same loss twice, once forced onto the path under test and
once kept off it, and compares values, gradients w.r.t. y_pred and y_true, and
second derivatives; the tests that a path is taken read the traced graph.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import lossdsl
from lossdsl.backends.tensorflow import fused
from lossdsl.keras.loss import GRADIENT_MODES

RNG = np.random.default_rng(11)
Y_TRUE = RNG.integers(0, 2, (8, 5)).astype("float32")
Y_PRED = RNG.normal(0, 3, (8, 5)).astype("float32")
WEIGHTS = RNG.uniform(0, 2, (8,)).astype("float32")

SEPARABLE = [
    "mean((y_true - y_pred)^2)",
    "mean(-(y_true*log(sigmoid(y_pred)) + (1 - y_true)*log(1 - sigmoid(y_pred))))",
    "-sum(y_true*log(softmax(y_pred)))",
    "1 - 2*sum(y_true*y_pred)/(sum(y_true) + sum(y_pred) + 1e-7)",
    "p = sigmoid(y_pred); p_t = y_true*p + (1 - y_true)*(1 - p); "
    "mean((1 - p_t)^2*-(y_true*log(p) + (1 - y_true)*log(1 - p)))",
    "abs(y_pred - y_true)^3",  # elementwise: no reduction at all
]


@pytest.fixture
def always_fuse(monkeypatch):
    monkeypatch.setattr(fused, "FUSED_MIN_ELEMENTS", 0)


@pytest.fixture
def never_fuse(monkeypatch):
    monkeypatch.setattr(fused, "FUSED_MIN_ELEMENTS", float("inf"))


def _derivatives(loss, y_true, y_pred, sample_weight):
    """Value, d/d y_pred and d/d y_true of a weighted, non-uniformly seeded total, and the
    derivatives of the squared gradient w.r.t. y_pred (a Hessian-vector product) and
    y_true (mixed), all in one tf.function."""
    @tf.function
    def run(y_true, y_pred):
        with tf.GradientTape() as outer:
            outer.watch([y_pred, y_true])
            with tf.GradientTape(persistent=True) as tape:
                tape.watch([y_true, y_pred])
                value = loss(y_true, y_pred, sample_weight=sample_weight)
                # Not 1 everywhere: a backward pass that ignored the upstream would fail.
                seed = tf.reshape(tf.cast(tf.range(tf.size(value)), value.dtype) + 1.0,
                                  tf.shape(value))
                total = tf.reduce_sum(value * seed)
            by_prediction = tape.gradient(total, y_pred)
            by_labels = tape.gradient(total, y_true)
            squared = tf.reduce_sum(by_prediction ** 2)
        curvature, mixed = outer.gradient(squared, [y_pred, y_true])
        nothing = tf.zeros([0])
        return (value, by_prediction, nothing if by_labels is None else by_labels, curvature,
                nothing if mixed is None else mixed)
    return [t.numpy() for t in run(tf.constant(y_true), tf.constant(y_pred))]


def _compare(source, mode, reduction, monkeypatch, y_true=Y_TRUE, y_pred=Y_PRED):
    loss = lossdsl.compile(source, gradient=mode, reduction=reduction)
    rank = loss.call(tf.constant(y_true), tf.constant(y_pred)).shape.rank
    weights = WEIGHTS.reshape((-1,) + (1,) * (rank - 1)) if reduction != "none" else None
    monkeypatch.setattr(fused, "FUSED_MIN_ELEMENTS", float("inf"))
    plain = _derivatives(lossdsl.compile(source, gradient=mode, reduction=reduction),
                         y_true, y_pred, weights)
    monkeypatch.setattr(fused, "FUSED_MIN_ELEMENTS", 0)
    fast = _derivatives(lossdsl.compile(source, gradient=mode, reduction=reduction),
                        y_true, y_pred, weights)
    names = ("value", "d/dy_pred", "d/dy_true", "Hessian-vector", "mixed second derivative")
    for name, a, b in zip(names, plain, fast):
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-6, err_msg=f"{source}: {name}")
    return plain, fast


@pytest.mark.parametrize("source", SEPARABLE)
@pytest.mark.parametrize("mode", GRADIENT_MODES)
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "none"])
def test_fused_path_equals_plain_ops(source, mode, reduction, monkeypatch):
    plain, fast = _compare(source, mode, reduction, monkeypatch)
    assert np.abs(plain[1]).max() > 0  # a gradient that is not trivially zero
    if mode == "symbolic":  # and the derived formulas' second derivatives are the tape's too
        tape = _compare(source, "autodiff", reduction, monkeypatch)[0]
        for name, index in (("value", 0), ("d/dy_pred", 1), ("Hessian-vector", 3)):
            np.testing.assert_allclose(fast[index], tape[index], rtol=2e-5, atol=2e-6,
                                       err_msg=f"{source}: symbolic {name}")


def test_autodiff_keeps_the_gradient_through_labels_on_the_fused_path(monkeypatch):
    _, fast = _compare("mean((y_true - y_pred)^2)", "autodiff", "sum", monkeypatch)
    # d/d y_true of sum_i w_i * mean_j (y_true - y_pred)^2, by hand ("sum" gives one number):
    by_hand = 2 * (Y_TRUE - Y_PRED) / Y_PRED.shape[1] * WEIGHTS[:, None]
    np.testing.assert_allclose(fast[2], by_hand, rtol=1e-5)


@pytest.mark.parametrize("mode", GRADIENT_MODES)
def test_broadcast_predictions_stay_correct(mode, monkeypatch):
    """y_pred (batch, 1) or (1, k) against labels (batch, k): the unit gradient is taken per
    element of the broadcast shape and summed back afterwards."""
    for y_pred in (Y_PRED[:, :1], Y_PRED[:1]):
        _compare("abs(y_pred - y_true)^3", mode, "sum", monkeypatch, y_pred=y_pred)
        _compare("mean((y_true - y_pred)^2)", mode, "sum", monkeypatch, y_pred=y_pred)
        monkeypatch.setattr(fused, "FUSED_MIN_ELEMENTS", 0)
        assert _xla_calls(lossdsl.compile("abs(y_pred - y_true)", gradient=mode), Y_TRUE,
                          y_pred) == 1


@pytest.mark.parametrize("mode", GRADIENT_MODES)
def test_shapes_known_only_at_run_time(mode, monkeypatch):
    """A graph traced for (None, None, None) inputs, run with y_pred (4, 3, 1) against (4, 3, 5)."""
    rng = np.random.default_rng(4)
    y_true = rng.normal(size=(4, 3, 5)).astype("float32")
    y_pred = rng.normal(size=(4, 3, 1)).astype("float32")
    weights = rng.uniform(size=(4, 3, 5)).astype("float32")
    results = []
    for threshold in (float("inf"), 0):
        monkeypatch.setattr(fused, "FUSED_MIN_ELEMENTS", threshold)
        loss = lossdsl.compile("(y_true - y_pred)^2", gradient=mode, reduction="sum")
        spec = tf.TensorSpec([None, None, None], tf.float32)

        @tf.function(input_signature=[spec, spec, spec])
        def run(y_true, y_pred, weights):
            with tf.GradientTape() as tape:
                tape.watch(y_pred)
                value = loss(y_true, y_pred, sample_weight=weights)
            return value, tape.gradient(value, y_pred)
        results.append([t.numpy() for t in run(y_true, y_pred, weights)])
    by_hand = np.sum(2 * (y_pred - y_true) * weights, axis=-1, keepdims=True)
    for plain, fast in zip(*results):
        np.testing.assert_allclose(fast, plain, rtol=1e-5)
    np.testing.assert_allclose(results[1][1], by_hand, rtol=1e-5)


@pytest.mark.parametrize("mode", GRADIENT_MODES)
def test_a_graph_traced_without_a_tape_differentiates_right(mode, always_fuse):
    """Traced first without a tape (the value-only XLA call), then differentiated: the
    gradient comes from the plain ops, not from TF differentiating the XLA call."""
    source = "mean(where(y_pred > 0, sqrt(y_pred), 0) + (y_true - y_pred)^2)"
    y_pred = Y_PRED.copy()
    y_pred[0, 0] = -1.0  # sqrt's untaken branch would give NaN to a naive derivative
    loss = lossdsl.compile(source, gradient=mode)
    value = tf.function(lambda y_true, y_pred: loss(y_true, y_pred))
    value(Y_TRUE, y_pred)  # traced without a tape
    prediction = tf.constant(y_pred)
    with tf.GradientTape() as tape:
        tape.watch(prediction)
        total = value(Y_TRUE, prediction)
    gradient = tape.gradient(total, prediction).numpy()
    by_hand = (np.where(y_pred > 0, 0.5 / np.sqrt(np.abs(y_pred)), 0)
               + 2 * (y_pred - Y_TRUE)) / y_pred.size
    np.testing.assert_allclose(gradient, by_hand, rtol=1e-5)


@pytest.mark.parametrize("source, value", [("2.0", 2.0), ("a = 3; a", 3.0), ("mean(y_true)", None)])
@pytest.mark.parametrize("mode", GRADIENT_MODES)
def test_losses_without_predictions(source, value, mode, always_fuse):
    """Constant losses compile under XLA too (the output's shape must be a compile-time constant)."""
    loss = lossdsl.compile(source, gradient=mode)
    expected = np.mean(Y_TRUE) if value is None else value
    for jit_compile in (False, True):
        result, gradient = _value_and_gradient(loss, Y_TRUE, Y_PRED, jit_compile)
        np.testing.assert_allclose(result, expected, rtol=1e-6)
        assert gradient is None or not np.any(gradient)


def _xla_call_outputs(loss, y_true, y_pred, jit_compile=False, gradient=True):
    """The number of outputs of each XLA-compiled call in the traced graph of the loss (and gradient)."""
    def step(y_true, y_pred):
        if not gradient:
            return loss(y_true, y_pred)
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = loss(y_true, y_pred)
        return value, tape.gradient(value, y_pred)
    graph = tf.function(step, jit_compile=jit_compile).get_concrete_function(
        tf.TensorSpec(y_true.shape, tf.float32), tf.TensorSpec(y_pred.shape, tf.float32)).graph
    return [len(op.outputs) for op in graph.get_operations()
            if op.type in ("PartitionedCall", "StatefulPartitionedCall")
            and "_XlaMustCompile" in op.node_def.attr and op.get_attr("_XlaMustCompile")]


def _xla_calls(loss, y_true, y_pred, jit_compile=False):
    return len(_xla_call_outputs(loss, y_true, y_pred, jit_compile))


@pytest.mark.parametrize("mode", GRADIENT_MODES)
def test_large_batches_in_graphs_take_one_xla_call(mode):
    loss = lossdsl.compile("mean(-(y_true*log(sigmoid(y_pred)) + (1 - y_true)*log(1 - sigmoid(y_pred))))",
                           gradient=mode)
    large = np.zeros((256, 1000), "float32")
    assert _xla_calls(loss, large, large) == 1
    small = np.zeros((256, 10), "float32")
    assert _xla_calls(loss, small, small) == 0  # below FUSED_MIN_ELEMENTS
    assert _xla_calls(loss, large, large, jit_compile=True) == 0  # XLA fuses the whole step


@pytest.mark.parametrize("mode", GRADIENT_MODES)
def test_without_a_tape_the_xla_call_computes_the_value_alone(mode, always_fuse):
    """Keras's evaluate step records no gradient: no unit gradient is computed and thrown away."""
    loss = lossdsl.compile(SEPARABLE[1], gradient=mode)
    assert _xla_call_outputs(loss, Y_TRUE, Y_PRED, gradient=False) == [1]
    assert _xla_call_outputs(loss, Y_TRUE, Y_PRED, gradient=True) == [2]
    np.testing.assert_allclose(tf.function(loss)(Y_TRUE, Y_PRED), loss(Y_TRUE, Y_PRED), rtol=1e-6)


def test_paths_not_taken(always_fuse):
    rows = np.zeros((4, 3), "float32")
    # Not separable: each output element mixes the row through mean(y_pred).
    assert _xla_calls(lossdsl.compile("y_pred - mean(y_pred)", gradient="symbolic"), rows, rows) == 0
    # Eager calls use the plain ops (and give the same numbers).
    loss = lossdsl.compile("mean((y_true - y_pred)^2)", gradient="symbolic")
    np.testing.assert_allclose(float(loss(Y_TRUE, Y_PRED)), np.mean((Y_TRUE - Y_PRED) ** 2),
                               rtol=1e-6)


@pytest.mark.parametrize("mode", GRADIENT_MODES)
def test_fit_on_the_fused_path_matches_the_plain_ops(mode, monkeypatch):
    x = RNG.normal(size=(64, 6)).astype("float32")
    y = np.eye(5, dtype="float32")[RNG.integers(0, 5, 64)]
    weights = []
    for threshold in (float("inf"), 0):
        monkeypatch.setattr(fused, "FUSED_MIN_ELEMENTS", threshold)
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5)])
        model.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss=lossdsl.compile("-sum(y_true*log(softmax(y_pred)))", gradient=mode))
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
        weights.append((model.get_weights(), history.history["loss"]))
    np.testing.assert_allclose(weights[1][1], weights[0][1], rtol=1e-5)
    for fast, plain in zip(weights[1][0], weights[0][0]):
        np.testing.assert_allclose(fast, plain, rtol=1e-4, atol=1e-6)
    assert weights[0][1][-1] < weights[0][1][0]  # it trained


# ---------------------------------------------------------------- XLA lowerings

def _value_and_gradient(loss, y_true, y_pred, jit_compile):
    @tf.function(jit_compile=jit_compile)
    def run(y_true, y_pred):
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = loss(y_true, y_pred)
        return value, tape.gradient(value, y_pred,
                                    unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return [t.numpy() for t in run(tf.constant(y_true), tf.constant(y_pred))]


@pytest.mark.parametrize("source", [
    "mean(y_true*y_pred) + sum(y_pred^2)/3",
    "logsumexp(y_pred) - sum(y_true*y_pred)",
    "sum(y_pred, axis=-1) + mean(y_true, axis=-1)",
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(6, 70), (4, 3, 70)])
def test_xla_row_reductions_equal_tf_reductions(source, dtype, shape, never_fuse):
    """Under jit_compile, last-axis sums/means/logsumexp run as matrix-vector products."""
    loss = lossdsl.compile(source, reduction="none", dtype=dtype)
    rng = np.random.default_rng(5)
    y_true = rng.normal(size=shape).astype(dtype)
    y_pred = (rng.normal(size=shape) * 30).astype(dtype)
    reference = _value_and_gradient(loss, y_true, y_pred, jit_compile=False)
    compiled = _value_and_gradient(loss, y_true, y_pred, jit_compile=True)
    assert " dot(" in _hlo(loss, y_true, y_pred)  # the matrix-vector form was taken
    # Summation order differs: a few roundings of the largest term.
    tolerance = 1e-13 if dtype == "float64" else 4e-6
    for a, b in zip(reference, compiled):
        np.testing.assert_allclose(b, a, rtol=tolerance, atol=tolerance * np.abs(a).max())


def _hlo(loss, y_true, y_pred):
    @tf.function(jit_compile=True)
    def value(y_true, y_pred):
        return loss(y_true, y_pred)
    return value.experimental_get_compiler_ir(tf.constant(y_true), tf.constant(y_pred))(stage="hlo")


def test_xla_logsumexp_at_infinities():
    loss = lossdsl.compile("logsumexp(y_pred)", reduction="none")
    y_pred = np.zeros((4, 64), "float32")
    y_pred[0], y_pred[1, 0], y_pred[2], y_pred[3, 0] = -np.inf, np.inf, 1e30, -1e30
    assert " dot(" in _hlo(loss, y_pred, y_pred)
    for jit_compile in (False, True):
        value, _ = _value_and_gradient(loss, y_pred, y_pred, jit_compile)
        np.testing.assert_array_equal(value[:2], [-np.inf, np.inf])
        np.testing.assert_allclose(value[2:], [1e30, np.log(63)], rtol=1e-6)


@pytest.mark.parametrize("source, by_hand", [
    ("sum(softplus(y_pred))", 0.5),      # d softplus / dz at 0 = sigmoid(0)
    ("sum(sigmoid(y_pred))", 0.25),      # sigmoid(0) * (1 - sigmoid(0))
    ("sum(softplus(-y_pred))", -0.5),
    ("sum(sigmoid(-y_pred))", -0.25),
    # Both signs share one exp: each must still take its own branch at 0.
    ("sum(sigmoid(y_pred) + 3*sigmoid(-y_pred))", 0.25 - 0.75),
    ("sum(softplus(y_pred) + 2*softplus(-y_pred))", 0.5 - 1.0),
    ("sum(sigmoid(-y_pred) + softplus(y_pred))", -0.25 + 0.5),
])
@pytest.mark.parametrize("mode", GRADIENT_MODES)
def test_shared_exp_under_xla_has_exact_derivatives_at_zero(source, by_hand, mode, always_fuse):
    """sigmoid/softplus share one exp(-|z|) under XLA; the derivative at z = 0 stays exact,
    under jit_compile and on the fused path (whose XLA call has the same lowering)."""
    loss = lossdsl.compile(source, reduction="none", gradient=mode)
    zeros = np.zeros((2, 3), "float32")
    for jit_compile in (False, True):
        _, gradient = _value_and_gradient(loss, zeros, zeros, jit_compile)
        np.testing.assert_allclose(gradient, np.full((2, 3), by_hand), rtol=1e-6)


# ---------------------------------------------------------------- separability

@pytest.mark.parametrize("source, separable", [
    ("mean((y_pred - y_true)^2)", True),                      # one number per sample
    ("(y_pred - y_true)^2", True),                            # elementwise
    ("mean((y_pred - y_true)^2, axis=-1)", True),             # per row, rows independent
    ("mean(y_pred - mean(y_pred, axis=-1), axis=-1)", True),
    ("mean(y_pred*sum(y_true), axis=-1)", True),              # a labels-only reduction may mix rows
    ("y_pred - mean(y_pred)", False),                         # each element sees the whole sample
    ("mean(y_pred - mean(y_pred), axis=-1)", False),          # each row sees the whole sample
    ("sum(y_pred, axis=-1) - mean(y_pred*y_true)", False),
])
def test_separability(source, separable):
    from lossdsl.analysis.backward import is_separable
    assert is_separable(lossdsl.analyze(source)) is separable


def test_every_library_loss_is_separable():
    from lossdsl.analysis.backward import is_separable
    from lossdsl.losses import available
    # The metric-learning losses compare the samples of a batch: none is separable.
    pairs = {spec.name for spec in available() if "pair_" in spec.source}
    assert pairs == {"batch_contrastive", "triplet_hard", "triplet_semihard", "triplet_all",
                     "npairs", "ntxent", "clip"}
    assert [spec.name for spec in available() if spec.name not in pairs
            and not is_separable(lossdsl.analyze(spec.source))] == []
    assert not any(is_separable(lossdsl.analyze(lossdsl.losses.REGISTRY[name].source))
               for name in pairs)


@pytest.mark.parametrize("name", ["categorical_crossentropy", "huber", "binary_focal_crossentropy"])
@pytest.mark.parametrize("mode", GRADIENT_MODES)
def test_per_row_library_losses_on_rank_3_inputs(name, mode, monkeypatch):
    """axis=-1 losses on (batch, time, classes): one output per row, each row on its own."""
    from lossdsl.losses import available
    source = next(spec.source for spec in available() if spec.name == name)
    rng = np.random.default_rng(2)
    y_true = np.eye(5, dtype="float32")[rng.integers(0, 5, (8, 3))]
    y_pred = rng.uniform(0.05, 0.95, (8, 3, 5)).astype("float32")
    _compare(source, mode, "sum_over_batch_size", monkeypatch, y_true=y_true, y_pred=y_pred)


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-12), ("bfloat16", 2e-2)])
@pytest.mark.parametrize("mode", GRADIENT_MODES)
def test_fused_path_in_other_precisions(dtype, tolerance, mode, monkeypatch):
    source = SEPARABLE[4]  # focal: sigmoid, softplus, powers
    results = []
    for threshold in (float("inf"), 0):
        monkeypatch.setattr(fused, "FUSED_MIN_ELEMENTS", threshold)
        loss = lossdsl.compile(source, gradient=mode, dtype=dtype)
        results.append([np.asarray(t, "float64") for t in _derivatives(
            loss, tf.cast(Y_TRUE, dtype), tf.cast(Y_PRED, dtype), None)[:2]])
    for plain, fast in zip(*results):
        np.testing.assert_allclose(fast, plain, rtol=tolerance, atol=tolerance * np.abs(plain).max())


def test_private_tf_probes_degrade_to_the_safe_answer(monkeypatch):
    """If TF moves its private probes, the plans use non-XLA forms and assume a tape records."""
    from tensorflow.python.eager import record
    from tensorflow.python.ops import control_flow_util

    from lossdsl.backends.tensorflow.functions import in_xla_context

    monkeypatch.delattr(control_flow_util, "GraphOrParentsInXlaContext")
    monkeypatch.delattr(record, "could_possibly_record")
    assert in_xla_context() is False
    assert fused._tape_is_recording() is True


def test_no_matrix_vector_sums_when_a_gpu_is_visible(monkeypatch):
    """With a GPU, float32 products may run in TF32: the reductions stay reductions."""
    from lossdsl.backends.tensorflow import xla as tf_lower
    loss = lossdsl.compile("logsumexp(y_pred) - sum(y_true*y_pred)", reduction="none")
    rows = np.ones((4, 64), "float32")
    assert " dot(" in _hlo(loss, rows, rows)
    monkeypatch.setattr(tf_lower, "_only_cpus", lambda: False)
    assert " dot(" not in _hlo(loss, rows, rows)
