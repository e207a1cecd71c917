"""What one run of a plan on TensorFlow knows: dtype, rank, shapes, and how outputs are finished."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from lossdsl.backends.tensorflow.functions import Tensor, in_xla_context
from lossdsl.lower.shapes import Reduced, incompatible_shapes, resolved_axes
from lossdsl.limits import EAGER_TENSOR_CACHE_SIZE
from lossdsl.symbolic.counts import Axis


@dataclass(frozen=True)
class Capabilities:
    """The TF-only specialisations a runner may use (all on for TensorFlow).

    Attributes:
        matvec: under XLA on CPUs, sums and means over long trailing axes as
            matrix-vector products (:mod:`lossdsl.backends.tensorflow.xla`).
        shared_exp: under XLA, ``sigmoid(±x)``/``softplus(±x)`` share one ``exp(-|x|)``.
        small_first: outside XLA, terms and factors smaller than a sample are
            combined first (each op on a full-size tensor is one more pass over memory).
        log_softmax: in eager calls, ``x - logsumexp(x)`` over the last axis is one
            ``tf.nn.log_softmax`` (graphs keep the plain ops, and XLA its matrix-vector form).
    """

    matvec: bool = True
    shared_exp: bool = True
    small_first: bool = True
    log_softmax: bool = True


@dataclass
class Context:
    """One run: the TF module, the dtype, the rank and full shape of a sample batch.

    ``shape`` is the full shape: a list of ints when every input's shape is known
    before running (eager calls: no shape ops at run time), else a tensor.
    ``eager``: the ops run now, so constants are shared between calls.
    """

    tf: Any
    dtype: Any
    rank: int
    shape: Any
    reduced: Reduced
    static: tuple = ()  # the full shape as far as it is known before running (None: unknown)
    given: dict = field(default_factory=dict)  # input and parameter values, by name
    capabilities: Capabilities = Capabilities()
    programs: dict = field(default_factory=dict)  # prepared guarded branches (see run.Runner)
    memo: dict = field(default_factory=dict)  # values shared between nodes (exp(-|z|))
    eager: bool = False
    kept: frozenset = frozenset()  # ids of reductions that may drop their axes (see run.Runner)
    dropped: set = field(default_factory=set)  # ids of those that did
    tail: bool = False  # the output is computed on one number per sample (see run.Runner)
    _xla: bool | None = None  # whether ops are traced for XLA, asked when first needed
    _replica: Any = False  # the replica context of global batch statistics (False: not asked)
    raw: Any = None  # the inputs as given, by name: what pair functions read

    # The primitives of the steps every backend shares (lossdsl.backends.interpret).
    def where(self, condition: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return self.tf.where(condition, a, b)

    def stop_gradient(self, value: Tensor) -> Tensor:
        return self.tf.stop_gradient(value)

    def logical_and(self, a: Tensor, b: Tensor) -> Tensor:
        return self.tf.math.logical_and(a, b)

    def logical_or(self, a: Tensor, b: Tensor) -> Tensor:
        return self.tf.math.logical_or(a, b)

    def logical_xor(self, a: Tensor, b: Tensor) -> Tensor:
        return self.tf.math.logical_xor(a, b)

    def logical_not(self, a: Tensor) -> Tensor:
        return self.tf.math.logical_not(a)

    def in_xla(self) -> bool:
        """Whether the ops are being traced for XLA (``jit_compile=True``)."""
        if self._xla is None:
            self._xla = False if self.eager else in_xla_context()
        return self._xla

    def replica(self) -> Any:
        """The replica context whose batch statistics are all-reduced, or None; asked only
        when a batch statistic is first computed (per-sample losses never ask)."""
        if self._replica is False:
            from lossdsl.backends.tensorflow.replicas import global_replica_context
            self._replica = global_replica_context()
        return self._replica

    def constant(self, value: float) -> Tensor:
        if self.eager:  # an eager tensor is immutable: made once per (value, dtype)
            return _eager_constant(self.tf, value, self.dtype)
        return self.tf.constant(value, dtype=self.dtype)

    def axes(self, axis: Axis | str) -> list[int]:
        """Resolve an axis spec to non-negative axes of the batch (never the batch axis)."""
        return list(resolved_axes(self.rank, axis, self.reduced))

    def axis_argument(self, axes: list[int]) -> Any:
        """``axes`` as a reduction's ``axis``: in eager mode an int or a shared tensor, not a
        list converted on every call."""
        if not self.eager:
            return axes
        return axes[0] if len(axes) == 1 else _eager_axes(self.tf, tuple(axes))

    def output_axes(self) -> list[int]:
        """The axes along which the per-sample output is constant (they get squeezed)."""
        return list(resolved_axes(self.rank, "output", self.reduced))

    def count(self, axes: list[int]) -> Tensor:
        if 0 in axes and self.replica() is not None:  # the global batch's count
            from lossdsl.backends.tensorflow.replicas import global_count
            sizes = self.tf.gather(self.shape, axes)
            return global_count(self._replica, self.tf.cast(self.tf.reduce_prod(sizes), self.dtype))
        known = [self.static[a] for a in axes]
        if all(size is not None for size in known):  # a constant: no shape ops at run time
            return self.constant(float(math.prod(known)))
        sizes = self.tf.gather(self.shape, axes) if axes else self.tf.ones([1], "int32")
        return self.tf.cast(self.tf.reduce_prod(sizes), self.dtype)

    def is_small(self, value: Tensor) -> bool:
        """Whether ``value`` certainly has fewer elements than a sample batch (it broadcasts)."""
        shape = value.shape
        if shape.rank is None:
            return False
        if shape.rank < len(self.static):
            return True
        dims = shape.as_list()
        return any(dims[i] == 1 and self.static[i] != 1 for i in range(1, len(dims)))

    def full(self, value: Tensor) -> Tensor:
        if same_static_shape(value.shape, self.static):
            return value
        shape = self.shape
        if self.eager and isinstance(shape, list):  # a shared tensor, not a list converted per call
            shape = _eager_axes(self.tf, tuple(shape))
        return self.tf.broadcast_to(value, shape)


@lru_cache(maxsize=EAGER_TENSOR_CACHE_SIZE)
def _eager_constant(tf: Any, value: float, dtype: Any) -> Tensor:
    return tf.constant(value, dtype=dtype)


@lru_cache(maxsize=EAGER_TENSOR_CACHE_SIZE)
def _eager_axes(tf: Any, axes: tuple[int, ...]) -> Tensor:
    return tf.constant(axes, dtype="int32")


def batch_shape(tf: Any, inputs: Any) -> tuple[Any, Any]:
    """The inputs' broadcast shape: static (a TensorShape), and full (see :class:`Context`)."""
    inputs = list(inputs)
    shape = inputs[0].shape
    known = shape.is_fully_defined()
    for tensor in inputs:
        if tensor.shape != shape or not known:
            try:
                shape = tf.broadcast_static_shape(shape, tensor.shape)
            except ValueError:
                raise incompatible_shapes([tensor.shape for tensor in inputs]) from None
            known = known and tensor.shape.is_fully_defined()
    if known:  # checked by the static broadcast: no shape ops at run time
        return shape, shape.as_list()
    dynamic = tf.shape(inputs[0])
    for tensor in inputs:
        dynamic = tf.broadcast_dynamic_shape(dynamic, tf.shape(tensor))
    return shape, dynamic


def same_static_shape(shape: Any, static: tuple) -> bool:
    """Whether a tensor of ``shape`` certainly has the full shape (only the batch may be unknown)."""
    if shape.rank != len(static) or not static:
        return False
    dims = shape.as_list()
    return dims[0] == static[0] and all(
        d is not None and d == s for d, s in zip(dims[1:], static[1:]))


def smaller(shape: Any, full: Any) -> bool:
    """Whether a tensor of ``shape`` must be broadcast to reach ``full``."""
    if shape.rank != full.rank:
        return True
    return any(a != b for a, b in zip(shape.as_list(), full.as_list()))


def finish(context: Context, value: Tensor, how: str) -> Tensor:
    """An output shaped as its finish says (see :data:`lossdsl.lower.plan.FINISHES`)."""
    tf = context.tf
    if how == "elementwise":
        return context.full(value)
    axes = context.output_axes() if how == "per_sample" else list(range(1, context.rank))
    if _has_kept_shape(value.shape, context.static, axes):
        return tf.squeeze(value, axis=axes) if axes else value
    value = constant_part(value, axes, context.rank)
    # Built from slices of the shape, which XLA can fold to a constant (a scatter it cannot).
    keep = [1 if i in axes else context.shape[i] for i in range(context.rank)] \
        if axes else context.shape
    if axes and not isinstance(context.shape, list):
        keep = tf.stack(keep)
    value = tf.broadcast_to(value, keep)
    return tf.squeeze(value, axis=axes) if axes else value


def constant_part(value: Tensor, axes: list[int], rank: int) -> Tensor:
    """``value`` sliced to size 1 along ``axes``, where it is constant but full size.

    A statistic of the batch of a per-sample value (``mean(sum(y), axis=0)``) reduces
    its argument broadcast to the full shape, so it is one number per sample spread
    over every sample axis: the output keeps one copy.
    """
    dims = value.shape.as_list() if value.shape.rank == rank else None
    if not dims or not any(dims[a] != 1 for a in axes):
        return value
    return value[tuple(slice(0, 1) if a in axes else slice(None) for a in range(rank))]


def _has_kept_shape(shape: Any, static: tuple, axes: list[int]) -> bool:
    """Whether ``shape`` is the full shape with 1 at ``axes`` (a reduction's keepdims result)."""
    if shape.rank != len(static) or not static:
        return False
    dims = shape.as_list()
    if dims[0] != static[0]:
        return False
    return all(d == 1 if i in axes else (d is not None and d == static[i])
               for i, d in enumerate(dims) if i > 0)


__all__ = ["Capabilities", "Context", "batch_shape", "finish", "same_static_shape", "smaller"]
