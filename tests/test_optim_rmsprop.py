"""labkit.optim.RMSprop and rmsprop_step against torch.optim.RMSprop: every option."""

from __future__ import annotations

import math

import pytest
import torch

from labkit.optim.rmsprop import RMSprop, rmsprop_step
from labkit.testing import (
    assert_same_parameters,
    handover,
    option_grid,
    parity,
)

COMBOS = option_grid(dict(alpha=[0.99, 0.5], momentum=[0.0, 0.9], centered=[False, True],
                          weight_decay=[0.0, 0.1], maximize=[False, True]))
TOL = {torch.float64: 0.0, torch.float32: 0.0}  # bit for bit, as the docs claim


def groups_for(i: int) -> list[dict]:
    """Two param groups: combination i, and another combination with other lr and eps."""
    return [dict(COMBOS[i], lr=0.01), dict(COMBOS[(i + 5) % len(COMBOS)], lr=0.003, eps=1e-4)]


def torch_rmsprop(groups):
    return torch.optim.RMSprop(groups, foreach=False)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("i", range(len(COMBOS)), ids=lambda i: "-".join(
    f"{k}={v}" for k, v in COMBOS[i].items()))
def test_rmsprop_matches_torch(i, dtype):
    assert parity(lambda g: RMSprop(g), torch_rmsprop, groups_for(i), dtype=dtype) <= TOL[dtype]


@pytest.mark.parametrize("i", [0, 7, 14, len(COMBOS) - 1])
def test_rmsprop_state_dict_round_trip(i):
    assert parity(lambda g: RMSprop(g), torch_rmsprop, groups_for(i), roundtrip_at=19) == 0.0


def test_rmsprop_with_scheduler_and_closure():
    sched = lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30)  # noqa: E731
    assert parity(lambda g: RMSprop(g), torch_rmsprop, groups_for(11), scheduler=sched,
                  roundtrip_at=10, closure=True) == 0.0


@pytest.mark.parametrize("first, second", [(RMSprop, torch_rmsprop), (torch_rmsprop, RMSprop)],
                         ids=["ours->torch", "torch->ours"])
def test_rmsprop_state_dicts_load_across(first, second):
    """10 steps with one implementation, 10 more with the other: the same as 20 with torch."""
    options = [dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.01)]
    assert_same_parameters(*handover(first, second, torch_rmsprop, options))


def test_rmsprop_step_is_the_equation():
    """Two centered steps with momentum by hand."""
    rho, mu, lr, eps = 0.9, 0.5, 0.1, 1e-3
    w = torch.tensor([1.0, -2.0], dtype=torch.float64)
    v, gbar, b = torch.zeros_like(w), torch.zeros_like(w), torch.zeros_like(w)
    step = torch.tensor(0.0)
    ew, ev, eg, eb = w.clone(), v.clone(), v.clone(), v.clone()
    for g in (torch.tensor([3.0, 0.5], dtype=torch.float64),
              torch.tensor([-1.0, 2.0], dtype=torch.float64)):
        ev = rho * ev + (1 - rho) * g**2
        eg = rho * eg + (1 - rho) * g
        eb = mu * eb + g / ((ev - eg**2).sqrt() + eps)
        ew = ew - lr * eb
        rmsprop_step([w], [g], [v], [gbar], [b], [step], lr=lr, alpha=rho, eps=eps,
                     momentum=mu, centered=True)
    torch.testing.assert_close(w, ew, rtol=1e-14, atol=0)
    assert step.item() == 2


def test_rmsprop_forgets_where_adagrad_does_not():
    """After a large gradient, then many unit ones, RMSProp's step returns to about lr."""
    w = torch.zeros(1, dtype=torch.float64)
    v, step = torch.zeros(1, dtype=torch.float64), torch.tensor(0.0)
    rmsprop_step([w], [torch.tensor([100.0], dtype=torch.float64)], [v], [], [], [step], lr=1.0,
                 alpha=0.9)
    for _ in range(200):
        before = w.item()
        rmsprop_step([w], [torch.ones(1, dtype=torch.float64)], [v], [], [], [step], lr=1.0,
                     alpha=0.9)
    assert before - w.item() == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-1e-3), "lr"),
    (dict(lr=math.inf), "lr"),
    (dict(alpha=-0.1), "alpha"),
    (dict(alpha=1.5), "alpha"),
    (dict(eps=-1e-8), "eps"),
    (dict(weight_decay=-0.01), "weight_decay"),
    (dict(momentum=-0.9), "momentum"),
])
def test_rmsprop_invalid_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RMSprop([torch.zeros(1, requires_grad=True)], **kwargs)
