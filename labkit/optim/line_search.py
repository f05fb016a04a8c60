r"""A line search that satisfies the strong Wolfe conditions, as ``torch.optim.LBFGS`` runs it
(chapter 5).

Along a descent direction :math:`d` from :math:`x`, with :math:`\phi(t) = f(x + t d)`, a step
:math:`t` satisfies the **strong Wolfe conditions** when

.. math:: \phi(t) \le \phi(0) + c_1\, t\, \phi'(0) \quad\text{(sufficient decrease)},\qquad
          |\phi'(t)| \le c_2\, |\phi'(0)| \quad\text{(curvature)},

with :math:`0 < c_1 < c_2 < 1` (:math:`10^{-4}` and :math:`0.9`). Nocedal and Wright's
Algorithm 3.5 finds one in two phases: **bracketing** grows the trial step (by cubic
extrapolation, at most tenfold) until an interval must contain an acceptable step, and **zoom**
(Algorithm 3.6) shrinks that interval by cubic interpolation until a step satisfies both
conditions. The cubic through :math:`(t_1, \phi_1, \phi'_1)` and :math:`(t_2, \phi_2, \phi'_2)`
has its minimiser at

.. math:: t^\ast = t_2 - (t_2 - t_1)\,\frac{\phi'_2 + d_2 - d_1}{\phi'_2 - \phi'_1 + 2 d_2},\qquad
          d_1 = \phi'_1 + \phi'_2 - 3\,\frac{\phi_1 - \phi_2}{t_1 - t_2},\quad
          d_2 = \sqrt{d_1^2 - \phi'_1 \phi'_2}

(Nocedal and Wright, eq. 3.59), clamped to the interval. These functions follow PyTorch's
``torch.optim.lbfgs`` (itself ported from Lua Torch's ``lswolfe``) operation for operation, so
that :class:`labkit.optim.lbfgs.LBFGS` takes the same steps as PyTorch's bit for bit; labkit owns
them instead of importing torch's private ``_strong_wolfe``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: The objective along the line, ``phi(x, t, d) -> (f(x + t d), gradient there)``.
LineFunction = Callable[[list[torch.Tensor], float, torch.Tensor], tuple[float, torch.Tensor]]


def cubic_minimiser(t1, f1, g1, t2, f2, g2, bounds=None):
    """The minimiser of the cubic through two points with values and slopes, clamped to
    ``bounds`` (default: the interval between them); the midpoint when the cubic has none
    (chapter 5, Nocedal and Wright eq. 3.59)."""
    lo, hi = bounds if bounds is not None else ((t1, t2) if t1 <= t2 else (t2, t1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (t1 - t2)
    d2_square = d1**2 - g1 * g2
    if not d2_square >= 0:  # no real minimiser (or NaN, from an overflow): the midpoint
        return (lo + hi) / 2.0
    d2 = d2_square.sqrt()
    if t1 <= t2:
        t = t2 - (t2 - t1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        t = t1 - (t1 - t2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(t, lo), hi)


def _copy(g: torch.Tensor) -> torch.Tensor:
    return g.clone(memory_format=torch.contiguous_format)


def strong_wolfe(phi: LineFunction, x: list[torch.Tensor], t: float, d: torch.Tensor, f: float,
                 g: torch.Tensor, gtd: torch.Tensor, c1: float = 1e-4, c2: float = 0.9,
                 tolerance_change: float = 1e-9, max_ls: int = 25):
    """A step along ``d`` that satisfies the strong Wolfe conditions (chapter 5): bracketing,
    then zoom (Nocedal and Wright, Algorithms 3.5 and 3.6).

    ``f``, ``g`` and ``gtd`` are the value, the flat gradient and the slope ``g.dot(d)`` at
    ``t = 0``; ``t`` is the first trial step; at most ``max_ls`` evaluations of ``phi``. Returns
    ``(f(t), gradient at t, t, evaluations)`` for the step found (the best one tried, when the
    budget or the interval's width ``tolerance_change`` runs out first).
    """
    d_norm = d.abs().max()
    g = _copy(g)
    f_new, g_new = phi(x, t, d)
    evals = 1
    gtd_new = g_new.dot(d)

    # Bracketing: grow t until [t_prev, t] must hold an acceptable step, or t is one.
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, _copy(g_new)], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:  # both conditions hold at t
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:  # the slope turned: the minimum lies behind t
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, _copy(g_new)], [gtd_prev, gtd_new]
            break
        min_step, max_step = t + 0.01 * (t - t_prev), t * 10
        previous = t
        t = cubic_minimiser(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                            bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = previous, f_new, _copy(g_new), gtd_new
        f_new, g_new = phi(x, t, d)
        evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # Zoom: shrink the bracket [low, high] (low: the lower value) by cubic interpolation.
    insufficient_progress = False
    low, high = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = cubic_minimiser(bracket[0], bracket_f[0], bracket_gtd[0],
                            bracket[1], bracket_f[1], bracket_gtd[1])
        # a trial too close to an end twice in a row (or outside) moves 10% of the width inside
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insufficient_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        f_new, g_new = phi(x, t, d)
        evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low]:
            # not enough decrease: t becomes the high end
            bracket[high], bracket_f[high] = t, f_new
            bracket_g[high], bracket_gtd[high] = _copy(g_new), gtd_new
            low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                # the old low becomes the high end
                bracket[high], bracket_f[high] = bracket[low], bracket_f[low]
                bracket_g[high], bracket_gtd[high] = bracket_g[low], bracket_gtd[low]
            bracket[low], bracket_f[low] = t, f_new
            bracket_g[low], bracket_gtd[low] = _copy(g_new), gtd_new
    return bracket_f[low], bracket_g[low], bracket[low], evals
