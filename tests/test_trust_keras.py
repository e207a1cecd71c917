"""Trust in the Keras objects: read-only parameters, and mixed / low precision.

* ``params`` of a loss, metric, regularizer or activity penalty refuses changes
  (a change could not reach the compiled plan), while configs stay plain dicts.
* Under a mixed precision policy a lossdsl loss or metric computes in float32,
  as Keras's built-ins do: at predictions of exactly 0 and 1 (float16/bfloat16
  outputs of a model) values and gradients equal the built-in's, and ``fit``
  gives finite losses close to the built-in's, on the fused path too. Penalties
  compute a narrow input in floatx. An explicit float16/bfloat16 dtype warns,
  naming each constant of the source that the dtype cannot hold.
"""

import copy
import json
import pickle
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import lossdsl
from lossdsl.backends.tensorflow import loss_functions

MIXED_POLICIES = ["mixed_float16", "mixed_bfloat16"]


@pytest.fixture(params=MIXED_POLICIES)
def mixed_policy(request):
    """A global mixed precision policy for one test, reset afterwards whatever happens."""
    keras.mixed_precision.set_global_policy(request.param)
    try:
        yield request.param
    finally:
        keras.mixed_precision.set_global_policy("float32")


# ---------------------------------------------------------------- defect 8: read-only params

def _objects():
    """One of each kind of compiled object, each with the parameter beta = 2."""
    return {
        "loss": lossdsl.compile("mean(beta*(y_true - y_pred)^2)", beta=2.0),
        "metric": lossdsl.metric("mean(beta*(y_true - y_pred)^2)", beta=2.0),
        "regularizer": lossdsl.regularizer("beta*sum(w^2)", beta=2.0),
        "activity_penalty": lossdsl.activity_penalty("beta*sum(a^2)", beta=2.0),
        "layer_penalty": lossdsl.ActivityPenalty("beta*sum(a^2)", {"beta": 2.0}).penalty,
    }


def _value(kind, obj):
    """What the object computes at one point: beta*(3^2 + 1^2), summed (or averaged over 2)."""
    y_true, y_pred = np.array([[0.0, 0.0]], "float32"), np.array([[3.0, 1.0]], "float32")
    if kind == "loss":
        return float(obj(y_true, y_pred))  # mean over 2 elements: 5*beta
    if kind == "metric":
        obj.reset_state()
        obj.update_state(y_true, y_pred)
        return float(obj.result())
    return float(obj(y_pred))  # sum: 10*beta


EXPECTED_AT_BETA_2 = {"loss": 10.0, "metric": 10.0, "regularizer": 20.0,
                      "activity_penalty": 20.0, "layer_penalty": 20.0}


@pytest.mark.parametrize("kind", list(EXPECTED_AT_BETA_2))
def test_params_refuse_assignment_with_a_clear_type_error(kind):
    obj = _objects()[kind]
    with pytest.raises(TypeError, match=r"read-only.*[Cc]ompile again.*from_config"):
        obj.params["beta"] = 5.0
    for mutate in (lambda p: p.update(beta=5.0), lambda p: p.pop("beta"),
                   lambda p: p.setdefault("gamma", 1.0), lambda p: p.clear(),
                   lambda p: p.popitem(), lambda p: p.__delitem__("beta"),
                   lambda p: p.__ior__({"beta": 5.0})):
        with pytest.raises(TypeError, match="read-only"):
            mutate(obj.params)
    assert obj.params == {"beta": 2.0}
    assert _value(kind, obj) == pytest.approx(EXPECTED_AT_BETA_2[kind])


@pytest.mark.parametrize("kind", list(EXPECTED_AT_BETA_2))
def test_config_stays_a_plain_json_dict_and_from_config_changes_a_parameter(kind):
    obj = _objects()[kind]
    config = obj.get_config()
    assert type(config["params"]) is dict
    assert json.loads(json.dumps(config))["params"] == {"beta": 2.0}
    changed = type(obj).from_config({**config, "params": {"beta": 5.0}})
    assert changed.params == {"beta": 5.0}
    assert _value(kind, changed) == pytest.approx(EXPECTED_AT_BETA_2[kind] * 5.0 / 2.0)
    # The way the error message gives works: a plain copy is mutable.
    mutable = dict(obj.params)
    mutable["beta"] = 5.0
    assert type(obj).from_config({**config, "params": mutable}).params == {"beta": 5.0}


def test_params_copy_and_pickle_and_library_losses():
    params = lossdsl.losses.focal(alpha=0.5).params
    assert params == {"alpha": 0.5, "gamma": 2.0} and repr(params) == repr(dict(params))
    for clone in (copy.copy(params), copy.deepcopy(params), pickle.loads(pickle.dumps(params))):
        assert clone == params
        with pytest.raises(TypeError, match="read-only"):
            clone["alpha"] = 1.0
    mutable = params.copy()
    mutable["alpha"] = 1.0
    assert lossdsl.losses.focal(**mutable).params == {"alpha": 1.0, "gamma": 2.0}
    # Keras's own serialization of a loss takes the plain config.
    loss = lossdsl.losses.binary_focal_crossentropy(gamma=3.0)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert restored.params == loss.params and restored.source == loss.source


# ---------------------------------------------------------------- defect 9: explicit low precision

LOSSES = {  # lossdsl library loss, the Keras built-in it equals, whether y_pred is a probability
    "bce": (lossdsl.losses.binary_crossentropy, lambda: keras.losses.BinaryCrossentropy(), True),
    "binary_focal": (lossdsl.losses.binary_focal_crossentropy,
                     lambda: keras.losses.BinaryFocalCrossentropy(), True),
    "cce": (lossdsl.losses.categorical_crossentropy,
            lambda: keras.losses.CategoricalCrossentropy(), True),
    "focal_logits": (lossdsl.losses.focal, lambda: keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=True, alpha=0.25, gamma=2.0, from_logits=True), False),
}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["bce", "binary_focal", "cce"])
def test_explicit_low_precision_dtype_names_the_constant_that_rounds_away(name, dtype):
    make = LOSSES[name][0]
    with pytest.warns(lossdsl.LossDSLWarning) as caught:
        loss = make(dtype=dtype)
    messages = [str(w.message) for w in caught if issubclass(w.category, lossdsl.LossDSLWarning)]
    column = loss.source.index("1 - 1e-7") + 1
    assert any(re.search(rf"`1 - 1e-7` \(= 0\.9999999\), line 1, column {column}, is 1\.0 "
                         rf"in {dtype}", m) for m in messages), messages
    y_true, y_pred = np.array([[1.0, 0.0]], "float32"), np.array([[0.0, 1.0]], "float32")
    if name != "cce":  # CCE takes no log(1 - p): its upper bound guards nothing
        # The symptom the warning is about: in that dtype the clip no longer guards log(1 - p).
        assert not np.isfinite(float(loss(y_true, y_pred)))
    # In float32 (the default, and what a mixed policy computes in) it does, with no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", lossdsl.LossDSLWarning)
        float32_loss = make()
    assert np.isfinite(float(float32_loss(y_true, y_pred)))
    assert float(float32_loss(y_true, y_pred)) == pytest.approx(
        float(LOSSES[name][1]()(y_true, y_pred)), rel=1e-5)


def test_low_precision_warning_for_parameters_overflow_and_metrics_but_not_ordinary_rounding():
    with pytest.warns(lossdsl.LossDSLWarning,
                      match=r"parameter `eps` = 1e-09.* is 0\.0 in float16"):
        lossdsl.compile("mean(-log(y_pred + eps))", dtype="float16", eps=1e-9)
    with pytest.warns(lossdsl.LossDSLWarning,
                      match=r"`70000`, line 1, column 6, is inf in float16"):
        lossdsl.compile("mean(70000*(y_true - y_pred)^2)", dtype="float16")
    with pytest.warns(lossdsl.LossDSLWarning, match=r"`1 - 1e-9` \(= 0\.999999999\).* is 1\.0 in "
                                                    r"float32"):
        lossdsl.compile("mean(-log(1 - clip(y_pred, 0, 1 - 1e-9)))")
    with pytest.warns(lossdsl.LossDSLWarning, match=r"`1 - 1e-7`.* is 1\.0 in bfloat16"):
        lossdsl.metric("mean(-log(1 - clip(y_pred, 0, 1 - 1e-7)))", dtype="bfloat16")
    with warnings.catch_warnings():
        warnings.simplefilter("error", lossdsl.LossDSLWarning)
        # 0.1 is 0.09998 in float16: ordinary rounding, nothing lost; 0.25 and 2 are exact.
        lossdsl.compile("mean(0.1*(y_true - y_pred)^2 + 0.25*abs(y_pred)^2)", dtype="float16")
        lossdsl.compile("mean(-log(1 - clip(y_pred, 0, 1 - 1e-3)))", dtype="float16")


# ---------------------------------------------------------------- defect 9: mixed precision

def _saturating_model(units, activation, policy_dtype):
    """Dense(units) whose outputs include exactly 0 and 1 (or huge logits) in the policy's dtype."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(units, activation=activation)])
    # sigmoid(-200) is 0 even in bfloat16, which has float32's exponent range.
    kernel = np.array([[200.0, -200.0, 0.5][:units], [-200.0, 200.0, -0.5][:units]], "float32")
    model.layers[0].set_weights([kernel, np.zeros(units, "float32")])
    x = np.array([[1.0, 0.0], [0.0, 1.0], [0.01, 0.0], [0.3, 0.1], [1.0, 0.0]], "float32")
    output = model(x)
    assert output.dtype == policy_dtype
    return model, x, output


@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
@pytest.mark.parametrize("name", list(LOSSES))
def test_mixed_policy_at_predictions_of_exactly_0_and_1_equals_the_builtin(mixed_policy, name,
                                                                           gradient):
    make, builtin, probabilities = LOSSES[name]
    low = mixed_policy.split("_")[1]
    if name == "cce":
        model, x, output = _saturating_model(3, "softmax", low)
        y_true = np.eye(3, dtype="float32")[[1, 0, 0, 2, 1]]
    else:
        model, x, output = _saturating_model(2, "sigmoid" if probabilities else None, low)
        y_true = np.array([[1, 0], [0, 1], [0, 1], [1, 0], [0, 1]], "float32")
    values = output.numpy().astype("float32")
    if probabilities:  # the model's outputs really sit on both clip bounds
        assert (values == 0.0).any() and (values == 1.0).any()
    results = []
    for loss in (make(gradient=gradient), builtin()):
        assert loss.dtype == "float32"  # as Keras's losses: floatx under a mixed policy
        with tf.GradientTape() as tape:
            value = loss(y_true, model(x))
        gradients = tape.gradient(value, model.trainable_weights)
        results.append([value.numpy()] + [g.numpy() for g in gradients])
    for ours, theirs in zip(*results):
        assert np.isfinite(ours).all()
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["bce", "binary_focal", "cce"])
def test_mixed_policy_fit_gives_finite_losses_close_to_the_builtin(mixed_policy, name):
    make, builtin, _ = LOSSES[name]
    rng = np.random.default_rng(0)
    x = rng.normal(0, 30, (64, 4)).astype("float32")  # large inputs: saturated outputs
    units, activation = (3, "softmax") if name == "cce" else (1, "sigmoid")
    labels = rng.integers(0, units if units > 1 else 2, 64)
    y = np.eye(3, dtype="float32")[labels] if units > 1 else labels[:, None].astype("float32")
    histories = []
    for loss in (make(), builtin()):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(units, activation=activation)])
        model.compile(keras.optimizers.SGD(0.01), loss)
        outputs = model.predict(x, verbose=0).astype("float32")
        assert (outputs == 0.0).any() or (outputs == 1.0).any()
        histories.append(model.fit(x, y, batch_size=16, epochs=3, verbose=0).history["loss"])
    assert np.isfinite(histories[0]).all() and np.isfinite(histories[1]).all()
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-2)


def test_mixed_policy_fit_on_the_fused_path(mixed_policy, monkeypatch):
    decisions = []
    original = loss_functions.worth_fusing

    def spy(y_true, y_pred):
        decisions.append((original(y_true, y_pred), y_pred.dtype))
        return decisions[-1][0]
    monkeypatch.setattr(loss_functions, "worth_fusing", spy)
    classes = 800  # batches of 128 * 800 elements: over FUSED_MIN_ELEMENTS
    rng = np.random.default_rng(1)
    x = rng.normal(0, 30, (256, 4)).astype("float32")
    y = np.eye(classes, dtype="float32")[rng.integers(0, classes, 256)]
    histories = []
    for loss in (lossdsl.losses.categorical_crossentropy(), keras.losses.CategoricalCrossentropy()):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)),
                                  keras.layers.Dense(classes, activation="softmax")])
        model.compile(keras.optimizers.SGD(0.01), loss)
        histories.append(model.fit(x, y, batch_size=128, epochs=2, verbose=0).history["loss"])
    assert (True, tf.float32) in decisions  # the fused path ran, in float32
    assert np.isfinite(histories[0]).all()
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-2)


def test_mixed_policy_metric_at_0_and_1_equals_the_builtin(mixed_policy):
    low = mixed_policy.split("_")[1]
    y_true = np.array([[1.0], [0.0], [1.0], [0.0]], "float32")
    y_pred = tf.constant([[0.0], [1.0], [1.0], [0.5]], low)
    ours = lossdsl.metric(lossdsl.losses.binary_crossentropy().source)
    theirs = keras.metrics.BinaryCrossentropy()
    ours.update_state(y_true, y_pred)
    # Keras 3.15's metric computes on the float16/bfloat16 predictions as given, where
    # 1 - 1e-7 is 1.0, and returns NaN here; the reference gets them in float32.
    theirs.update_state(y_true, tf.cast(y_pred, "float32"))
    assert ours.dtype == "float32" and np.isfinite(float(ours.result()))
    assert float(ours.result()) == pytest.approx(float(theirs.result()), rel=1e-6)


def test_mixed_policy_penalties_compute_in_float32_and_fit(mixed_policy):
    low = mixed_policy.split("_")[1]
    activations = tf.constant([[1.0, 0.0, 0.5]], low)
    guarded = lossdsl.activity_penalty("-sum(log(1 - clip(a, 0, 1 - 1e-7)))")
    value = guarded(activations)
    # In float32 the clip bound holds: -log(1e-7) + 0 + -log(0.5).
    assert value.dtype == tf.float32
    assert float(value) == pytest.approx(-np.log(np.float32(1) - np.float32(1 - 1e-7))
                                         + np.log(2.0), rel=1e-5)
    np.testing.assert_allclose(guarded.gradient_of(activations).numpy().astype("float32"),
                               [[0.0, 1.0, 2.0]], rtol=1e-2)
    assert guarded.gradient_of(activations).dtype == activations.dtype
    # A model with an activity penalty, an add_loss layer and a kernel regularizer trains.
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (32, 4)).astype("float32")
    y = (x.sum(axis=1, keepdims=True) > 0).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(3, activation="sigmoid", activity_regularizer=guarded,
                           kernel_regularizer=lossdsl.regularizer("beta*sum(w^2)", beta=1e-3)),
        lossdsl.ActivityPenalty("beta*sum(a^2)", {"beta": 1e-2}),
        keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.SGD(0.01), lossdsl.losses.binary_crossentropy())
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0).history["loss"]
    assert np.isfinite(history).all()
    hidden = model.layers[0](x)
    assert hidden.dtype == low
    expected = 1e-2 * np.sum(hidden.numpy().astype("float32") ** 2) / len(x)
    model.layers[1](hidden)
    assert float(model.layers[1].losses[-1]) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("make", [lossdsl.compile, lossdsl.metric])
def test_an_integer_dtype_is_a_config_error_not_a_type_error_at_the_first_call(make):
    with pytest.raises(lossdsl.DSLConfigError, match="float dtype") as caught:
        make("mean(y_pred*0.5)", dtype="int32")
    assert caught.value.hint
