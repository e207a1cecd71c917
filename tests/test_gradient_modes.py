"""gradient="symbolic" against the tape (gradient="autodiff"), and precision policies."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import lossdsl
from lossdsl.keras.loss import REDUCTIONS

RNG = np.random.default_rng(3)
Y_TRUE = RNG.uniform(0, 1, (6, 4)).astype("float32")
Y_PRED = RNG.normal(0, 2, (6, 4)).astype("float32")
PROBS = RNG.uniform(0.05, 0.95, (6, 4)).astype("float32")
WEIGHTS = np.array([1.0, 0.0, 2.0, 0.5, 1.0, 3.0], "float32")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Losses whose output is one number per sample, per row, or per element, some
# mixing elements through reductions (the upstream gradient must be seeded).
SHAPES_OF_OUTPUT = [
    "mean((y_true - y_pred)^2)",
    "mean(y_true*softplus(-y_pred) + (1 - y_true)*softplus(y_pred))",
    "-sum(y_true*log_softmax(y_pred))",
    "1 - 2*sum(y_true*sigmoid(y_pred))/(sum(y_true) + sum(sigmoid(y_pred)))",
    "mean((y_pred - mean(y_pred))^2) + max(y_pred) - min(y_pred*y_true)",
    "(y_true - y_pred)^2",
    "y_pred - mean(y_pred)",
    "y_pred*y_true - logsumexp(y_pred, axis=-1)",
    "sum(y_pred*y_true, axis=-1) - mean(y_pred*y_true)",
]


def _value_and_gradient(loss, y_true, y_pred, sample_weight=None, seed=None):
    variable = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        value = loss(y_true, variable, sample_weight=sample_weight)
        # A non-uniform upstream gradient, so a formula that assumes 1 would fail.
        total = tf.reduce_sum(value * value) if seed == "square" else value
    return value.numpy(), tape.gradient(total, variable).numpy()


def _weights_for(loss, y_true, y_pred):
    rank = loss.call(tf.constant(y_true), tf.constant(y_pred)).shape.rank
    return WEIGHTS.reshape((-1,) + (1,) * (rank - 1))


@pytest.mark.parametrize("source", SHAPES_OF_OUTPUT)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_symbolic_equals_tape_for_every_reduction_with_sample_weight(source, reduction):
    results = []
    for mode in ("autodiff", "symbolic"):
        loss = lossdsl.compile(source, reduction=reduction, gradient=mode)
        weights = _weights_for(loss, Y_TRUE, Y_PRED)
        results.append(_value_and_gradient(loss, Y_TRUE, Y_PRED, weights, seed="square"))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=2e-5, atol=1e-6)


def test_symbolic_on_rank_3_and_broadcast_labels():
    y_pred = RNG.normal(size=(3, 2, 5)).astype("float32")
    labels = RNG.integers(0, 2, (3, 2, 1)).astype("float32")  # broadcast along the last axis
    for source in ("mean((y_true - y_pred)^2, axis=-1)", "sum(y_pred*y_true, axis=(1, 2))"):
        got = [_value_and_gradient(lossdsl.compile(source, gradient=mode), labels, y_pred,
                                   seed="square") for mode in ("autodiff", "symbolic")]
        np.testing.assert_allclose(got[1][1], got[0][1], rtol=1e-5, atol=1e-7)
    # y_pred of shape (b, 1) against y_true (b, 3): the gradient is summed back to (b, 1).
    y_pred = RNG.normal(size=(4, 1)).astype("float32")
    labels = RNG.uniform(size=(4, 3)).astype("float32")
    got = [_value_and_gradient(lossdsl.compile("mean((y_true - y_pred)^2)", gradient=mode),
                               labels, y_pred) for mode in ("autodiff", "symbolic")]
    assert got[1][1].shape == (4, 1)
    np.testing.assert_allclose(got[1][1], got[0][1], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_symbolic_under_tf_function_and_xla(jit_compile):
    source = "mean(-(y_true*log(sigmoid(y_pred)) + (1-y_true)*log(1-sigmoid(y_pred))))"
    losses = {mode: lossdsl.compile(source, gradient=mode) for mode in ("autodiff", "symbolic")}
    results = {}
    for mode, loss in losses.items():
        variable = tf.Variable(Y_PRED)

        @tf.function(jit_compile=jit_compile)
        def step(y_true, weights):
            with tf.GradientTape() as tape:
                value = loss(y_true, variable, sample_weight=weights)
            return value, tape.gradient(value, variable)

        results[mode] = [t.numpy() for t in step(tf.constant(Y_TRUE), tf.constant(WEIGHTS))]
    keras_bce = keras.losses.BinaryCrossentropy(from_logits=True)
    variable = tf.Variable(Y_PRED)
    with tf.GradientTape() as tape:
        value = keras_bce(Y_TRUE, variable, sample_weight=WEIGHTS)
    np.testing.assert_allclose(results["symbolic"][0], value.numpy(), rtol=1e-6)
    np.testing.assert_allclose(results["symbolic"][1], tape.gradient(value, variable).numpy(),
                               rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(results["symbolic"][1], results["autodiff"][1], rtol=1e-5,
                               atol=1e-8)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_with_symbolic_gradient_matches_autodiff(jit_compile):
    x = RNG.uniform(-1, 1, (64, 3)).astype("float32")
    y = (x[:, :2] > 0).astype("float32")
    weights = []
    for mode in ("autodiff", "symbolic"):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="tanh"),
                                  keras.layers.Dense(2)])
        loss = lossdsl.compile("mean(log(1 + exp(y_pred)) - y_true*y_pred)", gradient=mode)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss, jit_compile=jit_compile)
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False,
                  sample_weight=np.linspace(0.5, 1.5, 64).astype("float32"))
        weights.append(model.get_weights())
    for ours, theirs in zip(*weights):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)


def test_symbolic_mode_round_trips_through_config():
    loss = lossdsl.compile("mean((y_true - y_pred)^2)", gradient="symbolic")
    assert loss.get_config()["gradient"] == "symbolic"
    assert lossdsl.DSLLoss.from_config(loss.get_config()).gradient_mode == "symbolic"


def test_unknown_gradient_mode_is_a_config_error():
    with pytest.raises(lossdsl.DSLConfigError, match="symbolic"):
        lossdsl.compile("mean(y_pred)", gradient="numeric")


def test_symbolic_under_mirrored_strategy_in_a_subprocess():
    # Two logical CPU devices must be configured before TF initialises: a fresh process.
    code = textwrap.dedent("""
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras, lossdsl
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (64, 3)).astype("float32")
        y = (x[:, :2] > 0).astype("float32")
        results = {}
        for mode in ("autodiff", "symbolic"):
            with strategy.scope():
                keras.utils.set_random_seed(1)
                model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
                loss = lossdsl.compile("mean(log(1 + exp(y_pred)) - y_true*y_pred)",
                                       gradient=mode)
                model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
            history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False)
            results[mode] = (history.history["loss"], model.get_weights())
        assert strategy.num_replicas_in_sync == 2
        np.testing.assert_allclose(results["symbolic"][0], results["autodiff"][0], rtol=1e-5)
        for a, b in zip(results["symbolic"][1], results["autodiff"][1]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        print("replicas", strategy.num_replicas_in_sync, "ok")
    """)
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "replicas 2 ok" in out.stdout


# ---------------------------------------------------------------- precision

@pytest.mark.parametrize("mode", ["autodiff", "symbolic"])
def test_float64_inputs_and_dtype(mode):
    loss = lossdsl.compile("mean(log(1 + exp(y_pred)) - y_true*y_pred)", dtype="float64",
                           gradient=mode)
    y_pred = Y_PRED.astype("float64")
    value, gradient = _value_and_gradient(loss, Y_TRUE.astype("float64"), y_pred)
    assert value.dtype == np.float64 and gradient.dtype == np.float64
    expected = keras.losses.BinaryCrossentropy(from_logits=True, dtype="float64")(
        Y_TRUE.astype("float64"), y_pred)
    np.testing.assert_allclose(value, expected, rtol=1e-12)


@pytest.mark.parametrize("mode", ["autodiff", "symbolic"])
def test_mixed_float16_policy_computes_in_float32_like_keras(mode):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        loss = lossdsl.compile("mean(-(y_true*log(sigmoid(y_pred)) + (1-y_true)*log(1-sigmoid(y_pred))))",
                               gradient=mode)
        builtin = keras.losses.BinaryCrossentropy(from_logits=True)
        assert loss.dtype == builtin.dtype == "float32"
        half = tf.constant(Y_PRED * 20, tf.float16)  # logits up to about +-100
        ours, theirs = loss(Y_TRUE, half), builtin(Y_TRUE, half)
        assert ours.dtype == theirs.dtype == tf.float32
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
        variable = tf.Variable(half)
        with tf.GradientTape() as tape:
            value = loss(Y_TRUE, variable)
        gradient = tape.gradient(value, variable)
        assert gradient.dtype == tf.float16 and np.all(np.isfinite(gradient.numpy()))
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("mode", ["autodiff", "symbolic"])
def test_mixed_float16_model_trains(mode):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(2)
        x = RNG.uniform(-1, 1, (64, 3)).astype("float32")
        y = (x[:, :1] > 0).astype("float32")
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="tanh"),
                                  keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.Adam(0.05),
                      loss=lossdsl.compile("mean(softplus(y_pred) - y_true*y_pred)", gradient=mode))
        history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
        assert model.layers[-1].compute_dtype == "float16"
        assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("mode", ["autodiff", "symbolic"])
def test_bfloat16_inputs_work(mode):
    loss = lossdsl.compile("mean((y_true - y_pred)^2)", gradient=mode)
    y_pred = tf.Variable(tf.constant(Y_PRED, tf.bfloat16))
    with tf.GradientTape() as tape:
        value = loss(tf.constant(Y_TRUE, tf.bfloat16), y_pred)
    gradient = tape.gradient(value, y_pred)
    assert value.dtype == tf.float32 and gradient.dtype == tf.bfloat16
    rounded_true = tf.cast(tf.constant(Y_TRUE, tf.bfloat16), tf.float32).numpy()
    rounded_pred = tf.cast(y_pred, tf.float32).numpy()
    np.testing.assert_allclose(value, np.mean((rounded_true - rounded_pred) ** 2), rtol=1e-6)
    expected = 2 * (rounded_pred - rounded_true) / rounded_pred.size
    np.testing.assert_allclose(tf.cast(gradient, tf.float32), expected, rtol=1e-2, atol=1e-4)
    # A loss computing in bfloat16 itself works too (its constants are made in bfloat16).
    own = lossdsl.compile("mean((y_true - y_pred)^2)", gradient=mode, dtype="bfloat16")
    assert own(Y_TRUE, Y_PRED).dtype == tf.bfloat16
