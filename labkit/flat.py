r"""A network's loss as a function of one flat parameter vector (chapter 5).

Second-order tools (``labkit.gradients.hessian``, ``hvp``, ``labkit.optim.newton``) speak about a
function :math:`f:\mathbb{R}^d \to \mathbb{R}`. A :class:`torch.nn.Module` keeps its :math:`d`
parameters in several tensors instead. :func:`flat_loss` bridges the two: it returns

.. math:: f(w) = \frac1n \sum_{i=1}^n \ell\big(\text{model}_w(x_i), y_i\big),

where :math:`w \in \mathbb{R}^d` is the concatenation of every parameter, and the model's own
tensors are left untouched (``torch.func.functional_call`` runs the model with ``w`` cut back
into its shapes). Gradients and Hessian-vector products then flow through ``w`` with autograd.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call

from labkit import _checks as checks


def flatten_parameters(model: nn.Module) -> torch.Tensor:
    """The trainable parameters of ``model`` as one detached flat vector (chapter 5)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    return torch.cat([p.detach().reshape(-1) for p in params]).clone()


def unflatten_parameters(model: nn.Module, w: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cut the flat vector ``w`` into ``{name: tensor}`` shaped like ``model``'s (chapter 5).

    The pieces are views of ``w``, so autograd differentiates through them.
    """
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    checks.vector(w, sum(p.numel() for _, p in named), "(the model's trainable parameters)")
    out, start = {}, 0
    for name, p in named:
        out[name] = w[start:start + p.numel()].view_as(p)
        start += p.numel()
    return out


def flat_loss(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    r"""``(f, w0)``: the loss of ``model`` on ``(X, y)`` as a function ``f(w)`` of a flat vector,
    and the model's current parameters ``w0`` as such a vector (chapter 5).

    ``loss_fn(outputs, y)`` must return a scalar (e.g. a mean cross-entropy). ``f`` can be
    differentiated once (gradient) or twice (Hessian, Hessian-vector products).
    """
    checks.rows(X, y)
    w0 = flatten_parameters(model)

    def f(w: torch.Tensor) -> torch.Tensor:
        return loss_fn(functional_call(model, unflatten_parameters(model, w), (X,)), y)

    return f, w0
