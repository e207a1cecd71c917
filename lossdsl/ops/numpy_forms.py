"""The NumPy forms of :data:`lossdsl.ops.OPS` (the ``numpy`` column), for boosting and tests.

A row names its form by a dotted path: under ``numpy`` (``"log1p"``) or, for the
forms NumPy lacks, a function of this module. Importing this module imports
NumPy; ``import lossdsl`` does not. Reductions and normalizers take
``(x, axis)`` (an int, a tuple of ints, or None for every axis but the first)
and keep the reduced axes, so the result broadcasts back against ``x``.

    >>> import numpy as np
    >>> from lossdsl.ops import REGISTRY
    >>> numpy_form(REGISTRY["softplus"])(np.array([1000.0, 0.0])).tolist()
    [1000.0, 0.6931471805599453]
"""

from __future__ import annotations

import functools
import importlib
import math
from typing import Callable

import numpy as np

Array = np.ndarray


@functools.lru_cache(maxsize=None)
def _resolve(path: str) -> Callable[..., Array]:
    if path.startswith("lossdsl."):
        module, _, name = path.rpartition(".")
        return getattr(importlib.import_module(module), name)
    return functools.reduce(getattr, path.split("."), np)


def numpy_form(row) -> Callable[..., Array]:
    """The NumPy function a row's ``numpy`` column names."""
    return _resolve(row.numpy)


def sigmoid(x: Array) -> Array:
    # exp(-|x|) <= 1 never overflows, and the small side keeps its relative precision.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1.0 + e)


def softplus(x: Array) -> Array:
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def relu(x: Array) -> Array:
    return np.maximum(x, 0.0)


def clip(x: Array, lo: Array, hi: Array) -> Array:
    return np.maximum(np.minimum(x, hi), lo)  # TF's order: lo wins if lo > hi


def _masked(x: Array, value: Array) -> Array:
    return np.where(x == 0, 0.0, value)  # TF's xlogy/xdivy: 0 where x == 0, whatever y is


def xlogy(x: Array, y: Array) -> Array:
    return _masked(x, x * np.log(y))


def xlog1py(x: Array, y: Array) -> Array:
    return _masked(x, x * np.log1p(y))


def xdivy(x: Array, y: Array) -> Array:
    return _masked(x, x / y)


def one_hot(k: Array) -> Array:
    """1 where the element's index along the last axis equals k (k at full shape)."""
    return (k == np.arange(np.shape(k)[-1])).astype(np.float64)


# NumPy has no erf/erfc/lgamma; the standard library's, elementwise (tests and boosting only).
_erf, _erfc, _lgamma = (np.vectorize(f, otypes=[np.float64])
                        for f in (math.erf, math.erfc, math.lgamma))


def erf(x: Array) -> Array:
    return _erf(x)


def erfc(x: Array) -> Array:
    return _erfc(x)


def lgamma(x: Array) -> Array:
    """log(gamma(x)) for x > 0, +inf at 0, NaN below: the language defines it for x > 0."""
    x = np.asarray(x, np.float64)
    inside = np.where(x > 0, x, 1.0)
    return np.where(x > 0, _lgamma(inside), np.where(x == 0, np.inf, np.nan))


def stop_gradient(x: Array) -> Array:
    return x  # NumPy does not differentiate: the value is all there is


# ---------------------------------------------------------------- reductions, normalizers

_FEW_COLUMNS = 16


def _axes(x: Array, axis: int | tuple[int, ...] | None) -> tuple[int, ...]:
    rank = np.ndim(x)
    if axis is None:
        return tuple(range(1, rank))
    return tuple(sorted(a % rank for a in ((axis,) if isinstance(axis, int) else axis)))


def _reduce(ufunc: np.ufunc, x: Array, axis) -> Array:
    """``ufunc.reduce`` over the axes, keepdims. Over the last axis alone, column by column
    when there are few (NumPy's reduce over a short last axis is several times slower
    than K-1 whole-array ops)."""
    x = np.asarray(x)
    axes = _axes(x, axis)
    if axes == (x.ndim - 1,) and 1 < x.shape[-1] <= _FEW_COLUMNS:
        return functools.reduce(ufunc, [x[..., k:k + 1] for k in range(x.shape[-1])])
    return ufunc.reduce(x, axis=axes, keepdims=True)


def sum(x: Array, axis=None) -> Array:  # noqa: A001 - the row's name
    return _reduce(np.add, x, axis)


def mean(x: Array, axis=None) -> Array:
    count = np.prod([np.shape(x)[a] for a in _axes(x, axis)])
    return _reduce(np.add, x, axis) / count


def max(x: Array, axis=None) -> Array:  # noqa: A001
    return _reduce(np.maximum, x, axis)


def min(x: Array, axis=None) -> Array:  # noqa: A001
    return _reduce(np.minimum, x, axis)


def prod(x: Array, axis=None) -> Array:
    return _reduce(np.multiply, x, axis)


def var(x: Array, axis=None) -> Array:
    # Two passes, as TF's reduce_variance: the mean first, then the mean square deviation.
    return mean(np.square(x - mean(x, axis)), axis)


def std(x: Array, axis=None) -> Array:
    return np.sqrt(var(x, axis))


def norm(x: Array, axis=None) -> Array:
    return np.sqrt(_reduce(np.add, np.square(x), axis))


def logsumexp(x: Array, axis=None) -> Array:
    largest = _reduce(np.maximum, x, axis)
    largest = np.where(np.isfinite(largest), largest, 0.0)
    return np.log(_reduce(np.add, np.exp(x - largest), axis)) + largest


def softmax(x: Array, axis=-1) -> Array:
    return np.exp(x - logsumexp(x, axis))


def log_softmax(x: Array, axis=-1) -> Array:
    return x - logsumexp(x, axis)


# Pairs of samples (kind "pairwise"): x is one input, (batch, ...); each sample's vector is
# its elements flattened. The result is (batch, batch): row i against every sample j.

def _vectors(x: Array) -> Array:
    return np.reshape(x, (np.shape(x)[0], -1))


def pair_dot(x: Array) -> Array:
    v = _vectors(x)
    return v @ v.T


def pair_cos(x: Array) -> Array:
    v = _vectors(x)
    v = v / np.maximum(np.sqrt(np.sum(v * v, axis=1, keepdims=True)), 1e-6)
    return v @ v.T


def pair_sqdist(x: Array) -> Array:
    v = _vectors(x)
    return np.sum((v[:, None, :] - v[None, :, :]) ** 2, axis=-1)


def pair_dist(x: Array) -> Array:
    return np.sqrt(pair_sqdist(x))


def pair_eq(x: Array) -> Array:
    v = _vectors(x)
    return np.all(v[:, None, :] == v[None, :, :], axis=-1).astype(float)


def pair_self(batch: int) -> Array:
    """The one pair function without an argument: it takes the batch size."""
    return np.eye(batch)
