"""The library's API (listing, keywords, errors, serialization) and the ``one_hot`` op."""

from __future__ import annotations

import inspect
import itertools
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import sympy
import tensorflow as tf

import lossdsl
from lossdsl import losses
from lossdsl.ops import OPS, one_hot

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- the library API

def test_available_lists_each_loss_with_source_doc_and_origin() -> None:
    specs = losses.available()
    assert len({spec.name for spec in specs}) == len(specs)
    for spec in specs:
        assert spec.doc and (spec.keras or spec.citation)
        assert lossdsl.analyze(spec.source).canonical  # every listed source compiles
        assert spec.name in losses.__all__


def test_callables_pass_parameters_and_keras_settings_to_the_loss() -> None:
    focal = losses.focal(alpha=0.5, gamma=1.0, name="my_focal", reduction="sum")
    assert isinstance(focal, keras.losses.Loss)
    assert focal.source == losses.REGISTRY["focal"].source
    assert focal.params == {"alpha": 0.5, "gamma": 1.0}
    assert (focal.name, focal.reduction) == ("my_focal", "sum")
    assert losses.huber().name == "huber"
    assert "Same as keras.losses.Huber" in losses.huber.__doc__
    assert "Lin, Goyal" in losses.focal.__doc__


def test_each_row_has_one_public_callable_whose_signature_is_the_row() -> None:
    """The callables are written out (for IDEs and help()); this keeps them equal to the table."""
    callables = {name: value for name, value in vars(losses).items()
                 if inspect.isfunction(value) and value.__module__ in
                 ("lossdsl.losses.keras_builtins", "lossdsl.losses.literature",
                  "lossdsl.losses.metric_learning")}
    assert set(callables) == set(losses.REGISTRY)
    for spec in losses.available():
        signature = inspect.signature(callables[spec.name])
        kinds = {p.kind for p in signature.parameters.values()}
        assert kinds <= {inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD}
        assert signature.parameters["settings"].kind is inspect.Parameter.VAR_KEYWORD
        keywords = {name: p.default for name, p in signature.parameters.items()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY}
        assert keywords == {**spec.options, **spec.params}, spec.name
        for default in spec.params.values():
            assert isinstance(default, float)
        # Every choice of the boolean options has the same parameters as the default source.
        flags = [key for key, value in spec.options.items() if isinstance(value, bool)]
        for values in itertools.product((False, True), repeat=len(flags)):
            source = spec.source_for(**dict(zip(flags, values)))
            assert dict(lossdsl.analyze(source).defaults) == spec.params, (spec.name, values)
        doc = " ".join(callables[spec.name].__doc__.split())
        origin = f"Same as keras.losses.{spec.keras}." if spec.keras else f"From: {spec.citation}."
        assert doc.startswith(f"{spec.doc[0].upper()}{spec.doc[1:]}.") and origin in doc, spec.name
        assert ">>> " in doc, spec.name


def test_options_choose_the_source_and_parameters_keep_their_defaults() -> None:
    spec = losses.REGISTRY["binary_crossentropy"]
    assert "softplus(y_pred)" in spec.source_for(from_logits=True)
    assert "clip(y_pred" in spec.source_for(from_logits=False)
    assert "axis=(1, 2)" in losses.REGISTRY["dice"].source_for(axis=(1, 2))
    assert losses.binary_crossentropy(from_logits=True).params == {"label_smoothing": 0.0}


def test_unknown_parameter_is_a_dsl_error_with_a_suggestion() -> None:
    with pytest.raises(lossdsl.DSLNameError, match="Did you mean `gamma`"):
        losses.focal(gama=2.0)


def test_unknown_loss_is_a_dsl_error_with_a_suggestion() -> None:
    with pytest.raises(lossdsl.DSLNameError, match="Did you mean `huber`"):
        losses.make("hubber")


@pytest.mark.parametrize("options", [{"from_logits": "yes"}, {"from_logits": 1}])
def test_bad_option_value_is_a_config_error(options: dict) -> None:
    with pytest.raises(lossdsl.DSLConfigError, match="from_logits"):
        losses.binary_crossentropy(**options)


@pytest.mark.parametrize("axis", [True, "1", (), (1, "2")])
def test_bad_axis_is_a_config_error(axis: object) -> None:
    with pytest.raises(lossdsl.DSLConfigError, match="axis"):
        losses.dice(axis=axis)


def test_a_library_loss_reloads_from_its_config_with_the_same_values() -> None:
    loss = losses.binary_focal_crossentropy(apply_class_balancing=True, gamma=3.0)
    config = keras.losses.serialize(loss)
    reloaded = keras.losses.deserialize(config)
    y_true, y_pred = np.array([[1.0, 0.0, 1.0]]), np.array([[0.8, 0.3, 0.4]])
    assert reloaded.source == loss.source and reloaded.params == loss.params
    np.testing.assert_allclose(reloaded(y_true, y_pred), loss(y_true, y_pred))


# ---------------------------------------------------------------- one_hot

def test_one_hot_has_a_readable_gradient_and_labels_are_not_differentiated() -> None:
    compiled = lossdsl.compile_expression("-sum(one_hot(y_true)*log_softmax(y_pred))")
    y_true = sympy.Symbol("y_true", real=True)
    assert "one_hot(y_true)" in str(compiled.gradient)
    assert sympy.diff(compiled.expression, y_true) == 0
    assert sympy.latex(one_hot(y_true)) == r"\mathbb{1}\left[i = y_{true}\right]"


def test_one_hot_of_a_number_picks_a_column_and_is_not_pulled_out_of_a_sum() -> None:
    loss = lossdsl.compile("sum(one_hot(1)*y_pred, axis=-1)")
    y_pred = np.array([[1.0, 20.0, 300.0], [4.0, 50.0, 600.0]])
    np.testing.assert_allclose(loss(np.zeros((2, 1)), y_pred, ), (20.0 + 50.0) / 2)
    assert lossdsl.check_gradients(loss, np.zeros((2, 3)), y_pred).passed


@pytest.mark.parametrize("label_shape", [(4,), (4, 1)])
@pytest.mark.parametrize("label_dtype", ["int32", "int64", "float32"])
def test_one_hot_labels_of_any_shape_and_dtype_keras_accepts(label_shape, label_dtype) -> None:
    labels = np.array([2, 0, 1, 2]).reshape(label_shape).astype(label_dtype)
    logits = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    ours = losses.sparse_categorical_crossentropy(from_logits=True, reduction="none")
    theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    np.testing.assert_allclose(ours(labels, logits), theirs(labels, logits), rtol=1e-6)


def test_one_hot_over_a_sequence_with_jit_compile() -> None:
    """Labels (batch, time) against logits (batch, time, classes), unknown batch size."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, (3, 4))
    logits = rng.normal(size=(3, 4, 5)).astype("float32")
    ours = losses.sparse_categorical_crossentropy(from_logits=True)
    theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=True, input_signature=[
        tf.TensorSpec([None, 4], tf.int64), tf.TensorSpec([None, 4, 5], tf.float32)])
    def value_and_gradient(y_true, y_pred):
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = ours(y_true, y_pred)
        return value, tape.gradient(value, y_pred)

    value, gradient = value_and_gradient(labels, logits)
    logits_tensor = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits_tensor)
        expected = theirs(labels, logits_tensor)
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(gradient, tape.gradient(expected, logits_tensor), atol=1e-7)


def test_readme_lists_every_op_and_every_loss() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- ops-table:start -->")[1].split("<!-- ops-table:end -->")[0]
    listed = set(re.findall(r"^\| `(\w+)\(", table, flags=re.M))
    assert listed == {op.name for op in OPS}
    library = readme.split("## The loss library")[1].split("\n## ")[0]
    for spec in losses.available():
        assert f"`{spec.name}`" in library, spec.name


def test_listing_the_library_does_not_import_tensorflow() -> None:
    code = ("import sys, lossdsl; specs = lossdsl.losses.available(); "
            "[spec.params for spec in specs]; print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "False"


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 6), classes=st.integers(2, 7), seed=st.integers(0, 2**16),
       from_logits=st.booleans())
def test_sparse_categorical_crossentropy_matches_keras_on_any_shape(
        batch: int, classes: int, seed: int, from_logits: bool) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, batch)
    y_pred = rng.normal(0, 3, (batch, classes)) if from_logits else \
        rng.dirichlet(np.ones(classes), batch)
    y_pred = tf.constant(y_pred, tf.float32)
    results = []
    for loss in (losses.sparse_categorical_crossentropy(from_logits=from_logits),
                 keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)):
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = loss(labels, y_pred)
        results.append((value.numpy(), tape.gradient(value, y_pred).numpy()))
    (value, gradient), (expected, expected_gradient) = results
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-5, atol=1e-6)
