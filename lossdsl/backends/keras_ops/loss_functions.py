"""What a Keras loss, metric or gradient check needs, on any Keras 3 backend through ``keras.ops``.

The same names as :mod:`lossdsl.backends.tensorflow.loss_functions`;
:mod:`lossdsl.backends.current` picks this module on JAX and PyTorch. There is
no fused path here: on JAX, Keras jits the whole training step, which fuses
the loss with its gradient already.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any, Callable

import keras

from lossdsl.backends.keras_ops.custom_gradient import symbolic_loss
from lossdsl.backends.keras_ops.autodiff import check_values
from lossdsl.backends.keras_ops.ranks import align_ranks, batch_inputs
from lossdsl.backends.keras_ops.functions import Tensor
from lossdsl.backends.keras_ops.run import Runner, run_loss, runner
from lossdsl.errors import LossDSLWarning

NAME = keras.backend.backend()
AUTODIFF = {"jax": "jax.grad", "torch": "torch.autograd"}.get(NAME, f"{NAME} autodiff")
LossFunction = Callable[[Tensor, Tensor], Tensor]


def autodiff_loss(plan: Runner, separable: bool) -> LossFunction:
    """``(y_true, y_pred) -> per-sample loss``, differentiated by the backend's own autodiff."""
    return partial(run_loss, plan)


def assert_last_axis(y_pred: Any, at_least: int, exactly: int | None, message: str) -> Any:
    """``y_pred`` as it is: JAX traces and PyTorch runs with every size known, so the
    last axis was checked before (see :func:`lossdsl.analysis.last_axis.check_last_axis`)."""
    return y_pred


def check_dtype(dtype: str) -> None:
    """Warn when ``dtype`` cannot be what the backend computes in: float64 on JAX without x64.

    JAX computes float64 arrays in float32 unless x64 is on; a float64 loss would
    silently be a float32 one (and its lost constants would go unreported).
    """
    if NAME != "jax" or dtype != "float64":
        return
    import jax

    if not jax.config.jax_enable_x64:
        warnings.warn(LossDSLWarning(
            "dtype='float64' on JAX computes in float32 unless x64 is enabled: set "
            "JAX_ENABLE_X64=1 (or jax.config.update('jax_enable_x64', True)) before "
            "creating arrays."), stacklevel=3)


def check_batch_statistics(reductions: tuple[str, ...], source: str,
                           global_statistics: bool = False) -> None:
    """Nothing to refuse: on JAX, arrays are global under ``jit`` (``keras.distribution.
    DataParallel`` included), so a reduction over the batch axis sees the whole batch;
    Keras's PyTorch backend runs a loss on one device."""


def per_sample_values(plan: Runner, y_true: Tensor, y_pred: Tensor) -> Tensor:
    """Run a loss plan on a batch (see :func:`batch_inputs`)."""
    return run_loss(plan, *batch_inputs(y_true, y_pred))


__all__ = ["NAME", "AUTODIFF", "align_ranks", "autodiff_loss", "batch_inputs", "per_sample_values",
           "symbolic_loss", "runner", "Runner", "check_values", "check_dtype", "assert_last_axis",
           "check_batch_statistics"]
