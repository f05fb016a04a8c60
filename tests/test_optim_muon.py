"""labkit.optim.Muon, muon_step and newton_schulz against torch.optim.Muon: every option, bit for
bit (the Newton-Schulz iteration runs in bfloat16 in both, with the same operations)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labkit.optim import Muon, muon_param_groups, muon_step, newton_schulz
from labkit.testing import assert_same_parameters, make_problem, option_grid, run_optimizer

#: Matrices only: tall, wide, tall, square.
SHAPES = ((5, 3), (3, 4), (6, 2), (2, 2))
CUBIC = (1.5, -0.5, 0.0)  # the classic Newton-Schulz iteration, as another ns_coefficients
COMBOS = option_grid(dict(nesterov=[True, False], momentum=[0.95, 0.0], weight_decay=[0.0, 0.1],
                          adjust_lr_fn=[None, "original", "match_rms_adamw",
                                        "spectral_unclamped"],
                          ns=[(5, (3.4445, -4.7750, 2.0315)), (2, CUBIC)]))


def options(c: dict) -> dict:
    c = dict(c)
    c["ns_steps"], c["ns_coefficients"] = c.pop("ns")
    return c


def groups_for(i: int) -> list[dict]:
    return [dict(options(COMBOS[i]), lr=0.02),
            dict(options(COMBOS[(i + 11) % len(COMBOS)]), lr=0.005, eps=1e-3)]


def run_both(groups, dtype=torch.float64, steps=30, first=Muon, then=None, **kwargs):
    init, loss = make_problem(SHAPES, dtype=dtype)
    ours = run_optimizer(first, init, loss, groups, steps, resume_with=then, **kwargs)
    ref = run_optimizer(torch.optim.Muon, init, loss, groups, steps,
                        scheduler=kwargs.get("scheduler"))
    return ours, ref


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("i", range(len(COMBOS)), ids=lambda i: "-".join(
    f"{k}={v}" for k, v in options(COMBOS[i]).items() if k != "ns_coefficients"))
def test_muon_matches_torch(i, dtype):
    assert_same_parameters(*run_both(groups_for(i), dtype))


@pytest.mark.parametrize("i", [0, 21, len(COMBOS) - 1])
def test_muon_state_dict_round_trip(i):
    assert_same_parameters(*run_both(groups_for(i), roundtrip_at=13))


@pytest.mark.parametrize("first, then", [(Muon, torch.optim.Muon), (torch.optim.Muon, Muon)],
                         ids=["ours->torch", "torch->ours"])
def test_muon_state_dicts_load_across(first, then):
    sched = lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30)  # noqa: E731
    assert_same_parameters(*run_both(groups_for(2), first=first, then=then, roundtrip_at=10,
                           scheduler=sched))


def test_newton_schulz_is_torchs_and_orthogonalises():
    from torch.optim._muon import _zeropower_via_newtonschulz
    G = torch.randn(40, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    X = newton_schulz(G)
    assert torch.equal(X, _zeropower_via_newtonschulz(G, (3.4445, -4.7750, 2.0315), 5, 1e-7))
    s = torch.linalg.svdvals(X.double())
    assert X.shape == G.shape and X.dtype == torch.bfloat16
    assert 0.6 < s.min().item() and s.max().item() < 1.25  # roughly orthogonal, not exactly
    s0 = torch.linalg.svdvals(G)
    assert s0.max() / s0.min() > 2  # while G's singular values were spread


def test_muon_step_is_the_equation():
    """One Nesterov step by hand from a zero buffer: B = (1-mu) G, update NS((1-mu) G + mu B)."""
    mu, lr, wd = 0.9, 0.1, 0.2
    G = torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    W = torch.ones(3, 5, dtype=torch.float64)
    B = torch.zeros_like(W)
    muon_step([W], [G], [B], lr=lr, weight_decay=wd, momentum=mu)
    expected = (1 - lr * wd) * torch.ones(3, 5, dtype=torch.float64) \
        - lr * newton_schulz((1 - mu) * G + mu * ((1 - mu) * G)).double()
    torch.testing.assert_close(B, (1 - mu) * G, rtol=1e-15, atol=0)
    torch.testing.assert_close(W, expected, rtol=0, atol=1e-15)


def test_muon_param_groups_split():
    model = nn.Sequential()
    model.add_module("embed", nn.Embedding(10, 8))
    model.add_module("hidden", nn.Linear(8, 8))
    model.add_module("head", nn.Linear(8, 3))
    for_muon, for_adamw = muon_param_groups(model)
    assert [p.shape for p in for_muon] == [(8, 8)]
    assert len(for_adamw) == 4  # embedding, hidden bias, head weight and bias
    Muon(for_muon)  # accepted


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-1e-3), "lr"),
    (dict(momentum=-0.9), "momentum"),
    (dict(weight_decay=-0.1), "weight_decay"),
    (dict(adjust_lr_fn="rms"), "adjust_lr_fn"),
    (dict(ns_steps=100), "ns_steps"),
    (dict(ns_coefficients=(3.0, -3.0)), "ns_coefficients"),
])
def test_muon_rejects_what_torch_rejects(kwargs, name):
    """torch raises a ValueError when built or on the first step; labkit when built."""
    W = torch.ones(2, 3, requires_grad=True)
    with pytest.raises(ValueError):
        opt = torch.optim.Muon([W], **kwargs)
        W.sum().backward()
        opt.step()
    with pytest.raises(ValueError, match=name):
        Muon([torch.ones(2, 3, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4)])
def test_muon_rejects_non_matrices(shape):
    with pytest.raises(ValueError):
        torch.optim.Muon([torch.zeros(shape, requires_grad=True)])
    with pytest.raises(ValueError, match="2-D"):
        Muon([torch.zeros(shape, requires_grad=True)])
