r"""Two-dimensional test functions for the optimisation figures (chapters 3-6).

Each is a :class:`Function2D`: call it on a tensor of shape ``(2,)`` for a scalar (so that
autograd, ``torch.func.hessian`` and every optimizer work on it) or on ``(..., 2)`` for a grid of
values (contour plots). It knows its minimiser.

* :func:`quadratic` -- :math:`f(w) = \tfrac12 (w_1^2 + \kappa\, w_2^2)`, optionally rotated: an
  ill-conditioned bowl with :math:`\mu = 1`, :math:`L = \kappa`, condition number :math:`\kappa`;
* :func:`rosenbrock` -- :math:`f(x, y) = (a - x)^2 + b\,(y - x^2)^2`, the banana-shaped valley;
* :func:`valley` -- a ravine with steep walls around a curved floor (pathological curvature).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from labkit import _checks as checks


@dataclass(frozen=True)
class Function2D:
    """A test function of :math:`w = (x, y)` with its minimiser and minimum value (chapters 3-6).

    ``fn`` maps ``x, y`` (tensors of equal shape) to the values. Calling the object takes a
    tensor whose last dimension is 2 and returns the values over the leading dimensions.
    """

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = field(repr=False)
    minimiser: tuple[float, float]
    f_min: float = 0.0
    info: dict = field(default_factory=dict)

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        if not isinstance(w, torch.Tensor) or w.dim() == 0 or w.shape[-1] != 2:
            raise ValueError(f"{self.name}: w must have shape (2,) or (..., 2); "
                             f"got {checks.shape_of(w)}")
        return self.fn(w[..., 0], w[..., 1])

    def minimiser_tensor(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The minimiser as a tensor of shape ``(2,)`` (chapters 3-6)."""
        return torch.tensor(self.minimiser, dtype=dtype)


def quadratic(kappa: float, angle: float = 0.0) -> Function2D:
    r"""The ill-conditioned quadratic :math:`f(w) = \tfrac12 (u^2 + \kappa v^2)` (chapters 3-4).

    Here :math:`(u, v) = R_\theta w`, the rotation of :math:`w` by ``angle``.

    Its Hessian :math:`R_\theta^\top \operatorname{diag}(1, \kappa) R_\theta` has eigenvalues
    :math:`\mu = 1` and :math:`L = \kappa`, so gradient descent converges for step sizes below
    :math:`2/L` and at a rate governed by the condition number :math:`\kappa = L/\mu`. With
    ``angle`` :math:`\theta \neq 0` (radians) the axes of the ellipses are rotated, which
    coordinate-wise methods (Adam) feel and rotation-invariant ones (gradient descent,
    momentum, Newton) do not. ``info`` holds ``L``, ``mu``, ``kappa`` and the ``hessian``.
    """
    kappa = checks.positive("kappa", kappa)
    c, s = math.cos(angle), math.sin(angle)

    def fn(x, y):
        u, v = c * x + s * y, -s * x + c * y
        return 0.5 * (u**2 + kappa * v**2)

    R = torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
    H = R.T @ torch.diag(torch.tensor([1.0, kappa], dtype=torch.float64)) @ R
    return Function2D(f"quadratic(kappa={kappa:g})", fn, (0.0, 0.0), 0.0,
                      dict(L=max(kappa, 1.0), mu=min(kappa, 1.0), kappa=kappa, angle=angle,
                           hessian=H))


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Function2D:
    r"""Rosenbrock's function :math:`f(x, y) = (a - x)^2 + b\,(y - x^2)^2` (chapters 3-6).

    A curved, flat-bottomed valley along the parabola :math:`y = x^2`; minimiser
    :math:`(a, a^2)` with :math:`f = 0`. The classic start is :math:`(-1.2, 1)`.
    """
    b = checks.positive("b", b)
    a = float(a)

    def fn(x, y):
        return (a - x) ** 2 + b * (y - x**2) ** 2

    return Function2D(f"rosenbrock(a={a:g}, b={b:g})", fn, (a, a * a), 0.0,
                      dict(start=(-1.2, 1.0)))


def valley(steepness: float = 100.0, slope: float = 1.0, bend: float = 0.5) -> Function2D:
    r"""A ravine, :math:`f(x, y) = \tfrac{s}{2}\,(y - c\sin x)^2 + \tfrac{g}{2}\,x^2` (chapter 4).

    Steep walls (curvature ``steepness`` :math:`s` across) around the curved floor
    :math:`y = c \sin x` (``bend`` :math:`c`), which slopes gently (curvature ``slope``
    :math:`g`) down to the minimiser :math:`(0, 0)`. Gradient descent must use a step below
    :math:`2/s` to stay in the ravine and then crawls along its floor: the pathological
    curvature that momentum and second-order methods address. The direction of the floor turns
    as :math:`x` changes, so no fixed rescaling of the axes removes the problem.
    """
    s, g, c = checks.positive("steepness", steepness), checks.positive("slope", slope), float(bend)

    def fn(x, y):
        return 0.5 * s * (y - c * torch.sin(x)) ** 2 + 0.5 * g * x**2

    return Function2D(f"valley(steepness={s:g}, slope={g:g})", fn, (0.0, 0.0), 0.0,
                      dict(start=(-3.0, 1.0)))


__all__ = ["Function2D", "quadratic", "rosenbrock", "valley"]
