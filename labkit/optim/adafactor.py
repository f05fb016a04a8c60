r"""Adafactor, as ``torch.optim.Adafactor`` computes it (chapter 8).

Adam keeps two numbers per weight; Adafactor (Shazeer and Stern, 2018) keeps, for a matrix
:math:`W \in \mathbb R^{n\times m}`, only the row and column means of the squared gradient and
rebuilds the second moment from them as a rank-one matrix. At step :math:`t = 1, 2, \dots`, with
gradient :math:`G_t`:

.. math::

    \hat\beta_{2,t} &= 1 - t^{c}                  &&\text{(}c\text{ = beta2\_decay} = -0.8)\\
    R_t &= \hat\beta_{2,t} R_{t-1} + (1-\hat\beta_{2,t})\, \operatorname{mean}_j G_t^2
        &&\text{(row factor, } n \times 1)\\
    C_t &= \hat\beta_{2,t} C_{t-1} + (1-\hat\beta_{2,t})\, \operatorname{mean}_i G_t^2
        &&\text{(column factor, } 1 \times m)\\
    \hat V_t &= R_t C_t / \max(\operatorname{mean}_i R_t, \varepsilon_1)
        &&\text{(rank-one second moment)}\\
    U_t &= G_t / \sqrt{\max(\hat V_t, \varepsilon_1^2)}\\
    \rho_t &= \min(\alpha, 1/\sqrt t), \quad
    \alpha_t = \max\big(\varepsilon_2, \operatorname{RMS}(W)\big)\, \rho_t
        &&\text{(relative step size)}\\
    W &\leftarrow (1 - \alpha\lambda) W - \alpha_t\, U_t / \max\big(1,
        \operatorname{RMS}(U_t)/d\big)                          &&\text{(update clipping)}

where :math:`\operatorname{RMS}(X) = \lVert X\rVert_2/\sqrt{\text{numel}}`. A vector (or scalar)
keeps the full :math:`V_t` as Adam does. A tensor of more than two dimensions is factored over
its last two. There is no first moment: with :math:`\hat\beta_{2,1} = 0` the first step divides
the gradient by its own magnitude. ``eps=(None, 1e-3)`` takes :math:`\varepsilon_1` as the
machine epsilon of the parameter's dtype.

Memory: :math:`n + m` numbers instead of :math:`nm` for the second moment of a matrix. What it
loses: :math:`\hat V_t` is exact only when :math:`\mathbb E\,G^2` is a rank-one matrix (rows and
columns scale independently), which chapter 8 tests on a matrix where it is not.

The code performs the same floating-point operations in the same order as PyTorch's
``_single_tensor_adafactor``, so the two agree to the last bit.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from labkit import _checks as checks
from labkit.optim.base import Optimizer


@torch.no_grad()
def adafactor_step(params: list[torch.Tensor], grads: list[torch.Tensor],
                   row_vars: list[torch.Tensor | None], col_vars: list[torch.Tensor | None],
                   variances: list[torch.Tensor | None], state_steps: list[torch.Tensor], *,
                   lr: float = 1e-2, beta2_decay: float = -0.8, eps1: float | None = None,
                   eps2: float = 1e-3, d: float = 1.0, weight_decay: float = 0.0,
                   maximize: bool = False) -> None:
    r"""One Adafactor step on every tensor of ``params``, in place (chapter 8).

    The equations are the module docstring's. For a parameter of two or more dimensions
    ``row_vars[i]`` (:math:`R`, the last dimension reduced to 1) and ``col_vars[i]`` (:math:`C`,
    the second-to-last reduced to 1) are updated in place and ``variances[i]`` is ``None``; for
    a vector or a scalar it is the other way round. ``state_steps`` holds one scalar tensor per
    parameter, the step count :math:`t`, incremented here.
    """
    for i, w in enumerate(params):
        g = grads[i] if not maximize else -grads[i]
        state_steps[i] += 1
        t = state_steps[i].item()
        if eps1 is None:
            eps1 = torch.finfo(w.dtype).eps
        one_minus_beta2 = t**beta2_decay  # 1 - beta2_hat = t^c
        rho = min(lr, 1 / (t**0.5))  # relative step size
        alpha = max(eps2, w.norm(2).item() / (w.numel() ** 0.5)) * rho  # scaled by RMS(w)
        if weight_decay != 0:
            w.mul_(1 - lr * weight_decay)
        if g.dim() > 1:
            row_var, col_var = row_vars[i], col_vars[i]
            # mean of g^2 over the last dimension (rows), then over the one before (columns)
            row_mean = torch.linalg.vector_norm(g, dim=-1, keepdim=True).square_().div_(g.size(-1))
            row_var.lerp_(row_mean, one_minus_beta2)
            col_mean = torch.linalg.vector_norm(g, dim=-2, keepdim=True).square_().div_(g.size(-2))
            col_var.lerp_(col_mean, one_minus_beta2)
            v_hat = row_var @ col_var  # rank one: R C / mean(R)
            v_hat.div_(row_var.mean(dim=-2, keepdim=True).clamp_(min=eps1))
        else:
            variances[i].lerp_(g * g, one_minus_beta2)
            v_hat = variances[i].clone()
        update = v_hat.clamp_(min=eps1 * eps1).rsqrt_().mul_(g)  # U = G / sqrt(V_hat)
        clip = max(1.0, update.norm(2).item() / ((update.numel() ** 0.5) * d))  # RMS(U) / d
        w.add_(update, alpha=-alpha / clip)


class Adafactor(Optimizer):
    """``torch.optim.Adafactor`` rebuilt on :func:`adafactor_step`, with the same state layout
    (chapter 8).

    Each parameter's state is ``step`` (a float32 scalar tensor) and ``row_var``/``col_var``
    for a tensor of two or more dimensions, ``variance`` for a vector or a scalar, as in
    PyTorch, so their ``state_dict`` objects load across.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float = 1e-2,
                 beta2_decay: float = -0.8, eps: tuple[float | None, float] = (None, 1e-3),
                 d: float = 1.0, weight_decay: float = 0.0, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d,
                                      weight_decay=weight_decay, maximize=maximize))

    def check_group(self, group: dict) -> None:
        checks.at_least("lr", group["lr"])
        if checks.finite("beta2_decay", group["beta2_decay"]) > 0:
            raise ValueError(f"beta2_decay must be <= 0 (beta2_t = 1 - t^beta2_decay); got "
                             f"beta2_decay={group['beta2_decay']!r}")
        try:
            eps1, eps2 = group["eps"]
        except (TypeError, ValueError):
            raise ValueError(f"eps must be a pair (eps1 or None, eps2); got {group['eps']!r}") \
                from None
        if eps1 is not None:
            checks.at_least("eps[0]", eps1)
        checks.at_least("eps[1]", eps2)
        checks.at_least("d", group["d"], 1.0)
        checks.at_least("weight_decay", group["weight_decay"])

    group_keys_on_load = {"maximize": False}

    def step_group(self, group: dict, params: list[torch.Tensor],
                   grads: list[torch.Tensor]) -> None:
        def buffers(p: torch.Tensor) -> dict:
            if p.dim() > 1:
                return {"row_var": p.new_zeros((*p.shape[:-1], 1)),
                        "col_var": p.new_zeros((*p.shape[:-2], 1, p.shape[-1]))}
            return {"variance": torch.zeros_like(p)}

        states = self.states(params, buffers)
        eps1, eps2 = group["eps"]
        adafactor_step(params, grads, [s.get("row_var") for s in states],
                       [s.get("col_var") for s in states], [s.get("variance") for s in states],
                       [s["step"] for s in states], lr=float(group["lr"]),
                       beta2_decay=group["beta2_decay"], eps1=eps1, eps2=eps2, d=group["d"],
                       weight_decay=group["weight_decay"], maximize=group["maximize"])
