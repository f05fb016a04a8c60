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


def sgd_second_moment_operator(
    features: torch.Tensor, batch_size: int, lr: float, replacement: bool = False
) -> torch.Tensor:
    r"""The linear map that one step of mini-batch SGD applies to the error's second moment
    on least squares (chapter 4).

    For :math:`\hat R_N(w) = \frac1N\sum_i (x_i^\top w - y_i)^2` each example's Hessian is
    :math:`h_i = 2x_ix_i^\top` (append a column of ones to ``features`` for a bias). The error
    :math:`e_t = w_t - w^\star` follows :math:`e_{t+1} = (I - \alpha H_B)e_t - \alpha\xi_B` with
    :math:`H_B = \frac1b\sum_{i\in B}h_i` and :math:`\xi_B` the batch's gradient at
    :math:`w^\star`, so its second moment :math:`S_t = \mathbb E[e_te_t^\top]` obeys
    :math:`S_{t+1} = \mathbb E[(I - \alpha H_B)S_t(I - \alpha H_B)] + \alpha^2\,\text{noise}`,

    .. math:: \operatorname{vec} S_{t+1} = \big(I - \alpha(I\otimes H + H\otimes I)
              + \alpha^2\,\mathbb E[H_B\otimes H_B]\big)\operatorname{vec} S_t + \dots,
              \qquad \mathbb E[H_B\otimes H_B] = H\otimes H + c_b\,\big(M - H\otimes H\big),

    with :math:`M = \frac1N\sum_i h_i\otimes h_i`, :math:`c_b = 1/b` for a batch drawn with
    replacement and :math:`c_b = \frac{N-b}{b(N-1)}` for a uniform random subset of :math:`b`
    distinct examples (each batch drawn independently). Returns that ``(d^2, d^2)`` matrix.
    """
    A = checks.floating("features", features).double()
    checks.matrix(A)
    n, d = A.shape
    checks.batch_size(n, batch_size)
    H = 2 * A.T @ A / n
    outer = torch.einsum("ni,nj->nij", A, A) * 2                    # h_i, (n, d, d)
    M = torch.einsum("nij,nkl->ikjl", outer, outer).reshape(d * d, d * d) / n
    HH = torch.kron(H, H)
    c = 1 / batch_size if replacement else (n - batch_size) / (batch_size * (n - 1))
    eye = torch.eye(d, dtype=A.dtype)
    return (torch.eye(d * d, dtype=A.dtype) - lr * (torch.kron(eye, H) + torch.kron(H, eye))
            + lr**2 * (HH + c * (M - HH)))


def sgd_stability_limit(
    features: torch.Tensor, batch_size: int, replacement: bool = False, tol: float = 1e-6
) -> float:
    r"""The largest learning rate at which mini-batch SGD's error second moment stays bounded on
    least squares, :math:`\sup\{\alpha: \rho(T_\alpha) < 1\}` for the map :math:`T_\alpha` of
    :func:`sgd_second_moment_operator` (chapter 4).

    It is at most full-batch gradient descent's :math:`2/L` and equals it for ``batch_size = N``
    without replacement; with small batches it is much smaller, because the batch Hessian's
    fluctuations add :math:`\alpha^2 c_b (M - H\otimes H)` to the map. Found by bisection on
    :math:`(0, 2/L]` (the spectral radius grows with :math:`\alpha` past its minimum).
    """
    A = checks.floating("features", features).double()
    checks.matrix(A)
    L = float(torch.linalg.eigvalsh(2 * A.T @ A / len(A)).max())

    def stable(lr: float) -> bool:
        T = sgd_second_moment_operator(A, batch_size, lr, replacement)
        return float(torch.linalg.eigvals(T).abs().max()) < 1

    lo, hi = 0.0, 2 / L
    if stable(hi * (1 - 1e-9)):
        return hi
    while hi - lo > tol * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if stable(mid) else (lo, mid)
    return lo
