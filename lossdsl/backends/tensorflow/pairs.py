"""The pair functions on TensorFlow (rows of kind ``pairwise``), and their backward pass.

Each takes one input as given, ``(batch, ...)``, each sample's elements flattened to
one vector, and returns ``(batch, batch)``: row i holds sample i against every sample j.
:func:`pair_vjp` is the derived backward pass the symbolic stage names
(:class:`lossdsl.symbolic.reductions.Pair`): the gradient w.r.t. the input, given the gradient
``g`` w.r.t. the pair matrix. Written with TF ops only, so that the exporter can copy
them into a module (``lossdsl.backends.text``). TensorFlow is imported when one runs.
"""

from __future__ import annotations

from typing import Any

Tensor = Any

NORM_FLOOR = 1e-12  # squared norms below it count as it: tf.math.l2_normalize's epsilon
DISTANCE_FLOOR = 1e-16  # TF Addons' pairwise_distance: no gradient through sqrt at 0


def _vectors(x: Tensor) -> Tensor:
    import tensorflow as tf
    return tf.reshape(x, tf.stack([tf.shape(x)[0], -1]))


def _gram(v: Tensor) -> Tensor:
    import tensorflow as tf
    return tf.matmul(v, v, transpose_b=True)


def _sqdist_parts(x: Tensor) -> tuple[Tensor, Tensor]:
    """The squared distances, and where their gradient flows (off the diagonal, not clipped)."""
    import tensorflow as tf
    v = _vectors(x)
    squares = tf.reduce_sum(v * v, axis=1, keepdims=True)
    raw = squares + tf.transpose(squares) - 2.0 * _gram(v)
    off_diagonal = 1.0 - tf.eye(tf.shape(v)[0], dtype=v.dtype)
    flows = tf.cast(raw >= 0.0, v.dtype) * off_diagonal
    return tf.maximum(raw, 0.0) * off_diagonal, flows


def pair_dot(x: Tensor) -> Tensor:
    return _gram(_vectors(x))


def pair_cos(x: Tensor) -> Tensor:
    import tensorflow as tf
    return _gram(tf.math.l2_normalize(_vectors(x), axis=1, epsilon=NORM_FLOOR))


def pair_sqdist(x: Tensor) -> Tensor:
    return _sqdist_parts(x)[0]


def pair_dist(x: Tensor) -> Tensor:
    import tensorflow as tf
    squared = pair_sqdist(x)
    positive = tf.cast(squared > DISTANCE_FLOOR, squared.dtype)
    return tf.sqrt(tf.maximum(squared, DISTANCE_FLOOR)) * positive


def pair_eq(x: Tensor) -> Tensor:
    import tensorflow as tf
    v = tf.stop_gradient(_vectors(x))
    equal = tf.reduce_all(tf.equal(v[:, tf.newaxis, :], v[tf.newaxis, :, :]), axis=-1)
    return tf.cast(equal, x.dtype)


def pair_self(like: Tensor) -> Tensor:
    """The diagonal, for a batch of ``like``'s size (the runner passes an input)."""
    import tensorflow as tf
    return tf.eye(tf.shape(like)[0], dtype=like.dtype)


def pair_vjp(kind: str, g: Tensor, x: Tensor) -> Tensor:
    """d (sum of ``g`` * ``kind(x)``) / d ``x``, at ``x``'s shape.

    With ``s = g + g^T`` (sample i appears as the row and as the column):
    ``pair_dot``: ``s v``; ``pair_sqdist``: ``2 (rowsum(s) v - s v)`` where the distance
    is differentiable; ``pair_dist``: that of ``g / (2 d)`` where ``d > 0``;
    ``pair_cos``: the dot's through ``v / |v|``. ``pair_eq`` and ``pair_self``: 0.
    """
    import tensorflow as tf
    v = _vectors(x)
    if kind in ("pair_eq", "pair_self"):
        return tf.zeros_like(x)
    if kind == "pair_dist":
        distance = pair_dist(x)
        g = tf.math.divide_no_nan(g, 2.0 * distance)
        kind = "pair_sqdist"
    if kind == "pair_sqdist":
        g = g * _sqdist_parts(x)[1]
    both = g + tf.transpose(g)
    if kind == "pair_sqdist":
        grad = 2.0 * (tf.reduce_sum(both, axis=1, keepdims=True) * v - tf.matmul(both, v))
    elif kind == "pair_dot":
        grad = tf.matmul(both, v)
    else:  # pair_cos: through u = v / max(|v|, 1e-6)
        norm = tf.sqrt(tf.maximum(tf.reduce_sum(v * v, axis=1, keepdims=True), NORM_FLOOR))
        u = v / norm
        grad_u = tf.matmul(both, u)
        inside = tf.cast(tf.reduce_sum(v * v, axis=1, keepdims=True) >= NORM_FLOOR, v.dtype)
        grad = (grad_u - inside * u * tf.reduce_sum(grad_u * u, axis=1, keepdims=True)) / norm
    return tf.reshape(grad, tf.shape(x))


def assert_fits_pair_rows(tf: Any, name: str, tensor: Tensor, rows: int = 1) -> Tensor:
    """``tensor`` (an input read next to pair rows), once a last axis that is not 1 is checked
    to be the batch size (next to a triple's rows: to be 1), when that size is unknown
    before running (graphs)."""
    batch, last = tensor.shape[0], tensor.shape[-1]
    if tensor.shape.rank == 1 or last == 1 or (batch is not None and last is not None):
        return tensor  # known: lossdsl.backends.interpret.check_pair_shapes checked it
    shape = tf.shape(tensor)
    fits = tf.equal(shape[-1], 1) if rows == 2 else \
        tf.logical_or(tf.equal(shape[-1], 1), tf.equal(shape[-1], shape[0]))
    check = tf.debugging.Assert(fits, [
        f"`{name}`, read next to pair functions, needs a last axis of 1"
        f"{'' if rows == 2 else ' or the batch size'}; its shape is", shape])
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def pair_rows(tf: Any, inputs: Any, rows: int = 1) -> Tensor:
    """A (batch, batch) stand-in ((batch, batch, batch) over triples) that gives a plan
    with pair functions its full shape."""
    first = next(iter(inputs.values()))
    size = tf.shape(first)[0]
    return tf.zeros(tf.stack([size] * (1 + rows)), dtype=first.dtype)


__all__ = ["pair_dot", "pair_cos", "pair_sqdist", "pair_dist", "pair_eq", "pair_self", "pair_vjp",
           "pair_rows", "assert_fits_pair_rows"]
