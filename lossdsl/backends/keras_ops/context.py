"""What one run of a plan through ``keras.ops`` knows: the dtype, the full shape, and how outputs are finished."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from lossdsl.backends.keras_ops.functions import Tensor
from lossdsl.limits import EAGER_TENSOR_CACHE_SIZE, RESOLVED_AXES_CACHE_SIZE
from lossdsl.lower.shapes import incompatible_shapes, resolved_axes


@dataclass
class Context:
    """One run: ``keras.ops``, the dtype, and the full shape of the sample batch (ints where known)."""

    ops: Any
    dtype: str
    shape: tuple
    reduced: Any
    device: str | None = None  # PyTorch: where the inputs live; its constants are shared there
    given: dict = field(default_factory=dict)  # input and parameter values, by name
    programs: dict = field(default_factory=dict)  # prepared guarded branches (see Runner)
    flat: frozenset = frozenset()  # ids of reductions giving one number per sample (see Runner)
    raw: Any = None  # the inputs as given, by name: what pair functions read

    @property
    def rank(self) -> int:
        return len(self.shape)

    def constant(self, value: float) -> Tensor:
        if self.device is None:  # JAX: a constant made inside a trace is a literal of it
            return self.ops.convert_to_tensor(value, dtype=self.dtype)
        return _constant(self.ops, value, self.dtype, self.device)

    def axes(self, axis: Any) -> list[int]:
        """Resolve an axis spec to non-negative axes of the batch (never the batch axis)."""
        return list(resolved_axes(self.rank, axis, self.reduced))

    # The primitives of the steps every backend shares (lossdsl.backends.interpret).
    def where(self, condition: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return self.ops.where(condition, a, b)

    def stop_gradient(self, value: Tensor) -> Tensor:
        return self.ops.stop_gradient(value)

    def logical_and(self, a: Tensor, b: Tensor) -> Tensor:
        return self.ops.logical_and(a, b)

    def logical_or(self, a: Tensor, b: Tensor) -> Tensor:
        return self.ops.logical_or(a, b)

    def logical_xor(self, a: Tensor, b: Tensor) -> Tensor:
        return self.ops.logical_xor(a, b)

    def logical_not(self, a: Tensor) -> Tensor:
        return self.ops.logical_not(a)

    def count(self, axes: list[int]) -> Tensor:
        sizes = [self.shape[a] for a in axes]
        if all(isinstance(size, int) for size in sizes):
            return self.constant(float(math.prod(sizes)))
        total = self.constant(1.0)
        for size in sizes:
            total = total * self.ops.cast(size, self.dtype)
        return total

    def is_small(self, value: Tensor) -> bool:
        """Whether ``value`` has fewer elements than a sample batch (it broadcasts)."""
        shape = tuple(value.shape)
        if len(shape) < len(self.shape):
            return True
        return any(size == 1 and full != 1 for size, full in zip(shape, self.shape))

    def full(self, value: Tensor) -> Tensor:
        if tuple(value.shape) == self.shape and all(isinstance(s, int) for s in self.shape):
            return value
        return self.ops.broadcast_to(value, self.shape)


@lru_cache(maxsize=EAGER_TENSOR_CACHE_SIZE)
def _constant(ops: Any, value: float, dtype: str, device: str) -> Tensor:
    # Made once per (value, dtype, device) on PyTorch, which runs eagerly: a new tensor
    # per call costs more than the op using it; made where the inputs are (Keras's own
    # conversion would use its default device). Not on JAX: a concrete array cached
    # across traces broke Keras's jitted train step (JAX 0.10: "Execution supplied 18
    # arguments but compiled program expected 21").
    import torch

    return torch.as_tensor(value, dtype=getattr(torch, dtype), device=device)


@lru_cache(maxsize=RESOLVED_AXES_CACHE_SIZE)  # the few shapes a training run sees
def broadcast_shape(shapes: tuple[tuple, ...]) -> tuple:
    """The common shape of ``shapes`` (NumPy's rule: ranks aligned on the right).

    Raises:
        DSLShapeError: two sizes of an axis differ and neither is 1.
    """
    rank = max(len(shape) for shape in shapes)
    common: list = [1] * rank
    for shape in shapes:
        for i, size in enumerate(shape, start=rank - len(shape)):
            if isinstance(common[i], int) and common[i] == 1:
                common[i] = size
            elif isinstance(size, int) and isinstance(common[i], int) and size not in (1, common[i]):
                raise incompatible_shapes(shapes)
    return tuple(common)


def finish(context: Context, value: Tensor, how: str) -> Tensor:
    """An output shaped as its finish says (see :data:`lossdsl.lower.plan.FINISHES`)."""
    if how == "elementwise":
        return context.full(value)
    axes = context.axes("output") if how == "per_sample" else list(range(1, context.rank))
    keep = tuple(1 if i in axes else size for i, size in enumerate(context.shape))
    if len(value.shape) == context.rank and any(value.shape[a] != 1 for a in axes):
        # Constant along `axes` but full size there (a batch statistic of a per-sample
        # value, `mean(sum(y), axis=0)`): one copy.
        value = value[tuple(slice(0, 1) if a in axes else slice(None) for a in range(context.rank))]
    if tuple(value.shape) != keep:
        value = context.ops.broadcast_to(value, keep)
    return context.ops.squeeze(value, axis=tuple(axes)) if axes else value


__all__ = ["Context", "broadcast_shape", "finish"]
