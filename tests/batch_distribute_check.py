"""Batch statistics under MirroredStrategy over two logical CPUs equal one device in ``fit``.

Run as a script (tests/test_batch_reductions.py does, in a subprocess): batch Dice,
batch-centred MSE, the semi-hard triplet loss (triples of samples) and NT-Xent (pairs), whose
pair functions gather the global batch, both gradient modes, the default reduction and
``mean_with_sample_weight`` with a sample_weight, 36 samples in batches of 16 (an uneven
last batch of 4), two epochs, the same source also as a metric (its history compared too).
Keras scales each replica's loss by 1/replicas and sums the
replicas' gradients; the comparison is to one device, nothing assumed. Prints one JSON line
per case with the largest normwise relative difference of losses and weights; exits 1 on a mismatch.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import lossdsl  # noqa: E402
from lossdsl.backends.tensorflow import replicas  # noqa: E402

SOURCES = {
    "batch dice": "1 - 2*sum(y_true*y_pred, axis=(0,1))/(sum(y_true, axis=(0,1)) + "
                  "sum(y_pred, axis=(0,1)))",
    "centred mse": "mean((y_pred - mean(y_pred, axis=0) - y_true)^2)",
    # pairs and triples of samples: each replica's rows against the gathered global batch
    # (the label rows y_true are compared whole: equal rows are a positive pair)
    "semi-hard triplet": lossdsl.losses.REGISTRY["triplet_semihard"].source,
    "nt-xent": lossdsl.losses.REGISTRY["ntxent"].source.replace("0.07", "0.5"),
    # a per-sample loss that keeps its row over the (global) batch: (shard, batch) values,
    # weighted per sample (the row)
    "pair rows": "pair_eq(y_true)*pair_dist(y_pred) - 0.1*pair_dot(y_pred)",
}
EXTRA = {  # the other global reductions, lighter: default reduction only
    "max/min/logsumexp/count": "mean((y_pred - y_true)^2) + 0.1*max(y_pred, axis=0) "
                               "- 0.1*min(y_pred, axis=0) + 0.05*logsumexp(y_pred, axis=0) "
                               "+ 0.1*sum(y_pred, axis=0)/sum(1, axis=0)",
    "var/std/norm": "mean((y_pred - y_true)^2) + 0.1*var(y_pred, axis=0) + 0.1*std(y_pred, axis=0) "
                    "+ 0.01*norm(y_pred, axis=0)",
}
SAMPLES, BATCH, LEARNING_RATE = 36, 16, 0.5
RNG = np.random.default_rng(0)
X = RNG.normal(size=(SAMPLES, 4)).astype("float32")
Y = (RNG.random((SAMPLES, 3)) > 0.5).astype("float32")
W = RNG.uniform(0.2, 2.0, size=SAMPLES).astype("float32")
KERNEL = RNG.normal(size=(4, 3)).astype("float32")


def fit(strategy, source: str, mode: str, reduction: str, weighted: bool,
        batch: int = BATCH) -> tuple[list, list]:
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, "sigmoid")])
        model.layers[0].set_weights([KERNEL, np.zeros(3, "float32")])
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE),
                      loss=lossdsl.compile(source, reduction=reduction, gradient=mode),
                      metrics=[lossdsl.metric(source, name="same")])  # its statistics global too
    history = model.fit(X, Y, sample_weight=W if weighted else None, batch_size=batch,
                        epochs=2, shuffle=False, verbose=0)
    return history.history["loss"] + history.history["same"], [w.numpy() for w in model.weights]


def shards(strategy, source: str, mode: str, reduction: str, weighted: bool) -> tuple[list, list]:
    """One step on shards of 9 and 7 samples (``strategy.run``): the replicas' summed loss
    and gradient w.r.t. the kernel and bias (Keras's ``Loss.__call__``, its scaling included)."""
    sizes = (9, 7)
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, "sigmoid")])
        model.layers[0].set_weights([KERNEL, np.zeros(3, "float32")])
        loss_fn = lossdsl.compile(source, reduction=reduction, gradient=mode)

    def step(x, y, w):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x), sample_weight=w if weighted else None)
        return [loss] + tape.gradient(loss, model.trainable_variables)

    if strategy.num_replicas_in_sync == 1:
        results = tf.function(step)(X[:16], Y[:16], W[:16])
        return [float(results[0])], [r.numpy() for r in results[1:]]
    starts = (0, sizes[0])

    def shard(array):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(array[starts[ctx.replica_id_in_sync_group]:][
                :sizes[ctx.replica_id_in_sync_group]]))

    results = tf.function(lambda *a: strategy.run(step, args=a))(shard(X), shard(Y), shard(W))
    summed = [strategy.reduce(tf.distribute.ReduceOp.SUM, r, axis=None) for r in results]
    return [float(summed[0])], [r.numpy() for r in summed[1:]]


def _difference(one, two) -> float:
    (losses_1, weights_1), (losses_2, weights_2) = one, two
    pairs = [(np.asarray(losses_1), np.asarray(losses_2))] + list(zip(weights_1, weights_2))
    # Normwise: relative to each array's largest entry (a gradient entry that cancels to ~0,
    # as a bias's through centred predictions, is rounding on both sides).
    return max(float(np.max(np.abs(a - b)) / (1e-6 + np.max(np.abs(a)))) for a, b in pairs)


def main(modes: list[str]) -> int:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    one_device = tf.distribute.get_strategy()
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    print(json.dumps({"lossdsl": lossdsl.__file__}), flush=True)
    # batch 16: an uneven last batch (4). Keras's fit cannot split a batch unevenly here (an odd
    # batch fails in Keras's own AddN of the shards), so uneven shards are checked by `shards`.
    cases = [(name, source, reduction, weighted, batch) for name, source in SOURCES.items()
             for reduction, weighted in [("sum_over_batch_size", False),
                                         ("mean_with_sample_weight", True)]
             for batch in (BATCH,)]
    cases += [(name, source, "sum_over_batch_size", False, BATCH)
              for name, source in EXTRA.items()]
    failed = False
    for mode in modes:
        for name, source, reduction, weighted, batch in cases:
            difference = _difference(fit(one_device, source, mode, reduction, weighted, batch),
                                     fit(mirrored, source, mode, reduction, weighted, batch))
            ok = difference < 1e-5
            failed |= not ok
            print(json.dumps({"mode": mode, "loss": name, "reduction": reduction,
                              "weighted": weighted, "batch": batch,
                              "max_rel_difference": difference, "ok": ok}), flush=True)
    for mode in modes:
        for name, source in SOURCES.items():
            for reduction, weighted in [("sum_over_batch_size", False),
                                        ("mean_with_sample_weight", True), ("sum", True)]:
                difference = _difference(shards(one_device, source, mode, reduction, weighted),
                                         shards(mirrored, source, mode, reduction, weighted))
                ok = difference < 1e-5
                failed |= not ok
                print(json.dumps({"mode": mode, "loss": name, "reduction": reduction,
                                  "weighted": weighted, "shards": "9 and 7",
                                  "max_rel_difference": difference, "ok": ok}), flush=True)
    # The control: with per-replica statistics (no all-reduce, no gather) the same fit differs.
    replicas.global_replica_context = lambda: None
    for name in ("centred mse", "semi-hard triplet"):
        difference = _difference(fit(one_device, SOURCES[name], modes[0],
                                     "sum_over_batch_size", False),
                                 fit(mirrored, SOURCES[name], modes[0],
                                     "sum_over_batch_size", False))
        ok = not difference <= 1e-3  # NaN too: a shard without a positive pair (one device has one)
        failed |= not ok
        print(json.dumps({"mode": modes[0], "loss": f"control: per-replica {name}",
                          "max_rel_difference": difference, "ok": ok}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["autodiff", "symbolic"]))
