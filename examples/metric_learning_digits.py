"""Example 8: an embedding trained with the batch-hard triplet loss, one library line.

Data: scikit-learn's bundled 8x8 digits (no download). A small network maps each
image to an 8-dimensional embedding; ``lossdsl.losses.triplet_hard`` (TF Addons'
``triplet_hard_loss``: per anchor, the hardest positive and hardest negative of its
batch) pulls same-digit images together and pushes the others away. The script shows
the loss's formula and its gradient through ``pair_dist(y_pred)``, checks the gradient
against TensorFlow's autodiff, trains with ``fit``, and reports the 1-nearest-neighbour
accuracy of held-out digits in the embedding before and after training.

Run: python examples/metric_learning_digits.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import lossdsl  # noqa: E402


def nearest_neighbour_accuracy(model: keras.Model, x_train, y_train, x_test, y_test) -> float:
    """How often a held-out digit's nearest training embedding has its label."""
    train, test = model.predict(x_train, verbose=0), model.predict(x_test, verbose=0)
    distances = ((test[:, None, :] - train[None, :, :]) ** 2).sum(axis=-1)
    return float(np.mean(y_train[distances.argmin(axis=1)] == y_test))


def main() -> None:
    keras.utils.set_random_seed(0)
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.3, random_state=0, stratify=digits.target)

    loss = lossdsl.losses.triplet_hard(margin=0.5)
    print("loss       :", loss.source, loss.params)
    print("d/dy_pred  :", loss.gradient)
    explained = lossdsl.explain(loss.source, margin=0.5)
    print("where      :", next(line for line in explained.counts() if line.startswith("backward")))
    batch = np.random.default_rng(0).normal(size=(16, 8))
    print("check      :", lossdsl.check_gradients(loss, y_train[:16, None], batch))

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(8)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    before = nearest_neighbour_accuracy(model, x_train, y_train, x_test, y_test)
    history = model.fit(x_train, y_train, batch_size=64, epochs=15, verbose=0)
    after = nearest_neighbour_accuracy(model, x_train, y_train, x_test, y_test)
    losses = history.history["loss"]
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    print(f"1-NN accuracy before training: {before:.3f}")
    print(f"1-NN accuracy after training: {after:.3f}")
    assert losses[-1] < losses[0] and after > before


if __name__ == "__main__":
    main()
