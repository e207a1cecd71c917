"""Batch statistics under MultiWorkerMirroredStrategy (two workers on loopback) equal one device.

Run as a script (tests/test_multiworker.py does, in a subprocess). The parent picks two free
ports on 127.0.0.1, starts two worker processes (``TF_CONFIG``: a cluster of two workers, one
CPU replica each, so two replicas in sync) and meanwhile computes the one-device reference
itself, in a process with no strategy. Each worker runs every case in the one cluster:
``fit`` on a ``tf.data.Dataset`` batched to the global batch with
``AutoShardPolicy.DATA``: tf.data splits each global batch into one slice per replica and
worker i keeps slice i, so a step's global batch is the one-device batch (``OFF`` would give
each worker every slice, twice the steps; ``AUTO`` falls back to DATA here, there are no
files). 37 samples in global batches of 16: the last batch of 5 is split 3 and 2, so the
workers' shards differ. Two epochs, SGD.

Cases, compared by the largest normwise relative difference of the loss history and the
final weights (both workers): batch Dice, batch-centred MSE and the batch-all triplet loss
(pair functions over triples, gathered across the workers), both gradient modes, the
default reduction and ``mean_with_sample_weight`` with a sample_weight, against one device.
A per-sample MSE (no batch statistic: lossdsl leaves it to Keras) against Keras's own
``MeanSquaredError`` in the same cluster; its difference from one device is reported too
(Keras averages the replicas' means: it differs with these shards, so they matter). The
CONTROL: batch Dice with the all-reduce switched off (``global_replica_context`` returns
None) must differ from one device. Prints one JSON line per case; exits 1 on a mismatch or
a failed or hung worker.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from lossdsl.losses import REGISTRY  # noqa: E402  (the library's rows: no TensorFlow yet)

BATCH_SOURCES = {
    "batch dice": "1 - 2*sum(y_true*y_pred, axis=(0,1))/(sum(y_true, axis=(0,1)) + "
                  "sum(y_pred, axis=(0,1)))",
    "centred mse": "mean((y_pred - mean(y_pred, axis=0) - y_true)^2)",
    # triples of samples: each worker's rows against the global batch gathered from both
    # (equal label rows are positives; 0 where no triplet is active, so defined on any batch)
    "batch-all triplet": REGISTRY["triplet_all"].source,
}
PER_SAMPLE = "mean((y_pred - y_true)^2)"
SOURCES = {**BATCH_SOURCES, "per-sample mse": PER_SAMPLE}
REDUCTIONS = [("sum_over_batch_size", False), ("mean_with_sample_weight", True)]
MODES = ("autodiff", "symbolic")
CASES = [(mode, name, reduction, weighted) for mode in MODES for name in SOURCES
         for reduction, weighted in REDUCTIONS]
KERAS_MSE = [("keras", "keras mse", reduction, weighted) for reduction, weighted in REDUCTIONS]
CONTROL = ("control", "batch dice", "sum_over_batch_size", False)
SAMPLES, BATCH, EPOCHS, LEARNING_RATE = 37, 16, 2, 0.5
LAST_SHARDS = [3, 2]  # the last global batch of 37 - 2*16 = 5, split by AutoShardPolicy.DATA
TOLERANCE, CONTROL_ABOVE = 1e-5, 1e-3
TIMEOUT = 300  # seconds for the workers: one waiting on a dead peer's collective fails, not hangs


def _data():
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 4)).astype("float32")
    y = (rng.random((SAMPLES, 3)) > 0.5).astype("float32")
    w = rng.uniform(0.2, 2.0, size=SAMPLES).astype("float32")
    kernel = rng.normal(size=(4, 3)).astype("float32")
    return x, y, w, kernel


def _key(case) -> str:
    return "|".join(str(part) for part in case)


def fit(strategy, case) -> dict:
    """``fit`` for one case; the dataset yields global batches, sharded by the strategy."""
    import keras
    import numpy as np
    import tensorflow as tf

    import lossdsl
    mode, name, reduction, weighted = case
    x, y, w, kernel = _data()
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, "sigmoid")])
        model.layers[0].set_weights([kernel, np.zeros(3, "float32")])
        loss = keras.losses.MeanSquaredError(reduction=reduction) if mode == "keras" else \
            lossdsl.compile(SOURCES[name], reduction=reduction,
                            gradient="autodiff" if mode == "control" else mode)
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss=loss)
    dataset = tf.data.Dataset.from_tensor_slices((x, y, w) if weighted else (x, y)).batch(BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    history = model.fit(dataset.with_options(options), epochs=EPOCHS, verbose=0)
    return {"loss": [float(v) for v in history.history["loss"]],
            "weights": [np.asarray(v).tolist() for v in model.get_weights()]}


def keras_reduce_fix(strategy) -> None:
    """Work around two bugs of Keras 3's TF trainer under MultiWorkerMirroredStrategy, which
    fail ``fit`` with Keras's own MSE too (keras-team/keras#20585): it reduces a nested data
    batch with one ``strategy.reduce`` (TF: "TODO: support `value` being a nest"; only
    MirroredStrategy maps the structure), and its scalar logs with ``axis=0``. This strategy's
    ``reduce`` maps the structure and reduces a scalar over the replicas (``axis=None``), as
    MirroredStrategy's path does. The loss and its gradients are not touched."""
    import tensorflow as tf
    reduce = strategy.reduce

    def reduce_each(op, value, axis=None):
        def one(v):
            local = v.values[0] if isinstance(v, tf.distribute.DistributedValues) else v
            return reduce(op, v, axis=None if local.shape.rank == 0 else axis)
        return tf.nest.map_structure(one, value)

    strategy.reduce = reduce_each


def worker(index: int, out: Path) -> None:
    """One worker of the cluster in ``TF_CONFIG``: every case, then the control."""
    import tensorflow as tf

    import lossdsl
    from lossdsl.backends.tensorflow import replicas
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    keras_reduce_fix(strategy)
    results = {"lossdsl": lossdsl.__file__, "replicas": strategy.num_replicas_in_sync,
               "strategy": type(strategy).__name__}
    for case in CASES + KERAS_MSE:
        results[_key(case)] = fit(strategy, case)
    replicas.global_replica_context = lambda: None  # per-replica statistics, no rescaling
    results[_key(CONTROL)] = fit(strategy, CONTROL)
    (out / f"worker{index}.json").write_text(json.dumps(results))


def reference(out: Path) -> None:
    """One device, no strategy: the same fits."""
    import tensorflow as tf
    strategy = tf.distribute.get_strategy()
    (out / "reference.json").write_text(json.dumps({_key(case): fit(strategy, case)
                                                    for case in CASES}))


def _difference(one: dict, two: dict, part: str) -> float:
    """The largest normwise relative difference of the loss history or the final weights."""
    import numpy as np
    assert len(one["weights"]) == len(two["weights"]) == 2 and len(one["loss"]) == EPOCHS
    pairs = [(one["loss"], two["loss"])] if part == "loss" else zip(one["weights"], two["weights"])
    # Normwise: relative to each array's largest entry (as tests/batch_distribute_check.py).
    return max(float(np.max(np.abs(np.subtract(a, b))) / (1e-6 + np.max(np.abs(a))))
               for a, b in pairs)


def _differences(expected: dict, results: list[dict], key: str) -> dict:
    losses, weights = (max(_difference(expected, r[key], part) for r in results)
                       for part in ("loss", "weights"))
    return {"loss_difference": losses, "weights_difference": weights,
            "max_rel_difference": max(losses, weights)}


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def run_cluster(out: Path) -> str | None:
    """Two workers on loopback and the reference here; an error's text, or None. A worker
    that fails stops the other (it would wait for its peer's collectives until the timeout)."""
    start = time.monotonic()
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    logs = [open(out / f"worker{index}.log", "w") for index in range(2)]
    workers = [subprocess.Popen(
        [sys.executable, __file__, "worker", str(index), str(out)],
        env={**env, "TF_CONFIG": json.dumps({"cluster": cluster,
                                             "task": {"type": "worker", "index": index}})},
        stdout=logs[index], stderr=subprocess.STDOUT) for index in range(2)]
    os.environ.pop("TF_CONFIG", None)
    try:
        reference(out)  # meanwhile, in this process: no strategy
        while any(process.poll() is None for process in workers):
            if any(process.poll() not in (None, 0) for process in workers):
                break
            if time.monotonic() - start > TIMEOUT:
                return f"the workers took more than {TIMEOUT} s"
            time.sleep(0.2)
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
            process.wait()
        for log in logs:
            log.close()
    failed = [(process.returncode, index) for index, process in enumerate(workers)
              if process.returncode != 0]
    return "; ".join(f"worker {index} exited {code}" + (" (stopped)" if code < 0 else "") + ": "
                     + (out / f"worker{index}.log").read_text()[-2000:]
                     for code, index in sorted(failed, reverse=True)) or None


def main() -> int:
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lossdsl-multiworker-") as tmp:
        error = run_cluster(Path(tmp))
        if error:
            print(json.dumps({"error": error}), flush=True)
            return 1
        expected = json.loads((Path(tmp) / "reference.json").read_text())
        results = [json.loads((Path(tmp) / f"worker{i}.json").read_text()) for i in range(2)]
    print(json.dumps({"lossdsl": results[0]["lossdsl"], "strategy": results[0]["strategy"],
                      "replicas": [r["replicas"] for r in results], "samples": SAMPLES,
                      "global_batch": BATCH, "last_shards": LAST_SHARDS}), flush=True)
    failed = False
    for case in CASES + [CONTROL]:
        mode, name, reduction, weighted = case
        row = {"mode": mode, "loss": name, "reduction": reduction, "weighted": weighted}
        if case == CONTROL:  # per-replica statistics: must differ from one device
            row.update(_differences(expected[_key(("autodiff",) + case[1:])], results,
                                    _key(case)), compared_to="one device, must differ",
                       bound=CONTROL_ABOVE)
            row["ok"] = row["max_rel_difference"] > CONTROL_ABOVE
        elif name in BATCH_SOURCES:
            row.update(_differences(expected[_key(case)], results, _key(case)),
                       compared_to="one device", bound=TOLERANCE)
            row["ok"] = row["max_rel_difference"] < TOLERANCE
        else:  # per-sample: Keras's semantics, whichever they are; one device for information
            keras_mse = results[0][_key(("keras", "keras mse", reduction, weighted))]
            row.update(_differences(keras_mse, results, _key(case)),
                       compared_to="keras.losses.MeanSquaredError in the cluster",
                       bound=TOLERANCE)
            row["one_device_difference"] = _differences(expected[_key(case)], results,
                                                        _key(case))["max_rel_difference"]
            row["ok"] = row["max_rel_difference"] < TOLERANCE
        failed |= not row["ok"]
        print(json.dumps(row), flush=True)
    print(json.dumps({"seconds": round(time.monotonic() - start, 1)}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(int(sys.argv[2]), Path(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())
