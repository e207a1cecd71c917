"""TF functions by name, the TF functions lossdsl defines itself, and the XLA probe.

TensorFlow is imported when a function is first resolved, not when this module is.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any, Callable

Tensor = Any  # tf.Tensor; TF is not imported at module load


@lru_cache(maxsize=None)
def tf_function(dotted: str) -> Callable[..., Tensor]:
    """Resolve a dotted path under ``tensorflow`` (e.g. ``"math.log"``) to the function.

    A path under ``lossdsl.`` names a TF function lossdsl defines itself
    (``"lossdsl.backends.tensorflow.functions.one_hot_last_axis"``).
    """
    if dotted.startswith("lossdsl."):
        module, _, attribute = dotted.rpartition(".")
        return getattr(importlib.import_module(module), attribute)
    value: Any = importlib.import_module("tensorflow")
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def one_hot_last_axis(positions: Tensor) -> Tensor:
    """1 where an element's index along the last axis equals ``positions`` there, else 0.

    ``positions`` has the sample batch's full shape (labels broadcast along the
    classes); the result has its dtype. Used for ``one_hot`` in :data:`lossdsl.ops.OPS`.
    """
    import tensorflow as tf

    index = tf.cast(tf.range(tf.shape(positions)[-1]), positions.dtype)
    return tf.cast(tf.equal(positions, index), positions.dtype)


def in_xla_context() -> bool:
    """Whether TF ops created now are traced for XLA (inside ``tf.function(jit_compile=True)``)."""
    # No public API tells; the private one may move in a later TF, and then the
    # plans simply use the forms that are fastest outside XLA.
    try:
        import tensorflow as tf
        from tensorflow.python.ops import control_flow_util
        in_context = control_flow_util.GraphOrParentsInXlaContext
    except (ImportError, AttributeError):
        return False
    return bool(in_context(tf.compat.v1.get_default_graph()))


__all__ = ["tf_function", "one_hot_last_axis", "in_xla_context"]
