"""labkit.optim.Adagrad and adagrad_step against torch.optim.Adagrad: every option."""

from __future__ import annotations

import math

import pytest
import torch

from labkit.optim.adagrad import Adagrad, adagrad_step
from labkit.testing import (
    assert_same_parameters,
    handover,
    option_grid,
    parity,
)

COMBOS = option_grid(dict(lr_decay=[0.0, 0.05], weight_decay=[0.0, 0.1], eps=[1e-10, 1e-3],
                          maximize=[False, True]))
TOL = {torch.float64: 0.0, torch.float32: 0.0}  # bit for bit, as the docs claim


def groups_for(i: int) -> list[dict]:
    """Two param groups: combination i, and another combination with another learning rate."""
    return [dict(COMBOS[i], lr=0.1), dict(COMBOS[(i + 7) % len(COMBOS)], lr=0.03)]


def torch_adagrad(groups, initial_accumulator_value=0.0):
    return torch.optim.Adagrad(groups, initial_accumulator_value=initial_accumulator_value,
                               foreach=False)


@pytest.mark.parametrize("initial", [0.0, 0.5])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("i", range(len(COMBOS)), ids=lambda i: "-".join(
    f"{k}={v}" for k, v in COMBOS[i].items()))
def test_adagrad_matches_torch(i, dtype, initial):
    diff = parity(lambda g: Adagrad(g, initial_accumulator_value=initial),
                  lambda g: torch_adagrad(g, initial), groups_for(i), dtype=dtype)
    assert diff <= TOL[dtype]


def test_a_groups_own_initial_accumulator_value_is_used():
    """torch.optim.Adagrad fills every group's accumulator with the constructor's value; labkit
    uses each group's own (the same thing unless a group overrides it)."""
    w, u = torch.ones(1, requires_grad=True), torch.ones(1, requires_grad=True)
    opt = Adagrad([dict(params=[w]), dict(params=[u], initial_accumulator_value=3.0)],
                  initial_accumulator_value=1.0)
    (w + u).sum().backward()
    opt.step()
    assert opt.state[w]["sum"].item() == 2.0 and opt.state[u]["sum"].item() == 4.0


@pytest.mark.parametrize("i", [0, 9, len(COMBOS) - 1])
def test_adagrad_state_dict_round_trip(i):
    assert parity(lambda g: Adagrad(g), torch_adagrad, groups_for(i), roundtrip_at=19) == 0.0


def test_adagrad_with_scheduler_and_closure():
    sched = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.3)  # noqa: E731
    assert parity(lambda g: Adagrad(g), torch_adagrad, groups_for(5), scheduler=sched,
                  roundtrip_at=10, closure=True) == 0.0


TORCH_ADAGRAD = lambda g: torch_adagrad(g, 0.3)  # noqa: E731


@pytest.mark.parametrize("first, second", [(Adagrad, TORCH_ADAGRAD), (TORCH_ADAGRAD, Adagrad)],
                         ids=["ours->torch", "torch->ours"])
def test_adagrad_state_dicts_load_across(first, second):
    """10 steps with one implementation, 10 more with the other: the same as 20 with torch."""
    options = [dict(lr=0.1, lr_decay=0.05, initial_accumulator_value=0.3)]
    assert_same_parameters(*handover(first, second, TORCH_ADAGRAD, options))


def test_adagrad_step_is_the_equation():
    """Two steps by hand: s = s0 + g^2, w -= lr/(1 + (t-1) delta) * g/(sqrt(s) + eps)."""
    w = torch.tensor([1.0, -2.0], dtype=torch.float64)
    s = torch.full_like(w, 0.5)
    step = torch.tensor(0.0)
    lr, delta, eps = 0.1, 0.5, 1e-3
    expected_w, expected_s = w.clone(), s.clone()
    for t, g in ((1, torch.tensor([3.0, 0.5], dtype=torch.float64)),
                 (2, torch.tensor([-1.0, 2.0], dtype=torch.float64))):
        expected_s += g**2
        expected_w -= lr / (1 + (t - 1) * delta) * g / (expected_s.sqrt() + eps)
        adagrad_step([w], [g], [s], [step], lr=lr, lr_decay=delta, eps=eps)
    torch.testing.assert_close(w, expected_w, rtol=1e-15, atol=0)
    torch.testing.assert_close(s, expected_s, rtol=0, atol=0)
    assert step.item() == 2


def test_adagrad_step_shrinks_like_one_over_sqrt_t():
    """A constant gradient g: s_t = t g^2, so the t-th step is lr / sqrt(t) (eps = 0)."""
    w = torch.zeros(1, dtype=torch.float64)
    s, step = torch.zeros(1, dtype=torch.float64), torch.tensor(0.0)
    moves = []
    for _ in range(100):
        before = w.item()
        adagrad_step([w], [torch.tensor([4.0], dtype=torch.float64)], [s], [step], lr=1.0,
                     eps=0.0)
        moves.append(before - w.item())
    for t in (1, 4, 100):
        assert moves[t - 1] == pytest.approx(1 / math.sqrt(t), rel=1e-12)


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-1e-3), "lr"),
    (dict(lr=math.nan), "lr"),
    (dict(lr_decay=-0.1), "lr_decay"),
    (dict(weight_decay=-0.01), "weight_decay"),
    (dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (dict(eps=-1e-10), "eps"),
])
def test_adagrad_invalid_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Adagrad([torch.zeros(1, requires_grad=True)], **kwargs)
