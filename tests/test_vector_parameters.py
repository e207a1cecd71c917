"""Vector parameters (``w=[1.0, 2.0, 5.0]``): one value per element of the last axis.

References are the losses' math written out here in NumPy (values and gradients
derived by hand), never lossdsl's own forms; the gradient is taken by the
backend's autodiff of the compiled loss in both gradient modes.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lossdsl
from tests.backend_support import value_and_gradient

MODES = ("autodiff", "symbolic")
WEIGHTED_CE = "-sum(w*y_true*log_softmax(y_pred))"
RNG = np.random.default_rng(7)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _weighted_ce(w: np.ndarray, t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample value of -sum_c w_c t_c log softmax_c, and its gradient
    (sum_c w_c t_c) softmax_j - w_j t_j."""
    p = _softmax(x)
    value = -np.sum(w * t * np.log(p), -1)
    gradient = np.sum(w * t, -1, keepdims=True) * p - w * t
    return value, gradient


@pytest.mark.backends
@pytest.mark.parametrize("mode", MODES)
def test_class_weighted_cross_entropy_matches_the_hand_derived_reference(mode):
    w = np.array([1.0, 2.0, 5.0])
    y_true = np.eye(3)[RNG.integers(0, 3, 6)]
    y_pred = RNG.normal(size=(6, 3))
    loss = lossdsl.compile(WEIGHTED_CE, w=list(w), reduction="none", dtype="float64",
                           gradient=mode)
    value, gradient = value_and_gradient(loss, y_true, y_pred, "float64")
    expected_value, expected_gradient = _weighted_ce(w, y_true, y_pred)
    np.testing.assert_allclose(value, expected_value, rtol=1e-10)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-9, atol=1e-12)


@pytest.mark.backends
@pytest.mark.parametrize("mode", MODES)
def test_integer_labels_pick_their_class_weight(mode):
    # PyTorch's cross_entropy(weight=w, reduction="none"): w[y] * -log softmax(x)[y].
    w = np.array([0.5, 1.0, 3.0, 2.0])
    labels = RNG.integers(0, 4, 8)
    y_pred = RNG.normal(size=(8, 4))
    loss = lossdsl.compile("-sum(w*one_hot(y_true)*log_softmax(y_pred))", w=w,
                           reduction="none", dtype="float64", gradient=mode)
    value, gradient = value_and_gradient(loss, labels, y_pred, "float64")
    expected_value, expected_gradient = _weighted_ce(w, np.eye(4)[labels], y_pred)
    np.testing.assert_allclose(value, expected_value, rtol=1e-10)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-9, atol=1e-12)


@pytest.mark.backends
def test_rank_3_inputs_weight_the_last_axis():
    w = np.array([1.0, 4.0])
    y_true = RNG.uniform(size=(3, 5, 2))
    y_pred = RNG.uniform(0.1, 0.9, size=(3, 5, 2))
    loss = lossdsl.compile("mean(w*(y_true - y_pred)^2)", w=w, reduction="none",
                           dtype="float64")
    value, gradient = value_and_gradient(loss, y_true, y_pred, "float64")
    np.testing.assert_allclose(value, np.mean(w * (y_true - y_pred) ** 2, axis=(1, 2)))
    np.testing.assert_allclose(gradient, 2 * w * (y_pred - y_true) / 10)


@settings(max_examples=25, deadline=None)
@given(classes=st.integers(1, 6), batch=st.integers(1, 4), seed=st.integers(0, 2**31 - 1),
       mode=st.sampled_from(MODES))
def test_any_length_and_values_match_the_reference(classes, batch, seed, mode):
    rng = np.random.default_rng(seed)
    w = rng.uniform(-3, 3, classes)
    y_true = rng.uniform(size=(batch, classes))
    y_pred = rng.normal(size=(batch, classes))
    loss = lossdsl.compile(WEIGHTED_CE, w=w, reduction="none", dtype="float64", gradient=mode)
    value, gradient = value_and_gradient(loss, y_true, y_pred, "float64")
    expected_value, expected_gradient = _weighted_ce(w, y_true, y_pred)
    np.testing.assert_allclose(value, expected_value, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-8, atol=1e-12)


def test_a_reduction_keeps_the_vector_inside():
    # sum(w*y) is not w*sum(y): the formula says so, and the value agrees.
    loss = lossdsl.compile("sum(w*y_pred)", w=[1.0, 10.0])
    assert "w" in str(loss.expression) and str(loss.expression).startswith("sum(")
    assert float(loss(np.zeros((1, 2)), np.array([[1.0, 2.0]]))) == pytest.approx(21.0)


def test_the_check_compares_the_gradient_and_names_no_vector_gradient():
    loss = lossdsl.compile(WEIGHTED_CE, w=[1.0, 2.0, 5.0], gradient="symbolic")
    y_true, y_pred = np.eye(3)[[0, 2, 1]], RNG.normal(size=(3, 3))
    report = lossdsl.check_gradients(loss, y_true, y_pred)
    assert report.passed and report.points == 9
    assert "w" not in report.parameters  # no derived gradient for a vector parameter


def test_the_config_holds_a_list_and_reloads_in_safe_mode(tmp_path):
    loss = lossdsl.compile(WEIGHTED_CE, w=(1.0, 2.0, 5.0))
    config = loss.get_config()
    assert config["params"] == {"w": [1.0, 2.0, 5.0]}
    assert json.loads(json.dumps(config)) == config
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("sgd", loss=loss)
    x, y = RNG.normal(size=(16, 4)), np.eye(3)[np.arange(16) % 3]
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert reloaded.loss.compiled.params == {"w": (1.0, 2.0, 5.0)}
    np.testing.assert_allclose(reloaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0),
                               rtol=1e-6)


def test_explain_and_repr_show_the_values():
    text = str(lossdsl.explain(WEIGHTED_CE, w=[1, 2, 5]))
    assert "w = [1.0, 2.0, 5.0]" in text
    assert "w=(1.0, 2.0, 5.0)" in repr(lossdsl.compile(WEIGHTED_CE, w=[1, 2, 5]))


@pytest.mark.parametrize("config_params", [{"w": [1, True]}, {"w": []}, {"w": [[1.0], [2.0]]},
                                           {"w": ["1"]}])
def test_a_bad_vector_in_a_config_is_refused(config_params):
    with pytest.raises(lossdsl.LossDSLError):
        lossdsl.DSLLoss.from_config({"source": WEIGHTED_CE, "params": config_params})


@pytest.mark.parametrize("value, message", [
    ([1.0, [2.0]], "non-empty list of numbers"),
    ([], "non-empty list of numbers"),
    ([1.0, float("nan")], "finite real numbers"),
    (np.ones((2, 2)), "non-empty list of numbers"),
])
def test_bad_vectors_are_located_errors(value, message):
    with pytest.raises(lossdsl.DSLTypeError, match=message) as error:
        lossdsl.compile(WEIGHTED_CE, w=value)
    assert error.value.span.start == WEIGHTED_CE.index("w")


def test_vectors_of_different_lengths_are_refused():
    with pytest.raises(lossdsl.DSLTypeError, match="differ in length"):
        lossdsl.compile("mean(a*w*y_pred)", w=[1.0, 2.0], a=[1.0, 2.0, 3.0])


def test_a_value_outside_a_domain_is_refused_element_by_element():
    with pytest.raises(lossdsl.DSLTypeError, match="w = -2.0"):
        lossdsl.compile("mean(log(w)*y_pred)", w=[1.0, -2.0])


@pytest.mark.backends
def test_a_length_that_is_not_the_class_axis_is_a_located_error_at_call_time():
    loss = lossdsl.compile(WEIGHTED_CE, w=[1.0, 2.0, 5.0])
    with pytest.raises(lossdsl.DSLShapeError, match="3 values, but the last axis of the inputs "
                                                    "has 4") as error:
        loss(np.eye(4)[[0, 1]], np.zeros((2, 4)))
    assert error.value.span.start == WEIGHTED_CE.index("w")


def test_a_column_beyond_the_vector_is_refused_at_compile_time():
    with pytest.raises(lossdsl.DSLShapeError, match="length of the vector parameter `w`"):
        lossdsl.compile("sum(w*y_pred[..., 2])", w=[1.0, 2.0])


def test_the_exported_module_takes_the_vector(tmp_path):
    import importlib.util

    from lossdsl.tools.export import export_to_file

    path = export_to_file(WEIGHTED_CE, "WeightedCE", tmp_path / "weighted_ce.py", w=[1.0, 2.0, 5.0])
    spec = importlib.util.spec_from_file_location("weighted_ce", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    y_true, y_pred = np.eye(3)[[0, 2, 1]], RNG.normal(size=(3, 3))
    exported = module.WeightedCE(dtype="float64")
    assert exported.get_config()["w"] == [1.0, 2.0, 5.0]
    expected = _weighted_ce(np.array([1.0, 2.0, 5.0]), y_true, y_pred)[0].mean()
    assert float(exported(y_true, y_pred)) == pytest.approx(expected, rel=1e-10)


def test_the_command_line_takes_a_vector_as_comma_separated_values():
    from tests.test_cli import run

    result = run("show", WEIGHTED_CE, "--param", "w=1,2,5")
    assert result.returncode == 0, result.stderr
    assert "parameters  w = [1.0, 2.0, 5.0]" in result.stdout


def test_check_gradients_draws_points_as_wide_as_the_vector():
    report = lossdsl.check_gradients(lossdsl.compile(WEIGHTED_CE, w=[1.0, 2.0, 5.0]))
    assert report.passed and report.y_pred.shape[-1] == 3


def test_rank_1_inputs_have_no_class_axis_for_a_vector():
    loss = lossdsl.compile("mean(w*(y_true - y_pred)^2)", w=[1.0, 2.0, 5.0], reduction=None)
    with pytest.raises(lossdsl.DSLShapeError, match="rank 1"):
        loss(np.zeros(3), np.ones(3))


def test_a_regularizer_checks_its_vector_against_the_kernel():
    regularizer = lossdsl.regularizer("sum(v*w^2)", v=[1.0, 2.0])
    assert float(regularizer(np.ones((4, 2), "float32"))) == pytest.approx(12.0)
    with pytest.raises(lossdsl.DSLShapeError, match="2 values, but the last axis"):
        regularizer(np.ones((4, 3), "float32"))


def test_a_tensor_is_a_vector_and_the_length_is_limited():
    import tensorflow as tf

    from lossdsl.limits import MAX_VECTOR_LENGTH

    assert lossdsl.compile(WEIGHTED_CE, w=tf.constant([1.0, 2.0])).params == {"w": (1.0, 2.0)}
    with pytest.raises(lossdsl.DSLLimitError, match="at most"):
        lossdsl.DSLLoss.from_config({"source": WEIGHTED_CE,
                                     "params": {"w": [1.0] * (MAX_VECTOR_LENGTH + 1)}})


@pytest.mark.parametrize("width", [2, 4])
def test_an_unknown_width_is_checked_when_the_loss_runs(width):
    import tensorflow as tf

    loss = lossdsl.compile("mean(w*(y_true - y_pred)^2)", w=[1.0, 2.0, 5.0])
    run = tf.function(loss, input_signature=[tf.TensorSpec([None, None])] * 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="exactly 3 elements, the length "
                                                             "of the vector parameter `w`"):
        run(np.zeros((2, width), "float32"), np.zeros((2, width), "float32"))
    assert float(run(np.zeros((2, 3), "float32"), np.ones((2, 3), "float32"))) == \
        pytest.approx(8 / 3)
