"""Example 5: a regression loss, regularizer, metric and activity penalty in one model, reloaded.

Data: scikit-learn's bundled diabetes set (442 patients, 10 features; no
download). Every piece the model uses beyond Keras layers is one lossdsl line:

- the loss, a log-cosh regression loss (in a form that does not overflow) plus
  ``lam`` times a pull of the predictions towards the mean target (the
  "regularization factor"),
- a weight regularizer on the hidden kernel (``kernel_regularizer=``),
- a custom metric, the mean absolute error (``metrics=[...]``), checked against
  ``keras.metrics.MeanAbsoluteError``,
- an activity penalty on the hidden activations, added with ``add_loss`` by the
  :class:`lossdsl.ActivityPenalty` layer.

The model is saved with ``model.save`` and reloaded with
``keras.models.load_model`` in safe mode; the script compares predictions,
the loss (with the regularization terms) and the metric before and after.

Run: python examples/regression_save_reload.py
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_diabetes  # noqa: E402

import lossdsl  # noqa: E402

# log(cosh(d)) written as d + softplus(-2d) - log(2), which does not overflow for large d.
LOSS = "lam = 0.05; d = y_pred - y_true; mean(d + softplus(-2*d) - log(2)) + lam*mean(y_pred^2)"
KERNEL_PENALTY = "0.5*alpha*sum(w^2)"
METRIC = "mean(abs(y_true - y_pred))"
ACTIVITY_PENALTY = "beta*mean(a^2)"


def standardized_diabetes() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_diabetes(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean()) / y.std()  # the target's mean is 0: `lam` pulls towards it
    return x.astype("float32"), y.astype("float32")[:, None]


def build_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((10,)),
        keras.layers.Dense(16, activation="relu",
                           kernel_regularizer=lossdsl.regularizer(KERNEL_PENALTY, alpha=1e-3)),
        lossdsl.ActivityPenalty(ACTIVITY_PENALTY, {"beta": 1e-3}, name="activity_penalty"),
        keras.layers.Dense(1),
    ])
    model.compile(keras.optimizers.Adam(0.01), lossdsl.compile(LOSS, lam=0.02),
                  metrics=[lossdsl.metric(METRIC, name="lossdsl_mae"),
                           keras.metrics.MeanAbsoluteError(name="keras_mae")])
    return model


def main() -> None:
    x, y = standardized_diabetes()
    x_train, y_train, x_test, y_test = x[:350], y[:350], x[350:], y[350:]
    model = build_model()
    print("loss             :", LOSS, "with lam = 0.02")
    print("kernel penalty   :", KERNEL_PENALTY,
          "  d/dw =", model.layers[0].kernel_regularizer.gradient)
    print("activity penalty :", ACTIVITY_PENALTY, "  d/da =", model.layers[1].penalty.gradient)
    print("metric           :", METRIC)
    history = model.fit(x_train, y_train, epochs=30, batch_size=32, verbose=0).history
    print(f"training loss {history['loss'][0]:.4f} -> {history['loss'][-1]:.4f} over 30 epochs")
    np.testing.assert_allclose(history["lossdsl_mae"], history["keras_mae"], rtol=1e-5)
    print("lossdsl_mae equals keras_mae in every epoch")

    before = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    predictions = model.predict(x_test, verbose=0)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "regression.keras")
        model.save(path)
        reloaded = keras.models.load_model(path, safe_mode=True)
    after = reloaded.evaluate(x_test, y_test, verbose=0, return_dict=True)
    gap = float(np.max(np.abs(reloaded.predict(x_test, verbose=0) - predictions)))
    print(f"{'test':10} {'loss':>8} {'lossdsl_mae':>12} {'keras_mae':>10}")
    for label, values in (("before", before), ("reloaded", after)):
        print(f"{label:10} {values['loss']:8.5f} {values['lossdsl_mae']:12.5f} "
              f"{values['keras_mae']:10.5f}")
    print(f"max |prediction difference| after reload: {gap:.2e}")
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-6)
    assert gap < 1e-6 and history["loss"][-1] < history["loss"][0]
    print("reloaded model matches")


if __name__ == "__main__":
    main()
