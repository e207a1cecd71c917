"""Benchmark: this tree's lossdsl against another checkout's, paired in one process.

A refactoring must not slow anything down. Timing two checkouts in two runs
compares two machine states; this script loads both versions of ``lossdsl`` into
one process (the first is imported, its objects built, then its modules are
dropped from ``sys.modules`` and the second is imported) and times their losses
round-robin, so every ratio is paired per round:

    git worktree add /tmp/before <commit>
    python benchmarks/bench_before_after.py /tmp/before            # vs this tree
    python benchmarks/bench_before_after.py /tmp/before --quick

It reports, per loss, gradient mode, execution mode and shape, the median over
rounds of after/before (forward + backward through ``tf.GradientTape``). Ratios
within about +-5% are noise on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import tensorflow as tf  # noqa: E402
from bench_data import make_data  # noqa: E402

LOSSES = {
    "MSE": ("mean((y_true - y_pred)^2)", "real", {}),
    "BCE logits": ("mean(-(y_true*log(sigmoid(y_pred)) + (1 - y_true)*log(1 - sigmoid(y_pred))))",
                   "binary", {}),
    "CCE logits": ("-sum(y_true*log(softmax(y_pred)))", "onehot", {}),
    "focal logits": ("p = sigmoid(y_pred); p_t = y_true*p + (1 - y_true)*(1 - p); "
                     "mean((1 - p_t)^gamma*-(y_true*log(p) + (1 - y_true)*log(1 - p)))",
                     "binary", {"gamma": 2.0}),
    "Dice": ("1 - 2*sum(y_true*y_pred)/(sum(y_true) + sum(y_pred) + 1e-7)", "prob", {}),
}
GRADIENTS = ("autodiff", "symbolic")
MODES = ("eager", "graph", "xla")


def load_lossdsl(tree: str):
    """Import the ``lossdsl`` package of ``tree``, dropping any other already imported."""
    for name in [m for m in sys.modules if m == "lossdsl" or m.startswith("lossdsl.")]:
        del sys.modules[name]
    sys.path.insert(0, tree)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras warns when a class name is registered twice
            import lossdsl
            import lossdsl.losses  # noqa: F401 - registers the Keras classes
            lossdsl.compile("mean(y_pred)")
    finally:
        sys.path.remove(tree)
    assert os.path.realpath(lossdsl.__file__).startswith(os.path.realpath(tree)), lossdsl.__file__
    return lossdsl


def step_function(loss, mode: str):
    def step(y_true, y_pred):
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = loss(y_true, y_pred)
        return value, tape.gradient(value, y_pred)
    return step if mode == "eager" else tf.function(step, jit_compile=(mode == "xla"))


def time_calls(function, args, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        value, gradient = function(*args)
    value.numpy(), gradient.numpy()
    return (time.perf_counter() - start) / calls * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", help="the other checkout (its root, holding lossdsl/)")
    parser.add_argument("--after", default=ROOT, help="default: this tree")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, small shape only")
    args = parser.parse_args(argv)
    shapes = ((256, 10),) if args.quick else ((256, 10), (4096, 1000))
    rounds, budget_ms = (5, 40.0) if args.quick else (9, 120.0)

    functions, inputs = {}, {}
    for version, tree in (("before", args.before), ("after", args.after)):
        lossdsl = load_lossdsl(os.path.abspath(tree))
        for loss_name, (source, labels, params) in LOSSES.items():
            for gradient in GRADIENTS:
                loss = lossdsl.compile(source, gradient=gradient, **params)
                for shape in shapes:
                    inputs[(loss_name, shape)] = tuple(map(tf.constant, make_data(shape, labels)))
                    for mode in MODES:
                        functions[(loss_name, gradient, mode, shape, version)] = \
                            step_function(loss, mode)
    calls = {}
    for key, function in functions.items():  # warm up (trace, compile), size the batches
        time_calls(function, inputs[(key[0], key[3])], 2)
        once = time_calls(function, inputs[(key[0], key[3])], 3)
        calls[key] = max(2, min(200, int(budget_ms / max(once, 1e-3))))
    times = {key: [] for key in functions}
    for _ in range(rounds):
        for key, function in functions.items():
            times[key].append(time_calls(function, inputs[(key[0], key[3])], calls[key]))

    print(f"after/before, median of {rounds} paired rounds (forward + backward, float32)\n")
    print(f"| loss | gradient | shape | {' | '.join(MODES)} |")
    print("|---|---|---|" + "---|" * len(MODES))
    ratios = []
    for loss_name in LOSSES:
        for gradient in GRADIENTS:
            for shape in shapes:
                row = []
                for mode in MODES:
                    before = times[(loss_name, gradient, mode, shape, "before")]
                    after = times[(loss_name, gradient, mode, shape, "after")]
                    ratio = statistics.median(a / b for a, b in zip(after, before))
                    ratios.append(ratio)
                    row.append(f"{ratio:.2f}")
                print(f"| {loss_name} | {gradient} | {shape[0]}x{shape[1]} | {' | '.join(row)} |")
    print(f"\ngeometric mean of all ratios: {statistics.geometric_mean(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
