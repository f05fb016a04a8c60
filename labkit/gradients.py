r"""Gradients by finite differences, and plain gradient descent driven by autograd (chapter 3).

The gradient of :math:`f:\mathbb{R}^d\to\mathbb{R}` is the vector of partial derivatives

.. math:: \nabla f(w)_j = \lim_{\varepsilon\to 0}\frac{f(w + \varepsilon e_j) - f(w)}{\varepsilon},

which :func:`finite_difference_gradient` approximates with a small but finite
:math:`\varepsilon` (the way to check an autograd gradient), and gradient descent repeats

.. math:: w_{k+1} = w_k - \eta_k\, \nabla f(w_k),

which :func:`gradient_descent` runs with the gradient from ``torch.autograd``, recording every
iterate and every loss. :func:`first_index_below` reads off how many iterations a run needed to
reach a tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

SCHEMES = ("forward", "central")


def finite_difference_gradient(
    f: Callable[[torch.Tensor], torch.Tensor],
    w: torch.Tensor,
    eps: float = 1e-6,
    scheme: str = "central",
) -> torch.Tensor:
    r"""Approximate :math:`\nabla f(w)` one coordinate at a time (chapter 3).

    ``scheme="forward"``: :math:`\frac{f(w + \varepsilon e_j) - f(w)}{\varepsilon}`, truncation
    error :math:`O(\varepsilon)`, :math:`d + 1` evaluations of ``f``.
    ``scheme="central"``: :math:`\frac{f(w + \varepsilon e_j) - f(w - \varepsilon e_j)}
    {2\varepsilon}`, truncation error :math:`O(\varepsilon^2)`, :math:`2d` evaluations.
    Both also carry a rounding error of order :math:`u\,|f|/\varepsilon` (:math:`u` the unit
    roundoff of ``w.dtype``), so :math:`\varepsilon` must be neither too large nor too small.

    ``f`` maps a tensor shaped like ``w`` to a scalar tensor; ``w`` is not modified. Returns a
    tensor of ``w``'s shape and dtype.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}; got {scheme!r}")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number; got {eps!r}")
    if not w.is_floating_point():
        raise ValueError(f"w must be a floating-point tensor; got dtype {w.dtype}")
    with torch.no_grad():
        base = w.detach().clone()
        flat = base.view(-1)
        grad = torch.empty_like(flat)
        f0 = _scalar(f(base)) if scheme == "forward" else None
        for j in range(flat.numel()):
            old = flat[j].item()
            flat[j] = old + eps
            f_plus = _scalar(f(base))
            if scheme == "forward":
                grad[j] = (f_plus - f0) / eps
            else:
                flat[j] = old - eps
                f_minus = _scalar(f(base))
                grad[j] = (f_plus - f_minus) / (2 * eps)
            flat[j] = old
    return grad.view_as(w)


def _scalar(value: torch.Tensor) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"f must return a scalar tensor (one loss value); got {shape}")
    return value.reshape(())


class GDRun(NamedTuple):
    r"""What :func:`gradient_descent` records (chapter 3).

    ``iterates[k]`` is :math:`w_k` and ``losses[k]`` is :math:`f(w_k)`, for
    :math:`k = 0, \dots, K`: both have ``steps + 1`` entries.
    """

    iterates: torch.Tensor
    losses: torch.Tensor


def gradient_descent(
    f: Callable[[torch.Tensor], torch.Tensor],
    w0: torch.Tensor,
    lr: float | Callable[[int], float],
    steps: int,
) -> GDRun:
    r"""Run :math:`w_{k+1} = w_k - \eta_k \nabla f(w_k)` for ``steps`` steps from ``w0``.

    ``lr`` is a constant step size :math:`\eta`, or a schedule ``lr(k) -> eta_k``. The gradient
    comes from ``torch.autograd.grad``, so ``f`` must be differentiable in torch. Returns a
    :class:`GDRun` with the ``steps + 1`` iterates (stacked along a new first dimension) and
    losses; ``w0`` is not modified. A run that diverges is not stopped: its losses grow to
    ``inf`` and then ``nan``, which is what a plot of a too-large step size should show.
    Chapter 3.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer; got {steps!r}")
    if not w0.is_floating_point():
        raise ValueError(f"w0 must be a floating-point tensor; got dtype {w0.dtype}")
    schedule = lr if callable(lr) else None
    if schedule is None:
        _check_lr(lr, "lr")
    w = w0.detach().clone()
    iterates, losses = [w.clone()], []
    for k in range(steps):
        w.requires_grad_(True)
        loss = _scalar(f(w))
        (grad,) = torch.autograd.grad(loss, w)
        losses.append(loss.detach())
        eta = _check_lr(schedule(k), f"lr({k})") if schedule is not None else lr
        with torch.no_grad():
            w = w - eta * grad
        iterates.append(w.clone())
    with torch.no_grad():
        losses.append(_scalar(f(w)).detach())
    return GDRun(torch.stack(iterates), torch.stack(losses))


def _check_lr(eta: float, name: str) -> float:
    if not (isinstance(eta, (int, float)) and math.isfinite(eta) and eta > 0):
        raise ValueError(f"{name} must be a positive finite step size; got {eta!r}")
    return eta


def first_index_below(values: Sequence[float] | torch.Tensor, level: float) -> int | None:
    """The first ``k`` with ``values[k] <= level`` (e.g. iterations to reach a tolerance), else
    ``None`` (chapter 3). ``nan`` never counts as below."""
    for k, v in enumerate(torch.as_tensor(values).tolist()):
        if v <= level:
            return k
    return None
