r"""Muon, momentum orthogonalised by a Newton-Schulz iteration, as ``torch.optim.Muon`` computes
it (chapter 8).

For a weight matrix :math:`W \in \mathbb R^{A\times B}` with gradient :math:`G_t` (Jordan et al.,
2024):

.. math::

    B_t &= \mu B_{t-1} + (1-\mu)\, G_t                    &&\text{(momentum, } B_0 = 0)\\
    \tilde B_t &= (1-\mu)\, G_t + \mu B_t \ \text{(Nesterov)} \quad\text{or}\quad
        \tilde B_t = B_t\\
    O_t &= \operatorname{NS}_k(\tilde B_t) \approx U V^\top
        \quad\text{where } \tilde B_t = U \Sigma V^\top        &&\text{(orthogonalise)}\\
    W &\leftarrow (1-\alpha\lambda)\, W - \alpha\, s(A, B)\, O_t

with the shape factor :math:`s = \sqrt{\max(1, A/B)}` (``adjust_lr_fn="original"``, the default),
:math:`0.2\sqrt{\max(A, B)}` (``"match_rms_adamw"``, so that the update's RMS matches AdamW's) or
:math:`\sqrt{A/B}` (``"spectral_unclamped"``).

:math:`UV^\top` (the polar factor) is the steepest-descent direction under the spectral norm
(Bernstein and Newhouse, 2024): it moves every singular direction of the momentum by the same
amount. Computing it by an SVD is slow on accelerators, so Muon runs :math:`k = 5` steps of

.. math:: X \leftarrow a X + (b\, XX^\top + c\, (XX^\top)^2) X,
          \qquad (a, b, c) = (3.4445, -4.7750, 2.0315)

from :math:`X_0 = \tilde B_t / \max(\lVert\tilde B_t\rVert_F, \varepsilon)` (the Frobenius norm
bounds the spectral norm, so all singular values start in :math:`(0, 1]`), in bfloat16, on the
wide orientation (a tall matrix is transposed first, so that :math:`XX^\top` is the smaller Gram
matrix). Each step maps every singular value :math:`\sigma` to
:math:`p(\sigma) = a\sigma + b\sigma^3 + c\sigma^5` and leaves the singular vectors alone; the
coefficients make :math:`p'(0) = a` large, so small singular values grow fast, at the price of
ending in roughly :math:`[0.7, 1.2]` rather than at exactly 1.

Muon is for the hidden 2-D weights only; embeddings, the output layer and the vectors
(biases, norms) go to AdamW (:func:`muon_param_groups` splits a model that way).

The code performs the same floating-point operations in the same order as PyTorch's
``_single_tensor_muon``, so the two agree to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from labkit import _checks as checks
from labkit.optim.base import Optimizer

#: Keller Jordan's quintic coefficients, torch's defaults.
NS_COEFFICIENTS: tuple[float, float, float] = (3.4445, -4.7750, 2.0315)
#: How the learning rate scales with the matrix's shape (``adjust_lr_fn``).
ADJUST_LR_FNS = ("original", "match_rms_adamw", "spectral_unclamped")


def newton_schulz(G: torch.Tensor, steps: int = 5,
                  coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                  eps: float = 1e-7) -> torch.Tensor:
    r"""The orthogonalised ``G``, :math:`\approx UV^\top`, by ``steps`` quintic Newton-Schulz
    iterations in bfloat16 (chapter 8; assignment 7).

    .. math:: X_0 = G/\max(\lVert G\rVert_F, \varepsilon), \qquad
              A = X X^\top, \quad X \leftarrow a X + (b A + c A^2) X

    on :math:`G^\top` when ``G`` has more rows than columns (then transposed back). Returns a
    bfloat16 matrix of ``G``'s shape.
    """
    if G.dim() != 2:
        raise ValueError(f"newton_schulz needs a 2-D matrix; got shape {tuple(G.shape)}")
    a, b, c = coefficients
    X = G.bfloat16()
    tall = G.size(0) > G.size(1)
    if tall:
        X = X.T  # work on the wide side: the Gram matrix X X^T is the small one
    X.div_(X.norm().clamp(min=eps))  # Frobenius >= spectral: singular values now in [0, 1]
    for _ in range(steps):
        A = X @ X.T
        B = torch.addmm(A, A, A, beta=b, alpha=c)  # b A + c A^2
        X = torch.addmm(X, B, X, beta=a)  # a X + B X
    return X.T if tall else X


def adjusted_lr(lr: float, adjust_lr_fn: str | None, shape: torch.Size) -> float:
    r"""The learning rate times the shape factor :math:`s(A, B)` of the module docstring
    (chapter 8)."""
    A, B = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        ratio = math.sqrt(max(1, A / B))
    elif adjust_lr_fn == "match_rms_adamw":
        ratio = 0.2 * math.sqrt(max(A, B))
    elif adjust_lr_fn == "spectral_unclamped":
        ratio = math.sqrt(A / B)
    else:
        raise ValueError(f"adjust_lr_fn must be None or one of {ADJUST_LR_FNS}; got "
                         f"{adjust_lr_fn!r}")
    return lr * ratio


@torch.no_grad()
def muon_step(params: list[torch.Tensor], grads: list[torch.Tensor],
              momentum_buffers: list[torch.Tensor], *, lr: float, weight_decay: float = 0.1,
              momentum: float = 0.95, nesterov: bool = True,
              ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS, eps: float = 1e-7,
              ns_steps: int = 5, adjust_lr_fn: str | None = None) -> None:
    r"""One Muon step on every matrix of ``params``, in place (chapter 8).

    .. math:: B \leftarrow \mu B + (1-\mu) G, \qquad
              W \leftarrow (1-\alpha\lambda) W - \alpha\, s\, \operatorname{NS}(\tilde B)

    with :math:`\tilde B = (1-\mu) G + \mu B` under Nesterov and :math:`B` otherwise.
    ``momentum_buffers`` (:math:`B`) are updated in place.
    """
    for w, g, buf in zip(params, grads, momentum_buffers, strict=True):
        if g.dim() != 2:
            raise ValueError(f"Muon updates 2-D matrices only; got a gradient of shape "
                             f"{tuple(g.shape)}")
        buf.lerp_(g, 1 - momentum)  # B <- mu B + (1-mu) G
        update = g.lerp(buf, momentum) if nesterov else buf  # (1-mu) G + mu B
        update = newton_schulz(update, ns_steps, ns_coefficients, eps)
        step_lr = adjusted_lr(lr, adjust_lr_fn, w.shape)
        w.mul_(1 - lr * weight_decay)  # decoupled weight decay
        w.add_(update, alpha=-step_lr)


class Muon(Optimizer):
    """``torch.optim.Muon`` rebuilt on :func:`muon_step`, with the same state layout
    (chapter 8).

    Each parameter's state is ``momentum_buffer`` alone, as in PyTorch, so their ``state_dict``
    objects load across. Every parameter must be a matrix; give the others to AdamW
    (:func:`muon_param_groups`). Unlike PyTorch, which raises on the first step, a bad
    ``ns_steps`` or ``ns_coefficients`` raises here when the group is added.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float = 1e-3,
                 weight_decay: float = 0.1, momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                 eps: float = 1e-7, ns_steps: int = 5, adjust_lr_fn: str | None = None) -> None:
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                                      nesterov=nesterov, ns_coefficients=ns_coefficients,
                                      eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn))

    def check_group(self, group: dict) -> None:
        checks.at_least("lr", group["lr"])
        checks.at_least("weight_decay", group["weight_decay"])
        checks.at_least("momentum", group["momentum"])
        if group["adjust_lr_fn"] is not None:
            checks.one_of("adjust_lr_fn", group["adjust_lr_fn"], ADJUST_LR_FNS)
        if len(group["ns_coefficients"]) != 3:
            raise ValueError(f"ns_coefficients must be three numbers (a, b, c); got "
                             f"{group['ns_coefficients']!r}")
        checks.integer("ns_steps", group["ns_steps"])
        if group["ns_steps"] >= 100:
            raise ValueError(f"ns_steps must be < 100 (5 is the default); got "
                             f"ns_steps={group['ns_steps']!r}")
        for p in group["params"]:
            if p.dim() != 2:
                raise ValueError(f"Muon optimizes 2-D matrices only; got a parameter of shape "
                                 f"{tuple(p.shape)}: give it to AdamW (see muon_param_groups)")

    def step_group(self, group: dict, params: list[torch.Tensor],
                   grads: list[torch.Tensor]) -> None:
        for p in params:
            if "momentum_buffer" not in self.state[p]:
                self.state[p]["momentum_buffer"] = torch.zeros_like(p.grad)
        muon_step(params, grads, [self.state[p]["momentum_buffer"] for p in params],
                  lr=float(group["lr"]), weight_decay=group["weight_decay"],
                  momentum=group["momentum"], nesterov=group["nesterov"],
                  ns_coefficients=group["ns_coefficients"], eps=group["eps"],
                  ns_steps=group["ns_steps"], adjust_lr_fn=group["adjust_lr_fn"])


def muon_param_groups(model: nn.Module, exclude: Iterable[str] = ("embed", "head")
                      ) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """The usual split (chapter 8): the hidden weight matrices for :class:`Muon`, everything
    else (vectors, and matrices whose name contains one of ``exclude``: embeddings, the output
    layer) for AdamW. Returns ``(for_muon, for_adamw)``."""
    exclude = tuple(exclude)
    for_muon, for_adamw = [], []
    for name, p in model.named_parameters():
        hidden = p.dim() == 2 and not any(word in name for word in exclude)
        (for_muon if hidden else for_adamw).append(p)
    return for_muon, for_adamw
