"""Parity checks: run two optimizers side by side and measure how far their parameters part.

labkit's optimizers are proved equal to ``torch.optim``'s with these functions, by the tests
(``tests/test_optim_*.py``), by ``benchmarks/optim_parity.py`` and in chapters 4 and 6, which
train two copies of a network on the same mini-batches (:func:`parity_on_model`). The other
functions work on a random problem: a few parameter tensors of different shapes and a smooth
non-quadratic loss,

.. math:: f(w) = \\sum_k \\tfrac12\\lVert w_k - c_k\\rVert^2 + \\sum_k \\mathbf 1^\\top
          \\operatorname{softplus}(d_k \\odot w_k)\\, + \\tfrac{1}{10}\\big(\\textstyle\\sum_k
          e_k^\\top w_k\\big)^2,

whose last term couples the tensors. The parameters are split into two param groups, each with
its own options, and both optimizers see the same gradients bit for bit as long as their
iterates agree.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: Parameter shapes of the parity problems (a vector, a matrix, a 3-D tensor and a scalar).
SHAPES: tuple[tuple[int, ...], ...] = ((5,), (3, 4), (2, 3, 2), ())


def make_problem(
    shapes: Sequence[tuple[int, ...]] = SHAPES, dtype: torch.dtype = torch.float64, seed: int = 0
) -> tuple[list[torch.Tensor], Callable[[Sequence[torch.Tensor]], torch.Tensor]]:
    """Initial parameters and the loss ``f(params)`` of the module docstring (chapters 4-6)."""
    g = torch.Generator().manual_seed(seed)

    def rand(shape):
        return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)

    init = [rand(s) for s in shapes]
    c, d, e = [rand(s) for s in shapes], [rand(s) for s in shapes], [rand(s) for s in shapes]

    def loss(params: Sequence[torch.Tensor]) -> torch.Tensor:
        total = sum(0.5 * ((w - ck) ** 2).sum() for w, ck in zip(params, c))
        total = total + sum(torch.nn.functional.softplus(dk * w).sum() for w, dk in zip(params, d))
        coupling = sum((ek * w).sum() for w, ek in zip(params, e))
        return total + 0.1 * coupling**2

    return init, loss


def run_optimizer(
    make_optimizer: Callable[[list[dict]], torch.optim.Optimizer],
    init: Sequence[torch.Tensor],
    loss: Callable[[Sequence[torch.Tensor]], torch.Tensor],
    group_options: Sequence[dict],
    steps: int = 50,
    roundtrip_at: int | None = None,
    scheduler: Callable[[torch.optim.Optimizer], object] | None = None,
    closure: bool = False,
    resume_with: Callable[[list[dict]], torch.optim.Optimizer] | None = None,
) -> list[torch.Tensor]:
    """Run ``steps`` steps from ``init``; return the final parameters (chapters 4-7).

    The parameters are split into ``len(group_options)`` consecutive param groups, group ``i``
    getting ``group_options[i]``. ``make_optimizer(groups)`` builds the optimizer. With
    ``roundtrip_at=k`` the optimizer is rebuilt after ``k`` steps from a deep copy of its
    ``state_dict`` (on fresh parameter tensors), which must continue identically. ``scheduler``
    builds a learning-rate scheduler stepped after each step; ``closure=True`` passes a closure.
    ``resume_with`` rebuilds it at ``roundtrip_at`` instead of ``make_optimizer`` (another
    implementation, say torch's, takes over from the saved state).
    """
    params = [p.detach().clone().requires_grad_() for p in init]
    n_groups = len(group_options)
    bounds = [round(i * len(params) / n_groups) for i in range(n_groups + 1)]

    def build(ps, make=make_optimizer):
        groups = [dict(params=ps[bounds[i]:bounds[i + 1]], **group_options[i])
                  for i in range(n_groups)]
        return make(groups)

    opt = build(params)
    sched = scheduler(opt) if scheduler else None

    def evaluate():
        opt.zero_grad()
        value = loss(params)
        value.backward()
        return value

    for t in range(steps):
        if roundtrip_at is not None and t == roundtrip_at:
            saved = copy.deepcopy(opt.state_dict())
            sched_saved = copy.deepcopy(sched.state_dict()) if sched else None
            params = [p.detach().clone().requires_grad_() for p in params]
            opt = build(params, resume_with or make_optimizer)
            opt.load_state_dict(saved)
            if sched:
                sched = scheduler(opt)
                sched.load_state_dict(sched_saved)
        if closure:
            opt.step(evaluate)
        else:
            evaluate()
            opt.step()
        if sched:
            sched.step()
    return [p.detach() for p in params]


def max_relative_difference(ours: Sequence[torch.Tensor], ref: Sequence[torch.Tensor]) -> float:
    r""":math:`\max_k \lVert a_k - b_k\rVert_\infty / \lVert b_k\rVert_\infty` over the tensors.

    The parity figure of chapters 4-6.
    """
    worst = 0.0
    for a, b in zip(ours, ref, strict=True):
        scale = b.abs().max().item() if b.numel() else 0.0
        diff = (a - b).abs().max().item() if b.numel() else 0.0
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst


def assert_same_parameters(ours: Sequence[torch.Tensor], ref: Sequence[torch.Tensor]) -> None:
    """Fail unless every tensor of ``ours`` equals its counterpart in ``ref`` bit for bit; the
    message gives the largest difference (the parity tests of chapters 4-8)."""
    worst = max(((a - b).abs().max().item() if a.numel() else 0.0
                 for a, b in zip(ours, ref, strict=True)), default=0.0)
    assert all(torch.equal(a, b) for a, b in zip(ours, ref, strict=True)), (
        f"max difference {worst:.3g}")


def parity(
    make_ours: Callable[[list[dict]], torch.optim.Optimizer],
    make_torch: Callable[[list[dict]], torch.optim.Optimizer],
    group_options: Sequence[dict],
    dtype: torch.dtype = torch.float64,
    steps: int = 50,
    seed: int = 0,
    roundtrip_at: int | None = None,
    **kwargs,
) -> float:
    """Max relative difference of the final parameters of two optimizers (chapters 4-6).

    ``roundtrip_at`` applies to ``make_ours`` only: the reference runs uninterrupted.
    """
    init, loss = make_problem(dtype=dtype, seed=seed)
    ours = run_optimizer(make_ours, init, loss, group_options, steps, roundtrip_at, **kwargs)
    ref = run_optimizer(make_torch, init, loss, group_options, steps, None, **kwargs)
    return max_relative_difference(ours, ref)


def handover(
    first: Callable[[list[dict]], torch.optim.Optimizer],
    second: Callable[[list[dict]], torch.optim.Optimizer],
    reference: Callable[[list[dict]], torch.optim.Optimizer],
    group_options: Sequence[dict],
    steps: int = 20,
    at: int = 10,
    **kwargs,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The parameters after ``at`` steps of ``first`` and ``steps - at`` of ``second``, which
    takes over from ``first``'s ``state_dict``, and after ``steps`` uninterrupted steps of
    ``reference`` (chapters 4-8: a checkpoint of labkit's optimizer loads into torch's and back).
    ``kwargs`` (``scheduler``, ``closure``) go to :func:`run_optimizer` for both runs."""
    init, loss = make_problem()
    handed = run_optimizer(first, init, loss, group_options, steps, roundtrip_at=at,
                           resume_with=second, **kwargs)
    return handed, run_optimizer(reference, init, loss, group_options, steps, **kwargs)


def option_grid(grid: dict[str, Sequence], valid: Callable[[dict], bool] = lambda o: True
                ) -> list[dict]:
    """Every combination of the values in ``grid`` that ``valid`` accepts (chapters 4-6)."""
    combos = [{}]
    for name, values in grid.items():
        combos = [dict(c, **{name: v}) for c in combos for v in values]
    return [c for c in combos if valid(c)]


def parity_on_model(
    make_ours: Callable[[Iterable[torch.Tensor]], torch.optim.Optimizer],
    make_theirs: Callable[[Iterable[torch.Tensor]], torch.optim.Optimizer],
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> float:
    """Train two copies of ``model`` on the same ``batches``, one with each optimizer; the largest
    absolute difference of any weight after any step (chapters 4 and 6).

    ``make_ours(parameters)`` and ``make_theirs(parameters)`` build the optimizers; ``model`` is
    left as it is. 0.0 means the same numbers to the last bit.
    """
    ours, theirs = copy.deepcopy(model), copy.deepcopy(model)
    runs = [(ours, make_ours(ours.parameters())), (theirs, make_theirs(theirs.parameters()))]
    worst = 0.0
    for X, y in batches:
        for net, optimizer in runs:
            optimizer.zero_grad()
            loss_fn(net(X), y).backward()
            optimizer.step()
        worst = max(worst, max((a - b).abs().max().item()
                               for a, b in zip(ours.parameters(), theirs.parameters())))
    return worst
