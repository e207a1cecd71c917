"""The lossdsl metric against Keras's own metrics: running means, sample weights, resets, saving."""

import os

import keras
import numpy as np
import pytest

import lossdsl
from lossdsl.keras.metric import DSLMetric

RNG = np.random.default_rng(1)
BATCHES = [(RNG.uniform(0, 1, (n, 3)).astype("float32"),
            RNG.uniform(0.05, 0.95, (n, 3)).astype("float32"),
            RNG.uniform(0, 2, (n,)).astype("float32")) for n in (4, 7, 2)]

PAIRS = [
    ("mean((y_true - y_pred)^2)", lambda: keras.metrics.MeanSquaredError()),
    ("mean(abs(y_true - y_pred))", lambda: keras.metrics.MeanAbsoluteError()),
    ("p = clip(y_pred, 1e-7, 1 - 1e-7); mean(-y_true*log(p) - (1 - y_true)*log(1 - p))",
     lambda: keras.metrics.BinaryCrossentropy()),
]


def _feed(metric, batches, weighted):
    """update_state on every batch; the running result after each."""
    results = []
    for y_true, y_pred, weights in batches:
        metric.update_state(y_true, y_pred, sample_weight=weights if weighted else None)
        results.append(float(metric.result()))
    return results


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("source,reference", PAIRS, ids=["mse", "mae", "bce"])
def test_running_mean_equals_keras_metric_across_batches_and_reset(source, reference, weighted):
    ours, theirs = lossdsl.metric(source), reference()
    np.testing.assert_allclose(_feed(ours, BATCHES, weighted), _feed(theirs, BATCHES, weighted),
                               rtol=1e-5)
    ours.reset_state()
    theirs.reset_state()
    assert float(ours.result()) == 0.0
    np.testing.assert_allclose(_feed(ours, BATCHES[1:], weighted),
                               _feed(theirs, BATCHES[1:], weighted), rtol=1e-5)


def test_result_is_the_weighted_mean_worked_by_hand():
    metric = lossdsl.metric("mean(abs(y_true - y_pred))")
    metric.update_state(np.array([[0.0, 2.0]]), np.array([[1.0, 1.0]]), sample_weight=[3.0])
    metric.update_state(np.array([[0.0], [0.0]]), np.array([[4.0], [2.0]]),
                        sample_weight=[1.0, 0.0])
    # per-sample values 1, 4, 2 with weights 3, 1, 0: (3*1 + 1*4) / 4
    assert float(metric.result()) == pytest.approx(7 / 4)


def test_parameters_and_elementwise_expression_against_keras_mean():
    y_true, y_pred, weights = BATCHES[0]
    ours = lossdsl.metric("alpha*(y_true - y_pred)^2", alpha=3.0)
    mean = keras.metrics.Mean()
    mean.update_state(3.0 * (y_true - y_pred) ** 2, sample_weight=weights)
    ours.update_state(y_true, y_pred, sample_weight=weights)
    np.testing.assert_allclose(float(ours.result()), float(mean.result()), rtol=1e-6)


def test_float64_metric_computes_in_float64():
    metric = lossdsl.metric("mean((y_true - y_pred)^2)", dtype="float64")
    metric.update_state(np.array([[1.0]]), np.array([[1.0 + 1e-9]]))
    assert metric.result().dtype == "float64"
    # 1 + 1e-9 rounds to 1 in float32, which would give 0.
    assert float(metric.result()) == pytest.approx(1e-18, rel=1e-6)


def test_metric_in_model_compile_matches_keras_metric_in_fit_history():
    x = RNG.normal(size=(32, 3)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]], "float32"))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse", metrics=[lossdsl.metric("mean(abs(y_true - y_pred))", name="ours"),
                                         keras.metrics.MeanAbsoluteError(name="keras_mae")])
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0).history
    np.testing.assert_allclose(history["ours"], history["keras_mae"], rtol=1e-5)


def test_direction_lets_early_stopping_infer_its_mode():
    x = RNG.normal(size=(16, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    for direction, better in (("down", np.less), ("up", np.greater)):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse", metrics=[lossdsl.metric(
            "mean(abs(y_true - y_pred))", name="ours", direction=direction)])
        stopper = keras.callbacks.EarlyStopping(monitor="ours", patience=1)
        model.fit(x, y, epochs=2, verbose=0, callbacks=[stopper])
        assert bool(stopper.monitor_op(-stopper.min_delta, 1.0)) == bool(better(0.0, 1.0))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse", metrics=[lossdsl.metric("mean(y_pred)", name="unknown")])
    with pytest.raises(ValueError, match="maximized or minimized"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[keras.callbacks.EarlyStopping(monitor="unknown")])


def test_metric_round_trips_through_model_save(tmp_path):
    x, y = BATCHES[1][1], BATCHES[1][0]
    metric = lossdsl.metric("mean(alpha*(y_true - y_pred)^2)", alpha=2.0, name="scaled_mse")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
    model.compile("sgd", "mse", metrics=[metric])
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    path = os.fspath(tmp_path / "metric.keras")
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    after = reloaded.evaluate(x, y, verbose=0, return_dict=True)
    assert after["scaled_mse"] == pytest.approx(before["scaled_mse"], rel=1e-6)
    assert before["scaled_mse"] == pytest.approx(2 * before["loss"], rel=1e-5)


def test_get_config_round_trip_recompiles():
    metric = lossdsl.metric("beta = 2; mean(beta*abs(y_true - y_pred))", beta=5.0, name="m",
                            direction="down")
    config = keras.saving.serialize_keras_object(metric)
    clone = keras.saving.deserialize_keras_object(config)
    assert isinstance(clone, DSLMetric)
    assert (clone.source, clone.params, clone.name, clone._direction) == \
        (metric.source, {"beta": 5.0}, "m", "down")


@pytest.mark.parametrize("config,words", [
    ({"params": {}}, "no `source`"),
    ({"source": "mean(y_pred)", "reduction": "sum"}, "Unknown keys"),
    ({"source": "mean(y_pred)", "name": 3}, "wrong type"),
    ({"source": "mean(alpha*y_pred)", "params": {"alpha": "1"}}, "must map to a number"),
    ({"source": "mean(y_pred)", "direction": "sideways"}, "Invalid direction"),
])
def test_bad_configs_fail_with_lossdsl_errors(config, words):
    with pytest.raises(lossdsl.DSLConfigError, match=words):
        DSLMetric.from_config(config)


def test_source_mistake_is_a_lossdsl_error():
    with pytest.raises(lossdsl.DSLNameError, match="alpha"):
        lossdsl.metric("mean(alpha*y_pred)")
