"""The gradient check's evaluation on JAX and PyTorch: a check plan and the backend's autodiff, in float64.

JAX computes in float64 only with x64 enabled: the check enables it for its own
computation (``jax.enable_x64``), leaving the process's setting alone.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import keras
import numpy as np
import sympy

from lossdsl.backends.keras_ops.ranks import batch_inputs
from lossdsl.backends.labels import named_inputs
from lossdsl.backends.keras_ops.run import Runner
from lossdsl.lower.plan import Plan


def check_values(plan: Plan, y_true: np.ndarray, y_pred: np.ndarray,
                 parameters: Mapping[sympy.Symbol, float]
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray,
                            dict[sympy.Symbol, float]]:
    """Run a check plan in float64 and differentiate ``sum(loss)`` by ``jax.grad`` or ``torch.autograd``.

    Returns ``(y_true, y_pred)`` rank-aligned, every output of the plan, the
    autodiff gradient w.r.t. ``y_pred``, and its gradient w.r.t. each parameter.
    ``y_true`` may be a dict of ``y_true`` and extra inputs (:mod:`lossdsl.backends.labels`):
    so is its return.
    """
    runner, symbols = Runner(plan), list(parameters)

    def outputs(y_true: Any, y_pred: Any, values: list) -> dict[str, Any]:
        return runner.run(named_inputs(y_true, y_pred), dict(zip(symbols, values)))

    backend = keras.backend.backend()
    if backend == "jax":
        return _by_jax(outputs, y_true, y_pred, [parameters[s] for s in symbols], symbols)
    if backend == "torch":
        return _by_torch(outputs, y_true, y_pred, [parameters[s] for s in symbols], symbols)
    raise NotImplementedError(f"the {backend} backend has no autodiff to check against")


def _by_jax(outputs: Callable, y_true: np.ndarray, y_pred: np.ndarray, values: list,
            symbols: list) -> tuple:
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        yt, yp = batch_inputs(_map(lambda v: jnp.asarray(v, jnp.float64), y_true),
                              jnp.asarray(y_pred, jnp.float64))
        params = [jnp.asarray(value, jnp.float64) for value in values]

        def total(yp: Any, params: list) -> tuple[Any, dict]:
            result = outputs(yt, yp, params)
            return jnp.sum(result["loss"]), result

        (_, result), (by_input, by_params) = jax.value_and_grad(
            total, argnums=(0, 1), has_aux=True)(yp, params)
        return (_map(np.asarray, yt), np.asarray(yp), {k: np.asarray(v) for k, v in result.items()},
                np.asarray(by_input), {s: float(g) for s, g in zip(symbols, by_params)})


def _by_torch(outputs: Callable, y_true: np.ndarray, y_pred: np.ndarray, values: list,
              symbols: list) -> tuple:
    import torch

    yt, yp = batch_inputs(_map(lambda v: torch.tensor(v, dtype=torch.float64), y_true),
                          torch.tensor(y_pred, dtype=torch.float64))
    yp = yp.detach().requires_grad_(True)
    params = [torch.tensor(value, dtype=torch.float64, requires_grad=True) for value in values]
    result = outputs(yt, yp, params)
    total = torch.sum(result["loss"])
    # A loss of the labels alone is no function of y_pred or the parameters: its
    # gradients are zero, as the tape says (torch.autograd refuses to differentiate it).
    gradients = torch.autograd.grad(total, [yp, *params], allow_unused=True) \
        if total.requires_grad else [None] * (1 + len(params))
    by_input = np.zeros(yp.shape) if gradients[0] is None else gradients[0].numpy()
    by_params = {s: 0.0 if g is None else float(g) for s, g in zip(symbols, gradients[1:])}
    return (_map(lambda v: v.numpy(), yt), yp.detach().numpy(), {k: v.detach().numpy() for k, v in result.items()},
            by_input, by_params)


def _map(function: Callable, labels: Any) -> Any:
    """``function`` of ``y_true``, or of each entry of a dict of labels."""
    if isinstance(labels, dict):
        return {name: function(value) for name, value in labels.items()}
    return function(labels)


__all__ = ["check_values"]
