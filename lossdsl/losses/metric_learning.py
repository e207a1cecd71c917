"""Metric-learning losses, each with its citation, as callables.

Each callable compiles its row of :data:`~lossdsl.losses.metric_learning_sources.METRIC_LEARNING`,
with keywords as for the other library losses. They read the whole batch (pairs of
samples): on one replica, under ``tf.distribute.MirroredStrategy`` or
``MultiWorkerMirroredStrategy`` (the pair functions gather the batch; ``npairs`` and ``clip``,
which read a (batch, batch) ``y_pred`` each replica computes from its own shard, are refused
there), or on JAX with ``keras.distribution.DataParallel``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Unpack

from lossdsl.losses.metric_learning_sources import METRIC_LEARNING
from lossdsl.losses.spec import LossSettings

if TYPE_CHECKING:
    from lossdsl.keras.loss import DSLLoss

_ROWS = {spec.name: spec for spec in METRIC_LEARNING}


def _loss(loss: str, /, **keywords: Any) -> "DSLLoss":
    return _ROWS[loss].to_loss(**keywords)


def contrastive(*, margin: float = 1.0, **settings: Unpack[LossSettings]) -> DSLLoss:
    """Contrastive loss of given pairs: y_true 1 for a similar pair, y_pred their distance (TF Addons' contrastive_loss).

    From: Hadsell, Chopra, LeCun. Dimensionality Reduction by Learning an Invariant Mapping.
    CVPR 2006.

    >>> contrastive(margin=2.0).params
    {'margin': 2.0}
    """
    return _loss("contrastive", margin=margin, **settings)


def batch_contrastive(*, margin: float = 1.0, squared: bool = False,
                      **settings: Unpack[LossSettings]) -> DSLLoss:
    """Contrastive loss over every pair of the batch: embeddings y_pred, class ids y_true; per anchor, the mean over the other samples.

    From: Hadsell, Chopra, LeCun. Dimensionality Reduction by Learning an Invariant Mapping.
    CVPR 2006. ``squared=True`` measures squared distances.

    >>> batch_contrastive(margin=0.5).params
    {'margin': 0.5}
    """
    return _loss("batch_contrastive", margin=margin, squared=squared, **settings)


def triplet_hard(*, margin: float = 1.0, squared: bool = False,
                 **settings: Unpack[LossSettings]) -> DSLLoss:
    """Batch-hard triplet loss: per anchor, hardest positive minus hardest negative distance plus the margin (TF Addons' triplet_hard_loss).

    From: Hermans, Beyer, Leibe. In Defense of the Triplet Loss for Person Re-Identification.
    arXiv:1703.07737, 2017. Embeddings ``y_pred``, class ids ``y_true``; ``squared=True`` is
    TF Addons' ``"squared-L2"`` distance.

    >>> triplet_hard(margin=0.2).params
    {'margin': 0.2}
    """
    return _loss("triplet_hard", margin=margin, squared=squared, **settings)


def triplet_semihard(*, margin: float = 1.0, squared: bool = False,
                     **settings: Unpack[LossSettings]) -> DSLLoss:
    """Semi-hard triplet loss: per positive pair, the nearest negative farther than the positive (the farthest negative if none is), hinged at the margin; the mean over the batch's positive pairs (TF Addons' triplet_semihard_loss).

    From: Schroff, Kalenichenko, Philbin. FaceNet: A Unified Embedding for Face Recognition
    and Clustering. CVPR 2015. Embeddings ``y_pred``, class ids ``y_true``; ``squared=True``
    is TF Addons' ``"squared-L2"`` distance. NaN for a batch without a positive pair, as
    TF Addons'.

    >>> triplet_semihard(margin=0.2).params
    {'margin': 0.2}
    """
    return _loss("triplet_semihard", margin=margin, squared=squared, **settings)


def triplet_all(*, margin: float = 1.0, squared: bool = False,
                **settings: Unpack[LossSettings]) -> DSLLoss:
    """Batch-all triplet loss: every valid triplet (anchor, positive, negative) of the batch hinged at the margin, summed and divided by the number of active ones (omoindrot/tensorflow-triplet-loss's batch_all_triplet_loss).

    From: Hermans, Beyer, Leibe. In Defense of the Triplet Loss for Person Re-Identification.
    arXiv:1703.07737, 2017. Embeddings ``y_pred``, class ids ``y_true``; 0 when no triplet is
    active. Memory grows as batch^3 (the triples).

    >>> triplet_all(margin=0.2).params
    {'margin': 0.2}
    """
    return _loss("triplet_all", margin=margin, squared=squared, **settings)


def npairs(**settings: Unpack[LossSettings]) -> DSLLoss:
    """N-pair loss: y_pred the (batch, batch) similarities of anchors to positives, softmax cross-entropy towards the same-label columns (TF Addons' npairs_loss).

    From: Sohn. Improved Deep Metric Learning with Multi-class N-pair Loss Objective.
    NeurIPS 2016.

    >>> npairs().params
    {}
    """
    return _loss("npairs", **settings)


def ntxent(*, temperature: float = 0.07, **settings: Unpack[LossSettings]) -> DSLLoss:
    """NT-Xent (InfoNCE): per positive pair, softmax cross-entropy of its cosine similarity against the anchor's negatives, over the temperature; mean over positive pairs (optax.losses.ntxent; NaN for a batch without one).

    From: Chen, Kornblith, Norouzi, Hinton. A Simple Framework for Contrastive Learning of
    Visual Representations. ICML 2020. Embeddings ``y_pred``; samples with equal ``y_true``
    are positives (SimCLR's two views of an image share a label).

    >>> ntxent(temperature=0.5).params
    {'temperature': 0.5}
    """
    return _loss("ntxent", temperature=temperature, **settings)


def clip(**settings: Unpack[LossSettings]) -> DSLLoss:
    """CLIP's symmetric cross-entropy: y_pred the (batch, batch) image-text logits, matching pairs on the diagonal; the mean of the row-wise and column-wise cross-entropies (y_true is not read).

    From: Radford et al. Learning Transferable Visual Models From Natural Language Supervision.
    ICML 2021.

    >>> clip().params
    {}
    """
    return _loss("clip", **settings)
