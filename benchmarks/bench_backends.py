"""Benchmark: lossdsl vs each Keras backend's own built-in loss, on TensorFlow, JAX and PyTorch.

Run from the repository root (so that this tree's ``lossdsl`` is imported):

    python benchmarks/bench_backends.py              # all three backends, several minutes
    python benchmarks/bench_backends.py --quick      # fewer rounds, (256, 10) only
    python benchmarks/bench_backends.py --check      # exit status 1 if a ratio exceeds GOAL
    python benchmarks/bench_backends.py --backends jax,torch   # some backends only

Keras picks its backend when first imported, so the parent imports neither Keras nor lossdsl:
it runs this file once per backend (``--backend jax``, ``KERAS_BACKEND`` set) and prints one
table. For MSE, CCE and BCE on logits, Huber and Dice, the child times
``lossdsl.losses.<name>(gradient="autodiff" | "symbolic")`` against the same backend's
``keras.losses`` built-in, all variants in the same rounds (order rotated each round); the
ratio is the median of the per-round ratios, steady on a noisy shared machine. Two measurements:

1. ``fwd+bwd``: loss and gradient w.r.t. ``y_pred`` (first checked against the built-in's) by
   the backend's autodiff: ``tf.GradientTape`` in ``tf.function``; ``jax.jit(jax.value_and_grad)``;
   eager ``loss.backward()`` on torch (``OMP_NUM_THREADS=1`` unless set: its spinning threads
   stall on a loaded machine). Shapes (256, 10) and (4096, 1000), float32.
2. ``fit``: ms per train step of ``model.fit`` (Dense 32 -> 64 -> 10, Adam, batch 256, generated
   data), one epoch per variant per round, after a warm-up epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from bench_data import make_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = os.path.join(ROOT, "lossdsl")
BACKENDS = ("tensorflow", "jax", "torch")
SHAPES = ((256, 10), (4096, 1000))
GRADIENT_MODES = ("autodiff", "symbolic")
GOAL = 1.05  # lossdsl / built-in, paired: at most this; --check exits with status 1 above it
ROWS_MARKER = "BENCH_ROWS "
CHILD_TIMEOUT_S = 1500
FIT_BATCH, FIT_FEATURES, FIT_CLASSES = 256, 32, 10


@dataclass(frozen=True)
class Case:
    name: str
    library_name: str  # the callable in lossdsl.losses
    builtin_class: str  # the class in keras.losses
    options: tuple[tuple[str, Any], ...]  # keywords given to both
    labels: str  # "real", "binary", "onehot", "prob"


LOGITS = (("from_logits", True),)
CASES = (
    Case("MSE", "mean_squared_error", "MeanSquaredError", (), "real"),
    Case("CCE logits", "categorical_crossentropy", "CategoricalCrossentropy", LOGITS, "onehot"),
    Case("BCE logits", "binary_crossentropy", "BinaryCrossentropy", LOGITS, "binary"),
    Case("Huber", "huber", "Huber", (), "real"),
    # axis=-1 for both: Keras's Dice() (axis=None) reduces the whole batch to one number.
    Case("Dice", "dice", "Dice", (("axis", -1),), "prob"),
)


def paired_rounds(measures: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run every measure once per round, the order rotated each round: {name: [ms per round]}."""
    names, times = list(measures), {name: [] for name in measures}
    for round_index in range(rounds):
        for name in names[round_index % len(names):] + names[:round_index % len(names)]:
            times[name].append(measures[name]())
    return times


# ---------------------------------------------------------------- child: one backend


class BackendAutodiff:
    """value_and_grad of a loss w.r.t. y_pred with the backend's own autodiff; tensors; sync."""

    def __init__(self, backend: str) -> None:
        import importlib
        self.backend, self.module = backend, importlib.import_module(backend)

    def value_and_grad(self, loss: Callable) -> Callable[[Any, Any], tuple[Any, Any]]:
        if self.backend == "tensorflow":
            @self.module.function
            def tf_step(y_true, y_pred):
                with self.module.GradientTape() as tape:
                    tape.watch(y_pred)
                    value = loss(y_true, y_pred)
                return value, tape.gradient(value, y_pred)
            return tf_step
        if self.backend == "jax":
            jax = self.module
            jitted = jax.jit(jax.value_and_grad(lambda y_pred, y_true: loss(y_true, y_pred)))
            return lambda y_true, y_pred: jitted(y_pred, y_true)

        def torch_step(y_true, y_pred):
            y_pred.grad = None
            value = loss(y_true, y_pred)
            value.backward()
            return value.detach(), y_pred.grad
        return torch_step


def time_calls(step: Callable, args: tuple, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        output = step(*args)
    np.asarray(output[1])  # waits for JAX's and TF's asynchronous calls
    return (time.perf_counter() - start) / calls * 1e3


def build_variants(case: Case) -> dict[str, Any]:
    """{"built-in" | "autodiff" | "symbolic": a Keras loss object}."""
    import keras
    import lossdsl
    options = dict(case.options)
    variants = {"built-in": getattr(keras.losses, case.builtin_class)(**options)}
    for mode in GRADIENT_MODES:
        variants[mode] = getattr(lossdsl.losses, case.library_name)(gradient=mode, **options)
    return variants


def bench_forward_backward(autodiff: BackendAutodiff, case: Case, shape: tuple[int, int],
                           rounds: int, budget_ms: float) -> dict[str, list[float]]:
    import keras
    args = tuple(keras.ops.convert_to_tensor(array) for array in make_data(shape, case.labels))
    if autodiff.backend == "torch":
        args[1].requires_grad_(True)
    steps = {name: autodiff.value_and_grad(loss) for name, loss in build_variants(case).items()}
    reference = [np.asarray(tensor) for tensor in steps["built-in"](*args)]
    for mode in GRADIENT_MODES:  # the same value and gradient, else the timing means nothing
        value, gradient = (np.asarray(tensor) for tensor in steps[mode](*args))
        np.testing.assert_allclose(value, reference[0], rtol=2e-4, atol=1e-6,
                                   err_msg=f"{case.name} {mode}: value")
        np.testing.assert_allclose(gradient, reference[1], rtol=2e-3, atol=1e-8,
                                   err_msg=f"{case.name} {mode}: gradient")
    measures = {}
    for name, step in steps.items():
        time_calls(step, args, 2)  # warm up
        calls = max(2, min(200, int(budget_ms / max(time_calls(step, args, 3), 1e-3))))
        measures[name] = lambda step=step, calls=calls: time_calls(step, args, calls)
    return paired_rounds(measures, rounds)


def bench_fit(case: Case, steps: int, rounds: int) -> dict[str, list[float]]:
    import keras
    x = np.random.default_rng(1).normal(size=(FIT_BATCH * steps, FIT_FEATURES)).astype("float32")
    y, _ = make_data((FIT_BATCH * steps, FIT_CLASSES), case.labels)
    output_activation = "sigmoid" if case.labels == "prob" else None
    models = {}
    for name, loss in build_variants(case).items():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((FIT_FEATURES,)),
                                  keras.layers.Dense(64, activation="relu"),
                                  keras.layers.Dense(FIT_CLASSES, activation=output_activation)])
        model.compile(optimizer="adam", loss=loss)
        model.fit(x, y, batch_size=FIT_BATCH, epochs=1, shuffle=False, verbose=0)  # warm up
        models[name] = model

    def one_epoch(model: Any) -> float:
        """ms per step of one epoch, from its start to its end (not fit's set-up)."""
        marks: list[float] = []
        mark = lambda *_: marks.append(time.perf_counter())  # noqa: E731
        timer = keras.callbacks.LambdaCallback(on_epoch_begin=mark, on_epoch_end=mark)
        model.fit(x, y, batch_size=FIT_BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
        return (marks[1] - marks[0]) / steps * 1e3
    return paired_rounds({name: (lambda m=m: one_epoch(m)) for name, m in models.items()}, rounds)


def result_rows(backend: str, case: Case, measure: str, shape: tuple[int, int],
                job: Callable[[], dict[str, list[float]]]) -> list[dict[str, Any]]:
    """The table rows of one measurement, one per gradient mode; one error row if it failed."""
    key = dict(backend=backend, loss=case.name, measure=measure, shape=f"{shape[0]}x{shape[1]}")
    try:
        times = job()
    except Exception as error:  # noqa: BLE001 - report it in the table, go on
        frames = traceback.extract_tb(error.__traceback__)  # where: the innermost in lossdsl/
        where = next((f for f in reversed(frames) if f.filename.startswith(LIBRARY)), frames[-1])
        return [{**key, "gradient": "", "error": f"{type(error).__name__} at "
                 f"{os.path.relpath(where.filename, ROOT)}:{where.lineno}: "
                 + " ".join(str(error).split())[:300]}]
    return [{**key, "gradient": mode, "lossdsl_ms": statistics.median(times[mode]),
             "builtin_ms": statistics.median(times["built-in"]),
             "ratio": statistics.median(dsl / builtin for dsl, builtin in
                                        zip(times[mode], times["built-in"]))}
            for mode in GRADIENT_MODES]


def run_child(backend: str, quick: bool) -> None:
    """Measure every case on one backend; print the rows as one JSON line after ROWS_MARKER."""
    os.environ["KERAS_BACKEND"] = backend  # before Keras is imported
    sys.path.insert(0, ROOT)
    import keras
    assert keras.backend.backend() == backend, keras.backend.backend()
    autodiff = BackendAutodiff(backend)
    # Many short rounds: each pair of timings is close in time, so the shared machine's load
    # changes between rounds cancel. (rounds, ms per variant per round) by shape; fit rounds, steps.
    fwd_bwd = {SHAPES[0]: (15, 20.0)} if quick else {SHAPES[0]: (31, 20.0), SHAPES[1]: (11, 100.0)}
    fit_rounds, fit_steps = (5, 30) if quick else (15, 50)
    fit_steps *= 4 if backend == "jax" else 1  # its steps take ~0.3 ms: longer epochs, less noise
    rows: list[dict[str, Any]] = []
    for case in CASES:
        for shape, (rounds, budget_ms) in fwd_bwd.items():
            rows += result_rows(backend, case, "fwd+bwd", shape, lambda: bench_forward_backward(
                autodiff, case, shape, rounds, budget_ms))
        rows += result_rows(backend, case, "fit", (FIT_BATCH, FIT_CLASSES),
                            lambda: bench_fit(case, fit_steps, fit_rounds))
    versions = (f"{backend} {autodiff.module.__version__}, Keras {keras.__version__}, "
                f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(ROWS_MARKER + json.dumps({"versions": versions, "rows": rows}), flush=True)


def run_backend(backend: str, quick: bool) -> tuple[str, list[dict[str, Any]]]:
    """(Parent) Run the child for one backend: its versions and rows, or an error row."""
    command = [sys.executable, os.path.abspath(__file__), "--backend", backend]
    command += ["--quick"] * quick
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    if backend == "torch":
        env.setdefault("OMP_NUM_THREADS", "1")  # see the module docstring
    print(f"running {backend} ...", file=sys.stderr, flush=True)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT_S)
    for line in done.stdout.splitlines():
        if line.startswith(ROWS_MARKER):
            result = json.loads(line[len(ROWS_MARKER):])
            return result["versions"], result["rows"]
    last_lines = [line for line in done.stderr.splitlines() if line.strip()][-3:]
    error = f"exit {done.returncode}: " + " | ".join(last_lines)
    return f"{backend}: failed", [{"backend": backend, "loss": "all", "error": error}]


def print_table(rows: list[dict[str, Any]]) -> list[str]:
    """Print the rows as a Markdown table; return the misses (a ratio over GOAL, or an error)."""
    print("| backend | loss | measure | gradient | shape | lossdsl ms | built-in ms "
          "| lossdsl / built-in |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    missed = []
    for row in rows:
        cells = [row.get(key, "") for key in ("backend", "loss", "measure", "gradient", "shape")]
        if "error" in row:
            cells += ["", "", f"ERROR: {row['error']}"]
        else:
            cells += [f"{row['lossdsl_ms']:.3f}", f"{row['builtin_ms']:.3f}",
                      f"**{row['ratio']:.2f}**" + (" (over goal)" if row["ratio"] > GOAL else "")]
        print("| " + " | ".join(cells) + " |")
        if "error" in row or row["ratio"] > GOAL:
            missed.append(" ".join(cells[:5]) + ": " + cells[-1])
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, help="run as the child for this backend")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated backends for the parent (default: all three)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, (256, 10) only")
    parser.add_argument("--check", action="store_true",
                        help=f"exit status 1 if a ratio exceeds {GOAL} or a backend fails")
    args = parser.parse_args(argv)
    if args.backend:
        run_child(args.backend, args.quick)
        return 0
    all_versions, rows = [], []
    for backend in args.backends.split(","):
        versions, backend_rows = run_backend(backend.strip(), args.quick)
        all_versions.append(versions)
        rows += backend_rows
    print(f"# lossdsl vs each backend's Keras built-in ({'quick' if args.quick else 'full'}), "
          f"{os.cpu_count()} CPUs; ratio: median of per-round ratios; goal <= {GOAL}\n")
    print("".join(f"- {versions}\n" for versions in all_versions))
    missed = print_table(rows)
    for line in missed:
        print(f"MISSED (> {GOAL} or error): {line}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
