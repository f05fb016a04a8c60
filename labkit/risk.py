r"""Empirical risk and regularised least squares (chapter 1).

The empirical risk of parameters :math:`w` on data :math:`\{(x_i, y_i)\}_{i=1}^N` is the average
loss

.. math:: \hat R_N(w) = \frac{1}{N}\sum_{i=1}^{N} \ell\big(f_w(x_i), y_i\big),

and a regularised objective adds a penalty: :math:`\hat R_N(w) + \lambda\,\Omega(w)` with
:math:`\Omega(w) = \lVert w\rVert_2^2` (ridge, L2) or :math:`\lVert w\rVert_1` (lasso, L1).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations_with_replacement

import torch

from labkit import _checks as checks


def empirical_risk_loop(
    predict: Callable[[torch.Tensor], torch.Tensor],
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
) -> torch.Tensor:
    r""":math:`\hat R_N(w) = \frac1N\sum_i \ell(f_w(x_i), y_i)`, one sample at a time.

    Written as the definition reads, to compare with the vectorised form (chapter 1); ``loss``
    takes one prediction and one target.
    """
    checks.rows(X, y)
    checks.nonempty(X)
    total = torch.zeros((), dtype=torch.float64)
    for x_i, y_i in zip(X, y):
        total = total + loss(predict(x_i.unsqueeze(0)).squeeze(0), y_i).double()
    return total / len(X)


def empirical_risk(
    predict: Callable[[torch.Tensor], torch.Tensor],
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
    batch_size: int | None = None,
) -> torch.Tensor:
    r""":math:`\hat R_N(w)` evaluated in batches: ``loss`` must return per-sample losses.

    The cost is one forward pass over all :math:`N` samples, :math:`O(N)`, whatever the batch size:
    chapter 1 measures it.
    """
    checks.rows(X, y)
    checks.nonempty(X)
    batch_size = len(X) if batch_size is None else batch_size
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    for start in range(0, len(X), batch_size):
        xb, yb = X[start:start + batch_size], y[start:start + batch_size]
        total = total + loss(predict(xb), yb).double().sum()
    return total / len(X)


def polynomial_features(X: torch.Tensor, degree: int = 2) -> torch.Tensor:
    """All monomials of the columns of ``X`` of degree 1 to ``degree`` (no constant column).

    Chapter 1 uses them to give a small dataset many features, so that it overfits.
    """
    checks.integer("degree", degree, 1)
    columns = []
    d = X.shape[1]
    for k in range(1, degree + 1):
        for combo in combinations_with_replacement(range(d), k):
            columns.append(X[:, list(combo)].prod(dim=1))
    return torch.stack(columns, dim=1)


def ridge_fit(X: torch.Tensor, y: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Minimise :math:`\frac1N\lVert Xw + b - y\rVert^2 + \lambda\lVert w\rVert_2^2` exactly.

    The bias :math:`b` is not penalised. Setting the gradient to zero gives the normal equations
    :math:`(X_c^\top X_c + N\lambda I)\,w = X_c^\top y_c` on centred data. Returns ``(w, b)``.
    Chapter 1 derives it; later chapters use it as the exact answer to compare iterates with.
    """
    checks.at_least("lam", lam)
    n, d = X.shape
    x_mean, y_mean = X.mean(0), y.mean()
    Xc, yc = X - x_mean, y - y_mean
    A = Xc.T @ Xc + n * lam * torch.eye(d, dtype=X.dtype)
    w = torch.linalg.lstsq(A, Xc.T @ yc).solution if lam == 0 else torch.linalg.solve(A, Xc.T @ yc)
    return w, y_mean - x_mean @ w


def soft_threshold(v: torch.Tensor, t: float) -> torch.Tensor:
    r"""The proximal operator of :math:`t\lVert\cdot\rVert_1`.

    .. math:: \operatorname{prox}_{t\lVert\cdot\rVert_1}(v) = \mathrm{sign}(v)\max(|v| - t, 0)

    The step of :func:`lasso_fit` that sets weights exactly to zero (chapter 1).
    """
    return torch.sign(v) * torch.clamp(v.abs() - t, min=0.0)


def lasso_fit(
    X: torch.Tensor, y: torch.Tensor, lam: float, steps: int = 2000
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Minimise :math:`\frac1N\lVert Xw + b - y\rVert^2 + \lambda\lVert w\rVert_1` by proximal
    gradient descent (ISTA) with step :math:`1/L`, :math:`L = \frac2N\lambda_{\max}(X_c^\top X_c)`.

    Each step is a gradient step on the squared error followed by :func:`soft_threshold`, which
    sets small weights exactly to zero. Returns ``(w, b)``. Chapter 1 fits it for growing
    :math:`\lambda`.
    """
    checks.at_least("lam", lam)
    n, d = X.shape
    x_mean, y_mean = X.mean(0), y.mean()
    Xc, yc = X - x_mean, y - y_mean
    L = 2.0 / n * torch.linalg.eigvalsh(Xc.T @ Xc).max()
    w = torch.zeros(d, dtype=X.dtype)
    for _ in range(steps):
        grad = 2.0 / n * Xc.T @ (Xc @ w - yc)
        w = soft_threshold(w - grad / L, float(lam / L))
    return w, y_mean - x_mean @ w
