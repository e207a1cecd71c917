"""Benchmark: lossdsl losses vs Keras built-ins vs hand-written TF, in one interleaved run.

Run from the repository root (so that this tree's ``lossdsl`` is imported):

    python benchmarks/bench_losses.py            # full run, a few minutes
    python benchmarks/bench_losses.py --quick    # a short run
    python benchmarks/bench_losses.py --check    # eager rows only; exit status 1 if one misses GOAL

What it measures, all in one process, variants interleaved round-robin, medians
over rounds (the machine is shared and noisy: compare the ratios, which are
paired per round, not the absolute milliseconds):

1. forward+backward (``tf.GradientTape``: the loss and d loss / d y_pred) of MSE,
   BCE on logits, CCE on logits, binary focal (gamma=2, logits) and Dice, each as
   the Keras built-in, a hand-written TF function, and lossdsl with
   ``gradient="autodiff"`` and ``gradient="symbolic"``; eager, ``tf.function`` and
   ``tf.function(jit_compile=True)``; at (256, 10) and (4096, 1000) float32. A floor
   kernel (``g = y_pred - y_true`` and its mean, under XLA) runs in the same rounds;
   every time is also printed as a multiple of it. The eager rows are then printed against
   :data:`GOAL` (lossdsl / built-in <= 1.05, issue 17); ``--check`` runs only them.
2. the ``model.fit`` step time of a small MLP (784 -> 256 -> C) per loss, as a
   ratio to the built-in.
3. compile latency (source -> Keras object), cold (caches cleared) and cached, for
   every benchmarked loss and every loss in ``lossdsl.losses``.
4. the first call of a ``tf.function`` step (trace, and XLA compile on the fused path of
   ``lossdsl.backends.tensorflow.fused``), with and without that path, and the steps after which
   the fused path's compile has paid for itself (``--first-call`` runs this section alone).
5. the cold start of ``python -m lossdsl`` (``--help``, ``ops``, ``show``, ``export``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_data import make_data  # noqa: E402
import keras  # noqa: E402

import lossdsl  # noqa: E402

MODES = ("eager", "graph", "xla")
SHAPES = ((256, 10), (4096, 1000))
GOAL = 1.05
"""Eager forward+backward, lossdsl / built-in, paired: at most this (issue 17).

``--check`` exits with status 1 when a ratio exceeds it."""


# ---------------------------------------------------------------- the losses

def _hand_mse(y_true, y_pred):
    return tf.reduce_mean(tf.reduce_mean(tf.square(y_pred - y_true), axis=-1))


def _hand_bce_logits(y_true, y_pred):
    per_element = tf.nn.relu(y_pred) - y_pred * y_true + tf.math.log1p(tf.exp(-tf.abs(y_pred)))
    return tf.reduce_mean(tf.reduce_mean(per_element, axis=-1))


def _hand_cce_logits(y_true, y_pred):
    log_softmax = y_pred - tf.reduce_logsumexp(y_pred, axis=-1, keepdims=True)
    return tf.reduce_mean(-tf.reduce_sum(y_true * log_softmax, axis=-1))


def _hand_focal_logits(y_true, y_pred):
    p = tf.sigmoid(y_pred)
    bce = tf.nn.relu(y_pred) - y_pred * y_true + tf.math.log1p(tf.exp(-tf.abs(y_pred)))
    p_t = y_true * p + (1 - y_true) * (1 - p)
    return tf.reduce_mean(tf.reduce_mean(tf.square(1 - p_t) * bce, axis=-1))


def _hand_dice(y_true, y_pred):
    intersection = tf.reduce_sum(y_true * y_pred, axis=-1)
    denominator = tf.reduce_sum(y_true, axis=-1) + tf.reduce_sum(y_pred, axis=-1) + 1e-7
    return tf.reduce_mean(1 - 2 * intersection / denominator)


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    builtin: Callable[[], keras.losses.Loss]
    hand: Callable
    labels: str  # "real", "binary", "onehot", "prob"
    params: tuple = ()


CASES = (
    Case("MSE", "mean((y_true - y_pred)^2)", keras.losses.MeanSquaredError, _hand_mse, "real"),
    Case("BCE logits", "mean(-(y_true*log(sigmoid(y_pred)) + (1 - y_true)*log(1 - sigmoid(y_pred))))",
         lambda: keras.losses.BinaryCrossentropy(from_logits=True), _hand_bce_logits, "binary"),
    Case("CCE logits", "-sum(y_true*log(softmax(y_pred)))",
         lambda: keras.losses.CategoricalCrossentropy(from_logits=True), _hand_cce_logits,
         "onehot"),
    Case("focal logits",
         "p = sigmoid(y_pred); p_t = y_true*p + (1 - y_true)*(1 - p); "
         "mean((1 - p_t)^gamma*-(y_true*log(p) + (1 - y_true)*log(1 - p)))",
         lambda: keras.losses.BinaryFocalCrossentropy(gamma=2.0, from_logits=True),
         _hand_focal_logits, "binary", (("gamma", 2.0),)),
    Case("Dice", "1 - 2*sum(y_true*y_pred)/(sum(y_true) + sum(y_pred) + 1e-7)",
         lambda: keras.losses.Dice(axis=-1), _hand_dice, "prob"),
)


def _tensors(shape, labels):
    return tuple(map(tf.constant, make_data(shape, labels)))


def _value_and_grad(loss_fn):
    def step(y_true, y_pred):
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = loss_fn(y_true, y_pred)
        return value, tape.gradient(value, y_pred)
    return step


def _floor(y_true, y_pred):
    g = y_pred - y_true
    return tf.reduce_mean(g), g


def _wrap(step, mode):
    if mode == "eager":
        return step
    return tf.function(step, jit_compile=(mode == "xla"))


def _variants(case: Case):
    params = dict(case.params)
    return {
        "built-in": case.builtin(),
        "hand": case.hand,
        "dsl autodiff": lossdsl.compile(case.source, gradient="autodiff", **params),
        "dsl symbolic": lossdsl.compile(case.source, gradient="symbolic", **params),
    }


def _check_agreement(case: Case, variants, y_true, y_pred):
    """Every variant computes the same value and gradient (else the timing means nothing)."""
    reference = None
    for name, loss in variants.items():
        value, gradient = _value_and_grad(loss)(y_true, y_pred)
        if reference is None:
            reference = (value.numpy(), gradient.numpy())
            continue
        np.testing.assert_allclose(value.numpy(), reference[0], rtol=2e-4, atol=1e-6,
                                   err_msg=f"{case.name}: {name} value")
        np.testing.assert_allclose(gradient.numpy(), reference[1], rtol=2e-3, atol=1e-8,
                                   err_msg=f"{case.name}: {name} gradient")


def _time_calls(function, args, calls):
    start = time.perf_counter()
    for _ in range(calls):
        value, gradient = function(*args)
    value.numpy(), gradient.numpy()
    return (time.perf_counter() - start) / calls * 1e3


def bench_forward_backward(shape, modes, rounds, budget_ms):
    """{(case, mode, variant): [ms per call per round]} plus the floor."""
    functions, data = {}, {}
    for case in CASES:
        y_true, y_pred = _tensors(shape, case.labels)
        data[case.name] = (y_true, y_pred)
        variants = _variants(case)
        _check_agreement(case, variants, y_true, y_pred)
        for mode in modes:
            for name, loss in variants.items():
                functions[(case.name, mode, name)] = _wrap(_value_and_grad(loss), mode)
    floor_data = _tensors(shape, "real")
    functions[("floor", "xla", "floor")] = tf.function(_floor, jit_compile=True)
    data["floor"] = floor_data
    calls = {}
    for key, function in functions.items():  # warm up (trace, compile) and size the batches
        args = data[key[0]]
        _time_calls(function, args, 2)
        once = _time_calls(function, args, 3)
        calls[key] = max(2, min(200, int(budget_ms / max(once, 1e-3))))
    times = {key: [] for key in functions}
    for _ in range(rounds):
        for key, function in functions.items():
            times[key].append(_time_calls(function, data[key[0]], calls[key]))
    return times


def _paired_ratio(numerator, denominator):
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def report_forward_backward(shape, times, modes):
    floor = statistics.median(times[("floor", "xla", "floor")])
    print(f"\n### forward+backward, y shape {shape}, float32, {len(times[('floor', 'xla', 'floor')])} "
          f"rounds (median ms per call; floor g = y_pred - y_true + mean under XLA: {floor:.3f} ms)\n")
    print("| loss | mode | built-in ms | hand ms | dsl autodiff ms | dsl symbolic ms "
          "| autodiff / built-in | symbolic / built-in | built-in ÷ floor | autodiff ÷ floor "
          "| symbolic ÷ floor |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for case in CASES:
        for mode in modes:
            row = {v: times[(case.name, mode, v)] for v in
                   ("built-in", "hand", "dsl autodiff", "dsl symbolic")}
            med = {v: statistics.median(t) for v, t in row.items()}
            print(f"| {case.name} | {mode} | {med['built-in']:.3f} | {med['hand']:.3f} | "
                  f"{med['dsl autodiff']:.3f} | {med['dsl symbolic']:.3f} | "
                  f"**{_paired_ratio(row['dsl autodiff'], row['built-in']):.2f}** | "
                  f"**{_paired_ratio(row['dsl symbolic'], row['built-in']):.2f}** | "
                  f"{med['built-in'] / floor:.1f} | {med['dsl autodiff'] / floor:.1f} | "
                  f"{med['dsl symbolic'] / floor:.1f} |")


def eager_misses(shape, times):
    """Print the eager rows against :data:`GOAL`; return the (loss, mode, ratio) that miss it."""
    print(f"\n#### eager forward+backward at {shape} against the goal (lossdsl / built-in <= {GOAL})\n")
    print("| loss | autodiff / built-in | symbolic / built-in | goal |\n| --- | --- | --- | --- |")
    misses = []
    for case in CASES:
        ratios = {m: _paired_ratio(times[(case.name, "eager", f"dsl {m}")],
                                   times[(case.name, "eager", "built-in")])
                  for m in ("autodiff", "symbolic")}
        missed = [(case.name, m, r) for m, r in ratios.items() if r > GOAL]
        misses += missed
        print(f"| {case.name} | {ratios['autodiff']:.2f} | {ratios['symbolic']:.2f} | "
              f"{'met' if not missed else 'MISSED'} |")
    return misses


def check(rounds, budget):
    """``--check``: the eager rows alone; exit status 1 when a ratio misses :data:`GOAL`."""
    misses = []
    for shape in SHAPES:
        small = shape[0] * shape[1] < 100_000
        times = bench_forward_backward(shape, ("eager",), 3 * rounds if small else rounds, budget)
        misses += [(shape, *miss) for miss in eager_misses(shape, times)]
    for shape, name, mode, ratio in misses:
        print(f"MISSED: {name} {mode} at {shape}: {ratio:.2f} > {GOAL}")
    return 1 if misses else 0


# ---------------------------------------------------------------- fit step

def _mlp(classes):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"),
                             keras.layers.Dense(classes)])


class _EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.last = time.perf_counter() - self.start


def bench_fit(classes, steps, rounds):
    batch = 256
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * steps, 784)).astype("float32")
    results = {}
    for case in CASES:
        _, y = _tensors((batch * steps, classes), case.labels)
        dataset = tf.data.Dataset.from_tensor_slices((x, y.numpy())).batch(batch).cache()
        variants = {"built-in": case.builtin(),
                    "dsl autodiff": lossdsl.compile(case.source, gradient="autodiff",
                                                    **dict(case.params)),
                    "dsl symbolic": lossdsl.compile(case.source, gradient="symbolic",
                                                    **dict(case.params))}
        models = {}
        for name, loss in variants.items():
            model = _mlp(classes)
            model.compile(optimizer="adam", loss=loss)
            model.fit(dataset, epochs=1, verbose=0)  # trace and warm up
            models[name] = model
        times = {name: [] for name in variants}
        for _ in range(rounds):
            for name, model in models.items():
                timer = _EpochTimer()
                model.fit(dataset, epochs=1, verbose=0, callbacks=[timer])
                times[name].append(timer.last / steps * 1e3)
        results[case.name] = times
    return results


def report_fit(classes, results):
    print(f"\n### model.fit step, MLP 784 -> 256 -> {classes}, batch 256, Adam "
          "(jit_compile='auto', i.e. off on CPU)\n")
    print("| loss | built-in ms/step | dsl autodiff ms/step | dsl symbolic ms/step "
          "| autodiff / built-in | symbolic / built-in |")
    print("| --- | --- | --- | --- | --- | --- |")
    for case_name, times in results.items():
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"| {case_name} | {med['built-in']:.2f} | {med['dsl autodiff']:.2f} | "
              f"{med['dsl symbolic']:.2f} | "
              f"**{_paired_ratio(times['dsl autodiff'], times['built-in']):.2f}** | "
              f"**{_paired_ratio(times['dsl symbolic'], times['built-in']):.2f}** |")


# ---------------------------------------------------------------- compile latency

def _library_sources():
    """(name, source, params) of every loss in ``lossdsl.losses`` (defaults are bound in the source)."""
    import lossdsl.losses as library
    return [(spec.name, spec.source, {}) for spec in library.available()]


def _clear_caches():
    from lossdsl.analysis import backward
    from lossdsl.analysis import analyze as compiler
    from lossdsl.backends.tensorflow import custom_gradient
    from lossdsl.lower import plans
    for cached in (compiler.analyze, compiler._check_values_keep_it_real, backward.backward,
                   backward.separable, custom_gradient._plans, plans._forward_plan):
        cached.cache_clear()


def bench_compile(repeats):
    sources = [(c.name, c.source, dict(c.params)) for c in CASES] + _library_sources()
    lossdsl.compile("mean(abs(y_pred))")  # the parser, Keras registration: paid once per process
    rows = []
    for name, source, params in sources:
        cold, cached = [], []
        for _ in range(repeats):
            _clear_caches()
            start = time.perf_counter()
            lossdsl.compile(source, **params)
            cold.append((time.perf_counter() - start) * 1e3)
            start = time.perf_counter()
            lossdsl.compile(source, **params)
            cached.append((time.perf_counter() - start) * 1e3)
        rows.append((name, statistics.median(cold), max(cold), statistics.median(cached)))
    return rows


def report_compile(rows):
    print("\n### compile latency: source -> Keras object (ms; cold = caches cleared)\n")
    print("| loss | cold median | cold worst | cached median |")
    print("| --- | --- | --- | --- |")
    for name, cold, worst, cached in rows:
        print(f"| {name} | {cold:.1f} | {worst:.1f} | {cached:.3f} |")
    colds = [r[1] for r in rows]
    print(f"\nover {len(rows)} losses: cold median {statistics.median(colds):.1f} ms, "
          f"worst {max(r[2] for r in rows):.1f} ms, cached median "
          f"{statistics.median(r[3] for r in rows):.3f} ms, cached worst "
          f"{max(r[3] for r in rows):.3f} ms")


CLI_COMMANDS = (("--help",), ("ops",), ("show", "mean(-y_true*log(clip(y_pred, 1e-7, 1)))"),
                ("export", "mean((y_true - y_pred)^2)", "--class-name", "MSE"))


def bench_cli(repeats):
    """Cold start of the `lossdsl` command: a fresh interpreter per run."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    print("\n### CLI cold start (fresh process per run, ms)\n")
    print("| command | median | min | max |\n| --- | --- | --- | --- |")
    for command in CLI_COMMANDS:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "lossdsl", *command], cwd=ROOT, env=env,
                           capture_output=True, check=True)
            times.append((time.perf_counter() - start) * 1e3)
        print(f"| `lossdsl {' '.join(command[:1])}` | {statistics.median(times):.0f} | "
              f"{min(times):.0f} | {max(times):.0f} |")


# ---------------------------------------------------------------- first call

def bench_first_call(shape=(256, 1000), repeats=3):
    """Trace (and XLA compile) + first run of a tf.function loss step, with the fused path and without."""
    from lossdsl.backends.tensorflow import fused
    print(f"\n### first call of a tf.function value+gradient step, y shape {shape} "
          f"(ms, median of {repeats} fresh functions; then: a call after it, mean of 20; break-even: "
          "the steps after which the fused path's compile has paid for itself)\n")
    print("| loss | mode | plain ops first | fused first | plain then | fused then "
          "| break-even steps |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    threshold = fused.FUSED_MIN_ELEMENTS
    try:
        for case in CASES:
            y_true, y_pred = _tensors(shape, case.labels)
            for mode in ("autodiff", "symbolic"):
                row = []
                for fuse in (False, True):
                    fused.FUSED_MIN_ELEMENTS = 0 if fuse else float("inf")
                    first, then = [], []
                    for _ in range(repeats):
                        loss = lossdsl.compile(case.source, gradient=mode, **dict(case.params))
                        step = tf.function(_value_and_grad(loss))
                        first.append(_time_calls(step, (y_true, y_pred), 1))
                        then.append(_time_calls(step, (y_true, y_pred), 20))
                    row.append((statistics.median(first), statistics.median(then)))
                saved = row[0][1] - row[1][1]  # per later step
                even = f"{(row[1][0] - row[0][0]) / saved:.0f}" if saved > 0 else "never"
                print(f"| {case.name} | {mode} | {row[0][0]:.0f} | {row[1][0]:.0f} | "
                      f"{row[0][1]:.1f} | {row[1][1]:.1f} | {even} |")
    finally:
        fused.FUSED_MIN_ELEMENTS = threshold


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (fewer rounds)")
    parser.add_argument("--first-call", action="store_true",
                        help="only the first-call section (trace + XLA compile), about 30 s")
    parser.add_argument("--check", action="store_true",
                        help=f"only the eager rows; exit status 1 if a ratio exceeds {GOAL}")
    args = parser.parse_args(argv)
    if args.first_call:
        bench_first_call()
        return
    rounds = 3 if args.quick else 7
    budget = 40.0 if args.quick else 120.0  # ms per variant per round
    if args.check:
        sys.exit(check(rounds, budget))
    print(f"# lossdsl benchmark ({'quick' if args.quick else 'full'}): TF {tf.__version__}, "
          f"Keras {keras.__version__}, {os.cpu_count()} CPUs, {rounds} interleaved rounds")
    for shape in SHAPES:
        # A call at (256, 10) takes about 0.3 ms and the machine's noise is of that
        # order: three times the rounds (cheap there) keep its ratios as steady as the large shape's.
        small = shape[0] * shape[1] < 100_000
        times = bench_forward_backward(shape, MODES, 3 * rounds if small else rounds, budget)
        report_forward_backward(shape, times, MODES)
        eager_misses(shape, times)
    report_fit(10, bench_fit(10, steps=20 if args.quick else 50, rounds=rounds))
    if not args.quick:
        report_fit(1000, bench_fit(1000, steps=20, rounds=rounds))
    bench_first_call(repeats=2 if args.quick else 3)
    report_compile(bench_compile(repeats=3 if args.quick else 7))
    bench_cli(repeats=3 if args.quick else 5)


if __name__ == "__main__":
    main()
