r"""RMSProp, as ``torch.optim.RMSprop`` computes it (chapter 7).

For each parameter :math:`w` with gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

.. math::

    g_t &\leftarrow g_t + \lambda w                    &&\text{(weight decay; } g_t \to -g_t
        \text{ first if maximize)}\\
    v_t &= \rho\, v_{t-1} + (1-\rho)\, g_t^2           &&\text{(mean square, } v_0 = 0)\\
    \bar g_t &= \rho\, \bar g_{t-1} + (1-\rho)\, g_t   &&\text{(mean, only if centered)}\\
    d_t &= \sqrt{v_t - \bar g_t^2} + \varepsilon \ \text{(centered)} \quad\text{or}\quad
        d_t = \sqrt{v_t} + \varepsilon\\
    b_t &= \mu\, b_{t-1} + g_t / d_t, \quad w \leftarrow w - \alpha\, b_t
        \ \text{(momentum } \mu > 0) \quad\text{or}\quad w \leftarrow w - \alpha\, g_t / d_t

with :math:`\rho` PyTorch's ``alpha`` (Tieleman and Hinton, 2012; the centered form: Graves,
2013). It is AdaGrad (:mod:`labkit.optim.adagrad`) with the sum of squares replaced by an
exponential moving average, so old gradients are forgotten and the step does not decay to zero;
Adam (chapter 6) is RMSProp plus a moving average of the gradient and bias correction.

The code performs the same floating-point operations in the same order as PyTorch's
``_single_tensor_rmsprop``, so the two agree to the last bit.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from labkit import _checks as checks
from labkit.optim.base import Optimizer


@torch.no_grad()
def rmsprop_step(params: list[torch.Tensor], grads: list[torch.Tensor],
                 square_avgs: list[torch.Tensor], grad_avgs: list[torch.Tensor],
                 momentum_buffers: list[torch.Tensor], state_steps: list[torch.Tensor], *,
                 lr: float, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False, maximize: bool = False) -> None:
    r"""One RMSProp step on every tensor of ``params``, in place (chapter 7).

    .. math:: v_t = \rho v_{t-1} + (1-\rho) g_t^2, \qquad
              w \leftarrow w - \alpha\, \frac{g_t}{\sqrt{v_t} + \varepsilon}

    with ``alpha`` :math:`=\rho` and ``lr`` :math:`=\alpha`, plus the options of the module
    docstring. ``square_avgs`` (:math:`v`), ``grad_avgs`` (:math:`\bar g`, read only when
    ``centered``) and ``momentum_buffers`` (:math:`b`, read only when ``momentum > 0``) are
    updated in place; ``state_steps`` holds one scalar tensor per parameter, incremented here.
    """
    for i, w in enumerate(params):
        g = grads[i] if not maximize else -grads[i]
        v = square_avgs[i]
        state_steps[i] += 1
        if weight_decay != 0:
            g = g.add(w, alpha=weight_decay)  # g <- g + lambda w
        v.mul_(alpha).addcmul_(g, g, value=1 - alpha)  # v <- rho v + (1-rho) g^2
        if centered:
            mean = grad_avgs[i]
            mean.lerp_(g, 1 - alpha)  # gbar <- rho gbar + (1-rho) g
            d = v.addcmul(mean, mean, value=-1).sqrt_()  # sqrt(v - gbar^2)
        else:
            d = v.sqrt()
        d = d.add_(eps)
        if momentum > 0:
            b = momentum_buffers[i]
            b.mul_(momentum).addcdiv_(g, d)  # b <- mu b + g / d
            w.add_(b, alpha=-lr)  # w <- w - alpha b
        else:
            w.addcdiv_(g, d, value=-lr)  # w <- w - alpha g / d


class RMSprop(Optimizer):
    """``torch.optim.RMSprop`` rebuilt on :func:`rmsprop_step`, with the same state layout
    (chapter 7).

    Each parameter's state is ``step`` (a float32 scalar tensor), ``square_avg`` and, with
    ``momentum > 0``, ``momentum_buffer`` and, when ``centered``, ``grad_avg``, as in PyTorch,
    so their ``state_dict`` objects load across.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float = 1e-2,
                 alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0,
                 momentum: float = 0, centered: bool = False, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def check_group(self, group: dict) -> None:
        checks.at_least("lr", group["lr"])
        checks.interval("alpha", group["alpha"], 0.0, 1.0, "[]")
        checks.at_least("eps", group["eps"])
        checks.at_least("weight_decay", group["weight_decay"])
        checks.at_least("momentum", group["momentum"])

    group_keys_on_load = {"momentum": 0, "centered": False, "maximize": False}

    def step_group(self, group: dict, params: list[torch.Tensor],
                   grads: list[torch.Tensor]) -> None:
        def buffers(p: torch.Tensor) -> dict:  # zeros_like keeps the memory format, as torch's
            names = ["square_avg"] + ["momentum_buffer"] * (group["momentum"] > 0) \
                + ["grad_avg"] * group["centered"]
            return {name: torch.zeros_like(p) for name in names}

        states = self.states(params, buffers)
        rmsprop_step(params, grads, [s["square_avg"] for s in states],
                     [s["grad_avg"] for s in states if group["centered"]],
                     [s["momentum_buffer"] for s in states if group["momentum"] > 0],
                     [s["step"] for s in states], lr=group["lr"], alpha=group["alpha"],
                     eps=group["eps"], weight_decay=group["weight_decay"],
                     momentum=group["momentum"], centered=group["centered"],
                     maximize=group["maximize"])
