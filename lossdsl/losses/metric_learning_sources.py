"""The library rows of the metric-learning losses: :data:`METRIC_LEARNING`, each with its citation.

They compare the samples of a batch with each other through the pair functions
(``pair_dist(y_pred)``, ``pair_eq(y_true)``...): each sample gets a row over the batch,
and the usual reductions over ``axis=-1`` pick, mask and normalise that row. The triplet
losses over triples (a, p, n) put the positive along ``axis=-2`` (``pair_dist(y_pred, axis=-2)``). Labels
``y_true`` are class ids (shape ``(batch,)`` or ``(batch, 1)``) or one-hot rows: two
samples are a positive pair where their label rows are equal. Each source follows the
code its docs name (TF Addons, optax, the CLIP paper's pseudo-code); the tests compare
each with a transcription of that code (``tests/metric_learning_references.py``).

    >>> {spec.name: spec.params for spec in METRIC_LEARNING}["triplet_hard"]
    {'margin': 1.0}
"""

from __future__ import annotations

from lossdsl.losses.spec import LossSpec, fixed


def _distance(squared: bool) -> str:
    """The pair function of the losses' ``squared`` option (TF Addons' "squared-L2" or "L2")."""
    return "pair_sqdist" if squared else "pair_dist"


def _triplet_hard(squared: bool = False) -> str:
    distance = _distance(squared)
    # TF Addons' masked maximum/minimum: the hardest positive (0 for an anchor without one,
    # its own distance) and the hardest negative (the row's largest distance without one).
    return (f"margin = 1; d = {distance}(y_pred); same = pair_eq(y_true); "
            "hardest_positive = max(where(same - pair_self() > 0, d, 0), axis=-1); "
            "hardest_negative = min(where(same > 0, max(d, axis=-1), d), axis=-1); "
            "relu(hardest_positive - hardest_negative + margin)")


def _triplet_semihard(squared: bool = False) -> str:
    distance = _distance(squared)
    # Over the triples (a, p, n): dp = d(a, p) along axis -2, dn = d(a, n) along axis -1.
    # TF Addons' choice of negative for each positive pair: the nearest one farther than the
    # positive, else (none is) the farthest one; its masked minimum and maximum, as above.
    return (f"margin = 1; dp = {distance}(y_pred, axis=-2); dn = {distance}(y_pred); "
            "negative = 1 - pair_eq(y_true); positive = pair_eq(y_true, axis=-2) - pair_self(axis=-2); "
            "beyond = max(where(dn > dp, negative, 0), axis=-1); "
            "nearest_beyond = min(where(dn > dp and negative > 0, dn, max(dn, axis=-1)), axis=-1); "
            "farthest = max(where(negative > 0, dn, min(dn, axis=-1)), axis=-1); "
            "semi_hard = where(beyond > 0, nearest_beyond, farthest); "
            "sum(positive*relu(margin + dp - semi_hard), axis=-2)"
            "*sum(1, axis=0)/sum(positive, axis=(0, -2))")


def _triplet_all(squared: bool = False) -> str:
    distance = _distance(squared)
    # Over the triples (a, p, n), the valid ones (p a positive, n a negative of a); the sum
    # over the batch divided by the number of active triplets (a positive loss).
    return (f"margin = 1; dp = {distance}(y_pred, axis=-2); dn = {distance}(y_pred); "
            "valid = (pair_eq(y_true, axis=-2) - pair_self(axis=-2))*(1 - pair_eq(y_true)); "
            "l = valid*relu(dp - dn + margin); "
            "sum(l, axis=(-2, -1))*sum(1, axis=0)/(sum(where(l > 0, 1, 0), axis=(0, -2, -1)) + 1e-16)")


def _batch_contrastive(squared: bool = False) -> str:
    distance = _distance(squared)
    return (f"margin = 1; d = {distance}(y_pred); same = pair_eq(y_true); "
            "others = 1 - pair_self(); "
            "sum(others*(same*d^2 + (1 - same)*relu(margin - d)^2), axis=-1)/(sum(1, axis=-1) - 1)")


METRIC_LEARNING: tuple[LossSpec, ...] = (
    LossSpec("contrastive", fixed(
        "margin = 1; mean(y_true*y_pred^2 + (1 - y_true)*relu(margin - y_pred)^2)"),
        "contrastive loss of given pairs: y_true 1 for a similar pair, y_pred their distance "
        "(TF Addons' contrastive_loss)",
        citation="Hadsell, Chopra, LeCun. Dimensionality Reduction by Learning an Invariant "
                 "Mapping. CVPR 2006"),
    LossSpec("batch_contrastive", _batch_contrastive,
             "contrastive loss over every pair of the batch: embeddings y_pred, class ids "
             "y_true; per anchor, the mean over the other samples",
             options={"squared": False},
             citation="Hadsell, Chopra, LeCun. Dimensionality Reduction by Learning an Invariant "
                      "Mapping. CVPR 2006"),
    LossSpec("triplet_hard", _triplet_hard,
             "batch-hard triplet loss: per anchor, hardest positive minus hardest negative "
             "distance plus the margin (TF Addons' triplet_hard_loss)", options={"squared": False},
             citation="Hermans, Beyer, Leibe. In Defense of the Triplet Loss for Person "
                      "Re-Identification. arXiv:1703.07737, 2017"),
    LossSpec("triplet_semihard", _triplet_semihard,
             "semi-hard triplet loss: per positive pair, the nearest negative farther than "
             "the positive (the farthest negative if none is), hinged at the margin; the mean "
             "over the batch's positive pairs (TF Addons' triplet_semihard_loss)",
             options={"squared": False},
             citation="Schroff, Kalenichenko, Philbin. FaceNet: A Unified Embedding for Face "
                      "Recognition and Clustering. CVPR 2015"),
    LossSpec("triplet_all", _triplet_all,
             "batch-all triplet loss: every valid triplet (anchor, positive, negative) of the "
             "batch hinged at the margin, summed and divided by the number of active ones "
             "(omoindrot/tensorflow-triplet-loss's batch_all_triplet_loss)",
             options={"squared": False},
             citation="Hermans, Beyer, Leibe. In Defense of the Triplet Loss for Person "
                      "Re-Identification. arXiv:1703.07737, 2017"),
    LossSpec("npairs", fixed(
        "same = pair_eq(y_true); "
        "logsumexp(y_pred, axis=-1) - sum(same*y_pred, axis=-1)/sum(same, axis=-1)"),
        "N-pair loss: y_pred the (batch, batch) similarities of anchors to positives, "
        "softmax cross-entropy towards the same-label columns (TF Addons' npairs_loss)",
        citation="Sohn. Improved Deep Metric Learning with Multi-class N-pair Loss Objective. "
                 "NeurIPS 2016"),
    LossSpec("ntxent", fixed(
        "temperature = 0.07; s = pair_cos(y_pred)/temperature; "
        "top = stop_gradient(max(where(pair_self() > 0, -1/temperature, s), axis=-1)); "
        "positive = pair_eq(y_true) - pair_self(); "
        "others = sum(where(pair_eq(y_true) > 0, 0, exp(s - top)), axis=-1); "
        "sum(where(positive > 0, log(exp(s - top) + others) + top - s, 0), axis=-1)"
        "*sum(1, axis=0)/sum(positive, axis=(0, -1))"),
        "NT-Xent (InfoNCE): per positive pair, softmax cross-entropy of its cosine similarity "
        "against the anchor's negatives, over the temperature; mean over positive pairs "
        "(optax.losses.ntxent; NaN for a batch without one)",
        citation="Chen, Kornblith, Norouzi, Hinton. A Simple Framework for Contrastive Learning "
                 "of Visual Representations. ICML 2020"),
    LossSpec("clip", fixed(
        "diagonal = sum(pair_self()*y_pred, axis=-1); "
        "(logsumexp(y_pred, axis=-1) + sum(pair_self()*logsumexp(y_pred, axis=0), axis=-1))/2"
        " - diagonal"),
        "CLIP's symmetric cross-entropy: y_pred the (batch, batch) image-text logits, matching "
        "pairs on the diagonal; the mean of the row-wise and column-wise cross-entropies "
        "(y_true is not read)",
        citation="Radford et al. Learning Transferable Visual Models From Natural Language "
                 "Supervision. ICML 2021"),
)
