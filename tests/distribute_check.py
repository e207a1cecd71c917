"""Trains with a lossdsl loss on one device and under MirroredStrategy over two logical CPUs.

Run as a script, with gradient modes as arguments (default: every mode of
``lossdsl.keras.loss.GRADIENT_MODES``); tests/test_distribute.py does, in a subprocess, also with
FUSE_EVERY_BATCH=1 (every batch on the fused XLA path of ``lossdsl.backends.tensorflow.fused``). The logical
devices must be configured before TensorFlow initialises, once per process.
Prints one JSON line per case with the largest differences; exits 1 on a mismatch.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import lossdsl  # noqa: E402
import lossdsl.backends.tensorflow.fused  # noqa: E402
from lossdsl.keras.loss import GRADIENT_MODES  # noqa: E402

if os.environ.get("FUSE_EVERY_BATCH") == "1":  # the batches here are far below the threshold
    lossdsl.backends.tensorflow.fused.FUSED_MIN_ELEMENTS = 0

SOURCE = "mean((y_true - y_pred)^2) + 0.1*mean(abs(y_pred - mean(y_pred)))"
GLOBAL_BATCH, STEPS, LEARNING_RATE = 8, 4, 0.05
RNG = np.random.default_rng(0)
X = RNG.normal(size=(GLOBAL_BATCH * STEPS, 4)).astype("float32")
Y = RNG.normal(size=(GLOBAL_BATCH * STEPS, 3)).astype("float32")
W = RNG.uniform(0.0, 2.0, size=GLOBAL_BATCH * STEPS).astype("float32")
KERNEL = RNG.normal(size=(4, 3)).astype("float32")


def _model() -> keras.Model:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.layers[0].set_weights([KERNEL, np.zeros(3, "float32")])
    return model


def fit(strategy, mode: str, reduction: str, weighted: bool) -> tuple[list, list]:
    with strategy.scope():
        model = _model()
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE),
                      loss=lossdsl.compile(SOURCE, reduction=reduction, gradient=mode))
    history = model.fit(X, Y, sample_weight=W if weighted else None, batch_size=GLOBAL_BATCH,
                        epochs=2, shuffle=False, verbose=0)
    return history.history["loss"], [w.numpy() for w in model.weights]


def custom_loop(strategy, mode: str, weighted: bool) -> tuple[list, list]:
    """The TF guide's loop: per-example losses, averaged over the *global* batch size."""
    with strategy.scope():
        model = _model()
        optimizer = keras.optimizers.SGD(LEARNING_RATE)
        loss_fn = lossdsl.compile(SOURCE, reduction="none", gradient=mode)
    data = tf.data.Dataset.from_tensor_slices((X, Y, W)).batch(GLOBAL_BATCH)

    def step(x, y, w):
        with tf.GradientTape() as tape:
            per_example = loss_fn(y, model(x), sample_weight=w if weighted else None)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=GLOBAL_BATCH)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    @tf.function
    def distributed_step(batch):
        per_replica = strategy.run(step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    losses = [float(distributed_step(batch))
              for batch in strategy.experimental_distribute_dataset(data)]
    return losses, [w.numpy() for w in model.weights]


def _difference(one, two) -> float:
    (losses_1, weights_1), (losses_2, weights_2) = one, two
    pairs = [(np.asarray(losses_1), np.asarray(losses_2))] + list(zip(weights_1, weights_2))
    return max(float(np.max(np.abs(a - b) / (1e-6 + np.abs(a)))) for a, b in pairs)


def _two_logical_cpus() -> None:
    """Split the CPU in two devices; only possible before TensorFlow's runtime starts."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def main(modes: list[str]) -> int:
    _two_logical_cpus()
    one_device = tf.distribute.get_strategy()  # the default: no distribution at all
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    print(json.dumps({"lossdsl": lossdsl.__file__}), flush=True)
    failed = False
    for mode in modes:
        cases = {f"fit {r}{' weighted' if w else ''}": (fit, (mode, r, w))
                 for r, w in [("sum_over_batch_size", False), ("sum", False),
                              ("sum_over_batch_size", True)]}
        cases.update({f"strategy.run loop{' weighted' if w else ''}": (custom_loop, (mode, w))
                      for w in (False, True)})
        for name, (train, args) in cases.items():
            difference = _difference(train(one_device, *args), train(mirrored, *args))
            ok = difference < 1e-5
            failed |= not ok
            print(json.dumps({"mode": mode, "case": name, "max_rel_difference": difference,
                              "ok": ok}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(GRADIENT_MODES)))
