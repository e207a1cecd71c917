"""The pair functions on TensorFlow (rows of kind ``pairwise``), and their backward pass.

Each takes one input as given, ``(batch, ...)``, each sample's elements flattened to
one vector, and returns ``(batch, batch)``: row i holds sample i against every sample j
(against ``columns``, the global batch under ``tf.distribute``, where given: then row i's
own sample is column ``offset + i``).
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


def _sides(x: Tensor, columns: Tensor | None) -> tuple[Tensor, Tensor]:
    """The rows' vectors and the columns' (the same samples unless ``columns`` is given: the
    whole batch gathered from every replica, :mod:`lossdsl.backends.tensorflow.replicas`)."""
    v = _vectors(x)
    return v, (v if columns is None else _vectors(columns))


def _self_mask(v: Tensor, c: Tensor, offset: Tensor | None) -> Tensor:
    """1 where column j is row i's own sample: the diagonal, shifted by the rows' ``offset``
    among the columns."""
    import tensorflow as tf
    if offset is None:
        return tf.eye(tf.shape(v)[0], dtype=v.dtype)
    return tf.one_hot(offset + tf.range(tf.shape(v)[0]), tf.shape(c)[0], dtype=v.dtype)


def _sqdist_parts(x: Tensor, columns: Tensor | None = None, offset: Tensor | None = None
                  ) -> tuple[Tensor, Tensor]:
    """The squared distances, and where their gradient flows (off the diagonal, not clipped)."""
    import tensorflow as tf
    v, c = _sides(x, columns)
    raw = tf.reduce_sum(v * v, axis=1, keepdims=True) + \
        tf.transpose(tf.reduce_sum(c * c, axis=1, keepdims=True)) - 2.0 * tf.matmul(v, c, transpose_b=True)
    off_diagonal = 1.0 - _self_mask(v, c, offset)
    flows = tf.cast(raw >= 0.0, v.dtype) * off_diagonal
    return tf.maximum(raw, 0.0) * off_diagonal, flows


def _unit(v: Tensor) -> tuple[Tensor, Tensor]:
    """``v`` l2-normalised as tf.math.l2_normalize, and the norm it was divided by."""
    import tensorflow as tf
    norm = tf.sqrt(tf.maximum(tf.reduce_sum(v * v, axis=1, keepdims=True), NORM_FLOOR))
    return v / norm, norm


def pair_dot(x: Tensor, columns: Tensor | None = None, offset: Tensor | None = None) -> Tensor:
    import tensorflow as tf
    v, c = _sides(x, columns)
    return tf.matmul(v, c, transpose_b=True)


def pair_cos(x: Tensor, columns: Tensor | None = None, offset: Tensor | None = None) -> Tensor:
    import tensorflow as tf
    v, c = _sides(x, columns)
    return tf.matmul(_unit(v)[0], _unit(c)[0], transpose_b=True)


def pair_sqdist(x: Tensor, columns: Tensor | None = None, offset: Tensor | None = None) -> Tensor:
    return _sqdist_parts(x, columns, offset)[0]


def pair_dist(x: Tensor, columns: Tensor | None = None, offset: Tensor | None = None) -> Tensor:
    import tensorflow as tf
    squared = pair_sqdist(x, columns, offset)
    positive = tf.cast(squared > DISTANCE_FLOOR, squared.dtype)
    return tf.sqrt(tf.maximum(squared, DISTANCE_FLOOR)) * positive


def pair_eq(x: Tensor, columns: Tensor | None = None, offset: Tensor | None = None) -> Tensor:
    import tensorflow as tf
    v, c = _sides(tf.stop_gradient(x), None if columns is None else tf.stop_gradient(columns))
    equal = tf.reduce_all(tf.equal(v[:, tf.newaxis, :], c[tf.newaxis, :, :]), axis=-1)
    return tf.cast(equal, x.dtype)


def pair_self(like: Tensor, columns: Tensor | None = None, offset: Tensor | None = None) -> Tensor:
    """The diagonal, for a batch of ``like``'s size (the runner passes an input)."""
    import tensorflow as tf
    v, c = _sides(tf.stop_gradient(like), columns)
    return _self_mask(v, c, offset)


def pair_vjp(kind: str, g: Tensor, x: Tensor) -> Tensor:
    """d (sum of ``g`` * ``kind(x)``) / d ``x``, at ``x``'s shape: sample i is a row and a
    column, so it is the sum of :func:`pair_vjp_sides`."""
    import tensorflow as tf
    rows, columns = pair_vjp_sides(kind, g, x)
    return tf.reshape(rows + columns, tf.shape(x))


def pair_vjp_sides(kind: str, g: Tensor, x: Tensor, columns: Tensor | None = None,
                   offset: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """d (sum of ``g`` * ``kind(x, columns)``) / d the rows' and / d the columns' vectors.

    ``pair_dot``: ``g c`` and ``g^T v``; ``pair_sqdist``: ``2 (rowsum(g) v - g c)`` and
    ``2 (colsum(g) c - g^T v)`` where the distance is differentiable; ``pair_dist``: those of
    ``g / (2 d)`` where ``d > 0``; ``pair_cos``: the dot's through ``v / |v|`` on each side.
    ``pair_eq`` and ``pair_self``: 0.
    """
    import tensorflow as tf
    v, c = _sides(x, columns)
    if kind in ("pair_eq", "pair_self"):
        return tf.zeros_like(v), tf.zeros_like(c)
    if kind == "pair_dist":
        g = tf.math.divide_no_nan(g, 2.0 * pair_dist(x, columns, offset))
        kind = "pair_sqdist"
    if kind == "pair_sqdist":
        g = g * _sqdist_parts(x, columns, offset)[1]
        return (2.0 * (tf.reduce_sum(g, axis=1, keepdims=True) * v - tf.matmul(g, c)),
                2.0 * (tf.transpose(tf.reduce_sum(g, axis=0, keepdims=True)) * c
                       - tf.matmul(g, v, transpose_a=True)))
    if kind == "pair_dot":
        return tf.matmul(g, c), tf.matmul(g, v, transpose_a=True)
    (u, v_norm), (w, c_norm) = _unit(v), _unit(c)  # pair_cos: through v / max(|v|, 1e-6)
    return _through_unit(tf.matmul(g, w), u, v, v_norm), \
        _through_unit(tf.matmul(g, u, transpose_a=True), w, c, c_norm)


def _through_unit(grad_u: Tensor, u: Tensor, v: Tensor, norm: Tensor) -> Tensor:
    """A gradient w.r.t. ``u = v / norm`` (tf.math.l2_normalize) as one w.r.t. ``v``."""
    import tensorflow as tf
    inside = tf.cast(tf.reduce_sum(v * v, axis=1, keepdims=True) >= NORM_FLOOR, v.dtype)
    return (grad_u - inside * u * tf.reduce_sum(grad_u * u, axis=1, keepdims=True)) / norm


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


def pair_rows(tf: Any, inputs: Any, rows: int = 1, columns: Tensor | None = None) -> Tensor:
    """A (batch, batch) stand-in ((batch, batch, batch) over triples) that gives a plan
    with pair functions its full shape; ``columns``: the global batch's size under
    ``tf.distribute`` (the rows are this replica's samples)."""
    first = next(iter(inputs.values()))
    size = tf.shape(first)[0]
    return tf.zeros(tf.stack([size] + [size if columns is None else columns] * rows),
                    dtype=first.dtype)


__all__ = ["pair_dot", "pair_cos", "pair_sqdist", "pair_dist", "pair_eq", "pair_self", "pair_vjp",
           "pair_vjp_sides",
           "pair_rows", "assert_fits_pair_rows"]
