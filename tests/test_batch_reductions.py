"""Reductions over the batch axis (``axis=0``): batch statistics inside a loss.

``mean(x, axis=0)`` reduces over the samples of the batch; like every reduction its
value broadcasts back, so the per-sample output keeps its batch axis and Keras's
``reduction`` still runs (each sample carries a copy of the batch statistic). Checked
here against independent references (NumPy, TF ops, Keras's ``Dice(axis=None)``,
PyTorch's class-weighted cross-entropy) in value and gradient, in both gradient
modes; on every backend for the tests marked ``backends``; in ``fit`` with a save
and a safe reload; generated programs against the NumPy interpreter; and the
refusals: a weight regularizer has no batch axis. Under ``tf.distribute.MirroredStrategy``
(a subprocess with two logical CPUs) a loss's batch statistics are all-reduced across
replicas and ``fit`` equals one device (tests/batch_distribute_check.py); metrics,
penalties and other strategies still refuse. JAX's ``DataParallel`` keeps the batch
global (two host devices).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from backend_support import run_on_backend, tape_value_and_gradient, value_and_gradient
from dsl_strategies import batch_programs
from hypothesis import event, given, settings
from hypothesis import strategies as st
from test_differential import _compiles, _points, assert_all_computations_agree

import lossdsl

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(14)
Y_TRUE = (RNG.random((6, 4)) > 0.5).astype("float32")
Y_PRED = RNG.uniform(0.05, 0.95, (6, 4)).astype("float32")
LABELS = np.eye(4, dtype="float32")[RNG.integers(0, 4, 6)]
LOGITS = RNG.normal(size=(6, 4)).astype("float32")
CLASS_WEIGHTS = [1.0, 2.0, 0.5, 3.0]

BATCH_DICE = ("1 - 2*sum(y_true*y_pred, axis=(0,1)) / "
              "(sum(y_true, axis=(0,1)) + sum(y_pred, axis=(0,1)))")
CENTERED = "mean((y_pred - mean(y_pred, axis=0) - y_true)^2)"
SPARSE_KL = ("r = mean(y_pred, axis=0); "
             "sum(rho*log(rho/r) + (1 - rho)*log((1 - rho)/(1 - r)))")
WEIGHTED_CE = "-sum(w*y_true*log_softmax(y_pred)) / mean(sum(w*y_true), axis=0)"


def centered_reference(y_true, y_pred):
    import tensorflow as tf
    centred = y_pred - tf.reduce_mean(y_pred, axis=0, keepdims=True)
    return tf.reduce_mean((centred - y_true) ** 2, axis=-1)


def sparse_kl_reference(rho):
    def reference(y_true, y_pred):
        import tensorflow as tf
        r = tf.reduce_mean(y_pred, axis=0)
        kl = tf.reduce_sum(rho*tf.math.log(rho/r) + (1 - rho)*tf.math.log((1 - rho)/(1 - r)))
        return kl * tf.ones_like(y_pred[:, 0])  # every sample carries the batch's penalty
    return reference


def weighted_ce_reference(y_true, y_pred):
    """PyTorch's ``cross_entropy(weight=w, reduction="mean")`` spread over the samples."""
    import tensorflow as tf
    w = tf.constant(CLASS_WEIGHTS, y_pred.dtype)
    per_sample = -tf.reduce_sum(w * y_true * tf.nn.log_softmax(y_pred), axis=-1)
    weights = tf.reduce_sum(w * y_true, axis=-1)
    return per_sample / tf.reduce_mean(weights)


# ------------------------------------------------------------------ language and formulas

def test_axis_zero_is_the_batch_axis_and_prints_as_written() -> None:
    loss = lossdsl.compile(BATCH_DICE)
    assert "axis=(0, 1)" in str(loss.expression)
    explanation = str(lossdsl.explain(SPARSE_KL, rho=0.05))
    assert "mean(y_pred, axis=0)" in explanation and "number of samples in the batch" in explanation
    assert r"\mathrm{axis}=0" in lossdsl.explain("mean(y_pred - mean(y_pred, axis=0))")._repr_latex_()
    assert lossdsl.compile_expression("mean(y_pred, axis=0)").analysis.batch_reductions == (
        "mean(y_pred, axis=0)",)
    assert lossdsl.compile_expression("mean(y_pred)").analysis.batch_reductions == ()


def test_a_negative_axis_never_reaches_the_batch_axis() -> None:
    loss = lossdsl.compile("mean(y_pred, axis=-2)")
    with pytest.raises(lossdsl.DSLShapeError, match="axis=-2 does not exist"):
        loss(Y_TRUE, Y_PRED)


def test_a_per_sample_reduction_is_not_constant_along_the_batch() -> None:
    """``mean(sum(y_pred), axis=0)`` is the batch mean of the samples' sums, not ``sum(y_pred)``."""
    loss = lossdsl.compile("mean(sum(y_pred), axis=0)", reduction="none")
    value = keras.ops.convert_to_numpy(loss(Y_TRUE, Y_PRED))  # one number per sample
    np.testing.assert_allclose(value, np.full(6, Y_PRED.sum(axis=1).mean()), rtol=1e-6)


def test_batch_statistics_are_not_separable() -> None:
    from lossdsl.analysis.backward import separable
    assert not separable(BATCH_DICE)
    assert not separable("mean((y_true - y_pred)^2 * sum(y_true, axis=0))")
    assert separable("mean((y_true - y_pred)^2)")


def test_a_weight_regularizer_has_no_batch_axis() -> None:
    with pytest.raises(lossdsl.DSLAxisError, match="no batch axis"):
        lossdsl.regularizer("sum(mean(w, axis=0)^2)")


# ------------------------------------------------------------------ values and gradients (TF)

@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
@pytest.mark.parametrize("source, params, y_true, y_pred, reference", [
    (CENTERED, {}, Y_TRUE, Y_PRED, centered_reference),
    (SPARSE_KL, {"rho": 0.05}, Y_TRUE, Y_PRED, sparse_kl_reference(0.05)),
    (WEIGHTED_CE, {"w": CLASS_WEIGHTS}, LABELS, LOGITS, weighted_ce_reference),
], ids=["centered", "sparse KL", "weighted CE"])
def test_per_sample_values_and_gradient_match_tf_references(gradient, source, params, y_true,
                                                            y_pred, reference) -> None:
    loss = lossdsl.compile(source, reduction="none", gradient=gradient, dtype="float64", **params)
    value, grad = value_and_gradient(loss, y_true, y_pred, "float64")
    expected, expected_grad = tape_value_and_gradient(reference, y_true, y_pred)
    np.testing.assert_allclose(value, expected, rtol=1e-10)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-9, atol=1e-12)


def test_weighted_ce_is_pytorch_class_weighted_cross_entropy() -> None:
    torch = pytest.importorskip("torch")
    logits = torch.tensor(LOGITS.astype("float64"), requires_grad=True)
    target = torch.tensor(LABELS.argmax(axis=1))
    expected = torch.nn.functional.cross_entropy(
        logits, target, weight=torch.tensor(CLASS_WEIGHTS, dtype=torch.float64))
    expected.backward()
    for gradient in ("autodiff", "symbolic"):
        loss = lossdsl.compile(WEIGHTED_CE, w=CLASS_WEIGHTS, gradient=gradient, dtype="float64")
        value, grad = value_and_gradient(loss, LABELS, LOGITS.astype("float64"), "float64")
        np.testing.assert_allclose(value, expected.item(), rtol=1e-10)
        np.testing.assert_allclose(grad, logits.grad.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
@pytest.mark.parametrize("weighted", [False, True], ids=["", "sample_weight"])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight"])
def test_batch_dice_is_keras_dice_over_the_whole_batch(gradient, weighted, reduction) -> None:
    """Keras's ``Dice(axis=None)`` is one number for the batch, which Keras then weights and
    reduces like a per-sample value: what each sample's copy of it gives, except that
    ``"sum"`` without weights adds Keras's one number once and the copies here each."""
    import tensorflow as tf
    weights = RNG.uniform(0.0, 2.0, 6).astype("float32") if weighted else None
    ours = lossdsl.compile(BATCH_DICE, gradient=gradient, reduction=reduction)
    theirs = keras.losses.Dice(axis=None, reduction=reduction)
    results = []
    for loss in (ours, theirs):
        y_pred = tf.constant(Y_PRED)
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = loss(Y_TRUE, y_pred, sample_weight=weights)
        results.append((value.numpy(), tape.gradient(value, y_pred).numpy()))
    # Keras's one number is summed once without weights; each of the 6 copies here.
    copies = 6 if reduction == "sum" and not weighted else 1
    np.testing.assert_allclose(results[0][0], copies * results[1][0], rtol=1e-6)
    np.testing.assert_allclose(results[0][1], copies * results[1][1], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_a_large_batch_in_a_graph_is_not_fused_per_sample(gradient) -> None:
    """Above the fused path's threshold, a batch statistic still sees the whole batch."""
    import tensorflow as tf
    y_true = (RNG.random((512, 256)) > 0.5).astype("float32")
    y_pred = RNG.uniform(0.05, 0.95, (512, 256)).astype("float32")
    weights = RNG.uniform(0.0, 2.0, 512).astype("float32")  # an upstream gradient that varies
    ours = lossdsl.compile(BATCH_DICE, gradient=gradient)
    theirs = keras.losses.Dice(axis=None)

    @tf.function
    def step(loss, y_pred):
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = loss(y_true, y_pred, sample_weight=weights)
        return value, tape.gradient(value, y_pred)

    (a, da), (b, db) = step(ours, tf.constant(y_pred)), step(theirs, tf.constant(y_pred))
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5)
    np.testing.assert_allclose(da.numpy(), db.numpy(), rtol=1e-4, atol=1e-9)


def test_check_gradients_and_the_exporter_agree_on_a_batch_loss(tmp_path) -> None:
    import importlib.util
    loss = lossdsl.compile(SPARSE_KL, rho=0.05, dtype="float64")
    report = lossdsl.check_gradients(loss, Y_TRUE.astype("float64"), Y_PRED.astype("float64"))
    assert not report.mismatched, report
    from lossdsl.tools.export import export_to_file
    path = export_to_file(SPARSE_KL, "SparseKL", tmp_path / "sparse_kl.py", rho=0.05)
    spec = importlib.util.spec_from_file_location("sparse_kl", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exported = module.SparseKL(reduction="none")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(exported(Y_TRUE, Y_PRED)),
                               keras.ops.convert_to_numpy(
                                   lossdsl.compile(SPARSE_KL, rho=0.05, reduction="none")(
                                       Y_TRUE, Y_PRED)), rtol=1e-6)


# ------------------------------------------------------------------ generated programs

@settings(max_examples=80)
@given(batch_programs(), st.integers(0, 2**16))
def test_generated_batch_programs_agree_with_numpy(tmp_path_factory, program, seed) -> None:
    if not _compiles(str(program)):
        return
    y_true, y_pred = _points(seed, False)
    report = assert_all_computations_agree(program, {}, y_true, y_pred,
                                           tmp_path_factory.mktemp("exported"))
    event("formula vs tape: no finite sample" if report is None else
          "formula vs tape: inconclusive" if report.inconclusive else "formula vs tape: agree")


# ------------------------------------------------------------------ every backend

@pytest.mark.backends
@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
@pytest.mark.parametrize("source, params, y_true, y_pred, reference", [
    (CENTERED, {}, Y_TRUE, Y_PRED, centered_reference),
    (SPARSE_KL, {"rho": 0.05}, Y_TRUE, Y_PRED, sparse_kl_reference(0.05)),
    (WEIGHTED_CE, {"w": CLASS_WEIGHTS}, LABELS, LOGITS, weighted_ce_reference),
    (BATCH_DICE, {}, Y_TRUE, Y_PRED,
     lambda t, p: keras_dice_on_tensorflow(t, p)),
], ids=["centered", "sparse KL", "weighted CE", "batch Dice"])
def test_every_backend_matches_the_reference(gradient, source, params, y_true, y_pred,
                                             reference) -> None:
    loss = lossdsl.compile(source, reduction="none", gradient=gradient, **params)
    value, grad = value_and_gradient(loss, y_true, y_pred)
    expected, expected_grad = tape_value_and_gradient(reference, y_true, y_pred, "float32")
    np.testing.assert_allclose(value, np.broadcast_to(expected, value.shape), rtol=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-6)


WEIGHTS = RNG.uniform(0.0, 2.0, 6).astype("float32")


@pytest.mark.backends
@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_sample_weight_weights_each_copy_on_every_backend(gradient) -> None:
    """With ``sample_weight`` the upstream gradient differs per sample: the derived backward
    pass must keep it inside the batch sums (JAX's custom_jvp, torch's autograd.Function)."""
    loss = lossdsl.compile(BATCH_DICE, gradient=gradient)
    weights = keras.ops.convert_to_tensor(WEIGHTS)
    value, grad = value_and_gradient(lambda t, p: loss(t, p, sample_weight=weights),
                                     Y_TRUE, Y_PRED)

    def reference(y_true, y_pred):
        import tensorflow as tf
        return tf.reduce_sum(WEIGHTS * keras_dice_on_tensorflow(y_true, y_pred)) / 6

    expected, expected_grad = tape_value_and_gradient(reference, Y_TRUE, Y_PRED, "float32")
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-6)


def keras_dice_on_tensorflow(y_true, y_pred):
    """Keras's batch Dice (``axis=None``), in TF ops, one copy per sample."""
    import tensorflow as tf
    inter = tf.reduce_sum(y_true * y_pred)
    dice = 1 - 2 * inter / (tf.reduce_sum(y_true) + tf.reduce_sum(y_pred))
    return dice * tf.ones_like(y_pred[:, 0])


@pytest.mark.backends
@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_fit_saves_and_reloads_a_batch_loss(tmp_path, gradient) -> None:
    """Trains like Keras's ``Dice(axis=None)`` under ``fit`` (jit on JAX), reloads in safe mode."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(26, 3)).astype("float32")  # an uneven last batch of 2
    y = (rng.random((26, 2)) > 0.5).astype("float32")
    kernel = rng.normal(size=(3, 2)).astype("float32")
    results = []
    for loss in (lossdsl.compile(BATCH_DICE, gradient=gradient), keras.losses.Dice(axis=None)):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="sigmoid")])
        model.layers[0].set_weights([kernel, np.zeros(2, "float32")])
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        results.append((history.history["loss"], model.get_weights(), model))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    for ours, theirs in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "batch_dice.keras")
    results[0][2].save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert loaded.loss.source == BATCH_DICE
    before = results[0][2].evaluate(x, y, batch_size=26, verbose=0)
    np.testing.assert_allclose(loaded.evaluate(x, y, batch_size=26, verbose=0), before, rtol=1e-6)


# ------------------------------------------------------------------ distribution

_MIRRORED = textwrap.dedent("""
    import json, os
    import tensorflow as tf
    tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    import keras, numpy as np, lossdsl
    from lossdsl.backends.tensorflow.replicas import check_batch_statistics
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = (x[:, :2] > 0).astype("float32")
    dice = ("1 - 2*sum(y_true*y_pred, axis=(0,1))/(sum(y_true, axis=(0,1)) "
            "+ sum(y_pred, axis=(0,1)))")
    results = {"lossdsl": lossdsl.__file__}
    # One strategy for every case: two MirroredStrategy objects over the same devices that both
    # run collectives in one process collide in their collective keys (TF's, not lossdsl's).
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for case, loss, metric in [("batch loss", dice, None),
                               ("pairs", "mean(pair_dist(y_pred), axis=-1)", None),
                               ("batch metric", "mean((y_true - y_pred)^2)", dice),
                               ("pair metric", "mean((y_true - y_pred)^2)",
                                "mean(pair_dist(y_pred), axis=-1)"),
                               # refusals last: one raised while a replica traces may leave
                               # the replicas' collective instance keys out of step
                               ("prod", "prod(y_pred, axis=0)", None),
                               ("batch penalty", "mean((y_true - y_pred)^2)", "penalty"),
                               ("shard matrix", "sum(pair_self()*y_pred, axis=-1)", None)]:
        penalty = lossdsl.activity_penalty("sum(a - mean(a, axis=0))^2") \
            if metric == "penalty" else None
        with strategy.scope():
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(
                2, "sigmoid", activity_regularizer=penalty)])
            model.compile(optimizer="sgd", loss=lossdsl.compile(loss),
                          metrics=[lossdsl.DSLMetric(metric)] if metric and not penalty else [])
        try:
            # shards of 2 for the matrix: (2, 2) predictions, the shard against itself
            model.fit(x, y, batch_size=4 if case == "shard matrix" else 8, epochs=1, verbose=0)
            results[case] = "trained"
        except lossdsl.DSLConfigError as error:
            results[case] = error.message
        except Exception as error:  # Keras re-raises what a layer's call raised as its own
            results[case] = f"{type(error).__name__}: {error}"
    from keras.src.backend import set_keras_mask  # a Keras mask: Keras divides by each
    # replica's unmasked count

    def masked_call(y_true, y_pred):
        y_pred = tf.identity(y_pred)
        set_keras_mask(y_pred, y_pred[:, 0] > 0.5)
        return lossdsl.compile(dice)(y_true, y_pred)

    try:
        strategy.run(tf.function(masked_call), args=(y, np.full_like(y, 0.7)))
        results["masked"] = "ran"
    except Exception as error:  # strategy.run re-raises it from the replica's thread
        results["masked"] = f"{type(error).__name__}: {error}"
    with tf.distribute.experimental.CentralStorageStrategy(["/cpu:0", "/cpu:1"]).scope():
        try:
            check_batch_statistics(("sum(y_pred, axis=0)",), "sum(y_pred, axis=0)",
                                   global_statistics=True)
            results["other strategy"] = "allowed"
        except lossdsl.DSLConfigError as error:
            results["other strategy"] = error.message
    results["outside"] = float(lossdsl.compile("mean(y_pred, axis=0)")(y, y))
    print(json.dumps(results))
""")


@pytest.mark.timeout(600)
def test_mirrored_strategy_batch_statistics_in_a_subprocess() -> None:
    """A batch loss, a pair loss and metrics with either train under MirroredStrategy; a batch
    statistic in an activity penalty, prod over the batch, a shard's matrix next to pairs, a
    Keras mask and another strategy are refused."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
           "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run([sys.executable, "-c", _MIRRORED], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    (result,) = lines
    assert Path(result["lossdsl"]).resolve().is_relative_to(ROOT)
    assert result["batch loss"] == "trained", result
    assert "prod(..., axis=0)" in result["prod"] and "global batch" in result["prod"], result
    # metrics compute batch statistics and pairs over the global batch too
    # (tests/batch_distribute_check.py compares them with one device)
    assert result["batch metric"] == "trained" and result["pair metric"] == "trained", result
    message = result["batch penalty"]
    assert "mean(a, axis=0)" in message and "2 replicas" in message, message
    assert "not supported for activity penalties" in message, message
    assert "DSLConfigError" in result["masked"] and "Keras mask" in result["masked"], result
    assert result["pairs"] == "trained", result  # the batch is gathered across replicas
    message = result["shard matrix"]  # (batch, 2) predictions next to pairs: the shard's own
    assert "computed by each replica from its own shard" in message, message
    message = result["other strategy"]
    assert "only under tf.distribute.MirroredStrategy" in message, message
    assert "CentralStorageStrategy" in message, message


@pytest.mark.timeout(900)
def test_mirrored_strategy_batch_statistics_are_global() -> None:
    """tests/batch_distribute_check.py: fit under MirroredStrategy (2 logical CPUs) equals one
    device for batch Dice, batch-centred MSE, the semi-hard triplet loss and NT-Xent (pair
    functions over the gathered batch) (and max/min/logsumexp/count, var/std/norm),
    both gradient modes, default reduction and mean_with_sample_weight, an uneven last batch;
    one step on uneven shards (9 and 7) equals one device in loss and gradient ("sum" too); with the
    all-reduce switched off the same fit differs (the control)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
           "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "batch_distribute_check.py")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines and Path(lines[0]["lossdsl"]).resolve().is_relative_to(ROOT), done.stderr[-3000:]
    cases = lines[1:]
    assert len(cases) == 56 and all(case["ok"] for case in cases), \
        [case for case in cases if not case["ok"]] or done.stderr[-3000:]
    assert done.returncode == 0, done.stderr[-3000:]


_DATA_PARALLEL = textwrap.dedent("""
    import json, sys
    import jax, keras, numpy as np, lossdsl
    SOURCE = sys.argv[1]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (rng.random((32, 3)) > 0.5).astype("float32")
    kernel = rng.normal(size=(4, 3)).astype("float32")

    def train(gradient):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, "sigmoid")])
        model.layers[0].set_weights([kernel, np.zeros(3, "float32")])
        model.compile(optimizer=keras.optimizers.SGD(0.5),
                      loss=lossdsl.compile(SOURCE, gradient=gradient))
        history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        return history.history["loss"], model.get_weights(), \\
            len(model.weights[0].value.sharding.device_set)

    one = {mode: train(mode) for mode in ("autodiff", "symbolic")}
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    for mode in ("autodiff", "symbolic"):
        losses, weights, devices = train(mode)
        difference = max(float(np.max(np.abs(a - b))) for a, b in
                         zip(weights + [np.array(losses)], one[mode][1] + [np.array(one[mode][0])]))
        print(json.dumps({"mode": mode, "devices": devices, "host_devices": len(jax.devices()),
                          "max_difference": difference}))
""")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("source", [
    "mean((y_true - y_pred)^2) + 1 - 2*sum(y_true*y_pred, axis=(0,1))/(sum(y_true, axis=(0,1)) "
    "+ sum(y_pred, axis=(0,1)))",
    lossdsl.losses.REGISTRY["triplet_hard"].source,  # pairs of samples: rows over the batch
], ids=["batch statistics", "pairs"])
def test_jax_data_parallel_batch_statistics_are_global(source) -> None:
    pytest.importorskip("jax")
    lines = run_on_backend(_DATA_PARALLEL, "jax", source,
                           XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert {line["mode"] for line in lines} == {"autodiff", "symbolic"}
    for line in lines:
        assert (line["host_devices"], line["devices"]) == (2, 2), line
        assert line["max_difference"] < 1e-5, line


@pytest.mark.backends
def test_the_sparse_autoencoder_penalty_as_an_activity_penalty() -> None:
    """Each sample carries the batch's KL penalty: the layer's batch mean is the penalty."""
    source = "r = mean(a, axis=0); beta*sum(rho*log(rho/r) + (1-rho)*log((1-rho)/(1-r)))"
    layer = lossdsl.ActivityPenalty(source, {"beta": 0.1, "rho": 0.05})
    layer(Y_PRED)
    r = Y_PRED.astype("float64").mean(axis=0)
    expected = 0.1 * np.sum(0.05*np.log(0.05/r) + 0.95*np.log(0.95/(1 - r)))
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(layer.losses[0])), expected,
                               rtol=1e-5)


@pytest.mark.parametrize("source, found", [
    ("mean((y_true - y_pred)^2)/sum(1, axis=0)", ("sum(1, axis=0)",)),  # the batch size
    ("sum(y_true*0 + 1, axis=(0, 1))*mean(y_pred)", ("sum(1, axis=(0, 1))",)),
    ("mean((y_true - y_pred)^2) + 0*mean(y_pred, axis=0)", ()),  # a dead term is none
    ("mean((y_pred - mean(y_pred, axis=0))^2)", ("mean(y_pred, axis=0)",)),
])
def test_the_batch_statistics_are_those_the_loss_reads(source, found) -> None:
    """They decide the refusal under tf.distribute: a batch count is one too."""
    assert lossdsl.analyze(source).batch_reductions == found


def test_a_curve_of_a_batch_loss_is_refused() -> None:
    from lossdsl.tools.plot import loss_curve

    with pytest.raises(lossdsl.DSLConfigError, match="no curve"):
        loss_curve("mean((y_pred - mean(y_pred, axis=0))^2)", 0.0, np.linspace(-1, 1, 5))


def test_an_axis_named_twice_once_resolved_is_a_shape_error() -> None:
    with pytest.raises(lossdsl.DSLShapeError, match="twice"):
        lossdsl.compile("sum(y_pred, axis=(0, 1, -1))")(np.ones((2, 3)), np.ones((2, 3)))


def test_the_exported_module_refuses_more_than_one_replica() -> None:
    from lossdsl.tools.export import export_source

    code = export_source("mean((y_pred - mean(y_pred, axis=0))^2)", "Centred")
    assert "num_replicas_in_sync > 1" in code and "global statistics" in code
    assert "num_replicas_in_sync" not in export_source("mean(y_pred^2)", "Plain")
