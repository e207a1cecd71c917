"""Weight regularizers and activity penalties against Keras's L1/L2/L1L2, the tape and NumPy."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lossdsl
from lossdsl.keras.penalty import ActivityPenalty, DSLActivityPenalty, DSLRegularizer

RNG = np.random.default_rng(2)
WEIGHT_SHAPES = [(), (4,), (3, 4), (2, 3, 3, 2)]


def _value_and_tape_gradient(penalty, x):
    x = tf.Variable(x)
    with tf.GradientTape() as tape:
        value = penalty(x)
    return value.numpy(), tape.gradient(value, x).numpy()


@pytest.mark.parametrize("shape", WEIGHT_SHAPES, ids=str)
@pytest.mark.parametrize("source,reference", [
    ("0.5*alpha*sum(w^2)", lambda: keras.regularizers.L2(0.5 * 0.3)),
    ("alpha*w^2", lambda: keras.regularizers.L2(0.3)),
    ("alpha*sum(abs(w))", lambda: keras.regularizers.L1(0.3)),
    ("alpha*sum(abs(w)) + 0.01*sum(square(w))", lambda: keras.regularizers.L1L2(0.3, 0.01)),
], ids=["half_l2", "elementwise_l2", "l1", "l1l2"])
def test_regularizer_equals_keras_in_value_and_gradient(source, reference, shape):
    w = RNG.normal(size=shape).astype("float32")
    ours = lossdsl.regularizer(source, alpha=0.3)
    ours_value, ours_tape = _value_and_tape_gradient(ours, w)
    keras_value, keras_tape = _value_and_tape_gradient(reference(), w)
    np.testing.assert_allclose(ours_value, keras_value, rtol=1e-5)
    np.testing.assert_allclose(ours_tape, keras_tape, rtol=1e-5, atol=1e-6)
    # The derived formula, evaluated, is the same gradient (sign(0) aside: w has no zeros).
    np.testing.assert_allclose(ours.gradient_of(w).numpy(), keras_tape, rtol=1e-5, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(hnp.arrays("float64", hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                  elements=st.floats(-10, 10)),
       st.floats(0, 2, width=32), st.floats(0, 2, width=32))  # Keras keeps l1, l2 as float32
def test_l1l2_parity_on_random_weights(w, l1, l2):
    ours = lossdsl.regularizer("l1*sum(abs(w)) + l2*sum(w^2)", l1=l1, l2=l2)
    np.testing.assert_allclose(ours(w).numpy(), keras.regularizers.L1L2(l1, l2)(w).numpy(),
                               rtol=1e-9, atol=1e-12)


def test_axis_counts_from_the_weights_first_axis():
    # Group lasso. A reduction broadcasts back over what it reduced (keepdims), so
    # sum_ij w_ij^2 / ||w_:j|| is the sum of the column norms ||w_:j||.
    w = RNG.normal(size=(3, 4)).astype("float32")
    column_norms = lossdsl.regularizer("sum(w^2/sqrt(sum(w^2, axis=1)))")
    row_norms = lossdsl.regularizer("sum(w^2/sqrt(sum(w^2, axis=-1)))")
    np.testing.assert_allclose(column_norms(w), np.sqrt((w**2).sum(axis=0)).sum(), rtol=1e-6)
    np.testing.assert_allclose(row_norms(w), np.sqrt((w**2).sum(axis=1)).sum(), rtol=1e-6)
    for penalty in (column_norms, row_norms):
        _, tape = _value_and_tape_gradient(penalty, w)
        np.testing.assert_allclose(penalty.gradient_of(w), tape, rtol=1e-5)


@pytest.mark.parametrize("source", [
    "mean((w - mean(w))^2)", "logsumexp(w)", "w^2 + sum(w)", "0.5*alpha*sum(w^2)",
])
def test_derived_regularizer_gradient_matches_the_tape(source):
    w = RNG.normal(size=(3, 5))
    ours = lossdsl.regularizer(source, **({"alpha": 0.7} if "alpha" in source else {}))
    _, tape = _value_and_tape_gradient(ours, w)
    np.testing.assert_allclose(ours.gradient_of(w).numpy(), tape, rtol=1e-9, atol=1e-12)


def test_symbolic_regularizer_gradient_is_readable():
    assert str(lossdsl.regularizer("0.5*alpha*sum(w^2)", alpha=0.1).gradient) == "alpha * w"
    assert str(lossdsl.regularizer("alpha*sum(abs(w))", alpha=0.1).gradient) == "alpha * sign(w)"


def _dense_pair(seed, **ours_and_keras):
    """Two identically initialised Dense models, one per regularizer set."""
    models = []
    for kwargs in ours_and_keras.values():
        keras.utils.set_random_seed(seed)
        models.append(keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, **kwargs),
                                        keras.layers.Dense(1)]))
    return models


def test_kernel_regularizer_trains_like_keras_l2():
    x = RNG.normal(size=(16, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    ours, theirs = _dense_pair(
        0, ours={"kernel_regularizer": lossdsl.regularizer("alpha*sum(w^2)", alpha=0.05)},
        theirs={"kernel_regularizer": keras.regularizers.L2(0.05)})
    for model in (ours, theirs):
        model.compile(keras.optimizers.SGD(0.1), "mse")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_activity_penalty_equals_keras_activity_regularizer_and_the_add_loss_layer():
    x = RNG.normal(size=(5, 3)).astype("float32")
    ours, theirs = _dense_pair(
        1, ours={"activity_regularizer": lossdsl.activity_penalty("beta*sum(a^2)", beta=0.2)},
        theirs={"activity_regularizer": keras.regularizers.L2(0.2)})
    keras.utils.set_random_seed(1)
    layered = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                                ActivityPenalty("beta*sum(a^2)", {"beta": 0.2}),
                                keras.layers.Dense(1)])
    losses = []
    for model in (ours, theirs, layered):
        model(x)
        losses.append([float(v) for v in model.losses])
    assert len(losses[0]) == 1
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)
    np.testing.assert_allclose(losses[2], losses[1], rtol=1e-6)


@pytest.mark.parametrize("source", ["beta*mean(a^2)", "beta*sum(abs(a))",
                                    "beta*(logsumexp(a) - mean(a))", "beta*softplus(a)"])
def test_activity_penalty_gradient_matches_the_tape(source):
    a = RNG.normal(size=(6, 4))
    penalty = lossdsl.activity_penalty(source, beta=0.3)
    value, tape = _value_and_tape_gradient(penalty, a)
    np.testing.assert_allclose(penalty.gradient_of(a).numpy(), tape, rtol=1e-9, atol=1e-12)
    per_sample = {"beta*mean(a^2)": 0.3 * (a**2).mean(axis=1),
                  "beta*sum(abs(a))": 0.3 * abs(a).sum(axis=1)}.get(source)
    if per_sample is not None:  # worked out in NumPy: per-sample penalty summed over the batch
        np.testing.assert_allclose(value, per_sample.sum(), rtol=1e-12)


def test_activity_penalty_layer_trains_and_shrinks_activations():
    x = RNG.normal(size=(32, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)

    def mean_abs_activation(beta):
        keras.utils.set_random_seed(3)
        hidden = keras.layers.Dense(8)
        model = keras.Sequential([keras.Input((3,)), hidden,
                                  ActivityPenalty("beta*mean(a^2)", {"beta": beta}),
                                  keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(0.05), "mse")
        model.fit(x, y, batch_size=16, epochs=20, verbose=0, shuffle=False)
        return float(np.abs(hidden(x)).mean())

    assert mean_abs_activation(5.0) < 0.5 * mean_abs_activation(0.0)


def test_model_with_regularizer_and_penalties_round_trips_through_save(tmp_path):
    x = RNG.normal(size=(8, 3)).astype("float32")
    y = RNG.normal(size=(8, 1)).astype("float32")
    model = keras.Sequential([
        keras.Input((3,)),
        keras.layers.Dense(4, kernel_regularizer=lossdsl.regularizer("0.5*alpha*sum(w^2)",
                                                                     alpha=0.1),
                           bias_regularizer=lossdsl.regularizer("sum(abs(w))"),
                           activity_regularizer=lossdsl.activity_penalty("0.01*sum(a^2)")),
        ActivityPenalty("beta*mean(abs(a))", {"beta": 0.5}),
        keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(x, y, epochs=1, verbose=0)
    path = os.fspath(tmp_path / "penalties.keras")
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    model(x), reloaded(x)
    np.testing.assert_allclose([float(v) for v in reloaded.losses],
                               [float(v) for v in model.losses], rtol=1e-6)
    assert len(model.losses) == 4
    assert model.evaluate(x, y, verbose=0) == pytest.approx(reloaded.evaluate(x, y, verbose=0))
    dense = reloaded.layers[0]
    assert isinstance(dense.kernel_regularizer, DSLRegularizer)
    assert dense.kernel_regularizer.params == {"alpha": 0.1}
    assert isinstance(dense.activity_regularizer, DSLActivityPenalty)


@pytest.mark.parametrize("factory,source,words", [
    (lossdsl.regularizer, "sum(y_pred^2)", "`y_pred` is not an input of a weight regularizer"),
    (lossdsl.regularizer, "sum(a^2)", "`a` is not an input of a weight regularizer"),
    (lossdsl.activity_penalty, "sum(w^2)", "`w` is not an input of an activity penalty"),
    (lossdsl.regularizer, "alpha*sum(w^2)", "`alpha` has no value"),
])
def test_source_mistakes_are_lossdsl_errors_with_a_caret(factory, source, words):
    with pytest.raises(lossdsl.DSLNameError, match=words) as caught:
        factory(source)
    assert "^" in str(caught.value)


def test_an_axis_the_weight_lacks_is_a_shape_error_about_the_weight():
    with pytest.raises(lossdsl.DSLShapeError, match=r"axis=3 .* weight `w`, of shape \(2, 3\)"):
        lossdsl.regularizer("sum(w, axis=3)")(np.ones((2, 3)))


def test_binding_the_input_name_is_refused():
    with pytest.raises(lossdsl.LossDSLError, match="w"):
        lossdsl.regularizer("w = 2; sum(w^2)")


@pytest.mark.parametrize("config,words", [
    ({"params": {}}, "no `source`"),
    ({"source": "sum(w^2)", "name": "x"}, "Unknown keys"),
    ({"source": 3}, "wrong type"),
    ({"source": "alpha*sum(w^2)", "params": {"alpha": [[1]]}}, "must map to a number"),
])
def test_bad_regularizer_configs_fail_with_lossdsl_errors(config, words):
    with pytest.raises(lossdsl.DSLConfigError, match=words):
        DSLRegularizer.from_config(config)


@pytest.mark.parametrize("config,words", [
    ({"params": {}}, "no `source`"),
    ({"source": ["sum(a^2)"]}, "wrong type"),
    ({"source": "beta*sum(a^2)", "params": {"beta": True}}, "must map to a number"),
])
def test_bad_activity_layer_configs_fail_with_lossdsl_errors(config, words):
    # Keys other than source/params are the Keras layer's own, checked by Keras.
    with pytest.raises(lossdsl.DSLConfigError, match=words):
        ActivityPenalty.from_config({"name": "penalty", **config})


def test_fresh_process_reloads_metric_regularizers_and_penalties(tmp_path):
    """A new process that imports keras then lossdsl finds every lossdsl class."""
    x = RNG.normal(size=(8, 3)).astype("float32")
    y = RNG.normal(size=(8, 1)).astype("float32")
    model = keras.Sequential([
        keras.Input((3,)),
        keras.layers.Dense(4, kernel_regularizer=lossdsl.regularizer("alpha*sum(w^2)", alpha=0.1),
                           activity_regularizer=lossdsl.activity_penalty("0.1*sum(a^2)")),
        ActivityPenalty("beta*mean(abs(a))", {"beta": 0.5}),
        keras.layers.Dense(1)])
    model.compile("sgd", lossdsl.compile("mean((y_true - y_pred)^2)"),
                  metrics=[lossdsl.metric("mean(abs(y_true - y_pred))", name="ours")])
    expected = model.evaluate(x, y, verbose=0, return_dict=True)
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    code = ("import sys, json, numpy as np, keras, lossdsl\n"
            "folder = sys.argv[1]\n"
            "model = keras.models.load_model(folder + '/m.keras', safe_mode=True)\n"
            "x, y = np.load(folder + '/x.npy'), np.load(folder + '/y.npy')\n"
            "print(json.dumps(model.evaluate(x, y, verbose=0, return_dict=True)))\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=root, env=env,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    reloaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert reloaded.keys() == expected.keys()
    for key, value in expected.items():
        assert reloaded[key] == pytest.approx(value, rel=1e-6)
