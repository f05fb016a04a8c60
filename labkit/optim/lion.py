r"""Lion, the sign of an interpolated momentum, as ``lion_pytorch.Lion`` computes it (chapter 8).

For each parameter :math:`w` with gradient :math:`g_t` (Chen et al., 2023):

.. math::

    w &\leftarrow (1 - \alpha\lambda)\, w                     &&\text{(decoupled weight decay)}\\
    u_t &= \operatorname{sign}\big(\beta_1 m_{t-1} + (1-\beta_1)\, g_t\big)
        &&\text{(the step: a sign)}\\
    w &\leftarrow w - \alpha\, u_t\\
    m_t &= \beta_2 m_{t-1} + (1-\beta_2)\, g_t                 &&\text{(momentum, after the step)}

from :math:`m_0 = 0`, with :math:`\operatorname{sign}(0) = 0`. Every coordinate moves by exactly
:math:`\alpha` (or not at all), so Lion is steepest descent in the max-norm
:math:`\lVert\cdot\rVert_\infty` applied to a momentum: its steps are larger than Adam's for the
same :math:`\alpha`, which is why it wants a 3-10x smaller rate and a larger :math:`\lambda`
(chapter 8 measures both). Two betas: the step mixes the *new* gradient in with
:math:`1-\beta_1 = 0.1`, the memory keeps it with :math:`1-\beta_2 = 0.01`.

``decoupled_weight_decay=True`` divides :math:`\lambda` by the learning rate the optimizer was
built with, :math:`\alpha_0`, so that the decay per step is :math:`\lambda\,\alpha/\alpha_0`: it
follows a schedule of :math:`\alpha` but not its size (as ``lion_pytorch`` does; the value of
:math:`\alpha_0` is stored in each param group as ``init_lr``).

The code performs the same floating-point operations in the same order as ``lion_pytorch``'s
``update_fn``, so the two agree to the last bit.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from labkit import _checks as checks
from labkit.optim.base import Optimizer


@torch.no_grad()
def lion_step(params: list[torch.Tensor], grads: list[torch.Tensor],
              exp_avgs: list[torch.Tensor], *, lr: float, beta1: float = 0.9,
              beta2: float = 0.99, weight_decay: float = 0.0) -> None:
    r"""One Lion step on every tensor of ``params``, in place (chapter 8).

    .. math:: w \leftarrow (1-\alpha\lambda)\,w - \alpha\,\operatorname{sign}\big(\beta_1 m +
              (1-\beta_1) g\big), \qquad m \leftarrow \beta_2 m + (1-\beta_2)\, g

    ``exp_avgs`` (:math:`m`) are updated in place, after the step; ``weight_decay`` is the
    :math:`\lambda` of this step (already divided by ``init_lr`` when decoupled).
    """
    for w, g, m in zip(params, grads, exp_avgs, strict=True):
        w.mul_(1 - lr * weight_decay)  # w <- (1 - lr*lambda) w
        update = m.clone().mul_(beta1).add(g, alpha=1 - beta1).sgn_()  # sign(b1 m + (1-b1) g)
        w.add_(update, alpha=-lr)  # w <- w - lr * sign(...)
        m.mul_(beta2).add_(g, alpha=1 - beta2)  # m <- b2 m + (1-b2) g


class Lion(Optimizer):
    """``lion_pytorch.Lion`` rebuilt on :func:`lion_step`, with the same state layout (chapter 8).

    Each parameter's state is ``exp_avg`` alone (no step count), as in ``lion_pytorch``, so
    their ``state_dict`` objects load across. The param groups also carry
    ``decoupled_weight_decay`` and ``init_lr`` (the ``lr`` given to the constructor), which
    ``lion_pytorch`` keeps on the optimizer instead.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float = 1e-4,
                 betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0,
                 decoupled_weight_decay: bool = False) -> None:
        checks.positive("lr", lr)
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      init_lr=lr))

    def check_group(self, group: dict) -> None:
        checks.positive("lr", group["lr"])
        try:
            beta1, beta2 = group["betas"]
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair (beta1, beta2); got {group['betas']!r}") \
                from None
        group["betas"] = (checks.interval("betas[0]", beta1, 0.0, 1.0, "[]"),
                          checks.interval("betas[1]", beta2, 0.0, 1.0, "[]"))
        checks.finite("weight_decay", group["weight_decay"])

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:  # a lion_pytorch state_dict lacks our two group keys
            for key in ("decoupled_weight_decay", "init_lr"):
                group.setdefault(key, self.defaults[key])

    def step_group(self, group: dict, params: list[torch.Tensor],
                   grads: list[torch.Tensor]) -> None:
        for p in params:
            if not self.state[p]:
                self.state[p]["exp_avg"] = torch.zeros_like(p)
        weight_decay = group["weight_decay"]
        if group["decoupled_weight_decay"]:
            weight_decay /= group["init_lr"]
        beta1, beta2 = group["betas"]
        lion_step(params, grads, [self.state[p]["exp_avg"] for p in params], lr=group["lr"],
                  beta1=beta1, beta2=beta2, weight_decay=weight_decay)
