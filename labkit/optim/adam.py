r"""Adam and AdamW, as ``torch.optim.Adam``/``AdamW`` compute them (chapter 6).

For each parameter :math:`w` with gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

.. math::

    m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t              &&\text{(first moment)}\\
    v_t &= \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2            &&\text{(second moment)}\\
    \hat m_t &= m_t / (1-\beta_1^t), \quad \hat v_t = v_t / (1-\beta_2^t)
        &&\text{(bias correction)}\\
    w &\leftarrow w - \alpha\, \hat m_t / (\sqrt{\hat v_t} + \varepsilon),

from :math:`m_0 = v_0 = 0` (Kingma and Ba, 2015). Options:

* ``weight_decay`` :math:`\lambda` adds :math:`\lambda w` to the gradient (an L2 penalty, which
  then passes through the adaptive scaling); with ``decoupled_weight_decay=True`` (AdamW,
  Loshchilov and Hutter, 2019) the weights shrink instead, :math:`w \leftarrow (1-\alpha\lambda)w`,
  before the update and outside it;
* ``amsgrad`` divides by the running maximum of :math:`v_t` instead of :math:`v_t`;
* ``maximize`` ascends: :math:`g_t \to -g_t`;
* ``bias_correction=False`` (not in PyTorch) drops the two divisions by :math:`1-\beta^t`, so that
  chapter 6 can show why they are there: :math:`m_t` and :math:`v_t` start biased towards 0, the
  second more (:math:`\beta_2 > \beta_1`), so the early steps come out too large: the first
  one is :math:`\alpha(1-\beta_1)/\sqrt{1-\beta_2} \approx 3.2\,\alpha` per coordinate with
  the default betas, against :math:`\alpha` with the correction.

The code performs the same floating-point operations in the same order as PyTorch's
``_single_tensor_adam`` (e.g. :math:`m_t` via ``lerp_``, the bias corrections folded into the
step size and the denominator), so the two agree to the last bit.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from labkit import _checks as checks
from labkit.optim.base import Optimizer


@torch.no_grad()
def adam_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    max_exp_avg_sqs: list[torch.Tensor],
    state_steps: list[torch.Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
    bias_correction: bool = True,
) -> None:
    r"""One Adam step on every tensor of ``params``, in place (chapter 6).

    The equations are the module docstring's.

    ``exp_avgs`` (:math:`m`), ``exp_avg_sqs`` (:math:`v`) and, with ``amsgrad``,
    ``max_exp_avg_sqs`` are updated in place; ``state_steps`` holds one scalar tensor per
    parameter, the step count :math:`t`, incremented here.
    """
    for i, w in enumerate(params):
        g = grads[i] if not maximize else -grads[i]
        m, v, step_t = exp_avgs[i], exp_avg_sqs[i], state_steps[i]
        step_t += 1
        if weight_decay != 0:
            if decoupled_weight_decay:
                w.mul_(1 - lr * weight_decay)  # AdamW: w <- (1 - lr*lambda) w
            else:
                g = g.add(w, alpha=weight_decay)  # Adam: g <- g + lambda w
        m.lerp_(g, 1 - beta1)  # m <- m + (1-beta1)(g - m) = beta1 m + (1-beta1) g
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v <- beta2 v + (1-beta2) g^2
        t = step_t.item()
        bias_correction1 = 1 - beta1**t if bias_correction else 1.0
        bias_correction2 = 1 - beta2**t if bias_correction else 1.0
        step_size = lr / bias_correction1
        if amsgrad:
            torch.maximum(max_exp_avg_sqs[i], v, out=max_exp_avg_sqs[i])
            v = max_exp_avg_sqs[i]
        denom = (v.sqrt() / bias_correction2**0.5).add_(eps)  # sqrt(v_hat) + eps
        w.addcdiv_(m, denom, value=-step_size)  # w <- w - lr m_hat / (sqrt(v_hat) + eps)


@torch.no_grad()
def adam_step_foreach(params: list[torch.Tensor], grads: list[torch.Tensor],
                      exp_avgs: list[torch.Tensor], exp_avg_sqs: list[torch.Tensor],
                      max_exp_avg_sqs: list[torch.Tensor], state_steps: list[torch.Tensor], *,
                      lr: float, beta1: float, beta2: float, eps: float,
                      weight_decay: float = 0.0, amsgrad: bool = False, maximize: bool = False,
                      decoupled_weight_decay: bool = False, bias_correction: bool = True) -> None:
    """:func:`adam_step` on all tensors at once with ``torch._foreach_*`` kernels (chapter 6).

    Same arguments and same numbers as :func:`adam_step`.

    Fewer kernel launches, which matters on a GPU; on a CPU the two run at about the same speed.
    """
    if not params:
        return
    g = torch._foreach_neg(grads) if maximize else list(grads)
    torch._foreach_add_(state_steps, 1)
    if weight_decay != 0:
        if decoupled_weight_decay:
            torch._foreach_mul_(params, 1 - lr * weight_decay)
        else:
            g = torch._foreach_add(g, params, alpha=weight_decay)
    torch._foreach_lerp_(exp_avgs, g, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, g, g, 1 - beta2)
    ts = [s.item() for s in state_steps]
    bc1 = [1 - beta1**t if bias_correction else 1.0 for t in ts]
    bc2 = [1 - beta2**t if bias_correction else 1.0 for t in ts]
    step_sizes = [-(lr / b) for b in bc1]
    if amsgrad:
        torch._foreach_maximum_(max_exp_avg_sqs, exp_avg_sqs)
        denom = torch._foreach_sqrt(max_exp_avg_sqs)
    else:
        denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, [b**0.5 for b in bc2])
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, step_sizes)


class Adam(Optimizer):
    """``torch.optim.Adam`` rebuilt on :func:`adam_step`, with the same state layout (chapter 6).

    Each parameter's state is ``step`` (a float32 scalar tensor), ``exp_avg``, ``exp_avg_sq``
    and, with ``amsgrad``, ``max_exp_avg_sq``, as in PyTorch, so their ``state_dict`` objects
    load across.
    ``foreach=True`` runs :func:`adam_step_foreach` (same numbers, multi-tensor kernels).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        maximize: bool = False,
        *,
        decoupled_weight_decay: bool = False,
        bias_correction: bool = True,
        foreach: bool = False,
    ) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      bias_correction=bias_correction, foreach=foreach))

    def check_group(self, group: dict) -> None:
        checks.at_least("lr", group["lr"])
        group["betas"] = checks.betas(group["betas"])
        checks.at_least("eps", group["eps"])
        checks.at_least("weight_decay", group["weight_decay"])

    group_keys_on_load = {"bias_correction": True, "foreach": False}  # torch.optim.Adam lacks them

    def step_group(self, group: dict, params: list[torch.Tensor],
                   grads: list[torch.Tensor]) -> None:
        names = ["exp_avg", "exp_avg_sq"] + ["max_exp_avg_sq"] * group["amsgrad"]
        # zeros_like keeps the memory format, as PyTorch's state does
        states = self.states(params, lambda p: {name: torch.zeros_like(p) for name in names})
        step = adam_step_foreach if group["foreach"] else adam_step
        beta1, beta2 = group["betas"]
        step(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
             [s["max_exp_avg_sq"] for s in states if group["amsgrad"]],
             [s["step"] for s in states], lr=group["lr"], beta1=beta1, beta2=beta2,
             eps=group["eps"], weight_decay=group["weight_decay"], amsgrad=group["amsgrad"],
             maximize=group["maximize"], decoupled_weight_decay=group["decoupled_weight_decay"],
             bias_correction=group["bias_correction"])


class AdamW(Adam):
    """Adam with decoupled weight decay, ``torch.optim.AdamW`` (chapter 6).

    The weights shrink, :math:`w \\leftarrow (1-\\alpha\\lambda) w`, before each Adam step,
    instead of :math:`\\lambda w` being added to the gradient.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, *args, **kwargs) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, *args,
                         decoupled_weight_decay=True, **kwargs)
