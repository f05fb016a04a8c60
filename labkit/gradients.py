r"""Derivatives (finite differences, gradient, Hessian, Hessian-vector products) and plain
gradient descent (chapters 3 and 5).

The gradient of :math:`f:\mathbb{R}^d\to\mathbb{R}` is the vector of partial derivatives

.. math:: \nabla f(w)_j = \lim_{\varepsilon\to 0}\frac{f(w + \varepsilon e_j) - f(w)}{\varepsilon},

which :func:`finite_difference_gradient` approximates with a small but finite
:math:`\varepsilon` (the way to check an autograd gradient) and :func:`gradient` computes with
``torch.func``, as :func:`hessian` and :func:`hvp` compute :math:`\nabla^2 f(w)` and
:math:`\nabla^2 f(w)\,v`. :func:`gradient_descent` runs :math:`w_{k+1} = w_k - \eta_k\, \nabla
f(w_k)`, recording every iterate and loss; :func:`first_index_below` reads off how many
iterations a run needed to reach a tolerance. ``f`` maps a tensor :math:`w` to a scalar tensor,
built of differentiable torch operations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch.func import grad, jvp
from torch.func import hessian as _hessian

from labkit import _checks as checks

Objective = Callable[[torch.Tensor], torch.Tensor]
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
    checks.one_of("scheme", scheme, SCHEMES)
    checks.positive("eps", eps)
    checks.floating("w", w)
    with torch.no_grad():
        base = w.detach().clone()
        flat = base.view(-1)
        grad = torch.empty_like(flat)
        f0 = checks.scalar(f(base)) if scheme == "forward" else None
        for j in range(flat.numel()):
            old = flat[j].item()
            flat[j] = old + eps
            f_plus = checks.scalar(f(base))
            if scheme == "forward":
                grad[j] = (f_plus - f0) / eps
            else:
                flat[j] = old - eps
                f_minus = checks.scalar(f(base))
                grad[j] = (f_plus - f_minus) / (2 * eps)
            flat[j] = old
    return grad.view_as(w)


def gradient(f: Objective, w: torch.Tensor) -> torch.Tensor:
    r"""The gradient :math:`\nabla f(w)` of ``f`` at the flat vector ``w`` (``torch.func.grad``;
    chapters 3 and 5)."""
    return grad(f)(checks.vector(w))


def hessian(f: Objective, w: torch.Tensor) -> torch.Tensor:
    r"""The full Hessian :math:`\nabla^2 f(w)`, an :math:`n\times n` matrix (chapter 5).

    Costs about :math:`n` Hessian-vector products and :math:`n^2` numbers of memory: fine for
    the 2-D test functions and small models, impossible for a neural network.
    """
    return _hessian(f)(checks.vector(w))


def hvp(f: Objective, w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""The Hessian-vector product :math:`\nabla^2 f(w)\,v` without forming the Hessian (chapter 5).

    It is the directional derivative of the gradient, :math:`\frac{d}{d\epsilon}\nabla f(w +
    \epsilon v)\big|_{\epsilon=0}`, computed by forward-mode differentiation (``jvp``) of the
    reverse-mode gradient (``grad``): about the cost of two gradient evaluations.
    """
    w = checks.vector(w)
    if v.shape != w.shape:
        raise ValueError(f"v must have the shape of w {tuple(w.shape)}; got {tuple(v.shape)}")
    return jvp(grad(f), (w,), (v.detach(),))[1]


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
    checks.integer("steps", steps)
    checks.floating("w0", w0)
    schedule = lr if callable(lr) else None
    if schedule is None:
        checks.positive("lr", lr)
    w = w0.detach().clone()
    iterates, losses = [w.clone()], []
    for k in range(steps):
        w.requires_grad_(True)
        loss = checks.scalar(f(w))
        (grad,) = torch.autograd.grad(loss, w)
        losses.append(loss.detach())
        eta = checks.positive(f"lr({k})", schedule(k)) if schedule is not None else lr
        with torch.no_grad():
            w = w - eta * grad
        iterates.append(w.clone())
    with torch.no_grad():
        losses.append(checks.scalar(f(w)).detach())
    return GDRun(torch.stack(iterates), torch.stack(losses))


def first_index_below(values: Sequence[float] | torch.Tensor, level: float) -> int | None:
    """The first ``k`` with ``values[k] <= level`` (e.g. iterations to reach a tolerance), else
    ``None`` (chapter 3). ``nan`` never counts as below."""
    for k, v in enumerate(torch.as_tensor(values).tolist()):
        if v <= level:
            return k
    return None
