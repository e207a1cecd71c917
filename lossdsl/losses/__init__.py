"""The loss library: well-known losses written in lossdsl, compiled on demand.

Every loss is one row of :data:`LIBRARY` (a :class:`LossSpec`): its name, its
source text (with its parameters' defaults bound in the source,
``alpha = 0.25; ...``), a one-line doc, and either the Keras built-in it
reproduces or the paper it comes from. Each row has one public callable here,
``lossdsl.losses.focal(alpha=0.25, gamma=2.0)``, whose signature shows the
row's parameters and options with their defaults. Keywords naming a parameter
set its value, keywords naming an option choose the source, and
``name``/``reduction``/``dtype``/``gradient`` go to the Keras loss.

    >>> import numpy as np
    >>> from lossdsl import losses
    >>> bce = losses.binary_crossentropy(from_logits=True, label_smoothing=0.1)
    >>> bce.params
    {'label_smoothing': 0.1}
    >>> round(float(bce(np.array([[1.0, 0.0]]), np.array([[2.0, -1.0]]))), 6)
    0.295095
    >>> [entry.name for entry in losses.available()][:3]
    ['mean_squared_error', 'mean_absolute_error', 'mean_absolute_percentage_error']

Where the pieces live: :mod:`~lossdsl.losses.spec` (a row, its options, how it
becomes a Keras loss), :mod:`~lossdsl.losses.keras_sources` and
:mod:`~lossdsl.losses.keras_builtins` (the Keras built-ins' rows and
callables), :mod:`~lossdsl.losses.literature_sources` and
:mod:`~lossdsl.losses.literature` (losses from papers, with citations: rows and
callables), :mod:`~lossdsl.losses.metric_learning_sources` and
:mod:`~lossdsl.losses.metric_learning` (pairs of samples: triplet, N-pair, NT-Xent, CLIP), :mod:`~lossdsl.losses.library` (the whole table, ``make``).
Building a loss imports Keras (and TensorFlow); importing or listing the library does not.
"""

from __future__ import annotations

from lossdsl.losses.keras_builtins import (
    binary_crossentropy, binary_focal_crossentropy, categorical_crossentropy,
    categorical_focal_crossentropy, categorical_hinge, cosine_similarity, dice, hinge, huber,
    kl_divergence, log_cosh, mean_absolute_error, mean_absolute_percentage_error,
    mean_squared_error, mean_squared_logarithmic_error, poisson,
    sparse_categorical_crossentropy, squared_hinge, tversky)
from lossdsl.losses.library import LIBRARY, REGISTRY, available, make
from lossdsl.losses.literature import (
    asymmetric, cauchy, charbonnier, diou, focal, focal_tversky, gaussian_nll, giou,
    generalized_cross_entropy, iou, label_smoothed_cross_entropy, pearson, pinball, poly1,
    symmetric_cross_entropy, welsch)
from lossdsl.losses.metric_learning import (
    batch_contrastive, clip, contrastive, npairs, ntxent, triplet_all, triplet_hard,
    triplet_semihard)
from lossdsl.losses.spec import EPSILON, LossSettings, LossSpec

__all__ = ["LIBRARY", "LossSpec", "available", "make", *REGISTRY]
