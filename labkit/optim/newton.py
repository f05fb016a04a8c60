r"""Newton's method with safeguards, and Newton-CG (chapter 5).

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
gradients and never forms :math:`H` (:func:`labkit.gradients.hvp`), and Newton-CG
(:func:`newton_cg_step`) solves :math:`H d = -g` approximately by conjugate gradients using only
such products.

Like :func:`labkit.optim.sgd.sgd_step`, :func:`newton_step` and :func:`newton_cg_step` update a
list of parameter tensors in place from their gradients (and the Hessian, or Hessian-vector
products); ``closure()`` gives the loss for the line search. :func:`newton` runs them on ``f(w)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from labkit import _checks as checks
from labkit.gradients import Objective, gradient, hessian, hvp

Closure = Callable[[], torch.Tensor]


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
    phi: Callable[[float], float],
    f_w: float,
    slope: float,
    *,
    c: float = 1e-4,
    shrink: float = 0.5,
    max_backtracks: int = 30,
) -> tuple[float, int, bool]:
    r"""Armijo backtracking line search (chapters 3 and 5).

    The first :math:`t \in \{1, \rho, \rho^2, \dots\}` with :math:`\phi(t) \le f(w) + c\,t\,g^\top
    d`, where :math:`\phi(t) = f(w + t d)` is the loss along the direction :math:`d`, ``f_w`` is
    :math:`f(w)` and ``slope`` is :math:`g^\top d < 0`.

    Returns ``(t, backtracks, accepted)``; when no step passes within ``max_backtracks`` the
    result is ``(0.0, max_backtracks, False)``: the caller stays where it is.
    """
    t = 1.0
    for k in range(max_backtracks + 1):
        value = phi(t)
        if math.isfinite(value) and value <= f_w + c * t * slope:
            return t, k, True
        t *= shrink
    return 0.0, max_backtracks, False


def _line_step(params, g, d, closure, line_search, c, shrink, max_backtracks) -> dict:
    """Move ``params`` along the flat direction ``d``: by the Armijo step, or by ``t = 1``."""
    checks.interval("c", c, 0.0, 1.0, "()")
    checks.interval("shrink", shrink, 0.0, 1.0, "()")
    checks.integer("max_backtracks", max_backtracks)
    origin = [p.clone() for p in params]
    f_w, slope = float(closure()), torch.dot(g, d).item()

    def move(t: float) -> None:  # params <- origin + t d
        offset = 0
        for p, p0 in zip(params, origin):
            p.copy_(p0 + t * d[offset:offset + p.numel()].view_as(p))
            offset += p.numel()

    def phi(t: float) -> float:
        move(t)
        return float(closure())

    if line_search:
        t, backtracks, accepted = backtracking(phi, f_w, slope, c=c, shrink=shrink,
                                               max_backtracks=max_backtracks)
        if not accepted:
            move(t)
    else:
        t, backtracks, accepted = 1.0, 0, True
        move(t)
    return dict(f=f_w, grad_norm=g.norm().item(), decrement=math.sqrt(max(-slope, 0.0)),
                step_size=t, backtracks=backtracks, accepted=accepted)


@torch.no_grad()
def newton_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    hessian: torch.Tensor,
    closure: Closure,
    *,
    damping: float = 0.0,
    line_search: bool = True,
    c: float = 1e-4,
    shrink: float = 0.5,
    max_backtracks: int = 30,
) -> dict:
    r"""One damped Newton step with backtracking on ``params``, in place (chapter 5).

    ``grads`` are the gradients of the parameters, ``hessian`` the Hessian over their
    concatenation, and ``closure()`` evaluates the loss at the current parameters. The direction
    solves :math:`(H + \lambda I)\,d = -g`, then the Armijo line search picks the step (the
    safeguards of the module docstring). Returns ``info``: ``f`` (at :math:`w`), ``grad_norm``,
    ``decrement`` (:math:`\sqrt{-g^\top d}`), ``damping`` (the :math:`\lambda` used),
    ``step_size`` :math:`t`, ``backtracks`` and ``accepted``. With ``damping=0,
    line_search=False`` it is pure Newton, :math:`w - H^{-1} g`, which fails (``RuntimeError``)
    if :math:`H` is singular.
    """
    checks.at_least("damping", damping)
    g = torch.cat([x.reshape(-1) for x in grads])
    if line_search or damping > 0:
        d, lam = damped_newton_direction(g, hessian, damping)
    else:
        d, lam = -torch.linalg.solve(hessian, g), 0.0  # pure Newton: H may be indefinite
    info = _line_step(params, g, d, closure, line_search, c, shrink, max_backtracks)
    info["damping"] = lam
    return info


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


@torch.no_grad()
def newton_cg_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    hvp_fn: Callable[[torch.Tensor], torch.Tensor],
    closure: Closure,
    *,
    cg_iters: int = 50,
    tol: float | None = None,
    line_search: bool = True,
    c: float = 1e-4,
    shrink: float = 0.5,
    max_backtracks: int = 30,
) -> dict:
    r"""One Newton-CG step on ``params``, in place (chapter 5).

    :math:`H d = -g` is solved by :func:`conjugate_gradient` on the products ``hvp_fn(v)``
    :math:`= Hv` (the Hessian is never formed), then the Armijo line search picks the step, as in
    :func:`newton_step`.

    ``tol`` is the relative residual at which CG stops; by default the forcing term
    :math:`\min(0.5, \sqrt{\lVert g\rVert})` of Nocedal and Wright (2006, §7.1), which gives
    superlinear convergence. ``info`` adds ``cg_iters`` and ``negative_curvature``.
    """
    checks.integer("cg_iters", cg_iters, 1)
    g = torch.cat([x.reshape(-1) for x in grads])
    if tol is None:
        tol = min(0.5, math.sqrt(g.norm().item()))
    d, iters, negative = conjugate_gradient(hvp_fn, -g, cg_iters, tol)
    info = _line_step(params, g, d, closure, line_search, c, shrink, max_backtracks)
    info.update(cg_iters=iters, negative_curvature=negative)
    return info


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
    r"""Run ``steps`` Newton steps on ``f`` from the flat vector ``w0``; returns the iterates,
    ``(k+1, n)`` (chapter 5).

    Stops early once :math:`\lVert\nabla f\rVert \le` ``tol``. ``method`` is ``"newton"``
    (:func:`newton_step` with the Hessian of :func:`labkit.gradients.hessian`) or
    ``"newton-cg"`` (:func:`newton_cg_step` with :func:`labkit.gradients.hvp`); ``kwargs`` go to
    the step. With ``return_info=True`` also returns the list of ``info`` dicts, one per step.
    """
    checks.one_of("method", method, ("newton", "newton-cg"))
    checks.integer("steps", steps)
    w = checks.vector(w0).clone()
    iterates, infos = [w.clone()], []
    for _ in range(steps):
        g = gradient(f, w)
        if tol > 0 and g.norm().item() <= tol:
            break
        if method == "newton":
            info = newton_step([w], [g], hessian(f, w), lambda: f(w), **kwargs)
        else:
            info = newton_cg_step([w], [g], lambda v: hvp(f, w, v), lambda: f(w), **kwargs)
        iterates.append(w.clone())
        infos.append(info)
    trajectory = torch.stack(iterates)
    return (trajectory, infos) if return_info else trajectory
