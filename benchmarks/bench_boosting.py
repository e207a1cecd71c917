"""Benchmark: a lossdsl boosting objective vs the library's built-in, time per boosting round.

Run from the repository root (so that this tree's ``lossdsl`` is imported):

    python benchmarks/bench_boosting.py            # 20 000 rows, 5 repeats
    python benchmarks/bench_boosting.py --quick    # 4 000 rows, 3 repeats

For each objective of the equality tests (tests/test_boosting.py) and each
library, the built-in and the lossdsl objective train on the same data, seed,
parameters and starting margin, one thread, interleaved (built-in, lossdsl,
built-in, ...) so that both see the same machine load; the table gives the
median time per round of each, their ratio, the time lossdsl's gradient and
Hessian take per round (the NumPy evaluation alone), and the largest difference
between the two runs' predicted margins.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import lightgbm as lgb  # noqa: E402
import xgboost as xgb  # noqa: E402

from lossdsl import boosting  # noqa: E402
from lossdsl.errors import LossDSLWarning  # noqa: E402

SOURCES = {
    "squared": "0.5*(y_pred - y_true)^2",
    "logistic": "-y_true*log(sigmoid(y_pred)) - (1-y_true)*log(1-sigmoid(y_pred))",
    "pseudo_huber": "slope = 1; slope^2*(sqrt(1 + ((y_pred - y_true)/slope)^2) - 1)",
    "poisson": "exp(y_pred) - y_true*y_pred",
    "tweedie": "rho = 1.5; -y_true*exp((1-rho)*y_pred)/(1-rho) + exp((2-rho)*y_pred)/(2-rho)",
    "squared_log": "0.5*(log1p(y_pred) - log1p(y_true))^2",
    "softmax": "-sum(one_hot(y_true)*log_softmax(y_pred))",
    "fair": "c = 1; c^2*(abs(y_pred - y_true)/c - log1p(abs(y_pred - y_true)/c))",
    "gamma": "y_true*exp(-y_pred) + y_pred",
}
# (library, built-in, source key, objective options, labels, library params)
CASES = [
    ("xgboost", "reg:squarederror", "squared", {}, "regression", {}),
    ("xgboost", "binary:logistic", "logistic", {"hessian_floor": 1e-16}, "binary", {}),
    ("xgboost", "reg:pseudohubererror", "pseudo_huber", {"slope": 1.5}, "regression",
     {"huber_slope": 1.5}),
    ("xgboost", "count:poisson", "poisson", {}, "count", {"max_delta_step": 0.0}),
    ("xgboost", "reg:tweedie", "tweedie", {}, "count", {"tweedie_variance_power": 1.5}),
    ("xgboost", "reg:squaredlogerror", "squared_log", {"hessian_floor": 1e-6}, "positive", {}),
    ("xgboost", "multi:softprob", "softmax", {"hessian_scale": 2.0, "hessian_floor": 1e-16},
     "class", {"num_class": 3}),
    ("lightgbm", "regression", "squared", {}, "regression", {}),
    ("lightgbm", "binary", "logistic", {}, "binary", {}),
    ("lightgbm", "poisson", "poisson", {"hessian_scale": float(np.exp(0.7))}, "count", {}),
    ("lightgbm", "tweedie", "tweedie", {}, "count", {"tweedie_variance_power": 1.5}),
    ("lightgbm", "fair", "fair", {"c": 0.7}, "regression", {"fair_c": 0.7}),
    ("lightgbm", "gamma", "gamma", {}, "positive", {}),
    ("lightgbm", "multiclass", "softmax", {"hessian_scale": 1.5}, "class", {"num_class": 3}),
]


def make_data(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 10))
    signal = x[:, 0] - 0.5 * x[:, 1] + 0.3 * x[:, 2] * x[:, 3]
    return {"x": x, "weight": rng.uniform(0.5, 2.0, n),
            "regression": signal + rng.normal(scale=0.5, size=n),
            "binary": (rng.random(n) < 1 / (1 + np.exp(-2 * signal))).astype(float),
            "count": rng.poisson(np.exp(0.5 * signal)).astype(float),
            "positive": np.exp(0.3 * signal + rng.normal(scale=0.3, size=n)),
            "class": np.digitize(signal, [-0.5, 0.5]).astype(float)}


def train_once(library: str, objective, data, labels, start, extra, rounds):
    """Seconds per round and the predicted margins of one training run."""
    if library == "xgboost":
        params = {"max_depth": 6, "eta": 0.1, "seed": 0, "nthread": 1, "tree_method": "hist",
                  **extra}
        train = xgb.DMatrix(data["x"], label=labels, weight=data["weight"], base_margin=start)
        builtin = isinstance(objective, str)
        t = time.perf_counter()
        booster = xgb.train(dict(params, objective=objective) if builtin else params, train,
                            rounds, obj=None if builtin else objective)
        seconds = time.perf_counter() - t
        return seconds / rounds, booster.predict(train, output_margin=True)
    params = {"num_leaves": 31, "learning_rate": 0.1, "seed": 0, "num_threads": 1, "verbose": -1,
              "deterministic": True, "force_row_wise": True, "boost_from_average": False,
              "objective": objective, **extra}
    train = lgb.Dataset(data["x"], label=labels, weight=data["weight"], init_score=start)
    train.construct()  # binning is not a boosting round
    t = time.perf_counter()
    booster = lgb.train(params, train, rounds)
    seconds = time.perf_counter() - t
    return seconds / rounds, booster.predict(data["x"], raw_score=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, repeats, rounds = (4000, 3, 20) if args.quick else (20000, 5, 30)
    data = make_data(n)
    print(f"{n} rows x 10 features, {rounds} rounds, median of {repeats} interleaved repeats, "
          f"1 thread; xgboost {xgb.__version__}, lightgbm {lgb.__version__}")
    print(f"{'library':<9} {'objective':<21} {'built-in ms':>11} {'lossdsl ms':>10} "
          f"{'ratio':>6} {'grad+hess ms':>12} {'max |margin diff|':>17}")
    for library, builtin, key, options, label_key, extra in CASES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LossDSLWarning)
            obj = boosting.objective(SOURCES[key], **options)
        labels, classes = data[label_key], extra.get("num_class", 1)
        base = obj.base_score(labels, data["weight"], num_class=classes if classes > 1 else None)
        start = np.tile(base, (n, 1)) if classes > 1 else np.full(n, base)
        times: dict[str, list[float]] = {"builtin": [], "lossdsl": []}
        margins = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # xgboost: "huber_slope not used"
            for _ in range(repeats):
                for name, objective in (("builtin", builtin), ("lossdsl", obj)):
                    seconds, margins[name] = train_once(library, objective, data, labels,
                                                        start, extra, rounds)
                    times[name].append(seconds)
        t = time.perf_counter()
        for _ in range(20):
            obj(labels, start, data["weight"])
        evaluation = (time.perf_counter() - t) / 20
        built, ours = statistics.median(times["builtin"]), statistics.median(times["lossdsl"])
        diff = float(np.max(np.abs(margins["builtin"] - margins["lossdsl"])))
        print(f"{library:<9} {builtin:<21} {1e3 * built:>11.2f} {1e3 * ours:>10.2f} "
              f"{ours / built:>6.2f} {1e3 * evaluation:>12.2f} {diff:>17.2e}")


if __name__ == "__main__":
    main()
