"""Example 4: weighted cross-entropy on an imbalanced digits task, trained with ``fit``.

Data: scikit-learn's bundled 8x8 digits (no download). The task is "is it an
8?", with only a fifth of the training 8s kept, so about 2% of the training
samples are positive. A logistic-regression-sized model is trained twice with
one lossdsl line, a cross-entropy on logits whose positive term is weighted by
``w_pos``: once with ``w_pos = 1`` (plain cross-entropy) and once with
``w_pos = #negatives / #positives``. The script reports per-class recall on a
held-out split (with all its 8s) for both runs, and checks the weighted loss against
Keras's ``BinaryCrossentropy(from_logits=True)`` with per-sample weights.

Run: python examples/weighted_digits.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import lossdsl  # noqa: E402

# log(sigmoid(z)) = -softplus(-z) and log(1 - sigmoid(z)) = -softplus(z): stable on logits.
WEIGHTED_CE = "w_pos = 1; mean(w_pos*y_true*softplus(-y_pred) + (1 - y_true)*softplus(y_pred))"
POSITIVE_DIGIT, KEEP_POSITIVES = 8, 0.2


def imbalanced_split(seed: int = 0):
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = (digits.target == POSITIVE_DIGIT).astype("float32")[:, None]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.4, random_state=seed,
                                                        stratify=y[:, 0])
    rng = np.random.default_rng(seed)
    keep = (y_train[:, 0] == 0) | (rng.uniform(size=len(y_train)) < KEEP_POSITIVES)
    return x_train[keep], y_train[keep], x_test, y_test


def recalls(model: keras.Model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    predicted = (model.predict(x, verbose=0)[:, 0] > 0).astype("float32")
    return tuple(float(np.mean(predicted[y[:, 0] == c] == c)) for c in (0.0, 1.0))


def train(loss: keras.losses.Loss, x: np.ndarray, y: np.ndarray) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(1)])  # logits
    model.compile(keras.optimizers.Adam(0.01), loss)
    model.fit(x, y, epochs=20, batch_size=64, verbose=0)
    return model


def check_against_keras(loss: keras.losses.Loss, w_pos: float, y: np.ndarray) -> None:
    logits = np.random.default_rng(1).normal(size=y.shape).astype("float32")
    weights = np.where(y[:, 0] == 1, w_pos, 1.0).astype("float32")
    reference = keras.losses.BinaryCrossentropy(from_logits=True)(y, logits, sample_weight=weights)
    np.testing.assert_allclose(float(loss(y, logits)), float(reference), rtol=1e-5)
    print("weighted loss equals Keras BinaryCrossentropy(from_logits=True) "
          "with sample_weight = w_pos on positives")


def main() -> None:
    x_train, y_train, x_test, y_test = imbalanced_split()
    positives = int(y_train.sum())
    w_pos = (len(y_train) - positives) / positives
    print(f"train: {len(y_train)} samples, {positives} positives ({positives / len(y_train):.1%});"
          f" test: {len(y_test)} samples, {int(y_test.sum())} positives")
    weighted = lossdsl.compile(WEIGHTED_CE, w_pos=w_pos)
    print("loss     :", weighted.source)
    print("d/dy_pred:", weighted.gradient)
    check_against_keras(weighted, w_pos, y_train)

    results = {}
    for label, loss in [("plain CE (w_pos=1)", lossdsl.compile(WEIGHTED_CE)),
                        (f"weighted CE (w_pos={w_pos:.1f})", weighted)]:
        results[label] = recalls(train(loss, x_train, y_train), x_test, y_test)
    print(f"{'':28} {'recall (not 8)':>14} {'recall (8)':>11}")
    for label, (negative, positive) in results.items():
        print(f"{label:28} {negative:14.3f} {positive:11.3f}")
    (_, plain_positive), (_, weighted_positive) = results.values()
    assert weighted_positive > plain_positive, "the weight should raise the recall of the 8s"
    print(f"recall of the rare class: {plain_positive:.3f} -> {weighted_positive:.3f}")


if __name__ == "__main__":
    main()
