"""Extra named inputs (a mask, a weight map, a distance map) beside ``y_true`` and ``y_pred``.

A loss compiled with ``inputs=["mask"]`` takes ``y_true`` as a dict
``{"y_true": labels, "mask": mask}``; only ``y_pred`` is differentiated. Values and
gradients are checked against NumPy float64 formulas written by hand, in both gradient
modes; ``fit`` goes through :class:`lossdsl.LossInputsModel`. Tests marked ``backends``
run once per Keras backend (tests/run_all.sh).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import lossdsl
from backend_support import BACKEND, to_numpy, value_and_gradient
from lossdsl import DSLConfigError, DSLNameError, DSLShapeError

RNG = np.random.default_rng(7)
B, C = 6, 5


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _masked_mse(y: np.ndarray, p: np.ndarray, mask: np.ndarray) -> tuple[float, np.ndarray]:
    """Per sample sum(m*e^2)/sum(m), batch mean; d/dp = -2 m (y - p) / sum_j(m) / B."""
    mask = np.broadcast_to(mask, p.shape)
    total = mask.sum(-1, keepdims=True)
    value = np.mean((mask * (y - p) ** 2).sum(-1, keepdims=True) / total)
    return value, -2.0 * mask * (y - p) / total / p.shape[0]


def _weighted_bce(y: np.ndarray, z: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
    """Per element w*(softplus(z) - y*z) on logits, mean over classes then batch."""
    per_element = w * (np.logaddexp(0.0, z) - y * z)
    return per_element.mean(), w * (_sigmoid(z) - y) / z.size


def _boundary(p: np.ndarray, dist: np.ndarray) -> tuple[float, np.ndarray]:
    """Kervadec et al. (2019): mean(dist * sigmoid(z)) over the pixels, batch mean."""
    dist = dist[..., None]
    s = _sigmoid(p)
    return float(np.mean(dist * s)), dist * s * (1.0 - s) / p.size


def _masked_mse_case() -> tuple:
    y, p = RNG.normal(size=(B, C)), RNG.normal(size=(B, C))
    mask = (RNG.uniform(size=(B, C)) > 0.3).astype(float)
    mask[:, 0] = 1.0  # every row has an element
    return ("mean(mask*(y_true - y_pred)^2)/mean(mask)", ["mask"], y, p, {"mask": mask},
            _masked_mse(y, p, mask))


def _weight_map_case() -> tuple:
    y, z = (RNG.uniform(size=(B, C)) > 0.5).astype(float), 3.0 * RNG.normal(size=(B, C))
    w = RNG.uniform(0.1, 3.0, size=(B, C))
    return ("mean(weight*(softplus(y_pred) - y_true*y_pred))", ["weight"], y, z,
            {"weight": w}, _weighted_bce(y, z, w))


def _boundary_case() -> tuple:
    # Images (B, 4, 3, 1) against a distance map (B, 4, 3): brought to y_pred's rank.
    p = RNG.normal(size=(B, 4, 3, 1))
    dist = RNG.normal(size=(B, 4, 3))
    y = np.zeros_like(p)
    return ("mean(dist*sigmoid(y_pred))", ["dist"], y, p, {"dist": dist}, _boundary(p, dist))


def _row_weight_case() -> tuple:
    # A weight per sample, shape (B, 1), broadcast along the classes.
    y, p = RNG.normal(size=(B, C)), RNG.normal(size=(B, C))
    mask = RNG.uniform(0.5, 2.0, size=(B, 1))
    return ("mean(mask*(y_true - y_pred)^2)/mean(mask)", ["mask"], y, p, {"mask": mask},
            _masked_mse(y, p, mask))


CASES = {"masked_mse": _masked_mse_case(), "weight_map_bce": _weight_map_case(),
         "boundary": _boundary_case(), "row_weight": _row_weight_case()}


@pytest.mark.backends
@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
@pytest.mark.parametrize("case", list(CASES))
def test_value_and_gradient_match_numpy(case, gradient):
    source, inputs, y, p, extra, (value, grad) = CASES[case]
    loss = lossdsl.compile(source, inputs=inputs, gradient=gradient)
    got_value, got_grad = value_and_gradient(
        lambda t, q: loss({"y_true": t, **extra}, q), y, p, "float32")
    np.testing.assert_allclose(got_value, value, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(got_grad, grad, rtol=2e-4, atol=1e-6)


@pytest.mark.backends
@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_per_sample_values_and_sample_weight(gradient):
    source, inputs, y, p, extra, _ = CASES["masked_mse"]
    loss = lossdsl.compile(source, inputs=inputs, gradient=gradient, reduction="none")
    mask = extra["mask"]
    expected = (mask * (y - p) ** 2).sum(-1) / mask.sum(-1)
    got = to_numpy(loss({"y_true": y, "mask": mask}, p))
    np.testing.assert_allclose(got, expected, rtol=2e-5)
    weight = RNG.uniform(size=B)
    weighted = lossdsl.compile(source, inputs=inputs, gradient=gradient)
    np.testing.assert_allclose(float(weighted({"y_true": y, "mask": mask}, p, sample_weight=weight)),
                               np.sum(weight * expected) / B, rtol=2e-5)


@pytest.mark.backends
def test_sample_weight_is_the_alternative_for_an_elementwise_weight():
    y, p = RNG.normal(size=(B, C)), RNG.normal(size=(B, C))
    mask = (RNG.uniform(size=(B, C)) > 0.4).astype("float32")
    by_weight = lossdsl.compile("(y_true - y_pred)^2", reduction="mean_with_sample_weight")
    expected = np.sum(mask * (y - p) ** 2) / np.sum(mask)
    np.testing.assert_allclose(float(by_weight(y, p, sample_weight=mask)), expected, rtol=2e-5)


@pytest.mark.backends
def test_metric_takes_the_dict_too():
    source, inputs, y, p, extra, (value, _) = CASES["masked_mse"]
    metric = lossdsl.metric(source, inputs=inputs, name="masked")
    metric.update_state({"y_true": y, **extra}, p)
    assert float(metric.result()) == pytest.approx(value, rel=2e-5)
    again = lossdsl.DSLMetric.from_config(metric.get_config())
    assert again.get_config()["inputs"] == ["mask"] and again.extra_inputs == ("mask",)
    with pytest.raises(DSLShapeError, match="mask"):
        metric.update_state(y, p)


@pytest.mark.backends
@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_check_gradients_takes_a_dict(gradient):
    source, inputs, y, p, extra, _ = CASES["weight_map_bce"]
    loss = lossdsl.compile(source, inputs=inputs, gradient=gradient)
    assert lossdsl.check_gradients(loss, {"y_true": y, **extra}, p).passed
    assert lossdsl.check_gradients(loss).passed  # extra inputs drawn
    assert lossdsl.check_gradients(source, {"y_true": y, **extra}, p).passed  # names from keys


@pytest.mark.backends
@pytest.mark.parametrize("y_true, words", [
    ("tensor", ["mask", "dict", "LossInputsModel"]),
    ({"y_true": 0}, ["missing mask"]),
    ({"mask": 0}, ["missing y_true"]),
    ({"y_true": 0, "mask": 0, "maks": 0}, ["unknown maks"]),
])
def test_inputs_not_given_are_a_clear_error(y_true, words):
    source, inputs, y, p, extra, _ = CASES["masked_mse"]
    loss = lossdsl.compile(source, inputs=inputs)
    if y_true == "tensor":
        y_true = y
    else:
        y_true = {key: {"y_true": y, "mask": extra["mask"], "maks": y}[key] for key in y_true}
    with pytest.raises(DSLShapeError) as error:
        loss(y_true, p)
    for word in words:
        assert word in str(error.value)


@pytest.mark.backends
def test_a_dict_for_a_loss_without_inputs_and_a_rank_too_high_are_errors():
    y, p = RNG.normal(size=(B, C)), RNG.normal(size=(B, C))
    with pytest.raises(DSLShapeError, match="no extra inputs"):
        lossdsl.compile("mean((y_true - y_pred)^2)")({"y_true": y}, p)
    loss = lossdsl.compile("mean(mask*(y_true - y_pred)^2)", inputs=["mask"])
    with pytest.raises(DSLShapeError, match="rank 4"):
        loss({"y_true": y, "mask": np.ones((B, C, 2, 2))}, p)


@pytest.mark.parametrize("inputs, params, words", [
    (["mask", "mask"], {}, "declared twice"),
    (["y_true"], {}, "an input already"),
    (["log"], {}, "reserved"),
    (["pi"], {}, "reserved"),
    (["1mask"], {}, "a name of the language"),
    ([3], {}, "a name of the language"),
    (["mask"], {"mask": 1.0}, "also given as a parameter"),
    (["mask", "other"], {}, "does not use: other"),
])
def test_declared_inputs_are_checked(inputs, params, words):
    with pytest.raises(DSLNameError, match=words):
        lossdsl.compile("mean(mask*(y_true - y_pred)^2)", inputs=inputs, params=params)


def test_an_input_cannot_be_rebound_and_a_string_is_one_name():
    with pytest.raises(DSLNameError, match="cannot be rebound"):
        lossdsl.compile("mask = 2; mean(mask*(y_true - y_pred)^2)", inputs=["mask"])
    assert lossdsl.compile("mean(mask*y_pred)", inputs="mask").extra_inputs == ("mask",)


def test_config_round_trip_and_repr():
    loss = lossdsl.compile("mean(w*abs(y_true - y_pred)^p)", p=1.5, inputs=["w"],
                           gradient="symbolic", name="wl")
    config = loss.get_config()
    assert config["inputs"] == ["w"] and config["params"] == {"p": 1.5}
    again = lossdsl.DSLLoss.from_config(config)
    assert again.get_config() == config
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert restored.get_config() == config
    assert repr(loss) == "lossdsl.compile('mean(w*abs(y_true - y_pred)^p)', p=1.5, inputs=['w'])"
    # A loss without extra inputs keeps the config it always had.
    assert "inputs" not in lossdsl.compile("mean(y_pred)").get_config()


@pytest.mark.parametrize("inputs, error", [
    ("mask", DSLConfigError), ([1], DSLConfigError), (["y_pred"], DSLNameError),
    (["unused"], DSLNameError),
])
def test_a_bad_inputs_config_is_refused(inputs, error):
    config = {"source": "mean(mask*(y_true - y_pred)^2)", "inputs": inputs}
    with pytest.raises(error):
        lossdsl.DSLLoss.from_config(config)


def _model() -> keras.Model:
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="tanh", kernel_initializer="glorot_uniform")(inputs)
    return lossdsl.LossInputsModel(inputs, keras.layers.Dense(C)(hidden))


@pytest.mark.backends
@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_fit_evaluate_save_and_load_with_the_model_wrapper(tmp_path, gradient):
    keras.utils.set_random_seed(0)
    source = "mean(mask*(y_true - y_pred)^2)/mean(mask)"
    x = RNG.normal(size=(64, 4)).astype("float32")
    y = RNG.normal(size=(64, C)).astype("float32")
    mask = (RNG.uniform(size=(64, C)) > 0.3).astype("float32")
    mask[:, 0] = 1.0
    data = {"y_true": y, "mask": mask}
    model = _model()
    model.compile(keras.optimizers.SGD(0.05),
                  loss=lossdsl.compile(source, inputs=["mask"], gradient=gradient),
                  metrics=["mae", lossdsl.metric(source, inputs=["mask"], name="masked")])
    history = model.fit(x, data, epochs=2, batch_size=16, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    result = model.evaluate(x, data, verbose=0, return_dict=True)
    expected, _ = _masked_mse(y, to_numpy(model(x)).astype(np.float64), mask)
    assert result["loss"] == pytest.approx(expected, rel=1e-4)
    assert result["masked"] == pytest.approx(expected, rel=1e-4)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    assert type(reloaded) is lossdsl.LossInputsModel
    assert reloaded.loss.get_config() == model.loss.get_config()
    again = reloaded.evaluate(x, data, verbose=0, return_dict=True)
    assert again["loss"] == pytest.approx(result["loss"], rel=1e-5)
    assert again["masked"] == pytest.approx(result["masked"], rel=1e-5)
    reloaded.fit(x, data, epochs=1, batch_size=16, verbose=0)  # trains on after reloading


@pytest.mark.backends
def test_the_wrapper_adds_the_models_own_losses_and_keeps_plain_labels():
    x = RNG.normal(size=(32, 4)).astype("float32")
    y = RNG.normal(size=(32, C)).astype("float32")
    mask = np.ones((32, C), "float32")
    inputs = keras.Input((4,))
    dense = keras.layers.Dense(C, kernel_regularizer=keras.regularizers.L2(0.1))
    model = lossdsl.LossInputsModel(inputs, dense(inputs))
    model.compile("sgd", loss=lossdsl.compile("mean(mask*(y_true - y_pred)^2)", inputs=["mask"]))
    value = model.evaluate(x, {"y_true": y, "mask": mask}, verbose=0)
    penalty = 0.1 * np.sum(to_numpy(dense.kernel).astype(np.float64) ** 2)
    expected = np.mean((y - to_numpy(model(x))) ** 2) + penalty
    assert value == pytest.approx(expected, rel=1e-4)
    plain = _model()
    plain.compile("sgd", loss=lossdsl.compile("mean((y_true - y_pred)^2)"))
    plain.fit(x, y, epochs=1, verbose=0)  # a plain y takes Keras's own path
    assert np.isfinite(plain.evaluate(x, y, verbose=0))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TF's fused XLA path")
@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_tensorflow_fused_path_with_extra_inputs(gradient):
    import tensorflow as tf

    source, inputs, *_ = CASES["masked_mse"]
    loss = lossdsl.compile(source, inputs=inputs, gradient=gradient)
    y = RNG.normal(size=(2048, 64)).astype("float32")  # 131072 elements: the fused path
    p = RNG.normal(size=(2048, 64)).astype("float32")
    mask = (RNG.uniform(size=(2048, 64)) > 0.3).astype("float32")
    mask[:, 0] = 1.0
    value, grad = _masked_mse(y.astype(np.float64), p.astype(np.float64), mask)

    @tf.function
    def step(y, p, mask):
        with tf.GradientTape() as tape:
            tape.watch(p)
            result = loss({"y_true": y, "mask": mask}, p)
        return result, tape.gradient(result, p)

    got_value, got_grad = step(tf.constant(y), tf.constant(p), tf.constant(mask))
    np.testing.assert_allclose(float(got_value), value, rtol=1e-4)
    np.testing.assert_allclose(got_grad.numpy(), grad, rtol=1e-3, atol=1e-9)


@pytest.mark.backends
def test_the_wrapper_applies_sample_weight_and_loss_weights_like_a_plain_model():
    """The same masked loss, mask all ones: the wrapper's evaluate equals a plain model's
    (MSE) with the same sample_weight and loss_weights."""
    x = RNG.normal(size=(32, 4)).astype("float32")
    y = RNG.normal(size=(32, C)).astype("float32")
    weights = RNG.uniform(0.1, 2.0, size=(32,)).astype("float32")
    mask = np.ones((32, C), "float32")
    wrapped = _model()
    wrapped.compile("sgd", loss=lossdsl.compile("mean(mask*(y_true - y_pred)^2)", inputs=["mask"]),
                    loss_weights=[3.0])
    plain = keras.Model(wrapped.inputs, wrapped.outputs)  # the same layers and weights
    plain.compile("sgd", loss="mse", loss_weights=[3.0])
    got = wrapped.evaluate(x, {"y_true": y, "mask": mask}, sample_weight=weights, verbose=0)
    expected = plain.evaluate(x, y, sample_weight=weights, verbose=0)
    assert got == pytest.approx(expected, rel=1e-5)
    history = wrapped.fit(x, {"y_true": y, "mask": mask}, sample_weight=weights, epochs=1,
                          verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_the_wrapper_refuses_several_loss_weights():
    with pytest.raises(DSLConfigError, match="one loss weight"):
        _model().compile("sgd", loss=lossdsl.compile("mean(mask*y_pred)", inputs=["mask"]),
                         loss_weights=[1.0, 2.0])


def test_inputs_must_be_names_and_explain_takes_them():
    with pytest.raises(DSLNameError, match="a name or a list of names"):
        lossdsl.compile("mean(mask*y_pred)", inputs=5)
    report = lossdsl.explain("mean(mask*y_pred)", inputs="mask")
    assert report.parameters == ()  # `mask` is an input, not a parameter
    assert lossdsl.explain("mean(mask*y_pred)").parameters == ("mask",)


def test_check_gradients_refuses_inputs_the_loss_does_not_take():
    with pytest.raises(DSLShapeError, match="does not take: mask"):
        lossdsl.check_gradients(lossdsl.compile("mean(y_pred^2)"),
                                {"y_true": np.ones((2, C)), "mask": np.ones((2, C))},
                                np.ones((2, C)))


def test_the_command_line_takes_extra_inputs():
    from test_cli import run

    source = "mean(mask*(y_true - y_pred)^2)/mean(mask)"
    shown = run("show", source, "--input", "mask")
    assert shown.returncode == 0, shown.stderr
    assert "parameters  none" in shown.stdout
    checked = run("check", source, "--input", "mask")
    assert checked.returncode == 0 and "agree" in checked.stdout, checked.stderr
    refused = run("check", source, "--input", "y_true")
    assert refused.returncode == 2 and "cannot be an extra input" in refused.stderr
