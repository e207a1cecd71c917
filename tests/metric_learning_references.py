"""Independent TensorFlow float64 references for metric-learning losses.

Each function is transcribed from the cited library source (or paper) with plain
TF ops, not from the lossdsl source, so a test can take its gradient with
``tf.GradientTape`` w.r.t. the embeddings / distances / logits it was given.
Inputs may be NumPy arrays or TF tensors (cast to float64); integer labels may
have shape [B] or [B, 1]. Every function returns what the cited library returns
(a scalar, except ``contrastive``, which is per pair like TFA's function).

Sources:
  TFA   tensorflow/addons 0.23, tensorflow_addons/losses/{contrastive,triplet,npairs,
        metric_learning}.py
  omoindrot/tensorflow-triplet-loss, model/triplet_loss.py
  optax 0.2.8, optax/losses/_self_supervised.py and _regression.py
  CLIP  Radford et al. 2021, "Learning Transferable Visual Models From Natural
        Language Supervision", Figure 3.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

F64 = tf.float64


def _f64(x) -> tf.Tensor:
    return tf.cast(tf.convert_to_tensor(x), F64)


def _labels(labels) -> tf.Tensor:
    """Integer labels of shape [B] or [B, 1] -> [B]."""
    return tf.reshape(tf.convert_to_tensor(labels), [-1])


def _same_label(labels) -> tf.Tensor:
    """adjacency[i, j] = labels[i] == labels[j] (bool [B, B]; diagonal True)."""
    labels = _labels(labels)
    return tf.equal(labels[:, None], labels[None, :])


def pairwise_distance(embeddings, squared: bool = False) -> tf.Tensor:
    """TFA ``metric_learning.pairwise_distance``, transcribed op for op (in float64).

    d2[i, j] = max(|x_i|^2 + |x_j|^2 - 2 x_i.x_j, 0); error = (d2 <= 0);
    d = d2 if squared else sqrt(d2 + error * 1e-16); d *= (1 - error); d *= (1 - I).
    The 1e-16 keeps sqrt's gradient finite at zero distance; those entries and the
    diagonal are then zeroed, so their gradient is exactly 0.
    """
    x = _f64(embeddings)
    d2 = (tf.reduce_sum(tf.square(x), axis=1, keepdims=True)
          + tf.reduce_sum(tf.square(tf.transpose(x)), axis=0, keepdims=True)
          - 2.0 * tf.matmul(x, tf.transpose(x)))
    d2 = tf.maximum(d2, 0.0)
    error_mask = tf.cast(tf.less_equal(d2, 0.0), F64)
    d = d2 if squared else tf.sqrt(d2 + error_mask * 1e-16)
    d = d * (1.0 - error_mask)
    return d * (1.0 - tf.eye(tf.shape(x)[0], dtype=F64))


def masked_maximum(data, mask, axis: int = 1) -> tf.Tensor:
    """TFA ``triplet._masked_maximum``: max((data - min(data)) * mask) + min(data), keepdims.

    With an all-False mask row this returns that row's minimum (0 for a distance row).
    """
    axis_min = tf.reduce_min(data, axis, keepdims=True)
    return tf.reduce_max((data - axis_min) * tf.cast(mask, F64), axis, keepdims=True) + axis_min


def masked_minimum(data, mask, axis: int = 1) -> tf.Tensor:
    """TFA ``triplet._masked_minimum``: min((data - max(data)) * mask) + max(data), keepdims.

    With an all-False mask row this returns that row's maximum.
    """
    axis_max = tf.reduce_max(data, axis, keepdims=True)
    return tf.reduce_min((data - axis_max) * tf.cast(mask, F64), axis, keepdims=True) + axis_max


def contrastive(pair_labels, distances, margin: float = 1.0) -> tf.Tensor:
    """TFA ``contrastive.contrastive_loss`` (Hadsell, Chopra, LeCun 2006).

    loss_i = y_i * d_i^2 + (1 - y_i) * max(margin - d_i, 0)^2, y_i = 1 for a similar pair.
    Returns the per-pair vector [B] (TFA's function does not reduce; ``ContrastiveLoss``
    then takes Keras's mean). Both inputs are flattened to [B].
    """
    d = tf.reshape(_f64(distances), [-1])
    y = tf.reshape(_f64(pair_labels), [-1])
    return y * tf.square(d) + (1.0 - y) * tf.square(tf.maximum(margin - d, 0.0))


def triplet_batch_hard(labels, embeddings, margin: float = 1.0, squared: bool = False,
                       soft: bool = False) -> tf.Tensor:
    """TFA ``triplet.triplet_hard_loss``, distance_metric "L2" (squared=False) or "squared-L2".

    Per anchor a: P_a = max_{p != a, y_p = y_a} D_ap (``masked_maximum``),
    N_a = min_{y_n != y_a} D_an (``masked_minimum``);
    l_a = max(P_a - N_a + margin, 0), or log1p(exp(P_a - N_a)) if soft (no margin);
    loss = mean_a l_a over all B anchors.
    Empty masks: an anchor with no positive gets P_a = 0 (its row minimum, the zero
    diagonal) and still counts in the mean; one with no negative gets N_a = max_j D_aj.
    """
    d = pairwise_distance(embeddings, squared=squared)
    same = _same_label(labels)
    hard_negatives = masked_minimum(d, tf.logical_not(same))
    mask_positives = tf.cast(same, F64) - tf.eye(tf.shape(d)[0], dtype=F64)
    hard_positives = masked_maximum(d, mask_positives)
    if soft:
        per_anchor = tf.math.log1p(tf.exp(hard_positives - hard_negatives))
    else:
        per_anchor = tf.maximum(hard_positives - hard_negatives + margin, 0.0)
    return tf.reduce_mean(per_anchor)


def triplet_semihard(labels, embeddings, margin: float = 1.0, squared: bool = False) -> tf.Tensor:
    """TFA ``triplet.triplet_semihard_loss`` (FaceNet, Schroff et al. 2015), "L2"/"squared-L2".

    For each positive pair (a, p), p != a, y_p = y_a:
      S_ap = min{D_an : y_n != y_a, D_an > D_ap}  (``masked_minimum`` over row a) if any,
             else max{D_an : y_n != y_a}          (``masked_maximum`` over row a);
      l_ap = max(margin + D_ap - S_ap, 0).
    loss = sum_{(a,p)} l_ap / #positive pairs (ordered pairs, diagonal excluded).
    TFA builds this with a [B*B, B] tile; here the same masked min/max run over a
    [B(a), B(p), B(n)] broadcast, which is the same computation. With no positive
    pair at all the result is 0/0 = NaN, as in TFA.
    """
    d = pairwise_distance(embeddings, squared=squared)
    same = _same_label(labels)
    negative = tf.logical_not(same)
    b = tf.shape(d)[0]
    d_an = tf.broadcast_to(d[:, None, :], [b, b, b])               # [a, p, n] -> D_an
    outside_mask = tf.logical_and(negative[:, None, :], d_an > d[:, :, None])
    negatives_outside = masked_minimum(d_an, outside_mask, axis=2)[..., 0]
    negatives_inside = masked_maximum(d, negative)                 # [a, 1]
    has_outside = tf.reduce_any(outside_mask, axis=2)
    semi_hard = tf.where(has_outside, negatives_outside, negatives_inside)
    mask_positives = tf.cast(same, F64) - tf.eye(b, dtype=F64)
    loss_mat = margin + d - semi_hard
    return (tf.reduce_sum(tf.maximum(loss_mat * mask_positives, 0.0))
            / tf.reduce_sum(mask_positives))


def triplet_batch_all(labels, embeddings, margin: float = 1.0, squared: bool = False,
                      average: str = "positive") -> tf.Tensor:
    """Batch-all triplet loss (Hermans, Beyer, Leibe 2017, "In Defense of the Triplet Loss").

    D = TFA ``pairwise_distance`` (Euclidean; squared Euclidean if squared=True).
    Valid triplets: a, p, n distinct with y_a = y_p != y_n.
    l_apn = max(D_ap - D_an + margin, 0) on valid triplets, 0 elsewhere.
    average="positive": sum l / (#{l_apn > 0} + 1e-16), as omoindrot/tensorflow-triplet-loss
      ``batch_all_triplet_loss`` (which uses squared distances expanded as
      |p|^2 - 2a.p - |n|^2 + 2a.n, equal to squared=True here up to rounding); 0 when no
      triplet is active. Also pytorch-metric-learning TripletMarginLoss's AvgNonZeroReducer.
    average="valid": sum l / #valid triplets (0 when there is none, via divide_no_nan).
    """
    d = pairwise_distance(embeddings, squared=squared)
    same = _same_label(labels)
    b = tf.shape(d)[0]
    not_self = tf.logical_not(tf.eye(b, dtype=tf.bool))
    positive = tf.logical_and(same, not_self)                      # [a, p]
    valid = tf.logical_and(positive[:, :, None], tf.logical_not(same)[:, None, :])
    losses = tf.maximum(tf.cast(valid, F64) * (d[:, :, None] - d[:, None, :] + margin), 0.0)
    if average == "positive":
        count = tf.reduce_sum(tf.cast(losses > 0.0, F64)) + 1e-16
        return tf.reduce_sum(losses) / count
    if average == "valid":
        return tf.math.divide_no_nan(tf.reduce_sum(losses), tf.reduce_sum(tf.cast(valid, F64)))
    raise ValueError(f"average must be 'positive' or 'valid', got {average!r}")


def npairs(labels, similarity) -> tf.Tensor:
    """TFA ``npairs.npairs_loss`` (Sohn 2016); ``similarity`` is the [B, B] logit matrix.

    T_ij = [y_i = y_j] / sum_k [y_i = y_k] (each row sums to 1; the diagonal counts);
    loss = mean_i ( -sum_j T_ij log softmax(S_i)_j ).
    (TFA itself expects labels of shape [B]; [B, 1] is flattened here.)
    """
    s = _f64(similarity)
    targets = tf.cast(_same_label(labels), F64)
    targets = targets / tf.reduce_sum(targets, axis=1, keepdims=True)
    return tf.reduce_mean(-tf.reduce_sum(targets * tf.nn.log_softmax(s, axis=1), axis=1))


def ntxent(labels, embeddings, temperature: float = 0.07) -> tf.Tensor:
    """optax ``losses.ntxent`` (optax/losses/_self_supervised.py; SimCLR, Chen et al. 2020).

    s_ij = cos(e_i, e_j) / temperature, each norm = sqrt(max(|e|^2, eps_float64))
    (optax ``cosine_similarity(..., epsilon=finfo.eps)``).
    For every ordered positive pair (i, j), j != i, y_j = y_i:
      l_ij = -s_ij + log( exp(s_ij) + sum_{k: y_k != y_i} exp(s_ik) )
    -- the denominator holds the pair's own positive and all of i's negatives, never
    the other positives nor self. loss = sum l_ij / #positive pairs (NaN if none).
    optax subtracts the stop-gradient row max of the masked logits; so does this.
    Note the argument order: optax's is ``ntxent(embeddings, labels)``.
    """
    x = _f64(embeddings)
    eps = np.finfo(np.float64).eps
    unit = x / tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(x), axis=1, keepdims=True), eps))
    s = tf.matmul(unit, unit, transpose_b=True) / temperature
    same = _same_label(labels)
    negative = tf.logical_not(same)
    positive = tf.logical_and(same, tf.logical_not(tf.eye(tf.shape(x)[0], dtype=tf.bool)))
    others = tf.logical_or(positive, negative)                     # every k != i
    row_max = tf.stop_gradient(tf.reduce_max(
        tf.where(others, s, tf.constant(-np.inf, F64)), axis=1, keepdims=True))
    shifted = tf.where(others, s - row_max, 0.0)                   # <= 0; self -> 0 (unused)
    neg_sum = tf.reduce_sum(tf.where(negative, tf.exp(shifted), 0.0), axis=1, keepdims=True)
    log_softmax = shifted - tf.math.log(neg_sum + tf.exp(shifted))
    return (-tf.reduce_sum(tf.where(positive, log_softmax, 0.0))
            / tf.reduce_sum(tf.cast(positive, F64)))


def clip_loss(logits) -> tf.Tensor:
    """CLIP's symmetric cross-entropy (Radford et al. 2021, Figure 3 pseudo-code).

    logits [B, B] (image i vs text j), labels = arange(B):
      loss_i = cross_entropy(logits, labels, axis=0); loss_t = ... axis=1;
      loss = (loss_i + loss_t) / 2, each CE averaged over the batch:
      = (mean_i -log softmax_row(L)_ii + mean_j -log softmax_col(L)_jj) / 2.
    """
    z = _f64(logits)
    rows = -tf.reduce_mean(tf.linalg.diag_part(tf.nn.log_softmax(z, axis=1)))
    cols = -tf.reduce_mean(tf.linalg.diag_part(tf.nn.log_softmax(z, axis=0)))
    return (rows + cols) / 2.0
