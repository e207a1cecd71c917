"""``gradient="symbolic"`` on JAX and PyTorch: the derived gradient as the backward pass.

- JAX: a separable loss (its gradient is the upstream gradient times a formula
  of the inputs, see :func:`lossdsl.analysis.backward.separable`) gets a
  ``jax.custom_jvp`` whose tangent is that formula contracted with the input's
  tangent: forward mode, reverse mode (JAX transposes it) and second
  derivatives all go through the derived formula. Any other loss gets a
  ``jax.custom_vjp`` that evaluates the seeded gradient on the upstream gradient.
- PyTorch: a ``torch.autograd.Function`` whose ``backward`` evaluates the seeded gradient;
  for a separable loss the forward pass computes the value and the gradient for an
  upstream of 1 together (shared reductions, one plan), and ``backward`` multiplies.

The gradient w.r.t. ``y_true`` (and any extra input, :mod:`lossdsl.backends.labels`) is
not derived: labels get zero (JAX) or None (PyTorch), as a constant would. Use
``gradient="autodiff"`` to differentiate through labels.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import keras

from lossdsl.analysis.analyze import CompiledExpression
from lossdsl.backends.keras_ops.functions import Tensor
from lossdsl.backends.keras_ops.run import Runner, run_loss, runner
from lossdsl.backends.labels import label_tensors, named_inputs
from lossdsl.lower.plans import symbolic_plans, value_and_unit_gradient_plan


def with_kept_axes(upstream: Tensor, squeezed: list[int]) -> Tensor:
    """The per-sample output's upstream gradient back at the inputs' rank, as keepdims would give it."""
    for axis in squeezed:
        upstream = keras.ops.expand_dims(upstream, axis)
    return upstream


def unbroadcast(gradient: Tensor, like: Tensor) -> Tensor:
    """Sum ``gradient`` over the axes along which ``like`` was broadcast (y_pred of shape (b, 1))."""
    axes = tuple(i for i, (size, own) in enumerate(zip(gradient.shape, like.shape))
                 if own == 1 and size != 1)
    return keras.ops.sum(gradient, axis=axes, keepdims=True) if axes else gradient


def symbolic_loss(compiled: CompiledExpression) -> Callable[[Tensor, Tensor], Tensor]:
    """``(y_true, y_pred) -> per-sample loss`` whose gradient is the derived formula."""
    forward_of, gradient_of, is_separable = symbolic_plans(compiled)
    forward, gradient = runner(forward_of), runner(gradient_of)

    def seeded(labels: Tensor, prediction: Tensor, upstream: Tensor) -> Tensor:
        squeezed = forward.squeezed_axes(len(prediction.shape))
        inputs = {**named_inputs(labels, prediction),
                  "upstream": with_kept_axes(upstream, squeezed)}
        return unbroadcast(gradient.run(inputs)["gradient"], prediction)

    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_loss(forward, gradient, seeded, is_separable)
    if backend == "torch":
        both = value_and_unit_gradient_plan(compiled)
        return _torch_loss(forward, seeded, None if both is None else runner(both))
    return lambda y_true, y_pred: run_loss(forward, y_true, y_pred)  # no autodiff to extend


def _jax_loss(forward: Runner, gradient: Runner, seeded: Callable, is_separable: bool) -> Callable:
    import jax

    if is_separable:
        @jax.custom_jvp
        def loss(labels: Tensor, prediction: Tensor) -> Tensor:
            return run_loss(forward, labels, prediction)

        @loss.defjvp
        def loss_jvp(primals: tuple, tangents: tuple) -> tuple[Tensor, Tensor]:
            labels, prediction = primals
            unit = gradient.run({**named_inputs(labels, prediction),
                                 "upstream": keras.ops.ones((), prediction.dtype)})["gradient"]
            squeezed = tuple(forward.squeezed_axes(len(prediction.shape)))
            contracted = unit * tangents[1]
            tangent = keras.ops.sum(contracted, axis=squeezed) if squeezed else contracted
            return loss(labels, prediction), tangent
        return loss

    @jax.custom_vjp
    def loss(labels: Tensor, prediction: Tensor) -> Tensor:
        return run_loss(forward, labels, prediction)

    def loss_forward(labels: Tensor, prediction: Tensor) -> tuple[Tensor, tuple]:
        return loss(labels, prediction), (labels, prediction)

    def loss_backward(saved: tuple, upstream: Tensor) -> tuple[Tensor, Tensor]:
        labels, prediction = saved
        return jax.tree_util.tree_map(keras.ops.zeros_like, labels), \
            seeded(labels, prediction, upstream)

    loss.defvjp(loss_forward, loss_backward)
    return loss


def _torch_loss(forward: Runner, seeded: Callable, both: Runner | None) -> Callable:
    """A ``torch.autograd.Function``; with ``both`` (a separable loss), the forward pass
    computes the value and the unit gradient together (their reductions once) when a
    gradient will be wanted, and the backward pass is one multiplication."""
    import torch

    class SymbolicLoss(torch.autograd.Function):
        # The forward/setup_context split and the generated vmap rule let torch.func
        # (grad, vmap, jacrev) use it too, not only loss.backward().
        generate_vmap_rule = True

        @staticmethod
        def forward(labels: Tensor, prediction: Tensor, with_unit: bool) -> tuple[Tensor, Tensor]:
            if with_unit:
                outputs = both.run(named_inputs(labels, prediction))
                return outputs["loss"], outputs["gradient"]
            return run_loss(forward, labels, prediction), prediction.new_zeros(())

        @staticmethod
        def setup_context(context: Any, inputs: tuple, output: tuple) -> None:
            labels, prediction, with_unit = inputs
            context.mark_non_differentiable(output[1])
            context.with_unit = with_unit
            # A dict of labels (extra inputs) is saved tensor by tensor, its names aside.
            context.names = tuple(labels) if type(labels) is dict else None
            context.save_for_backward(prediction, output[1], *label_tensors(labels))

        @staticmethod
        def backward(context: Any, upstream: Tensor, _: Tensor) -> tuple[None, Tensor, None]:
            prediction, unit, *given = context.saved_tensors
            labels = given[0] if context.names is None else dict(zip(context.names, given))
            if not context.with_unit:
                return None, seeded(labels, prediction, upstream), None
            squeezed = forward.squeezed_axes(len(prediction.shape))
            return None, unbroadcast(with_kept_axes(upstream, squeezed) * unit, prediction), None

    # Function.apply binds its arguments with inspect.signature on every call (about half
    # the Python time of a small eager step); a signature computed once is reused.
    SymbolicLoss.forward.__signature__ = inspect.signature(SymbolicLoss.forward)

    def loss(labels: Tensor, prediction: Tensor) -> Tensor:
        # Outside a recorded computation (evaluate, predict, no_grad) the gradient is never
        # asked for: the value alone is computed.
        with_unit = both is not None and torch.is_grad_enabled() and prediction.requires_grad
        return SymbolicLoss.apply(labels, prediction, with_unit)[0]

    return loss


__all__ = ["symbolic_loss", "with_kept_axes", "unbroadcast"]
