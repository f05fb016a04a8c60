"""labkit.optim.Lion and lion_step against lion_pytorch.Lion (pinned): every option, bit for bit."""

from __future__ import annotations

import math

import lion_pytorch
import pytest
import torch

from labkit.optim import Lion, lion_step
from labkit.testing import (
    assert_same_parameters,
    handover,
    make_problem,
    option_grid,
    run_optimizer,
)

# betas at the ends of [0, 1] are accepted by the reference; decoupled_weight_decay and the
# constructor's lr are optimizer-wide in lion_pytorch (the latter divides the decoupled decay)
COMBOS = option_grid(dict(betas=[(0.9, 0.99), (0.95, 0.98), (0.0, 1.0)],
                          weight_decay=[0.0, 0.1, 1.5], decoupled=[False, True],
                          init_lr=[1e-4, 0.01]))


def groups_for(i: int) -> list[dict]:
    """Two param groups: combination i, and another one's betas and decay with another lr."""
    other = COMBOS[(i + 5) % len(COMBOS)]
    return [dict(lr=0.01, betas=COMBOS[i]["betas"], weight_decay=COMBOS[i]["weight_decay"]),
            dict(lr=0.003, betas=other["betas"], weight_decay=other["weight_decay"])]


def makers(i: int):
    c = COMBOS[i]
    return (lambda g: Lion(g, lr=c["init_lr"], decoupled_weight_decay=c["decoupled"]),
            lambda g: lion_pytorch.Lion(g, lr=c["init_lr"], decoupled_weight_decay=c["decoupled"]))


def run_both(make_ours, make_ref, groups, dtype=torch.float64, steps=50, **kwargs):
    init, loss = make_problem(dtype=dtype)
    ours = run_optimizer(make_ours, init, loss, groups, steps, **kwargs)
    ref = run_optimizer(make_ref, init, loss, groups, steps)
    return ours, ref


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("i", range(len(COMBOS)), ids=lambda i: "-".join(
    f"{k}={v}" for k, v in COMBOS[i].items()))
def test_lion_matches_lion_pytorch(i, dtype):
    assert_same_parameters(*run_both(*makers(i), groups_for(i), dtype))


@pytest.mark.parametrize("i", [0, 9, len(COMBOS) - 1])
def test_lion_state_dict_round_trip(i):
    assert_same_parameters(*run_both(*makers(i), groups_for(i), roundtrip_at=19))


@pytest.mark.parametrize("direction", ["ours->ref", "ref->ours"])
def test_lion_state_dicts_load_across(direction):
    """10 steps with one implementation, 10 more with the other: the same as 20 with the
    reference, a cosine schedule on the rate and the decoupled decay included."""
    ours, ref = makers(COMBOS.index(dict(betas=(0.9, 0.99), weight_decay=0.1, decoupled=True,
                                         init_lr=0.01)))
    first, second = (ours, ref) if direction == "ours->ref" else (ref, ours)
    sched = lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30)  # noqa: E731
    assert_same_parameters(*handover(first, second, ref, groups_for(1), scheduler=sched,
                                     closure=True))


def test_lion_step_is_the_equation():
    """Two steps by hand: the sign of the interpolation, then the momentum."""
    lr, b1, b2, wd = 0.1, 0.9, 0.99, 0.5
    w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    m = torch.zeros_like(w)
    ew, em = w.clone(), m.clone()
    for g in (torch.tensor([3.0, 0.5, 0.0], dtype=torch.float64),
              torch.tensor([-1.0, 2.0, -0.25], dtype=torch.float64)):
        ew = (1 - lr * wd) * ew - lr * torch.sign(b1 * em + (1 - b1) * g)
        em = b2 * em + (1 - b2) * g
        lion_step([w], [g], [m], lr=lr, beta1=b1, beta2=b2, weight_decay=wd)
    torch.testing.assert_close(w, ew, rtol=1e-15, atol=0)
    torch.testing.assert_close(m, em, rtol=1e-15, atol=0)


def test_every_coordinate_moves_by_lr():
    """Steepest descent in the max-norm: a step of size lr in every coordinate, whatever the
    gradient's scale."""
    for scale in (1e-6, 1.0, 1e6):
        w, m = torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
        g = scale * torch.tensor([3.0, -0.01, 7.0, -2.0], dtype=torch.float64)
        lion_step([w], [g], [m], lr=0.01)
        torch.testing.assert_close(w.abs(), torch.full_like(w, 0.01), rtol=0, atol=0)


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=0.0), "lr"),
    (dict(lr=-1e-3), "lr"),
    (dict(betas=(1.5, 0.99)), r"betas\[0\]"),
    (dict(betas=(0.9, -0.1)), r"betas\[1\]"),
])
def test_lion_rejects_what_the_reference_rejects(kwargs, name):
    """lion_pytorch rejects these with a bare assert; labkit with a ValueError naming them."""
    with pytest.raises(AssertionError):
        lion_pytorch.Lion([torch.zeros(1, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError, match=name):
        Lion([torch.zeros(1, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("kwargs, name", [(dict(lr=math.inf), "lr"), (dict(betas=0.9), "betas"),
                                          (dict(weight_decay=math.nan), "weight_decay")])
def test_lion_rejects_non_numbers(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Lion([torch.zeros(1, requires_grad=True)], **kwargs)
