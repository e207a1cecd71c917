"""The Keras loss against independent references: Keras built-ins, hand-written TF, the tape."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import lossdsl

RNG = np.random.default_rng(0)
Y_TRUE = RNG.uniform(0, 1, (6, 4)).astype("float32")
Y_PRED = RNG.uniform(0.05, 0.95, (6, 4)).astype("float32")
WEIGHTS = np.array([1.0, 0.0, 2.0, 0.5, 1.0, 3.0], "float32")
REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_mse_equals_keras_mse(reduction, weighted):
    ours = lossdsl.compile("mean((y_true-y_pred)^2)", reduction=reduction)
    keras_mse = keras.losses.MeanSquaredError(reduction=reduction)
    weights = WEIGHTS if weighted else None
    np.testing.assert_allclose(ours(Y_TRUE, Y_PRED, sample_weight=weights),
                               keras_mse(Y_TRUE, Y_PRED, sample_weight=weights), rtol=1e-6)


def test_mse_gradient_equals_keras_mse_gradient():
    y_pred = tf.Variable(Y_PRED)
    grads = []
    for loss in (lossdsl.compile("mean((y_true-y_pred)^2)"), keras.losses.MeanSquaredError()):
        with tf.GradientTape() as tape:
            value = loss(Y_TRUE, y_pred, sample_weight=WEIGHTS)
        grads.append(tape.gradient(value, y_pred).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)


class HandWrittenCardLoss(keras.losses.Loss):
    """The card example written by hand, as users do today."""

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, y_pred.dtype)
        return (tf.reduce_mean(tf.square(y_true - y_pred), axis=-1)
                + 0.1 * tf.reduce_mean(tf.square(0.5 - y_pred), axis=-1))


@pytest.mark.parametrize("weighted", [False, True])
def test_card_example_equals_hand_written_loss(weighted):
    ours = lossdsl.compile("mean((y_true-y_pred)^2) + 0.1*mean((0.5-y_pred)^2)")
    weights = WEIGHTS if weighted else None
    np.testing.assert_allclose(ours(Y_TRUE, Y_PRED, sample_weight=weights),
                               HandWrittenCardLoss()(Y_TRUE, Y_PRED, sample_weight=weights),
                               rtol=1e-6)


def _value_and_gradient(loss_fn, y_true, y_pred):
    y_pred = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        value = loss_fn(y_true, y_pred)
    return value.numpy(), tape.gradient(value, y_pred).numpy()


def test_binary_cross_entropy_matches_hand_written_tf():
    ours = lossdsl.compile("mean(-(y_true*log(y_pred) + (1-y_true)*log(1-y_pred)))")

    def by_hand(y_true, y_pred):
        per_sample = -tf.reduce_mean(y_true * tf.math.log(y_pred)
                                     + (1 - y_true) * tf.math.log(1 - y_pred), axis=-1)
        return tf.reduce_mean(per_sample)

    for got, want in zip(_value_and_gradient(ours, Y_TRUE, Y_PRED),
                         _value_and_gradient(by_hand, Y_TRUE, Y_PRED)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours(Y_TRUE, Y_PRED),
                               keras.losses.BinaryCrossentropy()(Y_TRUE, Y_PRED), rtol=1e-5)


def test_focal_loss_with_parameters_matches_hand_written_tf():
    ours = lossdsl.compile("mean(-alpha*y_true*(1-y_pred)^gamma*log(y_pred))",
                           alpha=0.25, gamma=2.0)

    def by_hand(y_true, y_pred):
        per_element = -0.25 * y_true * tf.pow(1 - y_pred, 2.0) * tf.math.log(y_pred)
        return tf.reduce_mean(tf.reduce_mean(per_element, axis=-1))

    for got, want in zip(_value_and_gradient(ours, Y_TRUE, Y_PRED),
                         _value_and_gradient(by_hand, Y_TRUE, Y_PRED)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("source", [
    "mean((y_pred - mean(y_pred))^2)",
    "1 - sum((y_true-mean(y_true))*(y_pred-mean(y_pred)))"
    " / sqrt(sum((y_true-mean(y_true))^2)*sum((y_pred-mean(y_pred))^2))",
    "1 - 2*sum(y_true*y_pred)/(sum(y_true)+sum(y_pred))",
    "-sum(y_true*log_softmax(y_pred))",
    "-sum(y_true*log(softmax(y_pred, axis=1)), axis=1)",
    "mean(y_pred/sum(y_pred, axis=-1)) + max(y_pred) - min(y_pred*y_true)",
    "logsumexp(y_pred*y_true) + mean(y_pred, axis=-1)",
])
def test_gradients_through_reductions_match_the_tape(source):
    report = lossdsl.check_gradients(source)
    assert report.passed, str(report)
    assert report.points == 40 and report.skipped == 0


def _finite_difference(source, y_true, y_pred, eps=1e-6):
    loss = lossdsl.compile(source, dtype="float64", reduction="sum")
    gradient = np.zeros_like(y_pred)
    for index in np.ndindex(y_pred.shape):
        up, down = y_pred.copy(), y_pred.copy()
        up[index] += eps
        down[index] -= eps
        gradient[index] = (float(loss(y_true, up)) - float(loss(y_true, down))) / (2 * eps)
    return gradient


@pytest.mark.parametrize("source", [
    "mean((y_pred - mean(y_pred))^2)",
    "1 - 2*sum(y_true*y_pred)/(sum(y_true)+sum(y_pred))",
    "-sum(y_true*log_softmax(y_pred))",
])
def test_symbolic_gradient_matches_finite_differences(source):
    y_true = RNG.uniform(0, 1, (3, 4))
    y_pred = RNG.uniform(0.1, 0.9, (3, 4))
    report = lossdsl.check_gradients(source, y_true, y_pred)
    np.testing.assert_allclose(report.symbolic, _finite_difference(source, y_true, y_pred),
                               rtol=1e-5, atol=1e-8)


def test_broadcast_semantics_of_reductions():
    y = np.array([[1.0, 3.0], [2.0, 2.0]], "float32")
    rows = lossdsl.compile("y_pred/sum(y_pred, axis=-1)", reduction="none")
    np.testing.assert_allclose(rows(y, y), [[0.25, 0.75], [0.5, 0.5]])
    centred = lossdsl.compile("y_pred - mean(y_pred)", reduction="none")
    np.testing.assert_allclose(centred(y, y), [[-1.0, 1.0], [0.0, 0.0]])
    count = lossdsl.compile("sum(1)", reduction="none")
    np.testing.assert_allclose(count(y, y), [2.0, 2.0])


def test_axis_semantics_on_rank_3_inputs():
    y = RNG.uniform(size=(2, 3, 4)).astype("float32")
    per_row = lossdsl.compile("mean(y_pred, axis=-1)", reduction="none")(y, y)
    np.testing.assert_allclose(per_row, y.mean(axis=-1), rtol=1e-6)
    both = lossdsl.compile("sum(y_pred, axis=(1, 2))", reduction="none")(y, y)
    np.testing.assert_allclose(both, y.sum(axis=(1, 2)), rtol=1e-6)
    with pytest.raises(lossdsl.DSLShapeError, match="axis=3"):
        lossdsl.compile("mean(y_pred, axis=3)")(y, y)


def test_rank_1_inputs_are_one_scalar_per_sample():
    y_true, y_pred = np.array([0.0, 1.0, 2.0], "float32"), np.array([1.0, 1.0, 0.0], "float32")
    loss = lossdsl.compile("mean((y_true - y_pred)^2)", reduction="none")
    np.testing.assert_allclose(loss(y_true, y_pred), [1.0, 0.0, 4.0])


def test_elementwise_loss_without_reduction():
    loss = lossdsl.compile("(y_true - y_pred)^2", reduction="none")
    np.testing.assert_allclose(loss(Y_TRUE, Y_PRED), (Y_TRUE - Y_PRED) ** 2, rtol=1e-6)


def test_integer_labels_are_accepted():
    labels = np.array([[0, 1], [1, 1]], "int32")
    preds = np.array([[0.5, 0.5], [1.0, 0.0]], "float32")
    loss = lossdsl.compile("mean((y_true - y_pred)^2)")
    assert float(loss(labels, preds)) == pytest.approx(0.375)
    assert float(loss.call(tf.constant(labels), tf.constant(preds))[0]) == pytest.approx(0.25)


def test_float64_everywhere():
    loss = lossdsl.compile("mean(0.1*(y_true - y_pred)^2 + 1e-7)", dtype="float64")
    assert loss(Y_TRUE, Y_PRED).dtype == tf.float64
    keras.config.set_floatx("float64")
    loss = lossdsl.compile("mean(-alpha*log(y_pred))", alpha=0.5)
    assert loss.dtype == "float64"
    value = loss(Y_TRUE.astype("float64"), Y_PRED.astype("float64"))
    assert value.dtype == tf.float64
    np.testing.assert_allclose(value, np.mean(-0.5 * np.log(Y_PRED.astype("float64"))),
                               rtol=1e-12)


def _tiny_model():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(2, activation="sigmoid")])
    return model


def _data():
    x = RNG.uniform(-1, 1, (128, 3)).astype("float32")
    y = (x[:, :2] > 0).astype("float32")
    return x, y


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_trains_the_model(jit_compile):
    x, y = _data()
    model = _tiny_model()
    loss = lossdsl.compile("mean(-(y_true*log(y_pred) + (1-y_true)*log(1-y_pred)))")
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss, jit_compile=jit_compile)
    history = model.fit(x, y, epochs=15, batch_size=32, verbose=0,
                        sample_weight=RNG.uniform(0.5, 1.5, 128).astype("float32"))
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]


def test_gradient_tape_training_loop_in_tf_function():
    x, y = _data()
    model = _tiny_model()
    loss_fn = lossdsl.compile("mean((y_true - y_pred)^2)")
    optimizer = keras.optimizers.SGD(0.5)

    @tf.function(jit_compile=True)
    def train_step(x_batch, y_batch):
        with tf.GradientTape() as tape:
            value = loss_fn(y_batch, model(x_batch, training=True))
        grads = tape.gradient(value, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return value

    losses = [float(train_step(x, y)) for _ in range(60)]
    assert losses[-1] < 0.5 * losses[0]
    expected = keras.losses.MeanSquaredError()(y, model(x))
    np.testing.assert_allclose(loss_fn(y, model(x)), expected, rtol=1e-6)


def test_saved_model_reloads_in_safe_mode(tmp_path):
    x, y = _data()
    model = _tiny_model()
    loss = lossdsl.compile("alpha = 0.25; mean(-alpha*y_true*(1-y_pred)^gamma*log(y_pred))",
                           gamma=2.0, name="focal", reduction="sum")
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=1, verbose=0)
    path = os.fspath(tmp_path / "m.keras")
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    restored = reloaded.loss
    assert isinstance(restored, lossdsl.DSLLoss)
    assert restored.get_config() == loss.get_config()
    assert (restored.name, restored.reduction, restored.params) == \
        ("focal", "sum", {"alpha": 0.25, "gamma": 2.0})
    np.testing.assert_allclose(restored(y, reloaded(x)), loss(y, model(x)), rtol=1e-6)


def test_get_config_round_trip_keeps_everything():
    loss = lossdsl.compile("mean(abs(y_true - y_pred)^p)", p=1.5, name="lp",
                           reduction="mean_with_sample_weight", dtype="float64")
    config = loss.get_config()
    assert config == {"source": "mean(abs(y_true - y_pred)^p)", "params": {"p": 1.5},
                      "name": "lp", "reduction": "mean_with_sample_weight",
                      "dtype": "float64", "gradient": "autodiff"}
    again = lossdsl.DSLLoss.from_config(config)
    assert again.get_config() == config
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert restored.get_config() == config


@pytest.mark.parametrize("config, words", [
    ({"source": "mean(y_pred)", "extra": 1}, "Unknown keys"),
    ({"params": {}}, "no `source`"),
    ({"source": 42}, "wrong type"),
    ({"source": "mean(a*y_pred)", "params": {"a": "1"}}, "must map to a number"),
    ({"source": "__import__('os').system('echo hi')"}, "Syntax error"),
    ({"source": "__class__"}, "'__'"),
    ({"source": "mean(y_pred)", "reduction": "bogus"}, "Invalid reduction"),
])
def test_bad_configs_fail_with_lossdsl_errors(config, words):
    with pytest.raises(lossdsl.LossDSLError, match=words):
        lossdsl.DSLLoss.from_config(config)
