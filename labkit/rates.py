r"""Linear convergence rates: the textbook values and how to measure them (chapter 4).

A method converges **linearly** with rate :math:`\rho \in (0, 1)` when its error shrinks by a
constant factor per step, :math:`e_t \approx C\rho^t`. On a quadratic
:math:`f(w) = \tfrac12 (w - w^\star)^\top A (w - w^\star)` whose Hessian :math:`A` has
eigenvalues in :math:`[\mu, L]` (condition number :math:`\kappa = L/\mu`):

* gradient descent with the best constant step :math:`\alpha = 2/(L + \mu)` has rate
  :math:`(\kappa - 1)/(\kappa + 1)`;
* Polyak's heavy ball :math:`w_{t+1} = w_t - \alpha\nabla f(w_t) + \beta(w_t - w_{t-1})` with
  :math:`\alpha^\star = 4/(\sqrt L + \sqrt\mu)^2` and
  :math:`\beta^\star = \big((\sqrt\kappa - 1)/(\sqrt\kappa + 1)\big)^2` has rate
  :math:`\sqrt{\beta^\star} = (\sqrt\kappa - 1)/(\sqrt\kappa + 1)`.

:func:`momentum_spectral_radius` gives the asymptotic rate of any step size and momentum, and
:func:`fit_linear_rate` measures a rate from a sequence of errors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from labkit import _checks as checks


def gd_optimal_step(L: float, mu: float) -> float:
    r"""The constant step :math:`\alpha = 2/(L + \mu)` that minimises GD's rate on a quadratic
    (chapter 4)."""
    checks.at_least("L", L, checks.positive("mu", mu))  # 0 < mu <= L
    return 2.0 / (L + mu)


def gd_rate(kappa: float) -> float:
    r"""Gradient descent's rate at its best step, :math:`\rho = (\kappa - 1)/(\kappa + 1)`
    (chapter 4)."""
    checks.at_least("kappa", kappa, 1.0)
    return (kappa - 1.0) / (kappa + 1.0)


def heavy_ball_optimal(L: float, mu: float) -> tuple[float, float]:
    r"""Polyak's parameters for a quadratic with curvatures in :math:`[\mu, L]`.

    .. math:: \alpha^\star = \frac{4}{(\sqrt L + \sqrt\mu)^2}, \qquad
              \beta^\star = \Big(\frac{\sqrt\kappa - 1}{\sqrt\kappa + 1}\Big)^2 .

    Returns ``(alpha, beta)``; chapter 4 measures the rate they give.
    """
    checks.at_least("L", L, checks.positive("mu", mu))  # 0 < mu <= L
    sl, sm = math.sqrt(L), math.sqrt(mu)
    return 4.0 / (sl + sm) ** 2, ((sl - sm) / (sl + sm)) ** 2


def heavy_ball_rate(kappa: float) -> float:
    r"""The heavy ball's rate at :func:`heavy_ball_optimal`,
    :math:`\sqrt{\beta^\star} = (\sqrt\kappa - 1)/(\sqrt\kappa + 1)` (chapter 4)."""
    checks.at_least("kappa", kappa, 1.0)
    s = math.sqrt(kappa)
    return (s - 1.0) / (s + 1.0)


def momentum_matrix(lr: float, beta: float, curvature: float, nesterov: bool = False) -> np.ndarray:
    r"""The 2×2 matrix that maps :math:`(e_t, e_{t-1})` to :math:`(e_{t+1}, e_t)` along one
    eigenvector of curvature :math:`\lambda` (the error :math:`e_t = w_t - w^\star`).

    Heavy ball: :math:`e_{t+1} = (1 + \beta - \alpha\lambda)\,e_t - \beta\,e_{t-1}`.
    Nesterov (gradient at :math:`w_t + \beta(w_t - w_{t-1})`):
    :math:`e_{t+1} = (1 + \beta)(1 - \alpha\lambda)\,e_t - \beta(1 - \alpha\lambda)\,e_{t-1}`.
    ``beta = 0`` is gradient descent. Chapter 4 derives the rates from its eigenvalues.
    """
    checks.positive("lr", lr)
    checks.interval("beta", beta, 0.0, 1.0)
    if nesterov:
        a, b = (1.0 + beta) * (1.0 - lr * curvature), -beta * (1.0 - lr * curvature)
    else:
        a, b = 1.0 + beta - lr * curvature, -beta
    return np.array([[a, b], [1.0, 0.0]])


def momentum_spectral_radius(
    lr: float, beta: float, curvatures: Sequence[float] | np.ndarray | torch.Tensor,
    nesterov: bool = False,
) -> float:
    r"""The asymptotic rate :math:`\max_\lambda \rho(M_\lambda)` of (Nesterov) momentum on a
    quadratic whose Hessian has eigenvalues ``curvatures``; above 1 the method diverges.

    :math:`M_\lambda` is :func:`momentum_matrix`. When its eigenvalues are complex (the iterates
    spiral) their modulus is :math:`\sqrt\beta` for the heavy ball, whatever the step size
    (chapter 4: step 0.02 with momentum 0.99).
    """
    values = np.asarray(torch.as_tensor(curvatures, dtype=torch.float64).flatten())
    if values.size == 0:
        raise ValueError("curvatures is empty; pass the eigenvalues of the Hessian")
    return float(max(np.abs(np.linalg.eigvals(momentum_matrix(lr, beta, lam, nesterov))).max()
                     for lam in values))


def fit_linear_rate(
    errors: Sequence[float] | np.ndarray | torch.Tensor,
    start: int = 0,
    stop: int | None = None,
    min_error: float = 0.0,
) -> float:
    r"""Measure a linear rate: :math:`\hat\rho = e^{b}` where :math:`b` is the least-squares slope
    of :math:`\log e_t` against :math:`t` over ``errors[start:stop]``.

    If :math:`e_t = C\rho^t` exactly, :math:`\log e_t = \log C + t\log\rho` and the fit returns
    :math:`\rho`. The window ends before the first error that is at most ``min_error`` (use it to
    leave out the round-off floor, e.g. ``min_error=1e-12``). Errors must be finite and positive.
    Chapter 4 compares the fitted rates of GD and the heavy ball with the theory.
    """
    e = np.asarray(torch.as_tensor(errors, dtype=torch.float64).flatten())
    if not 0 <= start < len(e):
        raise ValueError(f"start must index errors (length {len(e)}), got {start!r}")
    window = e[start:stop]
    if min_error > 0:
        small = np.flatnonzero(window <= min_error)
        if small.size:
            window = window[: small[0]]
    if len(window) < 2:
        raise ValueError(
            f"need at least 2 errors above min_error={min_error!r} in errors[{start}:{stop}], "
            f"got {len(window)}; widen the window or lower min_error"
        )
    if not np.all(np.isfinite(window)) or np.any(window <= 0):
        raise ValueError("errors must be finite and positive in the fitted window "
                         "(a diverging run has no linear rate; set min_error to cut zeros)")
    t = np.arange(len(window), dtype=np.float64)
    slope = np.polyfit(t, np.log(window), 1)[0]
    return float(math.exp(slope))
