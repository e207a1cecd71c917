"""Example 1: learn y = x^2 with a tiny network, a lossdsl loss and ``fit``.

The loss is a pseudo-Huber (smooth L1) loss with its scale ``delta`` as a
parameter, written as one line; lossdsl derives its gradient, and Keras trains
with it as with any built-in loss.

Run: python examples/fit_x_squared.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import lossdsl  # noqa: E402

SOURCE = "delta = 1; mean(delta^2*(sqrt(1 + ((y_pred - y_true)/delta)^2) - 1))"


def tiny_network() -> keras.Model:
    """One hidden layer of 16 tanh units: enough for a parabola on [-1, 1]."""
    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(16, activation="tanh"),
                             keras.layers.Dense(1)])


def main() -> None:
    loss = lossdsl.compile(SOURCE, delta=0.1)
    print("loss       :", loss.source, "with", loss.params)
    print("d/dy_pred  :", loss.gradient)
    lossdsl.check_gradients(loss, raise_on_mismatch=True)
    print("autodiff   : passed")

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (256, 1)).astype("float32")
    y = x**2
    keras.utils.set_random_seed(0)
    model = tiny_network()
    model.compile(optimizer=keras.optimizers.Adam(0.03), loss=loss)
    history = model.fit(x, y, epochs=80, batch_size=32, verbose=0).history["loss"]
    print(f"training   : loss {history[0]:.5f} -> {history[-1]:.5f} over {len(history)} epochs")

    grid = np.linspace(-1, 1, 5, dtype="float32")[:, None]
    predicted = model.predict(grid, verbose=0)
    for x_value, y_value in zip(grid[:, 0], predicted[:, 0]):
        print(f"  x = {x_value:+.2f}: predicted {y_value:+.3f}, true {x_value**2:+.3f}")
    max_error = float(np.max(np.abs(predicted - grid**2)))
    print(f"max error on the grid: {max_error:.3f}")
    assert history[-1] < history[0] / 10, "the loss should fall by 10x"
    assert max_error < 0.1, "the network should have learned y = x^2"


if __name__ == "__main__":
    main()
