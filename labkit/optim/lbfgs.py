r"""L-BFGS: Newton's method with a Hessian learned from the last few gradient changes (chapter 5).

After a step :math:`s_k = w_{k+1} - w_k` the gradient changes by
:math:`y_k = \nabla f(w_{k+1}) - \nabla f(w_k) \approx H s_k`. BFGS builds an approximation of
the *inverse* Hessian that satisfies these secant equations; L-BFGS keeps only the last
:math:`m` pairs (``history_size``) and never forms a matrix: the **two-loop recursion**
(:func:`lbfgs_direction`) computes :math:`d = -H_k^{-1} g` in :math:`O(mn)` operations,

.. math::

    &q \leftarrow -g;\quad \text{for } i = k-1, \dots, k-m:\
      \alpha_i = \rho_i\, s_i^\top q,\ q \leftarrow q - \alpha_i y_i \\
    &r \leftarrow \gamma\, q,\quad \gamma = \frac{s_{k-1}^\top y_{k-1}}{y_{k-1}^\top y_{k-1}} \\
    &\text{for } i = k-m, \dots, k-1:\ \beta_i = \rho_i\, y_i^\top r,\
      r \leftarrow r + (\alpha_i - \beta_i)\, s_i;\qquad d = r,

with :math:`\rho_i = 1/(y_i^\top s_i)`. A pair is stored only when :math:`y^\top s > 10^{-10}`
(curvature condition), which keeps the approximation positive definite.

:class:`LBFGS` repeats PyTorch's ``torch.optim.LBFGS`` step for step (same stopping tests,
same first step :math:`\min(1, 1/\lVert g\rVert_1)\cdot\text{lr}`), so the two take the same
steps; with ``line_search_fn="strong_wolfe"`` it runs :func:`labkit.optim.line_search.strong_wolfe`,
labkit's own copy of PyTorch's strong-Wolfe line search.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from labkit import _checks as checks
from labkit.optim.base import Optimizer
from labkit.optim.line_search import strong_wolfe


def lbfgs_direction(
    grad: torch.Tensor,
    s_history: list[torch.Tensor],
    y_history: list[torch.Tensor],
) -> torch.Tensor:
    r"""The L-BFGS direction :math:`d = -H_k^{-1} g` by the two-loop recursion (chapter 5).

    The recursion is written out in the module docstring.

    ``s_history`` and ``y_history`` hold the stored pairs, oldest first. With no pair it is
    :math:`-g`.
    """
    if len(s_history) != len(y_history):
        raise ValueError(f"s_history has {len(s_history)} vectors but y_history "
                         f"{len(y_history)}; they must come in pairs")
    m = len(s_history)
    rho = [1.0 / y.dot(s) for s, y in zip(s_history, y_history)]
    alpha = [None] * m
    q = grad.neg()
    for i in range(m - 1, -1, -1):
        alpha[i] = s_history[i].dot(q) * rho[i]
        q.add_(y_history[i], alpha=-alpha[i])
    if m:
        y, s = y_history[-1], s_history[-1]
        gamma = y.dot(s) / y.dot(y)  # initial inverse Hessian gamma*I
    else:
        gamma = 1
    r = torch.mul(q, gamma)
    for i in range(m):
        beta = y_history[i].dot(r) * rho[i]
        r.add_(s_history[i], alpha=alpha[i] - beta)
    return r


class LBFGS(Optimizer):
    """L-BFGS as a ``torch.optim.Optimizer``, with ``torch.optim.LBFGS``'s results (chapter 5).

    Like PyTorch's, it supports a single param group, and :meth:`step` needs a ``closure`` that
    zeroes the gradients, computes the loss, calls ``backward()`` and returns the loss; one call
    runs up to ``max_iter`` iterations (``max_eval`` function evaluations). ``line_search_fn``
    is ``None`` (fixed step ``lr``) or ``"strong_wolfe"``. The one different default is
    ``history_size=10`` (PyTorch's is 100): ten pairs are the textbook choice.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 10,
        line_search_fn: str | None = None,
        *,
        maximize: bool = False,
    ) -> None:
        if max_eval is None:
            max_eval = max_iter * 5 // 4 if isinstance(max_iter, int) else max_iter
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        history_size=history_size, line_search_fn=line_search_fn,
                        maximize=maximize)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS supports a single param group; got "
                             f"{len(self.param_groups)}")
        self._params = self.param_groups[0]["params"]

    def check_group(self, group: dict) -> None:
        for name in ("lr", "tolerance_grad", "tolerance_change"):
            checks.at_least(name, group[name])
        for name in ("max_iter", "history_size"):
            checks.integer(name, group[name], 1)
        checks.one_of("line_search_fn", group["line_search_fn"], (None, "strong_wolfe"))

    # --- flat views of the parameters and gradients -------------------------------------------

    def _flat_grad(self) -> torch.Tensor:
        flat = torch.cat([p.grad.reshape(-1) if p.grad is not None else p.new_zeros(p.numel())
                          for p in self._params])
        return flat.neg_() if self.param_groups[0]["maximize"] else flat

    def _add(self, t: float, d: torch.Tensor) -> None:
        """w <- w + t d, with d flat."""
        offset = 0
        for p in self._params:
            n = p.numel()
            p.add_(d[offset:offset + n].view_as(p), alpha=t)
            offset += n

    def _evaluate(self, closure: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
        loss = self.evaluate(closure)
        value = float(loss)
        return loss, -value if self.param_groups[0]["maximize"] else value

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """Up to ``max_iter`` L-BFGS iterations (chapter 5); returns the starting loss."""
        if closure is None:
            raise ValueError("LBFGS.step needs a closure that returns the loss; got None")
        group = self.param_groups[0]
        lr, history_size = group["lr"], group["history_size"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        # the state is global; it is stored under the first parameter, as PyTorch does
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss, loss = self._evaluate(closure)
        evals = 1
        state["func_evals"] += 1
        g = self._flat_grad()
        if g.abs().max() <= tol_grad:
            return orig_loss

        d, t = state.get("d"), state.get("t")
        s_hist, y_hist = state.get("s_history", []), state.get("y_history", [])
        prev_g, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")

        n_iter = 0
        while n_iter < group["max_iter"]:
            n_iter += 1
            state["n_iter"] += 1
            # direction
            if state["n_iter"] == 1:
                d, s_hist, y_hist = g.neg(), [], []
            else:
                y, s = g.sub(prev_g), d.mul(t)
                if y.dot(s) > 1e-10:  # curvature condition: keep the pair
                    if len(s_hist) == history_size:
                        s_hist.pop(0)
                        y_hist.pop(0)
                    s_hist.append(s)
                    y_hist.append(y)
                d = lbfgs_direction(g, s_hist, y_hist)
            prev_g = g.clone(memory_format=torch.contiguous_format)
            prev_loss = loss
            # step length
            t = min(1.0, 1.0 / g.abs().sum()) * lr if state["n_iter"] == 1 else lr
            gtd = g.dot(d)  # directional derivative
            if gtd > -tol_change:
                break
            if group["line_search_fn"] == "strong_wolfe":
                x0 = [p.clone(memory_format=torch.contiguous_format) for p in self._params]

                def directional(x, step, direction):
                    self._add(step, direction)
                    _, value = self._evaluate(closure)
                    flat = self._flat_grad()
                    for p, p0 in zip(self._params, x):
                        p.copy_(p0)
                    return value, flat

                loss, g, t, ls_evals = strong_wolfe(directional, x0, t, d, loss, g, gtd,
                                                    max_ls=group["max_eval"] - evals)
                self._add(t, d)
            else:  # fixed step; re-evaluate except after the last iteration
                self._add(t, d)
                ls_evals = 0
                if n_iter != group["max_iter"]:
                    _, loss = self._evaluate(closure)
                    g = self._flat_grad()
                    ls_evals = 1
            evals += ls_evals
            state["func_evals"] += ls_evals
            # stopping tests
            if (n_iter == group["max_iter"] or evals >= group["max_eval"]
                    or g.abs().max() <= tol_grad or d.mul(t).abs().max() <= tol_change
                    or abs(loss - prev_loss) < tol_change):
                break

        state.update(d=d, t=t, s_history=s_hist, y_history=y_hist, prev_flat_grad=prev_g,
                     prev_loss=prev_loss)
        return orig_loss
