r"""Mini-batch gradients and their noise (chapter 4).

Stochastic gradient methods replace the full gradient :math:`\nabla \hat R_N(w) = \frac1N\sum_i
g_i(w)` by the average over a random mini-batch :math:`B` of size :math:`b`,

.. math:: g_B(w) = \frac1b \sum_{i \in B} g_i(w), \qquad \mathbb E[g_B(w)] = \nabla\hat R_N(w).

Its variance :math:`\mathbb E\,\lVert g_B - \nabla\hat R_N\rVert^2` falls like :math:`1/b`:

.. math:: \mathbb E\,\lVert g_B - \nabla\hat R_N\rVert^2 = \frac{\sigma^2}{b}\cdot
          \begin{cases} 1 & \text{sampling with replacement,}\\
          \frac{N - b}{N - 1} & \text{without replacement,}\end{cases}
          \qquad \sigma^2 = \frac1N\sum_{i=1}^N \lVert g_i - \nabla\hat R_N\rVert^2 .

:func:`minibatch_gradient_variance` measures the left-hand side by sampling,
:func:`predicted_minibatch_variance` evaluates the right-hand side.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from labkit import _checks as checks

GradFn = Callable[[torch.Tensor], torch.Tensor]


def flat_gradient_fn(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
) -> GradFn:
    r"""A function ``grad(idx)`` returning :math:`g_B = \nabla_w \frac1b\sum_{i\in B}\ell_i(w)`
    for the rows ``idx`` of ``(X, y)``, as one flat vector over ``model``'s parameters.

    ``loss_fn`` must average over the batch (``reduction="mean"``). The model is not changed.
    Chapter 4 measures the noise of these gradients on the digits.
    """
    checks.rows(X, y)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")

    def grad(idx: torch.Tensor) -> torch.Tensor:
        loss = loss_fn(model(X[idx]), y[idx])
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]).detach()

    return grad


def sample_batch(
    n: int, batch_size: int, replacement: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The indices of one random mini-batch of ``batch_size`` rows out of ``n`` (chapter 4)."""
    checks.batch_size(n, batch_size, replacement)
    if replacement:
        return torch.randint(n, (batch_size,), generator=generator)
    return torch.randperm(n, generator=generator)[:batch_size]


def minibatch_gradient_variance(
    grad_fn: GradFn,
    n: int,
    batch_size: int,
    draws: int = 100,
    replacement: bool = False,
    generator: torch.Generator | None = None,
    full_gradient: torch.Tensor | None = None,
) -> float:
    r"""Estimate :math:`\mathbb E\,\lVert g_B - \nabla\hat R_N\rVert^2` from ``draws`` random
    batches of ``batch_size`` rows (the average of the squared distances).

    ``grad_fn(idx)`` returns the mean gradient over the rows ``idx`` (see
    :func:`flat_gradient_fn`); ``full_gradient`` (:math:`\nabla\hat R_N`) is computed from all
    ``n`` rows when not given. Chapter 4 plots it against the batch size.
    """
    checks.integer("draws", draws, 1)
    if full_gradient is None:
        full_gradient = grad_fn(torch.arange(n))
    total = 0.0
    for _ in range(draws):
        g = grad_fn(sample_batch(n, batch_size, replacement, generator))
        total += float((g - full_gradient).pow(2).sum())
    return total / draws


def per_sample_variance(grad_fn: GradFn, n: int) -> float:
    r""":math:`\sigma^2 = \frac1N\sum_i \lVert g_i - \nabla\hat R_N\rVert^2`, exactly, with one
    call of ``grad_fn`` per row: the variance of a batch of one drawn with replacement
    (chapter 4)."""
    checks.integer("n", n, 1)
    full = grad_fn(torch.arange(n))
    total = 0.0
    for i in range(n):
        total += float((grad_fn(torch.tensor([i])) - full).pow(2).sum())
    return total / n


def predicted_minibatch_variance(
    sigma2: float, n: int, batch_size: int, replacement: bool = False
) -> float:
    r""":math:`\frac{\sigma^2}{b}`, times the finite-population factor :math:`\frac{N-b}{N-1}`
    when the batch is drawn without replacement (a batch of all :math:`N` rows has no noise).
    Chapter 4, exercise 1 derives it."""
    checks.at_least("sigma2", sigma2)
    checks.batch_size(n, batch_size, replacement)
    value = sigma2 / batch_size
    if not replacement:
        value *= (n - batch_size) / (n - 1) if n > 1 else 0.0  # b = n = 1: no noise
    return value
