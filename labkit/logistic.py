r"""L2-regularised logistic regression as a function of one flat parameter vector (chapter 5).

With labels :math:`y_i \in \{0, 1\}`, rows :math:`x_i \in \mathbb{R}^d` and :math:`\sigma(z) =
1/(1+e^{-z})`, the objective is

.. math:: f(w) = \frac1n \sum_{i=1}^n \Big[\log\big(1 + e^{x_i^\top w}\big) - y_i\, x_i^\top w\Big]
          + \frac{\lambda}{2}\lVert w\rVert^2 ,

its gradient and Hessian have closed forms

.. math:: \nabla f(w) = \frac1n X^\top\big(\sigma(Xw) - y\big) + \lambda w, \qquad
          \nabla^2 f(w) = \frac1n X^\top \operatorname{diag}\!\big(\sigma(Xw)(1-\sigma(Xw))\big) X
          + \lambda I ,

and for :math:`\lambda > 0` the Hessian is positive definite everywhere, so :math:`f` is strongly
convex and has exactly one minimiser: the problem chapter 5 solves with gradient descent, Newton's
method and L-BFGS. The closed forms are what the autograd versions are checked against. An
intercept is a column of ones (:func:`add_intercept`); it is penalised like every other weight,
which keeps the objective strongly convex.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from labkit import _checks as checks


def _check(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor, l2: float) -> None:
    checks.matrix(X)
    if y.dim() != 1 or len(y) != len(X):
        raise ValueError(
            f"y must be a 1-D tensor with one label per row of X ({len(X)}), got shape "
            f"{tuple(y.shape)}"
        )
    checks.vector(w, X.shape[1], "(one weight per column of X)")
    checks.at_least("l2", l2)


def add_intercept(X: torch.Tensor) -> torch.Tensor:
    """``X`` with a last column of ones, so the last weight acts as the bias (chapter 5)."""
    checks.matrix(X)
    return torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], dim=1)


def logistic_loss(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor, l2: float = 0.0
                  ) -> torch.Tensor:
    r""":math:`f(w) = \frac1n\sum_i [\log(1+e^{x_i^\top w}) - y_i x_i^\top w] + \frac\lambda2
    \lVert w\rVert^2` (chapter 5).

    The log-sum is computed as ``softplus`` so that large margins neither overflow nor lose
    digits. Differentiable in ``w`` with autograd; a 0-dim tensor.
    """
    _check(w, X, y, l2)
    z = X @ w
    return (F.softplus(z) - y.to(z.dtype) * z).mean() + 0.5 * l2 * (w @ w)


def logistic_grad(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor, l2: float = 0.0
                  ) -> torch.Tensor:
    r"""Closed-form gradient :math:`\nabla f(w) = \frac1n X^\top(\sigma(Xw) - y) + \lambda w`
    (chapter 5)."""
    _check(w, X, y, l2)
    p = torch.sigmoid(X @ w)
    return X.T @ (p - y.to(p.dtype)) / len(X) + l2 * w


def logistic_hessian(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor, l2: float = 0.0
                     ) -> torch.Tensor:
    r"""Closed-form Hessian :math:`\nabla^2 f(w) = \frac1n X^\top D X + \lambda I` with
    :math:`D = \operatorname{diag}(\sigma(Xw)(1-\sigma(Xw)))` (chapter 5).

    It does not depend on ``y``; ``y`` is taken for a uniform signature and checked.
    """
    _check(w, X, y, l2)
    p = torch.sigmoid(X @ w)
    d = p * (1 - p)
    eye = torch.eye(len(w), dtype=w.dtype, device=w.device)
    return (X.T * d) @ X / len(X) + l2 * eye


def logistic_objective(X: torch.Tensor, y: torch.Tensor, l2: float = 0.0
                       ) -> Callable[[torch.Tensor], torch.Tensor]:
    """The objective as a function of ``w`` alone, ``f(w) = logistic_loss(w, X, y, l2)``.

    This is the form ``labkit.gradients.hessian``, ``hvp`` and ``labkit.optim.newton`` expect
    (chapter 5).
    """
    checks.matrix(X)
    _check(torch.zeros(X.shape[1], dtype=X.dtype), X, y, l2)

    def f(w: torch.Tensor) -> torch.Tensor:
        return logistic_loss(w, X, y, l2)

    return f


def correct_digits(error: float | torch.Tensor, reference: float | torch.Tensor = 1.0) -> float:
    r"""Correct significant digits, :math:`-\log_{10}(\text{error}/\text{reference})` (chapter 5).

    Newton's method roughly doubles it at every step near the solution (quadratic convergence),
    gradient descent adds a constant amount per step (linear convergence). An error of exactly
    zero returns ``inf``.
    """
    error = checks.at_least("error", float(error))
    reference = checks.positive("reference", float(reference))
    if error == 0:
        return float("inf")
    return -math.log10(error / reference)
