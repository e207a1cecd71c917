"""Quick start: compile a one-line loss, read its gradient, check it, train with it.

Run: python examples/quickstart.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import lossdsl  # noqa: E402

SOURCE = "mean((y_true - y_pred)^2) + lam*mean((0.5 - y_pred)^2)"


def main() -> None:
    loss = lossdsl.compile(SOURCE, lam=0.1)
    print("source     :", loss.source)
    print("params     :", loss.params)
    print("simplified :", loss.expression)
    print("d/dy_pred  :", loss.gradient)
    print("d/dlam     :", loss.parameter_gradients["lam"])

    report = lossdsl.check_gradients(loss, raise_on_mismatch=True)
    print("autodiff   :", report)

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (512, 1)).astype("float32")
    y = x**2
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(32, activation="tanh"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=loss)
    history = model.fit(x, y, epochs=30, batch_size=64, verbose=0)
    first, last = history.history["loss"][0], history.history["loss"][-1]
    print(f"training   : loss {first:.4f} -> {last:.4f} over 30 epochs (learning y = x^2)")
    assert last < first, "the loss should fall while training"


if __name__ == "__main__":
    main()
