"""Batch statistics under ``tf.distribute``: global across (MultiWorker)MirroredStrategy replicas.

A reduction over the batch axis (``mean(y_pred, axis=0)``) sees the batch a loss is
called with. Under a ``tf.distribute`` strategy with more than one replica, each
replica calls the loss on its own shard (tensorflow #47344). In the replica context
of a :class:`tf.distribute.MirroredStrategy` or a
:class:`tf.distribute.MultiWorkerMirroredStrategy` (:data:`GLOBAL_STRATEGIES`: the same
``ReplicaContext`` collectives, across processes for the latter), the TF runner makes each
batch statistic global with ``ReplicaContext.all_reduce`` (:func:`global_reduction`): a sum
is the all-reduced sum of the shards' sums, a mean the all-reduced sum over the
all-reduced count (shards may be uneven), max/min an all-reduced max/min, logsumexp
an all-reduced sum of ``exp(x - global max)``, and the batch size the all-reduced one.

Gradients: ``all_reduce(SUM)``'s gradient is the all-reduced upstream gradient
(``distribute_lib.ReplicaContext.all_reduce``), so replica r gets
``sum over replicas r' of dL_r'/dS * dS_r/dtheta``; Keras scales each replica's
loss by 1/replicas and sums the replicas' gradients, which is the one-device
gradient of the global statistic. The symbolic mode's backward plan runs through the
same runner, so its batch sums of upstream gradients are all-reduced too. Max/min
are written as ``stop_gradient(global) + all-reduced masked (local - stop_gradient(local))``
so their gradient is a sum as well (an all-reduced MAX would have MAX as gradient).
A Keras loss's value is the global batch's on every replica (:func:`global_loss`), so
``fit``'s reported loss is one device's on uneven shards too. Pair functions compare a
replica's samples with the gathered global batch (:mod:`lossdsl.backends.tensorflow.replica_pairs`).

Refused (:class:`DSLConfigError`): other strategies with more than one replica
(TPUStrategy, ParameterServerStrategy, CentralStorageStrategy: not tested), ``prod`` over
the batch axis, and activity penalties (Keras adds them per replica: with a global statistic
its reported loss is not one device's). A metric computes them globally as a loss does.
Importing this module imports TensorFlow.
"""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf

from lossdsl.errors import DSLConfigError

GLOBAL_KINDS = ("sum", "mean", "max", "min", "logsumexp", "var", "std", "norm")
# MultiWorkerMirroredStrategy's class (CollectiveAllReduceStrategy) is the base of its
# tf.distribute.experimental alias.
GLOBAL_STRATEGIES = (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)
_GLOBAL_NAMES = "tf.distribute.MirroredStrategy or MultiWorkerMirroredStrategy"


def replicas_in_sync() -> int:
    """How many replicas share the batch of the current call (1 outside any strategy)."""
    if not tf.distribute.has_strategy() and tf.distribute.in_cross_replica_context():
        return 1
    context = tf.distribute.get_replica_context()
    strategy = context.strategy if context is not None else tf.distribute.get_strategy()
    return int(strategy.num_replicas_in_sync)


def global_replica_context() -> Any:
    """The replica context whose batch statistics are all-reduced, or None (one replica,
    or a cross-replica call, which sees the tensors it is given)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context


def _strategy_name() -> str:
    strategy = tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"  # its class is CollectiveAllReduceStrategy
    return type(strategy).__name__


def check_batch_statistics(reductions: Sequence[str], source: str,
                           global_statistics: bool = False) -> None:
    """Raise when ``reductions`` (over the batch axis) would run per replica.

    ``global_statistics``: the caller (a Keras loss or metric) computes them across the
    replicas of a MirroredStrategy or MultiWorkerMirroredStrategy; other strategies are still
    refused. A metric's per-sample values then use the global statistics, and Keras sums its
    states over the replicas, so its result is one device's.

    Raises:
        DSLConfigError: the call runs under a strategy with more than one replica
            that lossdsl does not make global.
    """
    replicas = replicas_in_sync()
    if not reductions or replicas <= 1:
        return
    if global_statistics and isinstance(tf.distribute.get_strategy(), GLOBAL_STRATEGIES):
        return  # pair functions gather the batch (lossdsl.backends.tensorflow.replica_pairs)
    if global_statistics:
        unsupported = (f"Global batch statistics across replicas are computed only under "
                       f"{_GLOBAL_NAMES}, not {_strategy_name()} (not tested).")
    else:
        unsupported = ("Global batch statistics across replicas are not supported for activity "
                       "penalties (Keras adds them per replica); a loss or a metric computes them "
                       "globally under MirroredStrategy or MultiWorkerMirroredStrategy.")
    raise DSLConfigError(
        f"The loss {source!r} computes a statistic of the whole batch "
        f"({', '.join(reductions)}), but it runs on {replicas} replicas of "
        f"{_strategy_name()}: each would see only its own shard. {unsupported}",
        hint="train on one replica, or with tf.distribute.MirroredStrategy or "
             "MultiWorkerMirroredStrategy (losses and metrics), or on JAX with "
             "keras.distribution.DataParallel, where the batch is global; or reduce per sample "
             "only (no axis=0)")


def _local_count(value: tf.Tensor, axes: list[int]) -> tf.Tensor:
    sizes = tf.gather(tf.shape(value), axes)
    return tf.cast(tf.reduce_prod(sizes), value.dtype)


def global_count(replica: Any, count: tf.Tensor) -> tf.Tensor:
    """The number of elements over the global batch (``count`` is this shard's)."""
    return replica.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(count))


def _all_max(replica: Any, local: tf.Tensor) -> tf.Tensor:
    """The largest of the replicas' ``local`` (no gradient): ``tf.distribute.ReduceOp`` has
    only SUM and MEAN, so the replicas' values are gathered along a new axis."""
    gathered = replica.all_gather(tf.stop_gradient(local)[tf.newaxis], axis=0)
    return tf.reduce_max(gathered, axis=0)


def loss_scale(replica: Any, y_pred: tf.Tensor, sample_weight: Any, reduction: str) -> tf.Tensor:
    """The factor that makes Keras's per-replica mean a share of the global batch's mean.

    Keras divides each replica's weighted sum by the replica's divisor ``d_r`` (its number
    of values, or for ``mean_with_sample_weight`` its sum of weights), scales it by
    ``1/replicas`` and sums the replicas' gradients. Times ``replicas * d_r / sum_r d_r``
    each replica's loss is its weighted sum over the global divisor: the sum over replicas
    is the one-device loss (uneven shards and unequal weight sums included).
    """
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        local = tf.reduce_sum(tf.cast(sample_weight, y_pred.dtype))
    else:  # values per sample are the same on every replica: the samples' ratio
        local = tf.cast(tf.shape(y_pred)[0], y_pred.dtype)
    total = global_count(replica, local)
    return tf.math.divide_no_nan(local * replica.num_replicas_in_sync, total)


def global_loss(replica: Any, loss: tf.Tensor, y_pred: tf.Tensor, sample_weight: Any,
                reduction: str) -> tf.Tensor:
    """Keras's per-replica mean ``loss`` made this replica's share of the global batch's loss
    (:func:`loss_scale`), valued as the global loss over the replicas (Keras's 1/replicas kept).

    The gradient is the share's: the replicas' gradients sum to one device's. The value is the
    same on every replica: Keras's loss tracker weighs each replica's loss by its shard's size,
    so with uneven shards (a last batch of 5 split 3 and 2) the shares would misreport it.
    """
    share = loss * loss_scale(replica, y_pred, sample_weight, reduction)
    total = replica.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(share))
    return share + tf.stop_gradient(total / replica.num_replicas_in_sync - share)


def global_reduction(replica: Any, kind: str, value: tf.Tensor, axes: list[int]) -> tf.Tensor:
    """``kind`` over ``axes`` (0 among them) of the global batch, keeping the axes."""
    SUM = tf.distribute.ReduceOp.SUM
    if kind not in GLOBAL_KINDS:
        raise DSLConfigError(
            f"{kind}(..., axis=0) cannot be computed over the global batch under "
            f"{_strategy_name()}: only {', '.join(GLOBAL_KINDS)} are all-reduced across replicas.",
            hint="train on one replica, or write the statistic with the supported reductions "
                 "(a product of positive numbers is exp(sum(log(x), axis=0)))")

    def total(x: tf.Tensor) -> tf.Tensor:
        return replica.all_reduce(SUM, tf.reduce_sum(x, axis=axes, keepdims=True))

    def mean(x: tf.Tensor) -> tf.Tensor:
        return total(x) / global_count(replica, _local_count(x, axes))

    if kind == "sum":
        return total(value)
    if kind == "mean":
        return mean(value)
    if kind in ("var", "std"):
        centred = value - mean(value)
        variance = mean(centred * centred)
        return tf.sqrt(variance) if kind == "std" else variance
    if kind == "norm":
        return tf.sqrt(total(value * value))
    if kind in ("max", "min"):
        local = (tf.reduce_max if kind == "max" else tf.reduce_min)(value, axis=axes, keepdims=True)
        best = _all_max(replica, local) if kind == "max" else -_all_max(replica, -local)
        hit = tf.cast(tf.equal(local, best), value.dtype)
        ties = replica.all_reduce(SUM, tf.stop_gradient(hit))
        # The value is `best`; the gradient goes to the replicas holding it, split among them.
        return best + replica.all_reduce(SUM, hit * (local - tf.stop_gradient(local))) / ties
    # logsumexp, stably: the global max (no gradient needed: the identity holds for any shift).
    shift = _all_max(replica, tf.reduce_max(value, axis=axes, keepdims=True))
    shift = tf.where(tf.math.is_finite(shift), shift, tf.zeros_like(shift))
    return tf.math.log(total(tf.exp(value - shift))) + shift


__all__ = ["GLOBAL_KINDS", "GLOBAL_STRATEGIES", "check_batch_statistics", "global_count",
           "global_loss", "loss_scale", "global_reduction", "global_replica_context",
           "replicas_in_sync"]
