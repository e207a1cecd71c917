"""``keras.ops`` functions by name, and the functions of the language ``keras.ops`` lacks.

Each is written so the value *and* the gradient follow TensorFlow's conventions
on every backend (the symbolic gradients are derived with them):

- ``xlogy``/``xlog1py``/``xdivy``: 0 where ``x == 0`` whatever ``y`` is, with a
  finite gradient there: the untaken branch computes on a safe ``y`` (the
  double-where guard), since JAX's and PyTorch's ``where`` send NaN gradients
  through an untaken branch that is infinite.
- ``absolute``: gradient 0 at 0 (TF's ``sign(x)``); ``jnp.abs``'s is 1 there.
- ``sin``, ``cos``, ``tanh``, ``cosh``, ``sinh``: the backend's own function, because
  Keras 3.15's ``ops.sin`` & co. compute a float64 input in float32 on JAX (x64 on),
  and ``ops.prod`` does on PyTorch: a float64 loss must compute in float64.
- ``mean``: a sum over a count; Keras's ``ops.mean`` on PyTorch rounds a float64
  mean's gradient to float32 precision (Keras 3.15).
- ``maximum``/``minimum``/``clip``: a tie sends the gradient to the first
  argument (TF's rule; ``jnp.maximum`` and ``torch.maximum`` split it in halves), and
  a NaN in either argument gives NaN.

Keras is imported when a function is first resolved, not when this module is.
"""

from __future__ import annotations

import importlib
import math
from functools import lru_cache
from typing import Any, Callable

Tensor = Any  # a tensor of the current Keras backend


@lru_cache(maxsize=None)
def keras_function(dotted: str) -> Callable[..., Tensor]:
    """A function of ``keras.ops`` by name (``"log1p"``), or one lossdsl defines by absolute path.

        >>> keras_function("lossdsl.backends.keras_ops.functions.xlogy").__name__
        'xlogy'
    """
    if dotted.startswith("lossdsl."):
        module, _, attribute = dotted.rpartition(".")
        return getattr(importlib.import_module(module), attribute)
    return getattr(importlib.import_module("keras").ops, dotted)


def _ops() -> Any:
    import keras
    return keras.ops


def xlogy(x: Tensor, y: Tensor) -> Tensor:
    """``x*log(y)``, and 0 where ``x == 0`` (even at ``y == 0``), with finite gradients there."""
    ops = _ops()
    zero = ops.equal(x, 0)
    return ops.where(zero, 0.0, x * ops.log(ops.where(zero, 1.0, y)))


def xlog1py(x: Tensor, y: Tensor) -> Tensor:
    """``x*log1p(y)``, and 0 where ``x == 0`` (even at ``y == -1``), with finite gradients there."""
    ops = _ops()
    zero = ops.equal(x, 0)
    return ops.where(zero, 0.0, x * ops.log1p(ops.where(zero, 0.0, y)))


def xdivy(x: Tensor, y: Tensor) -> Tensor:
    """``x/y``, and 0 where ``x == 0`` (even at ``y == 0``), with finite gradients there."""
    ops = _ops()
    zero = ops.equal(x, 0)
    return ops.where(zero, 0.0, x / ops.where(zero, 1.0, y))


def _native(name: str) -> Callable[..., Tensor]:
    """``name`` from the backend's own array namespace (``jax.numpy``, ``torch``), else ``keras.ops``."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax.numpy as namespace
    elif backend == "torch":
        import torch as namespace
    else:
        namespace = keras.ops
    return getattr(namespace, name)


def sin(x: Tensor) -> Tensor:
    """Sine, in the input's dtype (float64 stays float64)."""
    return _native("sin")(x)


def cos(x: Tensor) -> Tensor:
    """Cosine, in the input's dtype."""
    return _native("cos")(x)


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent, in the input's dtype."""
    return _native("tanh")(x)


def cosh(x: Tensor) -> Tensor:
    """Hyperbolic cosine, in the input's dtype."""
    return _native("cosh")(x)


def sinh(x: Tensor) -> Tensor:
    """Hyperbolic sine, in the input's dtype (the plan's ``sinh`` kind: d/dx cosh)."""
    return _native("sinh")(x)


def prod(x: Tensor, axis: tuple[int, ...], keepdims: bool = False) -> Tensor:
    """The product over ``axis``, in the input's dtype (``torch.prod`` takes one axis at a time)."""
    import keras

    if keras.backend.backend() != "torch":
        return keras.ops.prod(x, axis=axis, keepdims=keepdims)
    import torch

    for a in sorted(axis, reverse=True):
        x = torch.prod(x, dim=a, keepdim=keepdims)
    return x


def var(x: Tensor, axis: tuple[int, ...], keepdims: bool = False) -> Tensor:
    """The population variance over ``axis``, in the input's dtype (Keras's ``ops.var`` is not)."""
    deviation = x - mean(x, axis, keepdims=True)
    return mean(deviation * deviation, axis, keepdims=keepdims)


def std(x: Tensor, axis: tuple[int, ...], keepdims: bool = False) -> Tensor:
    """The population standard deviation: ``sqrt(var)``, so its gradient where a sample is
    constant is TF's (NaN) on every backend (``torch.std``'s is 0 there)."""
    return _ops().sqrt(var(x, axis, keepdims))


def absolute(x: Tensor) -> Tensor:
    """``|x|`` with the gradient ``sign(x)``: 0 at 0, as TF's (JAX's ``abs`` gives 1 there)."""
    return x * _ops().sign(x)


def maximum(a: Tensor, b: Tensor) -> Tensor:
    """The larger of ``a`` and ``b``; a tie sends the gradient to ``a``, NaN in either gives NaN.

    As TF's ``maximum``: ``where(a >= b, a, b)`` alone would drop a NaN ``a`` (a diverged
    prediction would give a finite loss and ``TerminateOnNaN`` would never fire).
    """
    ops = _ops()
    return ops.where(ops.logical_or(ops.less(a, b), ops.isnan(b)), b, a)


def minimum(a: Tensor, b: Tensor) -> Tensor:
    """The smaller of ``a`` and ``b``; a tie sends the gradient to ``a``, NaN in either gives NaN."""
    ops = _ops()
    return ops.where(ops.logical_or(ops.greater(a, b), ops.isnan(b)), b, a)


def clip(x: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """``maximum(minimum(x, hi), lo)``, as TF's ``clip_by_value``: gradient 1 at the bounds."""
    return maximum(minimum(x, hi), lo)


def mean(x: Tensor, axis: tuple[int, ...], keepdims: bool = False) -> Tensor:
    """The mean over ``axis`` (static sizes), as a sum over the number of elements."""
    return _ops().sum(x, axis=axis, keepdims=keepdims) / math.prod(x.shape[a] for a in axis)


def one_hot_last_axis(positions: Tensor) -> Tensor:
    """1 where an element's index along the last axis equals ``positions`` there, else 0.

    ``positions`` has the sample batch's full shape; the result has its dtype.
    """
    ops = _ops()
    index = ops.arange(ops.shape(positions)[-1], dtype=positions.dtype)
    return ops.cast(ops.equal(positions, index), positions.dtype)


def lgamma(x: Tensor) -> Tensor:
    """``log(gamma(x))``, which ``keras.ops`` lacks: each backend's own, with its own gradient.

    JAX ``gammaln``, PyTorch ``lgamma``, TF ``lgamma`` (all log|gamma(x)|, digamma as the
    derivative); the language defines ``lgamma`` for ``x > 0``, where they agree.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax.scipy.special
        return jax.scipy.special.gammaln(x)
    if backend == "torch":
        import torch
        return torch.lgamma(x)
    if backend == "tensorflow":
        import tensorflow as tf
        return tf.math.lgamma(x)
    raise NotImplementedError(f"lgamma has no implementation on the Keras backend {backend!r}")


def norm(x: Tensor, axis: tuple[int, ...], keepdims: bool = False) -> Tensor:
    """The Euclidean norm over ``axis``: ``keras.ops.norm`` takes a matrix norm over two axes
    and refuses three, while the language reduces over any number of axes."""
    ops = _ops()
    return ops.sqrt(ops.sum(ops.square(x), axis=axis, keepdims=keepdims))


__all__ = ["keras_function", "sin", "cos", "tanh", "cosh", "sinh", "prod", "var", "std", "absolute",
           "xlogy", "xlog1py", "xdivy", "maximum", "minimum", "clip", "mean", "one_hot_last_axis",
           "lgamma", "norm"]
