"""Pair functions under ``tf.distribute``: each replica's samples against the global batch.

Under a :class:`tf.distribute.MirroredStrategy` or ``MultiWorkerMirroredStrategy`` with
more than one replica, a replica holds a shard of the batch: its rows are its own samples,
and the columns the pair functions compare them with are the whole batch, gathered from
every replica in replica order (``ReplicaContext.all_gather``; shards may be uneven). A
replica's own sample i is column ``offset + i``, where ``offset`` counts the samples of the
replicas before it (:mod:`lossdsl.backends.tensorflow.pairs` takes ``columns`` and ``offset``).

Gradients: ``all_gather`` is differentiable, its gradient the all-reduced upstream sliced to
the replica's shard, so a tape (``gradient="autodiff"``) gives each replica the gradient of
every replica's loss w.r.t. its own samples. The symbolic backward pass does the same by
hand (:func:`global_pair_vjp`): the rows' part is the replica's, the columns' part is
all-reduced and sliced. Importing this module imports TensorFlow.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from lossdsl.analysis.backward import UPSTREAM
from lossdsl.backends.tensorflow import pairs
from lossdsl.backends.tensorflow.replicas import replicas_in_sync
from lossdsl.errors import DSLConfigError


def _gathered(replica: Any, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The global batch of ``x``'s vectors (replica order) and where this replica's shard
    starts in it: one all-gather, each vector tagged with its replica's index (collectives
    of several types in one step can be issued in a different order on each replica)."""
    vectors = tf.reshape(x, tf.stack([tf.shape(x)[0], -1]))
    index = tf.cast(replica.replica_id_in_sync_group, x.dtype)
    tagged = tf.concat([vectors, tf.fill(tf.stack([tf.shape(x)[0], 1]), index)], axis=1)
    gathered = replica.all_gather(tagged, axis=0)
    before = tf.reduce_sum(tf.cast(gathered[:, -1] < index, tf.int32))
    return gathered[:, :-1], before


def _sizes_only(x: tf.Tensor) -> tf.Tensor:
    """A column of zeros, one per sample of ``x``: what to gather when only the sizes count."""
    return tf.zeros(tf.stack([tf.shape(x)[0], 1]), dtype=x.dtype)


def global_pair(replica: Any, kind: str, x: tf.Tensor) -> tf.Tensor:
    """``kind(x)`` of this replica's samples (rows) against the global batch (columns)."""
    if kind == "pair_self":  # only the sizes count
        x = _sizes_only(x)
    columns, offset = _gathered(replica, x)
    return getattr(pairs, kind)(x, columns, offset)


def global_pair_vjp(replica: Any, kind: str, g: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """d (sum over every replica of ``g`` * ``kind``) / d this replica's ``x``, at its shape.

    A sample is a row on its own replica and a column on every replica: the columns'
    gradients are summed over the replicas, and this replica takes its shard's.
    """
    columns, offset = _gathered(replica, tf.stop_gradient(x))
    rows, by_column = pairs.pair_vjp_sides(kind, g, x, columns, offset)
    by_column = replica.all_reduce(tf.distribute.ReduceOp.SUM, by_column)
    mine = by_column[offset:offset + tf.shape(rows)[0]]
    return tf.reshape(rows + mine, tf.shape(x))


def refuse_shard_matrices(direct: dict[str, tf.Tensor]) -> None:
    """Refuse an input read outside pair functions that is more than one number per sample:
    a (batch, batch) matrix a model computes is its replica's shard against the shard, and
    nothing else of more than one number per sample fits the gathered rows."""
    for name, tensor in direct.items():
        if name == UPSTREAM.name:  # a gradient's upstream, at the per-sample output's shape
            continue
        if tensor.shape.rank is not None and tensor.shape.rank >= 2 and tensor.shape[-1] not in (1, None):
            raise DSLConfigError(
                f"`{name}` has shape {tensor.shape} and is read next to pair functions, under "
                f"{replicas_in_sync()} replicas: pair functions gather the global batch, so an "
                "input read directly must be one number per sample; a (batch, batch) input is "
                "computed by each replica from its own shard.",
                hint="compute the similarities inside the loss from embeddings "
                     "(pair_dot(y_pred)), or train on one replica")


def global_batch_size(replica: Any, x: tf.Tensor) -> tf.Tensor:
    """The number of samples of the global batch (``x`` is this replica's shard)."""
    return tf.shape(_gathered(replica, _sizes_only(x))[0])[0]


__all__ = ["global_pair", "global_pair_vjp", "refuse_shard_matrices", "global_batch_size"]
