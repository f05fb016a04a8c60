r"""Loss functions written from their formulas (chapter 2), each equal to ``torch.nn.functional``.

Every function takes the same arguments as its PyTorch namesake and follows the same conventions:

* ``reduction`` is ``"none"`` (one loss per sample, or per element), ``"mean"`` or ``"sum"``;
* for classification, the class dimension is dimension 1 of an input of shape ``(N, C)`` or
  ``(N, C, d1, ..., dK)`` (dimension 0 of an unbatched ``(C,)`` input), and the target holds
  class indices (``int64``) of shape ``(N,)`` or ``(N, d1, ..., dK)``;
* ``ignore_index`` marks targets that contribute nothing, neither to the sum nor to the count.

The regularisation penalties :func:`l2_penalty` and :func:`l1_penalty` close the module: a
regularised objective (chapter 1) is ``loss + lam * l2_penalty(model.parameters())``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from labkit import _checks as checks

_REDUCTIONS = ("none", "mean", "sum")


def _reduce(losses: torch.Tensor, reduction: str, denominator=None) -> torch.Tensor:
    """Apply ``reduction`` to a tensor of per-element losses (a mean divides by ``denominator``
    when given)."""
    if reduction == "mean":
        return losses.mean() if denominator is None else losses.sum() / denominator
    if reduction == "sum":
        return losses.sum()
    return losses


# --- regression ------------------------------------------------------------------------------


def mse_loss(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""Mean squared error :math:`\ell(\hat y, y) = (\hat y - y)^2`, element by element.

    With ``reduction="mean"``: :math:`\frac1n\sum_{i=1}^n (\hat y_i - y_i)^2` over all :math:`n`
    elements. Equal to ``torch.nn.functional.mse_loss`` (chapter 2).
    """
    checks.one_of("reduction", reduction, _REDUCTIONS)
    checks.same_shape(input, target, "mse_loss")
    return _reduce((input - target) ** 2, reduction)


def l1_loss(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""Absolute error :math:`\ell(\hat y, y) = |\hat y - y|`, element by element.

    With ``reduction="mean"``: :math:`\frac1n\sum_{i=1}^n |\hat y_i - y_i|`. Equal to
    ``torch.nn.functional.l1_loss`` (chapter 2).
    """
    checks.one_of("reduction", reduction, _REDUCTIONS)
    checks.same_shape(input, target, "l1_loss")
    return _reduce((input - target).abs(), reduction)


# --- classification --------------------------------------------------------------------------


def logsumexp(x: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    r""":math:`\log\sum_c e^{x_c}` computed as :math:`m + \log\sum_c e^{x_c - m}`.

    Here :math:`m=\max_c x_c`: subtracting the maximum makes every exponent :math:`\le 0`, so
    nothing overflows even for logits of magnitude :math:`10^4`, where :math:`e^{x}` alone is
    ``inf`` (chapter 2). A row whose maximum is infinite uses :math:`m = 0`, as
    ``torch.logsumexp`` does.
    """
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    out = m + torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))
    return out if keepdim else out.squeeze(dim)


def log_softmax(logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
    r"""Log-probabilities :math:`\log p_c = z_c - \log\sum_{k} e^{z_k}` of the logits :math:`z`.

    Computed as :math:`(z_c - m) - \log\sum_k e^{z_k - m}` with :math:`m = \max_k z_k`, the
    stable :func:`logsumexp` with the shift kept inside: subtracting :math:`m` first is exact,
    whereas :math:`z_c - (m + \log\sum\dots)` would round :math:`\log\sum` to the spacing of
    floats near :math:`m` (about :math:`10^{-3}` at :math:`m=10^4` in float32). Equal to
    ``torch.log_softmax`` (chapter 2).
    """
    m = logits.amax(dim=dim, keepdim=True)
    shifted = logits - torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))


def _class_dim(input: torch.Tensor) -> int:
    if input.dim() == 0:
        raise ValueError("input must have a class dimension; got a 0-dimensional tensor")
    return 0 if input.dim() == 1 else 1


def nll_loss(log_probs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
             ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    r"""Negative log-likelihood of the true class: :math:`\ell_i = -w_{y_i}\,\log p_{i, y_i}`.

    ``log_probs`` holds log-probabilities (the output of :func:`log_softmax`), the class
    dimension being dimension 1. A sample with :math:`y_i` equal to ``ignore_index`` gets loss
    0 and weight 0. With ``reduction="mean"`` the result is the *weighted* mean

    .. math:: \frac{\sum_i \ell_i}{\sum_{i:\,y_i\ne\text{ignore}} w_{y_i}},

    as PyTorch computes it: with class weights this is not the plain mean of the :math:`\ell_i`,
    and when every target is ignored it is ``nan`` (0/0). Chapter 2.
    """
    checks.one_of("reduction", reduction, _REDUCTIONS)
    cdim = _class_dim(log_probs)
    checks.class_indices(log_probs, target, cdim, "nll_loss")
    n_classes = log_probs.shape[cdim]
    checks.class_weight(weight, n_classes)
    keep = target != ignore_index
    safe_target = torch.where(keep, target, torch.zeros_like(target)).long()
    bad = (safe_target < 0) | (safe_target >= n_classes)
    if bad.any():
        raise ValueError(
            f"target holds class index {int(safe_target[bad][0])}, outside [0, {n_classes}) "
            f"(and not ignore_index={ignore_index})"
        )
    picked = log_probs.gather(cdim, safe_target.unsqueeze(cdim)).squeeze(cdim)
    w = torch.ones_like(picked) if weight is None else weight.to(picked.dtype)[safe_target]
    w = w * keep
    return _reduce(-w * picked, reduction, w.sum())


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    r"""Cross entropy of the softmax of ``logits`` with ``target``, as ``F.cross_entropy``.

    *Class indices* (integer ``target``): :func:`log_softmax` followed by :func:`nll_loss`,

    .. math:: \ell_i = -w_{y_i}\log\frac{e^{z_{i,y_i}}}{\sum_k e^{z_{i,k}}}.

    With label smoothing :math:`\varepsilon` the one-hot target becomes
    :math:`(1-\varepsilon)\,\mathbb 1[c=y_i] + \varepsilon/C`, so

    .. math:: \ell_i = (1-\varepsilon)\,\ell_i^{\rm NLL}
              + \frac{\varepsilon}{C}\sum_{c} \big(-w_c \log p_{i,c}\big),

    and the mean of both terms divides by the summed weights :math:`\sum_i w_{y_i}` of the
    kept samples, exactly as PyTorch does.

    *Class probabilities* (floating ``target`` of the same shape as ``logits``):
    :math:`\ell_i = -\sum_c w_c\, q_{i,c} \log p_{i,c}` with :math:`q` smoothed to
    :math:`(1-\varepsilon)q + \varepsilon/C`; here ``"mean"`` divides by the number of samples
    (not by the weights) and ``ignore_index`` does not apply, again as in PyTorch.

    Stable for logits of any magnitude thanks to :func:`logsumexp`. Chapter 2.
    """
    checks.one_of("reduction", reduction, _REDUCTIONS)
    checks.interval("label_smoothing", label_smoothing, 0.0, 1.0, "[]")
    cdim = _class_dim(logits)
    n_classes = logits.shape[cdim]
    checks.class_weight(weight, n_classes)
    log_p = log_softmax(logits, dim=cdim)
    # shape that puts a per-class vector along the class dimension
    wshape = [1] * logits.dim()
    wshape[cdim] = n_classes

    if target.is_floating_point():  # class probabilities
        if target.shape != logits.shape:
            raise ValueError(
                f"cross_entropy: a target of class probabilities must have the logits' shape "
                f"{tuple(logits.shape)}; got {tuple(target.shape)}"
            )
        q = target * (1 - label_smoothing) + label_smoothing / n_classes
        terms = -(log_p * q)
        if weight is not None:
            terms = terms * weight.to(log_p.dtype).view(wshape)
        if reduction == "none":
            return terms.sum(cdim)
        if reduction == "sum":
            return terms.sum()
        return terms.sum() / (logits.numel() / n_classes)

    nll = nll_loss(log_p, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing == 0.0:
        return nll
    keep = target != ignore_index
    wlog = log_p if weight is None else log_p * weight.to(log_p.dtype).view(wshape)
    smooth = -wlog.sum(cdim) * keep  # -sum_c w_c log p_{i,c}, zero where ignored
    safe_target = torch.where(keep, target, torch.zeros_like(target)).long()
    denom = keep.sum() if weight is None else (weight.to(log_p.dtype)[safe_target] * keep).sum()
    smooth_red = _reduce(smooth, reduction, denom)
    return (1 - label_smoothing) * nll + smooth_red * (label_smoothing / n_classes)


def binary_cross_entropy_with_logits(
    logits: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    weight: torch.Tensor | None = None,
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Logistic loss :math:`\ell = -[y\log\sigma(z) + (1-y)\log(1-\sigma(z))]`, logits :math:`z`.

    Written as :math:`\ell = (1-y)\,z + \operatorname{softplus}(-z)` with the stable
    :math:`\operatorname{softplus}(-z) = \max(-z, 0) + \log(1 + e^{-|z|})`; ``pos_weight``
    :math:`p` multiplies the positive term,
    :math:`(1-y)z + (1 + (p-1)y)\operatorname{softplus}(-z)`, and ``weight`` rescales each
    element. Equal to ``F.binary_cross_entropy_with_logits`` (chapter 2).
    """
    checks.one_of("reduction", reduction, _REDUCTIONS)
    checks.same_shape(logits, target, "binary_cross_entropy_with_logits")
    softplus_neg = torch.clamp(-logits, min=0) + torch.log1p(torch.exp(-logits.abs()))
    if pos_weight is None:
        losses = (1 - target) * logits + softplus_neg
    else:
        losses = (1 - target) * logits + (1 + (pos_weight - 1) * target) * softplus_neg
    if weight is not None:
        losses = losses * weight
    return _reduce(losses, reduction)


def kl_div(
    input: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    log_target: bool = False,
) -> torch.Tensor:
    r"""Kullback-Leibler divergence :math:`\mathrm{KL}(q\,\|\,p)` with PyTorch's argument order.

    ``input`` holds log-probabilities :math:`\log p` of the model, ``target`` the reference
    distribution :math:`q` (or :math:`\log q` when ``log_target=True``). Pointwise

    .. math:: \ell = q\,(\log q - \log p),

    with :math:`0\log 0 = 0`. ``"batchmean"`` divides the sum by the batch size (the size of
    dimension 0), which is the KL divergence per sample; ``"mean"`` divides by the number of
    elements, as PyTorch does (and PyTorch warns that this is rarely what one wants). Chapter 2.
    """
    checks.one_of("reduction", reduction, _REDUCTIONS + ("batchmean",))
    checks.same_shape(input, target, "kl_div")
    if log_target:
        pointwise = torch.exp(target) * (target - input)
    else:
        pointwise = torch.xlogy(target, target) - target * input
    if reduction == "batchmean":
        return pointwise.sum() / input.shape[0] if input.dim() > 0 else pointwise.sum()
    return _reduce(pointwise, reduction)


# --- penalties -------------------------------------------------------------------------------


def _tensors(params: torch.Tensor | nn.Module | Iterable[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(params, torch.Tensor):
        return [params]
    tensors = list(params.parameters() if isinstance(params, nn.Module) else params)
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"params must hold tensors; got an element of type {type(t)}")
    if not tensors:
        raise ValueError("params is empty: there is nothing to penalise")
    return tensors


def l2_penalty(params: torch.Tensor | nn.Module | Iterable[torch.Tensor]) -> torch.Tensor:
    r"""Ridge penalty :math:`\Omega(w) = \lVert w\rVert_2^2 = \sum_j w_j^2` over every tensor.

    ``params`` is a tensor, a module, or an iterable of tensors (e.g. ``model.parameters()``).
    Its gradient is :math:`2w`, so adding :math:`\frac\lambda2\Omega` to the loss is the same as
    SGD's ``weight_decay=lambda`` (chapters 1 and 4).
    """
    return sum((t**2).sum() for t in _tensors(params))


def l1_penalty(params: torch.Tensor | nn.Module | Iterable[torch.Tensor]) -> torch.Tensor:
    r"""Lasso penalty :math:`\Omega(w) = \lVert w\rVert_1 = \sum_j |w_j|` over every tensor.

    ``params`` is a tensor, a module, or an iterable of tensors (chapter 1).
    """
    return sum(t.abs().sum() for t in _tensors(params))
