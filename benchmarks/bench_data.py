"""The generated inputs every benchmark measures on (NumPy only: the scripts that load two
lossdsl trees, or one Keras backend per process, import it before any of them)."""

from __future__ import annotations

import numpy as np


def make_data(shape: tuple[int, ...], labels: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) as float32 arrays; ``labels``: real, binary, onehot, or prob (both in [0, 1])."""
    rng = np.random.default_rng(seed)
    y_pred = rng.normal(0, 2, shape)
    if labels == "real":
        y_true = rng.normal(0, 1, shape)
    elif labels == "binary":
        y_true = rng.integers(0, 2, shape)
    elif labels == "onehot":
        y_true = np.eye(shape[-1])[rng.integers(0, shape[-1], shape[0])]
    else:
        y_true, y_pred = rng.uniform(0, 1, shape), rng.uniform(0, 1, shape)
    return y_true.astype("float32"), y_pred.astype("float32")
