"""Example 3: a focal loss with ``alpha`` and ``gamma`` as parameters, next to the hand-written one.

Focal loss (Lin et al., 2017, "Focal Loss for Dense Object Detection") down-weights
easy examples by ``(1 - p_t)^gamma`` and balances the classes by ``alpha``. The
usual way to get it into Keras is a ``keras.losses.Loss`` subclass, written out
below; with lossdsl it is one line. The script asserts that both give the same
values and the same gradients (with and without ``sample_weight``, for several
``alpha``, ``gamma``), and that a model trains the same with either.

Run: python examples/focal_loss.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import lossdsl  # noqa: E402

FOCAL = ("eps = 1e-7; p = clip(y_pred, eps, 1 - eps); "
         "mean(-alpha*y_true*(1 - p)^gamma*log(p) - (1 - alpha)*(1 - y_true)*p^gamma*log(1 - p))")


class HandWrittenFocalLoss(keras.losses.Loss):
    """Binary focal loss on probabilities, as one writes it by hand."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.alpha, self.gamma = alpha, gamma

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        y_true = tf.cast(y_true, y_pred.dtype)
        p = tf.clip_by_value(y_pred, 1e-7, 1 - 1e-7)
        positive = -self.alpha * y_true * tf.pow(1 - p, self.gamma) * tf.math.log(p)
        negative = -(1 - self.alpha) * (1 - y_true) * tf.pow(p, self.gamma) * tf.math.log(1 - p)
        return tf.reduce_mean(positive + negative, axis=-1)


def value_and_gradient(loss: keras.losses.Loss, y_true: np.ndarray, y_pred: np.ndarray,
                       weights: np.ndarray | None) -> tuple[float, np.ndarray]:
    variable = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        value = loss(y_true, variable, sample_weight=weights)
    return float(value), tape.gradient(value, variable).numpy()


def compare(y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray) -> None:
    print(f"{'alpha':>5} {'gamma':>5} {'weights':>7} {'lossdsl':>10} {'by hand':>10} "
          f"{'max |grad diff|':>16}")
    for alpha, gamma in [(0.25, 2.0), (0.5, 0.0), (0.75, 1.5), (0.1, 5.0)]:
        ours = lossdsl.compile(FOCAL, alpha=alpha, gamma=gamma)
        theirs = HandWrittenFocalLoss(alpha, gamma)
        for sample_weight in (None, weights):
            ours_value, ours_grad = value_and_gradient(ours, y_true, y_pred, sample_weight)
            their_value, their_grad = value_and_gradient(theirs, y_true, y_pred, sample_weight)
            gap = float(np.max(np.abs(ours_grad - their_grad)))
            print(f"{alpha:5.2f} {gamma:5.1f} {'yes' if sample_weight is not None else 'no':>7} "
                  f"{ours_value:10.6f} {their_value:10.6f} {gap:16.2e}")
            np.testing.assert_allclose(ours_value, their_value, rtol=1e-5)
            np.testing.assert_allclose(ours_grad, their_grad, rtol=1e-4, atol=1e-8)


def train(loss: keras.losses.Loss, x: np.ndarray, y: np.ndarray) -> list[float]:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.SGD(0.5), loss)
    return model.fit(x, y, epochs=5, batch_size=32, shuffle=False, verbose=0).history["loss"]


def main() -> None:
    focal = lossdsl.compile(FOCAL, alpha=0.25, gamma=2.0)
    print("lossdsl source :", focal.source)
    print("d/dy_pred      :", focal.gradient)
    print("d/dgamma       :", focal.parameter_gradients["gamma"])

    rng = np.random.default_rng(0)
    y_true = (rng.uniform(size=(16, 3)) < 0.3).astype("float32")
    y_pred = rng.uniform(0.01, 0.99, (16, 3)).astype("float32")
    weights = rng.uniform(0, 2, (16,)).astype("float32")
    compare(y_true, y_pred, weights)
    print("values and gradients agree")

    x = rng.normal(size=(256, 2)).astype("float32")
    y = (x[:, :1] + 0.5 * x[:, 1:] > 1.0).astype("float32")  # about 20% positives
    ours = train(focal, x, y)
    theirs = train(HandWrittenFocalLoss(0.25, 2.0), x, y)
    print("training, lossdsl :", " ".join(f"{v:.5f}" for v in ours))
    print("training, by hand :", " ".join(f"{v:.5f}" for v in theirs))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
    print("training curves agree")


if __name__ == "__main__":
    main()
