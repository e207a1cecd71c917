"""A Keras model whose loss receives extra inputs (a mask, a weight map) with the labels.

Keras's ``compile(loss=...)`` gives a loss ``y_true`` of the structure of the
model's outputs: for one output, a dict ``{"y_true": labels, "mask": mask}``
fails in Keras's ``CompileLoss`` ("y_true and y_pred have different
structures") before any loss is called. :class:`LossInputsModel` is a
functional ``keras.Model`` whose ``compute_loss`` hands that dict to the
compiled loss as it is, so a loss compiled with ``inputs=["mask"]`` trains,
evaluates, saves and reloads on every Keras backend. Importing this module
imports Keras.
"""

from __future__ import annotations

from typing import Any

import keras

from lossdsl.errors import DSLConfigError


@keras.saving.register_keras_serializable(package="lossdsl", name="LossInputsModel")
class LossInputsModel(keras.Model):
    """A functional model whose loss gets ``y`` as given: a dict of labels and extra inputs.

    Built like any functional model, ``LossInputsModel(inputs, outputs)``. When
    ``y`` is a dict with a ``"y_true"`` key (``fit(x, {"y_true": labels, "mask": mask})``)
    and ``compile`` was given one loss, that loss is called with the dict whole,
    ``loss(y, y_pred, sample_weight)``, plus the model's own losses (``add_loss``,
    regularizers); the ``metrics`` given to ``compile`` are updated with the labels,
    ``y["y_true"]``, except those compiled with extra inputs, which get the dict too.
    Any other ``y`` takes Keras's usual path.

    Examples:

    >>> import keras, numpy as np, lossdsl
    >>> inputs = keras.Input((4,))
    >>> model = lossdsl.LossInputsModel(inputs, keras.layers.Dense(3)(inputs))
    >>> model.compile("sgd", loss=lossdsl.compile(
    ...     "mean(mask*(y_true - y_pred)^2)/mean(mask)", inputs=["mask"]))
    >>> x, y = np.ones((8, 4)), np.zeros((8, 3))
    >>> mask = np.array([[1.0, 1.0, 0.0]] * 8)
    >>> history = model.fit(x, {"y_true": y, "mask": mask}, epochs=1, verbose=0)
    >>> loss = model.evaluate(x, {"y_true": y, "mask": mask}, verbose=0)
    """

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, loss_weights: Any = None,
                metrics: Any = None, **kwargs: Any) -> None:
        """As ``keras.Model.compile``; metrics with extra inputs are kept apart (they take the dict)."""
        own = [m for m in metrics if getattr(m, "extra_inputs", ())] \
            if isinstance(metrics, (list, tuple)) else []
        rest = [m for m in metrics if m not in own] if own else metrics
        super().compile(optimizer, loss, loss_weights, metrics=rest or None, **kwargs)
        # The dict path below calls the loss itself, so it applies the one output's weight.
        self._inputs_loss_weight = _one_weight(loss_weights)
        self._compile_config.config["metrics"] = metrics  # saved as given
        # Not tracked as attributes (a second compile would keep the first ones): `metrics` lists them.
        self._inputs_metrics = _Untracked(own)

    def compile_from_config(self, config: dict) -> None:
        """Compile again from a saved config (Keras skips a custom ``compile`` otherwise)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)  # its variables, as Keras does

    @property
    def metrics(self) -> list:
        own = getattr(self, "_inputs_metrics", None)
        return [*super().metrics, *(own.items if own is not None else ())]

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None,
                     sample_weight: Any = None, training: bool = True) -> Any:
        if not _labels_dict(y) or not callable(self.loss):  # plain labels, or one per output
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        if isinstance(sample_weight, dict):  # Keras gave it y's structure: the labels' entry
            sample_weight = sample_weight.get("y_true")
        loss = self.loss(y, y_pred, sample_weight)
        weight = getattr(self, "_inputs_loss_weight", None)
        losses = [loss if weight is None else loss * weight]
        losses.extend(self._aggregate_additional_loss(loss) for loss in self.losses)
        return losses[0] if len(losses) == 1 else keras.ops.sum(losses)

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        if not _labels_dict(y):
            return super().compute_metrics(x, y, y_pred, sample_weight)
        if isinstance(sample_weight, dict):
            sample_weight = sample_weight.get("y_true")
        own = getattr(self, "_inputs_metrics", None)
        for metric in own.items if own is not None else ():
            metric.update_state(y, y_pred, sample_weight=sample_weight)
        return super().compute_metrics(x, y["y_true"], y_pred, sample_weight)


def _one_weight(loss_weights: Any) -> float | None:
    """The weight of the model's one loss: ``loss_weights`` as a number, ``[w]`` or ``{name: w}``.

    Raises:
        DSLConfigError: several weights (this model has one loss for its one output).
    """
    if loss_weights is None:
        return None
    values = list(loss_weights.values()) if isinstance(loss_weights, dict) else \
        list(loss_weights) if isinstance(loss_weights, (list, tuple)) else [loss_weights]
    if len(values) != 1:
        raise DSLConfigError(f"LossInputsModel takes one loss weight. Received: {loss_weights!r}.",
                             hint="pass loss_weights=w, or [w], for the one output's loss")
    return float(values[0])


def _labels_dict(y: Any) -> bool:
    """Whether ``y`` is labels with extra inputs, ``{"y_true": ..., "mask": ...}``."""
    return isinstance(y, dict) and "y_true" in y


class _Untracked:
    """Holds objects out of sight of Keras's attribute tracking."""

    def __init__(self, items: list) -> None:
        self.items = items


__all__ = ["LossInputsModel"]
