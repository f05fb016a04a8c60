r"""AdaGrad, as ``torch.optim.Adagrad`` computes it (chapter 7).

For each parameter :math:`w` with gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

.. math::

    g_t &\leftarrow g_t + \lambda w                 &&\text{(weight decay; } g_t \to -g_t
        \text{ first if maximize)}\\
    s_t &= s_{t-1} + g_t^2                 &&\text{(sum of squares, } s_0 = s_{\text{init}})\\
    \alpha_t &= \alpha / \big(1 + (t-1)\,\delta\big) &&\text{(lr\_decay } \delta)\\
    w &\leftarrow w - \alpha_t\, g_t / (\sqrt{s_t} + \varepsilon)

(Duchi, Hazan and Singer, 2011). Every coordinate gets its own step
:math:`\alpha/\sqrt{s_t}`, which only shrinks: a coordinate with large or frequent gradients
slows down, a rare one keeps a large step. On a long run the sum grows like :math:`t`, so the
step decays like :math:`1/\sqrt t` by itself, which is AdaGrad's strength on convex problems and
its weakness on neural networks (RMSProp, :mod:`labkit.optim.rmsprop`, forgets old gradients).

The code performs the same floating-point operations in the same order as PyTorch's
``_single_tensor_adagrad``, so the two agree to the last bit.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from labkit import _checks as checks
from labkit.optim.base import Optimizer


@torch.no_grad()
def adagrad_step(params: list[torch.Tensor], grads: list[torch.Tensor],
                 state_sums: list[torch.Tensor], state_steps: list[torch.Tensor], *, lr: float,
                 lr_decay: float = 0.0, weight_decay: float = 0.0, eps: float = 1e-10,
                 maximize: bool = False) -> None:
    r"""One AdaGrad step on every tensor of ``params``, in place (chapter 7).

    .. math:: s_t = s_{t-1} + g_t^2, \qquad
              w \leftarrow w - \frac{\alpha}{1 + (t-1)\delta}\,\frac{g_t}{\sqrt{s_t} + \varepsilon}

    with :math:`g_t \leftarrow g_t + \lambda w` first when ``weight_decay`` :math:`\lambda > 0`.
    ``state_sums`` (:math:`s`) are updated in place; ``state_steps`` holds one scalar tensor per
    parameter, the step count :math:`t`, incremented here.
    """
    for w, g, s, step_t in zip(params, grads, state_sums, state_steps, strict=True):
        step_t += 1
        t = step_t.item()
        g = g if not maximize else -g
        if weight_decay != 0:
            g = g.add(w, alpha=weight_decay)  # g <- g + lambda w
        clr = lr / (1 + (t - 1) * lr_decay)  # alpha_t = alpha / (1 + (t-1) delta)
        s.addcmul_(g, g, value=1)  # s <- s + g^2
        std = s.sqrt().add_(eps)  # sqrt(s) + eps
        w.addcdiv_(g, std, value=-clr)  # w <- w - alpha_t g / (sqrt(s) + eps)


class Adagrad(Optimizer):
    """``torch.optim.Adagrad`` rebuilt on :func:`adagrad_step`, with the same state layout
    (chapter 7).

    Each parameter's state is ``step`` (a float32 scalar tensor) and ``sum`` (filled with
    ``initial_accumulator_value``), as in PyTorch, so their ``state_dict`` objects load across. One
    difference: a param group's own ``initial_accumulator_value`` is used for its parameters,
    where ``torch.optim.Adagrad`` fills every accumulator with the constructor's value.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float = 1e-2,
                 lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, *,
                 maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))

    def check_group(self, group: dict) -> None:
        for name in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            checks.at_least(name, group[name])

    group_keys_on_load = {"maximize": False}

    def step_group(self, group: dict, params: list[torch.Tensor],
                   grads: list[torch.Tensor]) -> None:
        states = self.states(params, lambda p: {"sum": torch.full_like(
            p, group["initial_accumulator_value"], memory_format=torch.preserve_format)})
        adagrad_step(params, grads, [s["sum"] for s in states], [s["step"] for s in states],
                     lr=group["lr"], lr_decay=group["lr_decay"],
                     weight_decay=group["weight_decay"], eps=group["eps"],
                     maximize=group["maximize"])
