"""A batch as the plans take it: ``y_true`` cast to ``y_pred``'s dtype, ranks aligned as Keras's losses do."""

from __future__ import annotations

import keras

from lossdsl.backends.keras_ops.functions import Tensor
from lossdsl.backends.labels import align_extra_inputs


def align_ranks(y_true: Tensor, y_pred: Tensor) -> tuple[Tensor, Tensor]:
    """Make the ranks equal as Keras's built-ins do: drop a trailing 1, else add axes.

    ``y_true`` of shape ``(batch,)`` against ``y_pred`` of shape ``(batch, 1)``
    becomes ``(batch, 1)``; labels ``(batch,)`` against ``(batch, classes)``
    become ``(batch, 1)`` and broadcast along the classes.
    """
    ops = keras.ops
    true_rank, pred_rank = len(y_true.shape), len(y_pred.shape)
    if true_rank == pred_rank + 1 and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    elif pred_rank == true_rank + 1 and y_pred.shape[-1] == 1:
        y_pred = ops.squeeze(y_pred, -1)
    while len(y_true.shape) < len(y_pred.shape):
        y_true = ops.expand_dims(y_true, -1)
    while len(y_pred.shape) < len(y_true.shape):
        y_pred = ops.expand_dims(y_pred, -1)
    return y_true, y_pred


def align_labels(labels: dict, y_pred: Tensor) -> tuple[dict, Tensor]:
    """``y_true`` and ``y_pred`` aligned as by :func:`align_ranks`, then each extra input
    brought to ``y_pred``'s rank (:func:`lossdsl.backends.labels.align_extra_inputs`)."""
    y_true, y_pred = align_ranks(labels["y_true"], y_pred)
    return align_extra_inputs(labels, y_true, y_pred, keras.ops), y_pred


def batch_inputs(y_true: Tensor | dict, y_pred: Tensor) -> tuple[Tensor | dict, Tensor]:
    """A batch as the plans take it: ``y_true`` cast to ``y_pred``'s dtype, ranks aligned.

    ``y_true`` may be a dict of ``y_true`` and extra inputs (:mod:`lossdsl.backends.labels`).
    """
    y_pred = keras.ops.convert_to_tensor(y_pred)
    if type(y_true) is dict:
        return align_labels({name: _cast(value, y_pred.dtype) for name, value in y_true.items()},
                            y_pred)
    # Keras's Loss.__call__ has converted both already: an eager cast to the same dtype
    # would still cost a dispatch per call on PyTorch.
    if getattr(y_true, "dtype", None) != y_pred.dtype:
        y_true = keras.ops.cast(y_true, y_pred.dtype)
    return align_ranks(y_true, y_pred)


def _cast(value: Tensor, dtype: object) -> Tensor:
    value = keras.ops.convert_to_tensor(value)
    return value if value.dtype == dtype else keras.ops.cast(value, dtype)


__all__ = ["align_ranks", "align_labels", "batch_inputs"]
