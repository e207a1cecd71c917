"""lossdsl on every Keras 3 backend: portable saved models, JAX data parallelism, the check.

* A model with a lossdsl loss, metric and regularizer saved on one backend reloads
  (``safe_mode=True``) on each other one and evaluates to the same loss and metric.
  Each backend runs in its own fresh process (``KERAS_BACKEND`` is read once, at import).
* On JAX, ``keras.distribution.DataParallel`` over two host devices trains like one
  device. ``XLA_FLAGS`` must be set before JAX initialises: a subprocess again.
* Marked ``backends`` (tests/run_all.sh runs them once per backend): the loss
  returns this backend's tensors, trains like its Keras twin under ``fit`` (compiled:
  jit on JAX), and ``lossdsl.check_gradients`` passes against this backend's autodiff.
"""

from __future__ import annotations

import itertools
import textwrap

import keras
import numpy as np
import pytest

import lossdsl
from backend_support import BACKEND, BACKENDS, run_on_backend
from lossdsl import losses

# Shared by the subprocess scripts: the data, the initial weights and the model.
_COMMON = textwrap.dedent("""
    import json, os, sys
    import keras
    import numpy as np
    import lossdsl

    assert keras.backend.backend() == os.environ["KERAS_BACKEND"], keras.backend.backend()
    RNG = np.random.default_rng(0)
    X = RNG.normal(size=(32, 4)).astype("float32")
    Y = RNG.normal(size=(32, 3)).astype("float32")
    W = RNG.uniform(0.0, 2.0, size=32).astype("float32")
    KERNEL = RNG.normal(size=(4, 3)).astype("float32")

    def report(**fields):
        print(json.dumps(fields), flush=True)
""")

_SAVE = _COMMON + textwrap.dedent("""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        3, kernel_regularizer=lossdsl.regularizer("0.5*alpha*sum(w^2)", alpha=0.05))])
    model.layers[0].set_weights([KERNEL, np.zeros(3, "float32")])
    loss = lossdsl.compile("mean(abs(y_true - y_pred)^gamma)", gamma=1.5, name="robust")
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=loss,
                  metrics=[lossdsl.metric("mean(abs(y_true - y_pred))", name="mae")])
    model.fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # trains on this backend
    result = model.evaluate(X, Y, batch_size=32, return_dict=True, verbose=0)
    model.save(sys.argv[1])
    report(saved_on=keras.backend.backend(), loss=result["loss"], mae=result["mae"])
""")

_LOAD = _COMMON + textwrap.dedent("""
    for path in sys.argv[1:]:
        model = keras.models.load_model(path, safe_mode=True)
        result = model.evaluate(X, Y, batch_size=32, return_dict=True, verbose=0)
        kinds = [type(model.loss).__name__, type(model.layers[0].kernel_regularizer).__name__,
                 *[type(m).__name__ for m in model.metrics[-1].metrics]]  # compiled metrics
        penalty = float(keras.ops.convert_to_numpy(
            model.layers[0].kernel_regularizer(model.layers[0].kernel)))
        report(path=path, loaded_on=keras.backend.backend(), kinds=kinds, loss=result["loss"],
               mae=result["mae"], penalty=penalty)
""")

_DATA_PARALLEL = _COMMON + textwrap.dedent("""
    import jax

    SOURCE = "mean((y_true - y_pred)^2) + 0.1*mean(abs(y_pred - mean(y_pred)))"
    CASES = {"fit": ("sum_over_batch_size", False), "fit sum": ("sum", False),
             "fit weighted": ("sum_over_batch_size", True)}

    def train(reduction, weighted):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.layers[0].set_weights([KERNEL, np.zeros(3, "float32")])
        model.compile(optimizer=keras.optimizers.SGD(0.05),
                      loss=lossdsl.compile(SOURCE, reduction=reduction))
        history = model.fit(X, Y, sample_weight=W if weighted else None, batch_size=8, epochs=2,
                            shuffle=False, verbose=0)
        devices = len(model.weights[0].value.sharding.device_set)
        return history.history["loss"], model.get_weights(), devices

    one_device = {case: train(*options) for case, options in CASES.items()}
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    for case, options in CASES.items():
        losses, weights, devices = train(*options)
        differences = [float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-12))
                       for a, b in zip(weights + [np.array(losses)],
                                       one_device[case][1] + [np.array(one_device[case][0])])]
        report(case=case, host_devices=len(jax.devices()), devices_one=one_device[case][2],
               devices_parallel=devices, max_rel_difference=max(differences))
""")


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, dict]]:
    """Per backend: a saved ``.keras`` file and what the model evaluated to before saving."""
    folder = tmp_path_factory.mktemp("saved_on")
    saved = {}
    for backend in BACKENDS:
        path = str(folder / f"{backend}.keras")
        (result,) = run_on_backend(_SAVE, backend, path)
        assert result["saved_on"] == backend
        saved[backend] = (path, result)
    return saved


@pytest.fixture(scope="module")
def reloaded(saved_models: dict[str, tuple[str, dict]]) -> dict[tuple[str, str], dict]:
    """Per ``(saved_on, loaded_on)``: what the reloaded model evaluates to; a process a target."""
    results = {}
    for target in BACKENDS:
        sources = [backend for backend in BACKENDS if backend != target]
        lines = run_on_backend(_LOAD, target, *[saved_models[source][0] for source in sources])
        assert len(lines) == len(sources)
        for source, line in zip(sources, lines):
            assert line["loaded_on"] == target and line["path"] == saved_models[source][0]
            results[source, target] = line
    return results


@pytest.mark.timeout(900)
@pytest.mark.parametrize("saved_on, loaded_on",
                         [pair for pair in itertools.permutations(BACKENDS, 2)],
                         ids=[f"{a}->{b}" for a, b in itertools.permutations(BACKENDS, 2)])
def test_saved_model_reloads_on_another_backend_with_the_same_loss(
        saved_models: dict, reloaded: dict, saved_on: str, loaded_on: str) -> None:
    before, after = saved_models[saved_on][1], reloaded[saved_on, loaded_on]
    assert after["kinds"] == ["DSLLoss", "DSLRegularizer", "DSLMetric"], after["kinds"]
    # The regularizer is part of the loss Keras reports; it must be there to be kept.
    assert after["penalty"] > 1e-2, after
    np.testing.assert_allclose(after["loss"], before["loss"], rtol=1e-5)
    np.testing.assert_allclose(after["mae"], before["mae"], rtol=1e-5)


@pytest.mark.timeout(600)
def test_jax_data_parallel_over_two_host_devices_trains_like_one_device() -> None:
    lines = run_on_backend(_DATA_PARALLEL, "jax",
                 XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert {line["case"] for line in lines} == {"fit", "fit sum", "fit weighted"}
    for line in lines:
        # The variables really live on both devices under DataParallel, on one without it.
        devices = (line["host_devices"], line["devices_one"], line["devices_parallel"])
        assert devices == (2, 1, 2), line
        assert line["max_rel_difference"] < 1e-5, line


# ------------------------------------------------------- once per backend (marker `backends`)

@pytest.mark.backends
def test_the_loss_returns_tensors_of_this_backend() -> None:
    y_true, y_pred = np.array([[0.0, 1.0]], "float32"), np.array([[0.5, 3.0]], "float32")
    value = lossdsl.compile("mean(abs(y_true - y_pred)^gamma)", gamma=1.5)(y_true, y_pred)
    assert keras.ops.is_tensor(value), (BACKEND, type(value))
    assert type(value).__module__.split(".")[0] == {
        "tensorflow": "tensorflow", "jax": "jaxlib", "torch": "torch"}[BACKEND], type(value)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(value), (0.5**1.5 + 2**1.5) / 2,
                               rtol=1e-6)


@pytest.mark.backends
@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_fit_trains_like_the_keras_builtin(gradient: str) -> None:
    """Under ``fit`` (compiled: a tf.function, jax.jit, torch's train step), same weights."""
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(24, 3)).astype("float32"), rng.normal(size=(24, 2)).astype("float32")
    kernel = rng.normal(size=(3, 2)).astype("float32")
    weights = []
    for loss in (losses.huber(delta=0.7, gradient=gradient), keras.losses.Huber(delta=0.7)):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.layers[0].set_weights([kernel, np.zeros(2, "float32")])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    assert not np.allclose(weights[1][0], kernel, atol=1e-3)  # it trained
    for ours, theirs in zip(*weights):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


_RNG = np.random.default_rng(9)
_POINTS = {  # (y_true, y_pred) inside each loss's domain, away from kinks
    "regression": (_RNG.normal(size=(6, 4)), _RNG.normal(size=(6, 4))),
    "multilabel_logits": (_RNG.integers(0, 2, (6, 4)).astype(float), _RNG.normal(0, 2, (6, 4))),
    "one_hot_logits": (np.eye(4)[_RNG.integers(0, 4, 6)], _RNG.normal(0, 2, (6, 4))),
}
AUTODIFF = {"tensorflow": "tf.GradientTape", "jax": "jax.grad", "torch": "torch.autograd"}
CHECKED = [("mean_squared_error", {}, "regression"), ("huber", {"delta": 0.8}, "regression"),
           ("focal", {}, "multilabel_logits"), ("pearson", {}, "regression"),
           ("categorical_crossentropy", {"from_logits": True}, "one_hot_logits")]


@pytest.mark.backends
@pytest.mark.parametrize("name, keywords, points", CHECKED, ids=[case[0] for case in CHECKED])
def test_check_gradients_passes_against_this_backends_autodiff(name: str, keywords: dict,
                                                               points: str) -> None:
    y_true, y_pred = _POINTS[points]
    report = lossdsl.check_gradients(losses.make(name, **keywords), y_true, y_pred)
    assert report.passed, f"{BACKEND}: {report}"
    assert report.points == y_pred.size and np.any(report.tape != 0), str(report)
    # The report names whose autodiff it compared with: this backend's own.
    assert report.autodiff == AUTODIFF[BACKEND], (report.autodiff, BACKEND)
