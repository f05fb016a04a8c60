r"""Stochastic gradient descent with momentum, as ``torch.optim.SGD`` computes it (chapters 3-4).

One step, for each parameter :math:`w` with gradient :math:`g = \nabla f(w)`:

.. math::

    g &\leftarrow g + \lambda w                      &&\text{(weight decay)}\\
    b_t &= \mu\, b_{t-1} + (1-\tau)\, g,\quad b_1 = g  &&\text{(momentum buffer)}\\
    d &= g + \mu\, b_t \text{ (Nesterov) or } d = b_t &&\\
    w &\leftarrow w - \alpha\, d

with learning rate :math:`\alpha`, momentum :math:`\mu`, dampening :math:`\tau` and weight
decay :math:`\lambda`; ``maximize`` flips the sign of :math:`g` first. Without momentum this is
plain gradient descent, :math:`w \leftarrow w - \alpha \nabla f(w)`. Note that the first step
copies the gradient into the buffer *without* dampening, exactly as PyTorch does.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from labkit import _checks as checks
from labkit.optim.base import Optimizer


@torch.no_grad()
def sgd_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    momentum_buffers: list[torch.Tensor | None],
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
) -> None:
    r"""One SGD step on every tensor of ``params``, in place (chapters 3 and 4).

    The equations are the module docstring's; with ``momentum=0`` it is gradient descent.

    ``momentum_buffers`` holds one entry per parameter: ``None`` before the first step, then the
    buffer :math:`b_t`, which this function creates and updates in place.
    """
    for i, w in enumerate(params):
        g = grads[i] if not maximize else -grads[i]
        if weight_decay != 0:
            g = g.add(w, alpha=weight_decay)
        if momentum != 0:
            buf = momentum_buffers[i]
            if buf is None:
                buf = momentum_buffers[i] = g.detach().clone()
            else:
                buf.mul_(momentum).add_(g, alpha=1 - dampening)
            g = g.add(buf, alpha=momentum) if nesterov else buf
        w.add_(g, alpha=-lr)


@torch.no_grad()
def sgd_step_foreach(params: list[torch.Tensor], grads: list[torch.Tensor],
                     momentum_buffers: list[torch.Tensor | None], *, lr: float,
                     momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
                     nesterov: bool = False, maximize: bool = False) -> None:
    """:func:`sgd_step` on all tensors at once with ``torch._foreach_*`` kernels (chapter 4).

    Same arguments, same numbers, fewer kernel launches (which matters on a GPU).
    """
    if not params:
        return
    g = torch._foreach_neg(grads) if maximize else list(grads)
    if weight_decay != 0:
        g = torch._foreach_add(g, params, alpha=weight_decay)
    if momentum != 0:
        if any(b is None for b in momentum_buffers):
            for i, b in enumerate(momentum_buffers):
                if b is None:
                    momentum_buffers[i] = g[i].detach().clone()
                else:  # a mix of new and old buffers: update the old ones one by one
                    b.mul_(momentum).add_(g[i], alpha=1 - dampening)
        else:
            bufs = list(momentum_buffers)
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_add_(bufs, g, alpha=1 - dampening)
        g = torch._foreach_add(g, momentum_buffers, alpha=momentum) if nesterov \
            else list(momentum_buffers)
    torch._foreach_add_(params, g, alpha=-lr)


class SGD(Optimizer):
    """``torch.optim.SGD`` rebuilt on :func:`sgd_step` (chapter 4).

    Param groups, ``state_dict``/``load_state_dict``, ``zero_grad`` and learning-rate schedulers
    work as with PyTorch's.

    The state of a parameter is ``{"momentum_buffer": b_t}`` (only with momentum), the same
    layout as PyTorch's, so a ``state_dict`` of one loads into the other. ``foreach=True``
    runs :func:`sgd_step_foreach`, which gives the same numbers with fewer kernel launches.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        maximize: bool = False,
        *,
        foreach: bool = False,
    ) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize, foreach=foreach))

    def check_group(self, group: dict) -> None:
        checks.at_least("lr", group["lr"])
        checks.at_least("momentum", group["momentum"])
        checks.finite("dampening", group["dampening"])
        checks.at_least("weight_decay", group["weight_decay"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"nesterov=True needs momentum > 0 and dampening = 0; got "
                             f"momentum={group['momentum']!r}, dampening={group['dampening']!r}")

    def step_group(self, group: dict, params: list[torch.Tensor],
                   grads: list[torch.Tensor]) -> None:
        buffers = [self.state[p].get("momentum_buffer") for p in params]
        step = sgd_step_foreach if group["foreach"] else sgd_step
        step(params, grads, buffers, lr=group["lr"], momentum=group["momentum"],
             dampening=group["dampening"], weight_decay=group["weight_decay"],
             nesterov=group["nesterov"], maximize=group["maximize"])
        if group["momentum"] != 0:
            for p, buf in zip(params, buffers):
                self.state[p]["momentum_buffer"] = buf
