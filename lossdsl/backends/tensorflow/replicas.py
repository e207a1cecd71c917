"""Batch statistics under ``tf.distribute``: refused when the batch is split over replicas.

A reduction over the batch axis (``mean(y_pred, axis=0)``) sees the batch a loss is
called with. Under a ``tf.distribute`` strategy with more than one replica, each
replica calls the loss on its own shard, so the statistic would silently be the
shard's, not the global batch's (tensorflow #47344). Until lossdsl gathers across
replicas, such a loss refuses to run there. Importing this module imports TensorFlow.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from lossdsl.errors import DSLConfigError


def replicas_in_sync() -> int:
    """How many replicas share the batch of the current call (1 outside any strategy)."""
    if not tf.distribute.has_strategy() and tf.distribute.in_cross_replica_context():
        return 1
    context = tf.distribute.get_replica_context()
    strategy = context.strategy if context is not None else tf.distribute.get_strategy()
    return int(strategy.num_replicas_in_sync)


def check_batch_statistics(reductions: Sequence[str], source: str) -> None:
    """Raise when ``reductions`` (over the batch axis) would run per replica.

    Raises:
        DSLConfigError: the call runs under a strategy with more than one replica.
    """
    replicas = replicas_in_sync()
    if reductions and replicas > 1:
        raise DSLConfigError(
            f"The loss {source!r} computes a statistic of the whole batch "
            f"({', '.join(reductions)}), but it runs on {replicas} replicas of "
            f"{type(tf.distribute.get_strategy()).__name__}: each would see only its own shard. "
            "Global batch statistics across replicas are not supported yet.",
            hint="train on one replica (no tf.distribute strategy), or on JAX with "
                 "keras.distribution.DataParallel, where the batch is global; or reduce per "
                 "sample only (no axis=0)")


__all__ = ["check_batch_statistics", "replicas_in_sync"]
