"""Pairs of samples: the pair functions and the metric-learning losses of the library.

Each library loss is compared, in value and gradient, with a transcription of the code
its docs name (tests/metric_learning_references.py: TF Addons, optax, the CLIP paper),
on batches with several classes, a class of one sample, duplicated rows (distances of
exactly 0) and labels of shape (batch,) and (batch, 1); in both gradient modes; on every
backend for the tests marked ``backends`` (the backend's own autodiff); in ``fit`` with a
save and a safe reload. The pair functions themselves are checked against NumPy and
their derived backward pass against autodiff; the refusals say what to write instead.
"""

from __future__ import annotations

import keras
import metric_learning_references as refs
import numpy as np
import pytest
from backend_support import float64_enabled, tape_value_and_gradient, to_numpy, value_and_gradient
from dsl_strategies import SHAPE, pair_programs
from hypothesis import event, given, settings
from hypothesis import strategies as st
from test_differential import Exported, _compiles, assert_pair_computations_agree

import lossdsl
from lossdsl import losses
from lossdsl.ops import REGISTRY
from lossdsl.ops.numpy_forms import numpy_form

RNG = np.random.default_rng(2014)


def _batch(labels: list[int], dims: int = 4, duplicate: bool = False) -> tuple[np.ndarray, np.ndarray]:
    embeddings = RNG.normal(size=(len(labels), dims))
    if duplicate:  # two identical rows: a distance of exactly 0 off the diagonal
        embeddings[1] = embeddings[0]
    return np.asarray(labels, "int64"), embeddings


BATCHES = {
    "three classes": _batch([0, 1, 0, 2, 1, 2, 0, 1, 2, 0]),
    "a class of one": _batch([0, 1, 0, 1, 3, 0, 1, 0]),
    "duplicate rows": _batch([0, 0, 1, 1, 2, 2, 1, 0], duplicate=True),
}


def _column(labels: np.ndarray, as_column: bool) -> np.ndarray:
    return labels[:, None] if as_column else labels


def _library_and_reference(name: str, labels: np.ndarray, embeddings: np.ndarray,
                           **params: object) -> tuple[object, object, np.ndarray]:
    """(the library loss, its reference as a function of (labels, y_pred), the y_pred to use)."""
    options = {k: v for k, v in params.items() if k == "squared"}
    numbers = {k: v for k, v in params.items() if k != "squared"}
    loss = getattr(losses, name)(dtype="float64", **params)
    if name == "triplet_hard":
        return loss, lambda t, p: refs.triplet_batch_hard(t, p, **params), embeddings
    if name == "triplet_semihard":
        return loss, lambda t, p: refs.triplet_semihard(t, p, **params), embeddings
    if name == "triplet_all":
        return loss, lambda t, p: refs.triplet_batch_all(t, p, **params), embeddings
    if name == "ntxent":
        return loss, lambda t, p: refs.ntxent(t, p, **numbers), embeddings
    if name == "batch_contrastive":
        def reference(t, p):
            import tensorflow as tf
            distances = refs.pairwise_distance(p, squared=options.get("squared", False))
            same = tf.cast(tf.equal(tf.reshape(t, (-1, 1)), tf.reshape(t, (1, -1))), tf.float64)
            others = 1.0 - tf.eye(tf.shape(p)[0], dtype=tf.float64)
            per_pair = refs.contrastive(tf.reshape(same, (-1,)), tf.reshape(distances, (-1,)),
                                        **numbers)
            return tf.reduce_sum(tf.reshape(per_pair, tf.shape(same)) * others) / tf.reduce_sum(others)
        return loss, reference, embeddings
    similarity = embeddings @ embeddings.T / 0.5  # a (batch, batch) logit matrix
    if name == "npairs":
        return loss, refs.npairs, similarity
    assert name == "clip"
    return loss, lambda t, p: refs.clip_loss(p), similarity


CASES = [("triplet_hard", {}), ("triplet_hard", {"margin": 0.3, "squared": True}),
         ("triplet_semihard", {}), ("triplet_semihard", {"margin": 0.3, "squared": True}),
         ("triplet_all", {}), ("triplet_all", {"margin": 0.5, "squared": True}),
         ("ntxent", {}), ("ntxent", {"temperature": 0.5}),
         ("batch_contrastive", {}), ("batch_contrastive", {"margin": 2.0, "squared": True}),
         ("npairs", {}), ("clip", {})]


@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
@pytest.mark.parametrize("as_column", [False, True])
@pytest.mark.parametrize("batch", list(BATCHES))
@pytest.mark.parametrize("name, params", CASES)
def test_each_metric_learning_loss_equals_its_reference(name, params, batch, as_column,
                                                        gradient) -> None:
    labels, embeddings = BATCHES[batch]
    loss, reference, y_pred = _library_and_reference(name, labels, embeddings, **params)
    loss = lossdsl.compile(loss.source, dtype="float64", gradient=gradient, **loss.params)
    y_true = _column(labels, as_column)
    expected, expected_gradient = tape_value_and_gradient(reference, y_true, y_pred)
    value, grad = tape_value_and_gradient(lambda t, p: loss(t, p), y_true, y_pred)
    np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad, expected_gradient, rtol=1e-8, atol=1e-10)
    assert np.abs(expected_gradient).max() > 1e-3  # the comparison is not of zeros


def test_a_triple_loss_is_shown_over_the_anchor_the_positive_and_the_negative() -> None:
    explained = lossdsl.explain(losses.triplet_all().source)
    latex = explained.latex(explained.loss.sympy)
    # pair_dist(y_pred, axis=-2) is d(i, j), the positive; pair_dist(y_pred) is d(i, k)
    assert r"\left\lVert y_{\mathrm{pred}}^{(i)} - y_{\mathrm{pred}}^{(j)} \right\rVert" in latex
    assert r"\left\lVert y_{\mathrm{pred}}^{(i)} - y_{\mathrm{pred}}^{(k)} \right\rVert" in latex
    assert r"\mathbb{1}\left[i = j\right]" in latex
    assert "pair_dist(y_pred, axis=-2)" in str(explained.loss)
    assert {line.split(" = ")[0] for line in explained.counts() if line.startswith("backward")} \
        == {"backward0(pair_dist(y_pred, axis=-2))", "backward1(pair_dist(y_pred))"}


def test_per_pair_contrastive_is_tf_addons_contrastive_loss() -> None:
    distances = RNG.uniform(0.0, 2.0, (12, 1))
    pair_labels = (RNG.random((12, 1)) > 0.5).astype("float64")
    for margin in (1.0, 0.5):
        loss = losses.contrastive(margin=margin, dtype="float64")
        expected, expected_gradient = tape_value_and_gradient(
            lambda t, p: keras.ops.mean(refs.contrastive(t, p, margin=margin)), pair_labels,
            distances)
        value, grad = tape_value_and_gradient(lambda t, p: loss(t, p), pair_labels, distances)
        np.testing.assert_allclose(value, expected, rtol=1e-12)
        np.testing.assert_allclose(grad, expected_gradient, rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------- the pair functions

PAIR_FUNCTIONS = ["pair_dot", "pair_cos", "pair_sqdist", "pair_dist"]


@pytest.mark.backends
@pytest.mark.parametrize("function", PAIR_FUNCTIONS + ["pair_eq"])
def test_each_pair_function_is_its_numpy_form_on_every_backend(function) -> None:
    _, embeddings = BATCHES["duplicate rows"]
    weights = RNG.uniform(0.5, 1.5, (len(embeddings), len(embeddings)))
    loss = lossdsl.compile(f"{function}(y_pred)", dtype="float64", reduction="none")
    with float64_enabled():
        rows = to_numpy(loss(np.zeros((len(embeddings), 1)), embeddings))
    np.testing.assert_allclose(rows, numpy_form(REGISTRY[function])(embeddings),
                               rtol=1e-9, atol=1e-9)
    # Weights that differ between (i, j) and (j, i): the backward pass must transpose right.
    weighted = lossdsl.compile(f"sum(y_true*{function}(y_pred), axis=-1)", dtype="float64")
    check = lossdsl.check_gradients(weighted, weights, embeddings)
    assert check.passed and check.points == embeddings.size, str(check)
    if function != "pair_eq":
        assert np.abs(check.symbolic).max() > 1e-3


@pytest.mark.backends
@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
@pytest.mark.parametrize("name, params", CASES[::2])
def test_every_backend_agrees_with_the_reference(name, params, gradient) -> None:
    labels, embeddings = BATCHES["a class of one"]
    loss, reference, y_pred = _library_and_reference(name, labels, embeddings, **params)
    loss = lossdsl.compile(loss.source, dtype="float64", gradient=gradient, **loss.params)
    expected, expected_gradient = tape_value_and_gradient(reference, labels[:, None], y_pred)
    value, grad = value_and_gradient(lambda t, p: loss(t, p), labels[:, None], y_pred, "float64")
    # Keras 3.15 reduces a float64 loss in float32 on PyTorch: float32 tolerances here, and
    # the float64 comparison is check_gradients' (below).
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_gradient, rtol=1e-5, atol=1e-7)
    report = lossdsl.check_gradients(loss, labels[:, None], y_pred)
    assert report.passed, str(report)


def test_the_derived_gradient_is_shown_through_the_pair_function() -> None:
    loss = losses.triplet_hard()
    assert "pair_dist(y_pred)" in str(loss.expression)
    assert "backward" in str(loss.gradient) and "pair_dist(y_pred)" in str(loss.gradient)
    assert loss.compiled.analysis.batch_reductions == (
        "pair_dist(y_pred)", "pair_eq(y_true)", "pair_self()")
    explained = lossdsl.explain(loss.source)
    assert r"\nabla_{y_{\mathrm{pred}}} \sum" in explained.latex(explained.gradient.sympy)
    assert r"\left\lVert y_{\mathrm{pred}}^{(i)} - y_{\mathrm{pred}}^{(j)} \right\rVert" in \
        explained.latex(explained.loss.sympy)
    assert any(line.startswith("backward0(pair_dist(y_pred)) = d/dy_pred of sum(g * "
                               "pair_dist(y_pred))") for line in explained.counts())


# ---------------------------------------------------------------- generated programs

def _pair_points(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (batch, 1) or (batch,), and predictions (batch, batch), (batch, 3), (batch, 1) or
    (batch,): a program reading them directly refuses the (batch, 3) ones."""
    rng = np.random.default_rng(seed)
    batch = SHAPE[-1]
    labels = rng.integers(0, 2, (batch, 1)).astype("float64")
    shape = [(batch, batch), (batch, 3), (batch, 1), (batch,)][seed % 4]
    return (labels[:, 0] if len(shape) == 1 else labels), rng.uniform(0.1, 0.9, shape)


@settings(max_examples=100, deadline=None)
@given(pair_programs(), st.integers(0, 2**16))
def test_generated_pair_programs_agree_with_numpy_and_the_tape(tmp_path_factory, program,
                                                               seed) -> None:
    """Autodiff, symbolic and exported agree with the NumPy interpreter in value; their tape
    gradients agree; the derived formula agrees with the tape (nothing mismatched)."""
    source = str(program)
    if not _compiles(source):
        return
    y_true, y_pred = _pair_points(seed)
    try:  # the generator's axes are for rank-3 inputs, and (batch, 3) cannot be read directly
        lossdsl.compile(source)(y_true, y_pred)
    except lossdsl.DSLShapeError:
        event("pair program: refused for these shapes")
        return
    event(f"predictions {y_pred.shape}")
    report = assert_pair_computations_agree(program, {}, y_true, y_pred,
                                            tmp_path_factory.mktemp("pairs"))
    if report is None:
        event("pair program: non-finite reference")
        return
    event("formula vs tape: inconclusive" if report.inconclusive else "formula vs tape: agree")


# ---------------------------------------------------------------- training

@keras.saving.register_keras_serializable(package="lossdsl_tests")
class BatchSimilarity(keras.layers.Layer):
    """The (batch, batch) dot products of a batch's embeddings: what N-pair and CLIP read."""

    def call(self, x):
        return keras.ops.matmul(x, keras.ops.transpose(x))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[0])


TRAINED = {  # the library loss, its parameters, and whether the model outputs similarities
    "triplet_hard": ({"margin": 0.5}, False), "triplet_semihard": ({"margin": 0.5}, False),
    "triplet_all": ({"margin": 0.5}, False), "batch_contrastive": ({"margin": 2.0}, False),
    "ntxent": ({"temperature": 0.5}, False), "npairs": ({}, True), "clip": ({}, True)}


@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
@pytest.mark.parametrize("name", list(TRAINED))
def test_fit_saves_and_reloads_a_metric_learning_loss(tmp_path, name, gradient) -> None:
    params, similarities = TRAINED[name]
    labels = np.repeat(np.arange(4), 8)
    rng = np.random.default_rng(6)  # its own data: the module's RNG depends on the tests run before
    keras.utils.set_random_seed(6)  # and its own initial weights
    x = rng.normal(size=(32, 6)).astype("float32") + labels[:, None].astype("float32")
    layers = [keras.Input((6,)), keras.layers.Dense(3)] + ([BatchSimilarity()] if similarities
                                                           else [])
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.SGD(0.05),
                  loss=getattr(losses, name)(gradient=gradient, **params))
    history = model.fit(x, labels, batch_size=16, epochs=3, shuffle=False, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0], history.history
    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)  # safe mode: the loss is rebuilt from its source
    assert reloaded.loss.source == model.loss.source and reloaded.loss.params == params
    np.testing.assert_allclose(reloaded.evaluate(x, labels, batch_size=16, verbose=0),
                               model.evaluate(x, labels, batch_size=16, verbose=0), rtol=1e-6)


# ---------------------------------------------------------------- refusals

def test_a_pair_function_takes_an_input_as_given() -> None:
    with pytest.raises(lossdsl.DSLTypeError, match="input as given") as raised:
        lossdsl.compile("mean(pair_dist(y_pred/2), axis=-1)")
    assert raised.value.column == len("mean(pair_dist(") + 1


def test_an_input_read_directly_must_fit_the_batch_by_batch_rows() -> None:
    loss = lossdsl.compile("mean(pair_dist(y_pred) * y_pred, axis=-1)")
    with pytest.raises(lossdsl.LossDSLError, match="shape"):
        loss(np.zeros((5, 1)), np.ones((5, 3), "float32"))




def test_a_boosting_objective_and_a_weight_regularizer_refuse_pairs() -> None:
    from lossdsl import boosting

    with pytest.raises(lossdsl.DSLShapeError, match="compares the samples with each other"):
        boosting.objective("mean(pair_dist(y_pred), axis=-1)")
    with pytest.raises(lossdsl.DSLAxisError, match="no batch of samples to compare"):
        lossdsl.regularizer("sum((pair_dot(w) - pair_self())^2)")


def test_an_activity_penalty_and_a_metric_compare_the_samples_of_their_batch() -> None:
    activations = RNG.normal(size=(5, 3))
    penalty = lossdsl.activity_penalty("beta*mean(pair_cos(a), axis=-1)", beta=0.1)
    expected = 0.1 * numpy_form(REGISTRY["pair_cos"])(activations).mean(axis=1).sum()
    np.testing.assert_allclose(float(penalty(activations.astype("float32"))), expected, rtol=1e-5)
    metric = lossdsl.metric("mean(pair_dist(y_pred), axis=-1)", dtype="float64")
    metric.update_state(np.zeros((5, 1)), activations)
    np.testing.assert_allclose(float(metric.result()),
                               numpy_form(REGISTRY["pair_dist"])(activations).mean(), rtol=1e-10)


# ---------------------------------------------------------------- review findings

@pytest.mark.backends
@pytest.mark.parametrize("shape", [(5, 2), (5, 1), (5,)], ids=["(5, 2)", "(5, 1)", "(5,)"])
def test_a_loss_linear_in_a_pair_function_has_the_hand_derived_gradient(shape) -> None:
    """d/dx_k of the mean over (i, j) of |x_i - x_j|^2 is 4 (B x_k - sum_j x_j) / B^2: the
    symbolic gradient plan holds backward passes and no pair node (it ran at the inputs'
    shape, and was 5 times too large for (5, 1))."""
    x = RNG.normal(size=shape)
    v = x.reshape(len(x), -1)
    expected = (4 * (len(v) * v - v.sum(axis=0)) / len(v) ** 2).reshape(shape)
    for gradient in ("autodiff", "symbolic"):
        loss = lossdsl.compile("mean(pair_sqdist(y_pred))", dtype="float64", gradient=gradient)
        _, grad = value_and_gradient(lambda t, p: loss(t, p), np.zeros(shape), x, "float64")
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7, err_msg=gradient)


@pytest.mark.parametrize("shape", [(6, 1), (6,)], ids=["(6, 1)", "(6,)"])
def test_predictions_read_directly_and_in_a_pair_function(shape) -> None:
    """The backward pass is added at the input's shape, after the rest is summed there."""
    labels = np.array([0, 1, 0, 1, 1, 0], "float64").reshape(shape)
    x = RNG.normal(size=shape)
    source = "mean(pair_eq(y_true)*pair_sqdist(y_pred)) + 0.1*mean(y_pred^2)"
    values = {}
    for gradient in ("autodiff", "symbolic"):
        loss = lossdsl.compile(source, dtype="float64", gradient=gradient)
        values[gradient] = tape_value_and_gradient(lambda t, p: loss(t, p), labels, x)
    step, v = 1e-6, x.reshape(-1)
    reference = lossdsl.compile(source, dtype="float64")
    numeric = [(float(reference(labels, (v + step * e).reshape(shape)))
                - float(reference(labels, (v - step * e).reshape(shape)))) / (2 * step)
               for e in np.eye(len(v))]
    for gradient, (_, grad) in values.items():
        np.testing.assert_allclose(grad.reshape(-1), numeric, rtol=1e-6, atol=1e-8,
                                   err_msg=gradient)
    assert lossdsl.check_gradients(source, labels, x).passed


def test_ntxent_at_a_small_temperature_in_float32_is_finite() -> None:
    """The logits are shifted by each anchor's largest (no underflow to log(0)), and masked
    entries are where-d out, not multiplied by 0 (exp of the diagonal overflows)."""
    angles = np.array([0.0, 2.094, 4.188])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = np.array([0, 0, 1])
    expected = float(refs.ntxent(labels, x, temperature=0.01))
    for gradient in ("autodiff", "symbolic"):
        loss = losses.ntxent(temperature=0.01, dtype="float32", gradient=gradient)
        value, grad = tape_value_and_gradient(lambda t, p: loss(t, p), labels, x, "float32")
        np.testing.assert_allclose(value, expected, rtol=1e-5)
        assert np.isfinite(grad).all()


def test_a_vector_parameter_next_to_pair_functions_is_refused() -> None:
    with pytest.raises(lossdsl.DSLTypeError, match="last axis is the batch") as raised:
        lossdsl.compile("sum(w*pair_sqdist(y_pred), axis=-1)", w=[1.0, 2.0, 3.0])
    assert raised.value.column == len("sum(") + 1


def test_an_unknown_batch_size_is_checked_when_the_graph_runs() -> None:
    import tensorflow as tf

    loss = lossdsl.compile("mean(pair_sqdist(y_pred)*y_true)")
    spec = tf.TensorSpec([None, 3])
    call = tf.function(lambda t, p: loss(t, p), input_signature=[spec, spec], autograph=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="needs a last axis of 1 or the batch"):
        call(np.ones((6, 3), "float32"), np.ones((6, 3), "float32"))
    assert np.isfinite(float(call(np.ones((3, 3), "float32"), np.ones((3, 3), "float32"))))


def test_embeddings_of_rank_3_are_flattened_per_sample() -> None:
    labels, embeddings = BATCHES["three classes"]
    flat = losses.triplet_hard(dtype="float64")(labels, embeddings)
    stacked = losses.triplet_hard(dtype="float64")(labels, embeddings.reshape(len(labels), 2, 2))
    np.testing.assert_allclose(float(stacked), float(flat), rtol=1e-12)


@pytest.mark.parametrize("name", ["triplet_hard", "triplet_semihard", "triplet_all",
                                  "batch_contrastive", "npairs", "ntxent", "clip"])
def test_check_gradients_draws_points_a_pair_loss_takes(name) -> None:
    report = lossdsl.check_gradients(losses.make(name))
    assert report.passed and report.points == 64, str(report)


def test_the_exported_module_reads_one_number_per_sample_as_a_column(tmp_path) -> None:
    source = "mean(pair_eq(y_true)*pair_sqdist(y_pred)) + sum(pair_self()*y_pred, axis=-1)"
    exported = Exported(source, {}, tmp_path).loss
    compiled = lossdsl.compile(source, dtype="float64")
    labels, x = np.array([0.0, 1.0, 0.0, 1.0, 1.0]), RNG.normal(size=5)
    for shape in [(5,), (5, 1)]:
        expected = tape_value_and_gradient(lambda t, p: compiled(t, p), labels, x.reshape(shape))
        got = tape_value_and_gradient(lambda t, p: exported(t, p), labels, x.reshape(shape))
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_a_graph_with_an_unknown_last_axis_reads_a_column_as_one(gradient) -> None:
    import tensorflow as tf

    loss = lossdsl.compile("sum(pair_self()*y_pred, axis=-1) + logsumexp(y_pred, axis=-1)",
                           dtype="float64", reduction="sum", gradient=gradient)
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    eager = tape_value_and_gradient(lambda t, p: loss(t, p), np.zeros((4, 1)), x)
    spec = tf.TensorSpec([None, None], tf.float64)
    call = tf.function(lambda t, p: loss(t, p), input_signature=[spec, spec], autograph=False)
    traced = tape_value_and_gradient(call, np.zeros((4, 1)), x)
    np.testing.assert_allclose(traced[0], eager[0], rtol=1e-12)
    np.testing.assert_allclose(traced[1], eager[1], rtol=1e-12)
    # Row i is y_i copied over the batch: y_i + (y_i + log 4), summed over the samples.
    np.testing.assert_allclose(eager[0], 2 * x.sum() + 4 * np.log(4.0), rtol=1e-12)


def test_a_gradient_with_no_pair_node_left_keeps_the_rows_and_its_input() -> None:
    """`pair_self()*a` differentiates to a formula without pair functions: its plan still has
    the (batch, batch) shape, and its gradient the penalty input's (not y_pred's)."""
    x = RNG.normal(size=(4, 4))
    penalty = lossdsl.activity_penalty("mean(pair_self()*a^2)")
    np.testing.assert_allclose(np.asarray(penalty.gradient_of(x)), 2 * np.diag(np.diag(x)) / 4,
                               rtol=1e-5)
    loss = lossdsl.compile("mean(pair_self()*m)", inputs=["m"], dtype="float64",
                           gradient="symbolic")
    import tensorflow as tf

    labels = {"y_true": RNG.normal(size=(5, 2)), "m": RNG.normal(size=(5, 5))}
    x = tf.constant(RNG.normal(size=(5, 2)))
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(labels, x)
    np.testing.assert_allclose(float(value), np.trace(labels["m"]) / 25, rtol=1e-12)
    assert not np.asarray(tape.gradient(value, x)).any()
