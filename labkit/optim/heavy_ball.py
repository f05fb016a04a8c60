r"""Polyak's heavy ball and Nesterov's method in the lecture's form (chapter 4).

Heavy ball (Polyak, 1964): a gradient step plus a fraction :math:`\beta` of the last move,

.. math:: w_{t+1} = w_t - \alpha\,\nabla f(w_t) + \beta\,(w_t - w_{t-1}),

and Nesterov's accelerated gradient, which takes the gradient at the look-ahead point
:math:`y_t = w_t + \beta(w_t - w_{t-1})`:

.. math:: w_{t+1} = w_t - \alpha\,\nabla f(y_t) + \beta\,(w_t - w_{t-1})
          = y_t - \alpha\nabla f(y_t).

Both start from :math:`w_{-1} = w_0` (no previous move).

**How these map onto ``torch.optim.SGD``** (proved in ``tests/test_optim_heavy_ball.py``).
PyTorch keeps a buffer :math:`b_t = \mu b_{t-1} + g_t` (:math:`b_1 = g_1`) and steps
:math:`p_{t+1} = p_t - \alpha b_t`. Writing the move :math:`v_t = w_{t+1} - w_t`, heavy ball is
:math:`v_t = \beta v_{t-1} - \alpha \nabla f(w_t)`, so :math:`v_t = -\alpha b_t` with
:math:`\mu = \beta`: *heavy ball with* :math:`(\alpha, \beta)` *is* ``SGD(lr=alpha,
momentum=beta, dampening=0)`` and the iterates are the same, :math:`p_t = w_t`.
With ``nesterov=True`` PyTorch steps :math:`p_{t+1} = p_t - \alpha(g_t + \mu b_t)`; substituting
shows that PyTorch's :math:`p_t` are the lecture's **look-ahead points** :math:`y_t`, not the
:math:`w_t`, which are recovered as :math:`w_t = p_t + \alpha\beta\, b`, with :math:`b` the
buffer right after the step that produced :math:`p_t`. The correspondence holds for a constant
learning rate: when a scheduler changes :math:`\alpha`, PyTorch applies the new rate to the
whole buffer (every past gradient) while the heavy ball's past moves keep the old one, and the
trajectories part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from labkit import _checks as checks
from labkit.optim.base import Optimizer


@torch.no_grad()
def heavy_ball_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    previous: list[torch.Tensor],
    *,
    lr: float,
    beta: float,
) -> None:
    r"""One heavy-ball step on every tensor of ``params``, in place (chapter 4).

    :math:`w_{t+1} = w_t - \alpha\,g + \beta\,(w_t - w_{t-1})`, with ``previous`` holding
    :math:`w_{t-1}` (set it to :math:`w_0` before the first step), updated here to :math:`w_t`.
    For Nesterov's form pass the gradients taken at the look-ahead point :func:`lookahead`.
    """
    for w, g, w_prev in zip(params, grads, previous):
        w_next = w - lr * g + beta * (w - w_prev)
        w_prev.copy_(w)
        w.copy_(w_next)


def lookahead(w: torch.Tensor, w_prev: torch.Tensor, beta: float) -> torch.Tensor:
    r"""Nesterov's look-ahead point :math:`y_t = w_t + \beta\,(w_t - w_{t-1})` (chapter 4)."""
    return w + beta * (w - w_prev)


def pytorch_sgd_equivalent(lr: float, beta: float, nesterov: bool = False) -> dict:
    """The ``torch.optim.SGD`` settings whose trajectory equals heavy ball's (chapter 4).

    Heavy ball: ``SGD(lr=lr, momentum=beta, dampening=0)`` gives the same iterates ``w_t``.
    Nesterov (``nesterov=True``): ``SGD(lr=lr, momentum=beta, dampening=0, nesterov=True)``
    gives the lecture's look-ahead points ``y_t = w_t + beta (w_t - w_{t-1})`` as its iterates
    (see the module docstring). Both hold for a constant learning rate, from ``w_{-1} = w_0``.
    """
    checks.at_least("lr", lr)
    checks.at_least("beta", beta)
    if nesterov and beta == 0:
        raise ValueError("nesterov=True needs beta > 0 (torch.optim.SGD needs momentum > 0)")
    return dict(lr=lr, momentum=beta, dampening=0.0, nesterov=nesterov)


class HeavyBall(Optimizer):
    r"""The lecture's momentum as an optimizer (chapter 4); its state is ``prev``, :math:`w_{t-1}`.

    With ``nesterov=False``, :meth:`step` uses the gradients already in ``p.grad``, like any
    optimizer. With ``nesterov=True`` the gradient must be taken at the look-ahead point, so
    :meth:`step` *requires* a ``closure`` that zeroes the gradients, computes the loss and calls
    ``backward()``: the step moves the parameters to :math:`y_t`, evaluates the closure there,
    and steps from :math:`y_t` with those gradients (:math:`w_{t+1} = y_t - \alpha\nabla
    f(y_t)`). It returns the loss at the look-ahead point.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float,
        beta: float,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, dict(lr=lr, beta=beta, nesterov=nesterov))

    def check_group(self, group: dict) -> None:
        checks.at_least("lr", group["lr"])
        checks.at_least("beta", group["beta"])

    def _prev(self, p: torch.Tensor) -> torch.Tensor:
        state = self.state[p]
        if "prev" not in state:  # w_{-1} = w_0: no previous move
            state["prev"] = p.detach().clone()
        return state["prev"]

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One heavy-ball (or Nesterov) step for every group; see the class docstring."""
        if closure is None and any(g["nesterov"] for g in self.param_groups):
            raise ValueError(
                "HeavyBall(nesterov=True).step needs a closure (zero_grad, loss, backward) "
                "to take the gradient at the look-ahead point; got closure=None"
            )
        self._current = {}  # w_t of the parameters moved to the look-ahead point
        for group in self.param_groups:  # move to y_t = w_t + beta (w_t - w_{t-1})
            for p in group["params"] if group["nesterov"] else []:
                self._current[p] = p.detach().clone()
                p.copy_(lookahead(p, self._prev(p), group["beta"]))
        return super().step(closure)

    def step_group(self, group: dict, params: list[torch.Tensor],
                   grads: list[torch.Tensor]) -> None:
        for p in group["params"] if group["nesterov"] else []:
            p.copy_(self._current.pop(p))  # back to w_t; the gradients are those at y_t
        heavy_ball_step(params, grads, [self._prev(p) for p in params], lr=group["lr"],
                        beta=group["beta"])
