"""labkit.optim.Adafactor and adafactor_step against torch.optim.Adafactor: every option, bit for
bit, with a vector, a matrix, a 3-D tensor and a scalar in the same groups."""

from __future__ import annotations

import math

import pytest
import torch

from labkit.optim import Adafactor, adafactor_step
from labkit.testing import (
    assert_same_parameters,
    handover,
    make_problem,
    option_grid,
    run_optimizer,
)

COMBOS = option_grid(dict(beta2_decay=[-0.8, -0.5, 0.0], eps=[(None, 1e-3), (1e-12, 0.05)],
                          d=[1.0, 2.0], weight_decay=[0.0, 0.1], maximize=[False, True]))


def groups_for(i: int) -> list[dict]:
    """Two param groups: combination i with lr 0.01, another combination with lr 0.3 (above
    1/sqrt(t), so the relative step's min switches sides during the run)."""
    return [dict(COMBOS[i], lr=0.01), dict(COMBOS[(i + 7) % len(COMBOS)], lr=0.3)]


def torch_adafactor(groups):
    return torch.optim.Adafactor(groups, foreach=False)


def run_both(groups, dtype=torch.float64, steps=50, **kwargs):
    init, loss = make_problem(dtype=dtype)
    ours = run_optimizer(lambda g: Adafactor(g), init, loss, groups, steps, **kwargs)
    ref = run_optimizer(torch_adafactor, init, loss, groups, steps,
                        scheduler=kwargs.get("scheduler"), closure=kwargs.get("closure", False))
    return ours, ref


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("i", range(len(COMBOS)), ids=lambda i: "-".join(
    f"{k}={v}" for k, v in COMBOS[i].items()))
def test_adafactor_matches_torch(i, dtype):
    assert_same_parameters(*run_both(groups_for(i), dtype))


@pytest.mark.parametrize("i", [0, 13, len(COMBOS) - 1])
def test_adafactor_state_dict_round_trip(i):
    assert_same_parameters(*run_both(groups_for(i), roundtrip_at=19))


def test_adafactor_with_scheduler_and_closure():
    sched = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.3)  # noqa: E731
    assert_same_parameters(*run_both(groups_for(5), scheduler=sched, roundtrip_at=10, closure=True))


@pytest.mark.parametrize("first, second", [(Adafactor, torch_adafactor),
                                           (torch_adafactor, Adafactor)],
                         ids=["ours->torch", "torch->ours"])
def test_adafactor_state_dicts_load_across(first, second):
    assert_same_parameters(*handover(first, second, torch_adafactor, groups_for(3)))


def test_adafactor_state_is_factored():
    """A (30, 20) matrix keeps 30 + 20 second-moment numbers, a vector all of its own."""
    W = torch.zeros(30, 20, requires_grad=True)
    b = torch.zeros(20, requires_grad=True)
    opt = Adafactor([W, b])
    (W.sum() ** 2 + (b**2).sum()).backward()
    opt.step()
    assert opt.state[W]["row_var"].shape == (30, 1) and opt.state[W]["col_var"].shape == (1, 20)
    assert opt.state[b]["variance"].shape == (20,) and "row_var" not in opt.state[b]


def test_adafactor_factors_a_rank_one_second_moment_exactly():
    """When g^2 is a rank-one matrix (g_ij = r_i c_j), R C / mean(R) rebuilds it: the first step
    (beta2_hat = 0) is then g / |g| = sign(g) times the relative step size."""
    r = torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64)
    c = torch.tensor([2.0, -1.0, 0.25, 4.0], dtype=torch.float64)
    g = torch.outer(r, c)
    w = torch.ones(3, 4, dtype=torch.float64)
    R, C = w.new_zeros(3, 1), w.new_zeros(1, 4)
    adafactor_step([w], [g], [R], [C], [None], [torch.tensor(0.0)], lr=0.01, eps1=1e-30)
    # alpha = max(eps2, RMS(w)) * min(lr, 1) = 0.01, and RMS(sign(g)) = 1 <= d: no clipping
    torch.testing.assert_close(w, 1 - 0.01 * g.sign(), rtol=1e-14, atol=0)


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-1e-3), "lr"),
    (dict(beta2_decay=0.5), "beta2_decay"),
    (dict(eps=(-1e-30, 1e-3)), r"eps\[0\]"),
    (dict(eps=(None, -1e-3)), r"eps\[1\]"),
    (dict(d=0.5), "d"),
    (dict(weight_decay=-0.01), "weight_decay"),
])
def test_adafactor_rejects_what_torch_rejects(kwargs, name):
    with pytest.raises(ValueError):
        torch.optim.Adafactor([torch.zeros(1, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError, match=name):
        Adafactor([torch.zeros(1, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("kwargs, name", [(dict(lr=math.inf), "lr"), (dict(eps=1e-3), "eps")])
def test_adafactor_rejects_non_numbers(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Adafactor([torch.zeros(1, requires_grad=True)], **kwargs)
