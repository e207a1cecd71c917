"""Example 2: the y = x^2 network trained by a hand-written ``tf.GradientTape`` loop.

The objective is a lossdsl loss plus an L2 penalty on every kernel, itself a
one-line lossdsl regularizer in the weight ``w``. lossdsl derives the
penalty's gradient symbolically (``lam*w``); the script checks it against the
tape on the network's kernels before training.

Run: python examples/tape_loop_l2.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import lossdsl  # noqa: E402

LOSS = "mean((y_true - y_pred)^2)"
PENALTY = "0.5*lam*sum(w^2)"


def main() -> None:
    loss = lossdsl.compile(LOSS)
    penalty = lossdsl.regularizer(PENALTY, lam=1e-3)
    print("loss            :", loss.source, "   d/dy_pred =", loss.gradient)
    print("kernel penalty  :", penalty.source, "   d/dw =", penalty.gradient, penalty.params)

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(16, activation="tanh"),
                              keras.layers.Dense(1)])
    kernels = [layer.kernel for layer in model.layers]
    with tf.GradientTape() as tape:
        total_penalty = tf.add_n([penalty(kernel) for kernel in kernels])
    for kernel, taped in zip(kernels, tape.gradient(total_penalty, kernels)):
        derived = penalty.gradient_of(kernel)
        gap = float(tf.reduce_max(tf.abs(derived - taped)))
        print(f"  {kernel.path:<18} symbolic vs tape gradient: max |difference| = {gap:.2e}")
        assert gap < 1e-9

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (256, 1)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, x**2)).shuffle(256, seed=0).batch(32)
    optimizer = keras.optimizers.Adam(0.03)

    @tf.function
    def train_step(x_batch: tf.Tensor, y_batch: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            objective = loss(y_batch, model(x_batch, training=True))
            objective += tf.add_n([penalty(kernel) for kernel in kernels])
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(objective, variables), variables))
        return objective

    first = last = None
    for epoch in range(80):
        values = [float(train_step(xb, yb)) for xb, yb in dataset]
        first = first if first is not None else float(np.mean(values))
        last = float(np.mean(values))
    fit_error = float(loss(x**2, model(x)))
    print(f"training        : objective {first:.5f} -> {last:.5f} over 80 epochs")
    print(f"final MSE {fit_error:.5f}, kernel penalty "
          f"{float(tf.add_n([penalty(k) for k in kernels])):.5f}")
    assert last < first / 10, "the objective should fall by 10x"
    assert fit_error < 0.005, "the network should have learned y = x^2"


if __name__ == "__main__":
    main()
