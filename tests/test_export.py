"""The exported module, imported and compared with lossdsl.compile: values, gradients, config."""

import importlib.util
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import lossdsl
from lossdsl.tools.export import export_to_file

RNG = np.random.default_rng(1)
Y_TRUE = RNG.uniform(0, 1, (5, 4)).astype("float32")
Y_PRED = RNG.uniform(0.05, 0.95, (5, 4)).astype("float32")
WEIGHTS = np.array([1.0, 0.0, 2.0, 0.5, 3.0], "float32")

CASES = [
    ("FocalLoss", "mean(-alpha*y_true*(1-y_pred)^gamma*log(y_pred))", {"alpha": 0.25, "gamma": 2.0}),
    ("Focal15", "mean(-alpha*y_true*(1-y_pred)^gamma*log(y_pred))", {"alpha": 0.5, "gamma": 1.5}),
    ("SoftmaxCE", "-sum(y_true*log_softmax(y_pred))", {}),
    ("Dice", "1 - 2*sum(y_true*y_pred)/(sum(y_true)+sum(y_pred))", {}),
    ("Variance", "mean((y_pred-mean(y_pred))^2) + lam*mean(y_pred^2)*sum(1)", {"lam": 0.1}),
    ("Huber", "d = 0.3; e = y_true - y_pred; mean(where(abs(e) <= d, 0.5*e^2, d*(abs(e) - 0.5*d)))",
     {"d": 0.2}),
    ("ClippedBCE", "p = clip(y_pred, 0.1, 0.9); mean(-y_true*log(p) - (1-y_true)*log(1-p))", {}),
    ("Mixed", "mean(sqrt(y_pred) + maximum(y_pred, 0.5)*relu(y_true - 0.3) + y_pred^1.5 "
              "+ softplus(y_pred)/max(y_pred, axis=-1) + xlogy(y_true, y_pred) - 1/y_pred)", {}),
    # No reduction: an elementwise loss (weights then need a trailing axis to broadcast).
    ("Elementwise", "(y_true - y_pred)^2*sigmoid(y_pred) + logsumexp(y_pred, axis=-1)", {}),
]


def load(path, module_name):
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def value_and_gradient(loss, y_true, y_pred, **kwargs):
    y_pred = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        value = loss(y_true, y_pred, **kwargs)
    return value.numpy(), tape.gradient(value, y_pred).numpy()


@pytest.mark.parametrize("class_name, source, params", CASES, ids=[c[0] for c in CASES])
def test_exported_loss_matches_compile_in_values_and_gradients(tmp_path, class_name, source, params):
    module = load(export_to_file(source, class_name, tmp_path / f"{class_name.lower()}.py",
                                 **params), f"exported_{class_name.lower()}")
    assert "lossdsl" not in {name.split(".")[0] for name in vars(module) if name != "__builtins__"}
    exported, ours = getattr(module, class_name)(), lossdsl.compile(source, **params)
    weights = WEIGHTS[:, None] if class_name == "Elementwise" else WEIGHTS
    for kwargs in ({}, {"sample_weight": weights}):
        expected = value_and_gradient(ours, Y_TRUE, Y_PRED, **kwargs)
        got = value_and_gradient(exported, Y_TRUE, Y_PRED, **kwargs)
        np.testing.assert_allclose(got[0], expected[0], rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(got[1], expected[1], rtol=2e-5, atol=1e-6)
    per_sample = value_and_gradient(getattr(module, class_name)(reduction="none"), Y_TRUE, Y_PRED)
    np.testing.assert_allclose(per_sample[0], lossdsl.compile(source, reduction="none", **params)(
        Y_TRUE, Y_PRED).numpy(), rtol=2e-5, atol=1e-6)


def test_constructor_arguments_override_the_exported_defaults(tmp_path):
    source = "mean(-alpha*y_true*(1-y_pred)^gamma*log(y_pred))"
    module = load(export_to_file(source, "Focal", tmp_path / "focal.py", alpha=0.25, gamma=2.0),
                  "exported_focal_override")
    exported = module.Focal(alpha=0.75, gamma=0.5)
    expected = value_and_gradient(lossdsl.compile(source, alpha=0.75, gamma=0.5), Y_TRUE, Y_PRED)
    got = value_and_gradient(exported, Y_TRUE, Y_PRED)
    np.testing.assert_allclose(got[0], expected[0], rtol=2e-5)
    np.testing.assert_allclose(got[1], expected[1], rtol=2e-5, atol=1e-7)


def test_missing_parameter_becomes_a_required_argument_and_config_round_trips(tmp_path):
    # `shape` is also a local of the generated code: the generator renames its own.
    module = load(export_to_file("mean(shape*(y_true-y_pred)^2)", "Scaled", tmp_path / "s.py"),
                  "exported_scaled")
    with pytest.raises(TypeError):
        module.Scaled()
    loss = module.Scaled(shape=3.0, reduction="sum", name="s")
    config = loss.get_config()
    assert config == {"name": "s", "reduction": "sum", "dtype": "float32", "shape": 3.0}
    again = module.Scaled.from_config(config)
    np.testing.assert_allclose(again(Y_TRUE, Y_PRED),
                               keras.losses.MeanSquaredError(reduction="sum")(Y_TRUE, Y_PRED) * 3,
                               rtol=1e-6)


def test_exported_loss_in_float64_and_with_rank_3_inputs(tmp_path):
    source = "sum(mean(y_pred, axis=-1)^2) + mean(softmax(y_pred, axis=1)*y_true)"
    module = load(export_to_file(source, "R3", tmp_path / "r3.py"), "exported_r3")
    y_true = RNG.uniform(0, 1, (3, 4, 2))
    y_pred = RNG.uniform(-1, 1, (3, 4, 2))
    got = value_and_gradient(module.R3(dtype="float64"), y_true, y_pred)
    expected = value_and_gradient(lossdsl.compile(source, dtype="float64"), y_true, y_pred)
    assert got[0].dtype == np.float64
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12)


def test_compiled_loss_explains_itself():
    loss = lossdsl.compile("mean(-alpha*log(y_pred))", alpha=0.5)
    report = loss.explain()
    assert report.params == {"alpha": 0.5} and report.gradient == loss.gradient
    assert loss._repr_latex_() == report._repr_latex_()
    assert r"\frac{\alpha}{n y_{\mathrm{pred}}}" in loss._repr_latex_()


@pytest.mark.parametrize("name", ["call", "_private", "dtype"])
def test_parameters_that_would_clash_with_keras_attributes_are_refused(tmp_path, name):
    with pytest.raises(lossdsl.DSLNameError, match="cannot be used as a Python parameter name"):
        export_to_file(f"mean({name}*y_pred)", "Clash", tmp_path / "c.py")


def test_exported_loss_is_registered_for_keras_serialization(tmp_path):
    source = "mean(-alpha*y_true*(1-y_pred)^gamma*log(y_pred))"
    module = load(export_to_file(source, "SerialFocal", tmp_path / "sf.py", alpha=0.25, gamma=2.0),
                  "exported_serial_focal")
    config = keras.saving.serialize_keras_object(module.SerialFocal(gamma=3.0))
    assert config["registered_name"] == "lossdsl_export>SerialFocal"
    restored = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert isinstance(restored, module.SerialFocal) and (restored.alpha, restored.gamma) == (0.25, 3.0)
    np.testing.assert_allclose(restored(Y_TRUE, Y_PRED),
                               lossdsl.compile(source, alpha=0.25, gamma=3.0)(Y_TRUE, Y_PRED),
                               rtol=2e-5)
