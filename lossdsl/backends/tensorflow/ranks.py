"""A batch as the plans take it: ``y_true`` cast to ``y_pred``'s dtype, ranks aligned as Keras's losses do."""

from __future__ import annotations

import tensorflow as tf

from lossdsl.backends.labels import align_extra_inputs


def align_ranks(y_true: tf.Tensor, y_pred: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Make the ranks equal as Keras's built-ins do: drop a trailing 1, else add axes.

    ``y_true`` of shape ``(batch,)`` against ``y_pred`` of shape ``(batch, 1)``
    becomes ``(batch, 1)``; labels ``(batch,)`` against ``(batch, classes)``
    become ``(batch, 1)`` and broadcast along the classes.
    """
    true_rank, pred_rank = y_true.shape.rank, y_pred.shape.rank
    if true_rank == pred_rank + 1 and y_true.shape[-1] == 1:
        y_true = tf.squeeze(y_true, -1)
    elif pred_rank == true_rank + 1 and y_pred.shape[-1] == 1:
        y_pred = tf.squeeze(y_pred, -1)
    while y_true.shape.rank < y_pred.shape.rank:
        y_true = tf.expand_dims(y_true, -1)
    while y_pred.shape.rank < y_true.shape.rank:
        y_pred = tf.expand_dims(y_pred, -1)
    return y_true, y_pred


def align_labels(labels: dict, y_pred: tf.Tensor) -> tuple[dict, tf.Tensor]:
    """``y_true`` and ``y_pred`` aligned as by :func:`align_ranks`, then each extra input
    brought to ``y_pred``'s rank (:func:`lossdsl.backends.labels.align_extra_inputs`)."""
    y_true, y_pred = align_ranks(labels["y_true"], y_pred)
    return align_extra_inputs(labels, y_true, y_pred, tf), y_pred


def batch_inputs(y_true: tf.Tensor | dict, y_pred: tf.Tensor) -> tuple[tf.Tensor | dict, tf.Tensor]:
    """A batch as the plans take it: ``y_true`` cast to ``y_pred``'s dtype, ranks aligned.

    ``y_true`` may be a dict of ``y_true`` and extra inputs (:mod:`lossdsl.backends.labels`).
    """
    y_pred = tf.convert_to_tensor(y_pred)
    if type(y_true) is dict:
        return align_labels({name: tf.cast(value, y_pred.dtype) for name, value in y_true.items()},
                            y_pred)
    return align_ranks(tf.cast(y_true, y_pred.dtype), y_pred)


__all__ = ["align_ranks", "align_labels", "batch_inputs"]
