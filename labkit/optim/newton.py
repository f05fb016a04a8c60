r"""Newton's method with safeguards, Hessian-vector products, and Newton-CG (chapter 5).

Newton's method minimises the local quadratic model
:math:`f(w + d) \approx f(w) + g^\top d + \tfrac12 d^\top H d` with :math:`g = \nabla f(w)`,
:math:`H = \nabla^2 f(w)`:

.. math:: d = -(H + \lambda I)^{-1} g, \qquad w_{k+1} = w_k + t\, d,

where :math:`\lambda \ge 0` is the damping and :math:`t` the step size. Pure Newton is
:math:`\lambda = 0, t = 1`: it converges quadratically near a minimiser with a positive definite
Hessian but can diverge, or climb to a saddle point, elsewhere. Two safeguards make it safe:

* **damping**: if :math:`H + \lambda I` is not positive definite (its Cholesky factorisation
  fails), :math:`\lambda` is raised until it is, so :math:`d` is a descent direction;
* **backtracking line search** (Armijo): starting from :math:`t = 1`, :math:`t` shrinks by
  ``shrink`` until :math:`f(w + t d) \le f(w) + c\, t\, g^\top d`.

Near the minimiser :math:`t = 1` and :math:`\lambda = 0` are accepted and the fast local
convergence is kept. The Newton decrement :math:`\sqrt{-g^\top d} = \sqrt{g^\top H^{-1} g}`
measures the distance to the optimum: :math:`f(w) - f^\star \approx \tfrac12(g^\top H^{-1} g)`.

For many parameters the Hessian cannot even be stored (669,706 parameters of the course's MLP
give about :math:`4.5\times10^{11}` entries). A Hessian-vector product :math:`Hv` costs about two
gradients and never forms :math:`H` (:func:`hvp`, forward-over-reverse differentiation), and
Newton-CG (:func:`newton_cg_step`) solves :math:`H d = -g` approximately by conjugate gradients
using only such products.

The functions take ``f``, a callable mapping a 1-D tensor :math:`w` to a scalar tensor, built of
differentiable torch operations.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.func import grad, jvp
from torch.func import hessian as _hessian

from labkit.optim._checks import check_nonnegative

Objective = Callable[[torch.Tensor], torch.Tensor]


def _check_w(w: torch.Tensor) -> torch.Tensor:
    if not isinstance(w, torch.Tensor) or w.dim() != 1:
        shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f"w must be a 1-D tensor of parameters; got {shape}")
    return w.detach()


def gradient(f: Objective, w: torch.Tensor) -> torch.Tensor:
    r"""The gradient :math:`\nabla f(w)` (``torch.func.grad``; chapters 3 and 5)."""
    return grad(f)(_check_w(w))


def hessian(f: Objective, w: torch.Tensor) -> torch.Tensor:
    r"""The full Hessian :math:`\nabla^2 f(w)`, an :math:`n\times n` matrix (chapter 5).

    Costs about :math:`n` Hessian-vector products and :math:`n^2` numbers of memory: fine for
    the 2-D test functions and small models, impossible for a neural network.
    """
    return _hessian(f)(_check_w(w))


def hvp(f: Objective, w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""The Hessian-vector product :math:`\nabla^2 f(w)\,v` without forming the Hessian (chapter 5).

    It is the directional derivative of the gradient, :math:`\frac{d}{d\epsilon}\nabla f(w +
    \epsilon v)\big|_{\epsilon=0}`, computed by forward-mode differentiation (``jvp``) of the
    reverse-mode gradient (``grad``): about the cost of two gradient evaluations.
    """
    w = _check_w(w)
    if v.shape != w.shape:
        raise ValueError(f"v must have the shape of w {tuple(w.shape)}; got {tuple(v.shape)}")
    return jvp(grad(f), (w,), (v.detach(),))[1]


def damped_newton_direction(
    g: torch.Tensor, H: torch.Tensor, damping: float = 0.0, max_tries: int = 100
) -> tuple[torch.Tensor, float]:
    r"""Solve :math:`(H + \lambda I) d = -g` with enough damping :math:`\lambda` (chapter 5).

    :math:`\lambda` is raised until the matrix is positive definite; returns :math:`d` and the
    :math:`\lambda` used.

    Starting from ``damping``, :math:`\lambda` doubles (from a floor of :math:`10^{-8}` times
    the largest diagonal entry) until a Cholesky factorisation succeeds.
    """
    eye = torch.eye(len(g), dtype=H.dtype, device=H.device)
    scale = max(H.diagonal().abs().max().item(), 1.0)
    lam = damping
    for _ in range(max_tries):
        L, info = torch.linalg.cholesky_ex(H + lam * eye)
        if info.item() == 0:
            return -torch.cholesky_solve(g.unsqueeze(1), L).squeeze(1), lam
        lam = max(2 * lam, 1e-8 * scale)
    raise RuntimeError(f"H + lambda I is not positive definite even at lambda={lam:g}")


def backtracking(
    f: Objective,
    w: torch.Tensor,
    d: torch.Tensor,
    f_w: float,
    slope: float,
    *,
    c: float = 1e-4,
    shrink: float = 0.5,
    max_backtracks: int = 30,
) -> tuple[float, int, bool]:
    r"""Armijo backtracking line search (chapters 3 and 5).

    The first :math:`t \in \{1, \rho, \rho^2, \dots\}` with
    :math:`f(w + t d) \le f(w) + c\,t\,g^\top d`; ``slope`` is :math:`g^\top d < 0`.

    Returns ``(t, backtracks, accepted)``; when no step passes within ``max_backtracks`` the
    result is ``(0.0, max_backtracks, False)``: the caller stays where it is.
    """
    t = 1.0
    for k in range(max_backtracks + 1):
        value = f(w + t * d).item()
        if math.isfinite(value) and value <= f_w + c * t * slope:
            return t, k, True
        t *= shrink
    return 0.0, max_backtracks, False


def _check_line_search(c: float, shrink: float, max_backtracks: int, damping: float) -> None:
    check_nonnegative("damping", damping)
    if not 0 < c < 1:
        raise ValueError(f"c (the Armijo constant) must be in (0, 1); got c={c!r}")
    if not 0 < shrink < 1:
        raise ValueError(f"shrink must be in (0, 1); got shrink={shrink!r}")
    if not isinstance(max_backtracks, int) or max_backtracks < 0:
        raise ValueError(f"max_backtracks must be an integer >= 0; got {max_backtracks!r}")


def _take_step(f, w, g, d, f_w, line_search, c, shrink, max_backtracks):
    slope = torch.dot(g, d).item()
    if line_search:
        t, backtracks, accepted = backtracking(f, w, d, f_w, slope, c=c, shrink=shrink,
                                               max_backtracks=max_backtracks)
    else:
        t, backtracks, accepted = 1.0, 0, True
    return w + t * d, dict(f=f_w, grad_norm=g.norm().item(),
                           decrement=math.sqrt(max(-slope, 0.0)), step_size=t,
                           backtracks=backtracks, accepted=accepted)


def newton_step(
    f: Objective,
    w: torch.Tensor,
    *,
    damping: float = 0.0,
    line_search: bool = True,
    c: float = 1e-4,
    shrink: float = 0.5,
    max_backtracks: int = 30,
) -> tuple[torch.Tensor, dict]:
    r"""One damped Newton step with backtracking, the module docstring's safeguards (chapter 5).

    Returns the new iterate and ``info``: ``f`` (at :math:`w`), ``grad_norm``, ``decrement``
    (:math:`\sqrt{-g^\top d}`), ``damping`` (the :math:`\lambda` used), ``step_size`` :math:`t`,
    ``backtracks`` and ``accepted``. With ``damping=0, line_search=False`` it is pure Newton,
    :math:`w - H^{-1} g`, which fails (``RuntimeError``) if :math:`H` is singular.
    """
    _check_line_search(c, shrink, max_backtracks, damping)
    w = _check_w(w)
    g = gradient(f, w)
    H = hessian(f, w)
    if line_search or damping > 0:
        d, lam = damped_newton_direction(g, H, damping)
    else:
        d, lam = -torch.linalg.solve(H, g), 0.0  # pure Newton: H may be indefinite
    new_w, info = _take_step(f, w, g, d, f(w).item(), line_search, c, shrink, max_backtracks)
    info["damping"] = lam
    return new_w, info


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    max_iters: int,
    tol: float,
) -> tuple[torch.Tensor, int, bool]:
    r"""Truncated conjugate gradients for :math:`A x = b` (chapter 5).

    :math:`A` is given only through ``matvec``, :math:`v \mapsto A v`.

    Stops when :math:`\lVert b - A x\rVert \le \text{tol}\cdot\lVert b\rVert`, after
    ``max_iters`` products, or on a direction of non-positive curvature :math:`p^\top A p \le 0`
    (then the current :math:`x` is returned, or :math:`b` itself if that happens at once, which
    for :math:`b = -g` is the steepest-descent direction). Returns ``(x, iterations,
    negative_curvature)``.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = torch.dot(r, r)
    b_norm = rr.sqrt()
    for i in range(max_iters):
        Ap = matvec(p)
        curvature = torch.dot(p, Ap)
        if curvature <= 0:
            return (b.clone() if i == 0 else x), i, True
        alpha = rr / curvature
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = torch.dot(r, r)
        if rr_new.sqrt() <= tol * b_norm:
            return x, i + 1, False
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, max_iters, False


def newton_cg_step(
    f: Objective,
    w: torch.Tensor,
    *,
    cg_iters: int = 50,
    tol: float | None = None,
    line_search: bool = True,
    c: float = 1e-4,
    shrink: float = 0.5,
    max_backtracks: int = 30,
) -> tuple[torch.Tensor, dict]:
    r"""One Newton-CG step (chapter 5).

    :math:`H d = -g` is solved by :func:`conjugate_gradient` on :func:`hvp` products (the
    Hessian is never formed), then the Armijo line search picks the step.

    ``tol`` is the relative residual at which CG stops; by default the forcing term
    :math:`\min(0.5, \sqrt{\lVert g\rVert})` of Nocedal and Wright (2006, §7.1), which gives
    superlinear convergence. ``info`` adds ``cg_iters`` and ``negative_curvature``.
    """
    _check_line_search(c, shrink, max_backtracks, 0.0)
    if not isinstance(cg_iters, int) or cg_iters < 1:
        raise ValueError(f"cg_iters must be an integer >= 1; got {cg_iters!r}")
    w = _check_w(w)
    g = gradient(f, w)
    if tol is None:
        tol = min(0.5, math.sqrt(g.norm().item()))
    d, iters, negative = conjugate_gradient(lambda v: hvp(f, w, v), -g, cg_iters, tol)
    new_w, info = _take_step(f, w, g, d, f(w).item(), line_search, c, shrink, max_backtracks)
    info.update(cg_iters=iters, negative_curvature=negative)
    return new_w, info


def newton(
    f: Objective,
    w0: torch.Tensor,
    steps: int,
    *,
    tol: float = 0.0,
    method: str = "newton",
    return_info: bool = False,
    **kwargs,
) -> torch.Tensor | tuple[torch.Tensor, list[dict]]:
    r"""Run ``steps`` Newton steps from ``w0``; returns the iterates, ``(k+1, n)`` (chapter 5).

    Stops early once :math:`\lVert\nabla f\rVert \le` ``tol``. ``method`` is ``"newton"``
    (:func:`newton_step`) or ``"newton-cg"`` (:func:`newton_cg_step`); ``kwargs`` go to the
    step. With ``return_info=True`` also returns the list of ``info`` dicts, one per step.
    """
    steppers = {"newton": newton_step, "newton-cg": newton_cg_step}
    if method not in steppers:
        raise ValueError(f"method must be 'newton' or 'newton-cg'; got {method!r}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0; got {steps!r}")
    w = _check_w(w0).clone()
    iterates, infos = [w], []
    for _ in range(steps):
        if tol > 0 and gradient(f, w).norm().item() <= tol:
            break
        w, info = steppers[method](f, w, **kwargs)
        iterates.append(w)
        infos.append(info)
    trajectory = torch.stack(iterates)
    return (trajectory, infos) if return_info else trajectory
