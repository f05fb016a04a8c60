"""labkit.optim.Adam/AdamW and adam_step against torch.optim.Adam/AdamW: every option."""

from __future__ import annotations

import math

import pytest
import torch

from labkit.optim import Adam, AdamW, adam_step, adam_step_foreach
from labkit.testing import make_problem, option_grid, parity, run_optimizer

COMBOS = option_grid(dict(weight_decay=[0.0, 0.1], amsgrad=[False, True],
                          maximize=[False, True], decoupled_weight_decay=[False, True]))
TOL = {torch.float64: 0.0, torch.float32: 0.0}  # bit for bit, as the docs claim


def groups_for(i: int) -> list[dict]:
    """Two param groups: combination i with defaults, and another combination with other
    betas, eps and learning rate."""
    return [dict(COMBOS[i], lr=0.01),
            dict(COMBOS[(i + 5) % len(COMBOS)], lr=0.003, betas=(0.8, 0.99), eps=1e-6)]


def torch_adam(groups):
    return torch.optim.Adam(groups, foreach=False)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("i", range(len(COMBOS)), ids=lambda i: "-".join(
    f"{k}={v}" for k, v in COMBOS[i].items()))
def test_adam_matches_torch(i, dtype, foreach):
    diff = parity(lambda g: Adam(g, foreach=foreach), torch_adam, groups_for(i), dtype=dtype)
    assert diff <= TOL[dtype]


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_adamw_matches_torch(amsgrad, dtype):
    groups = [dict(lr=0.01, amsgrad=amsgrad), dict(lr=0.02, weight_decay=0.3, amsgrad=amsgrad)]
    diff = parity(lambda g: AdamW(g), lambda g: torch.optim.AdamW(g, foreach=False), groups,
                  dtype=dtype)
    assert diff <= TOL[dtype]


def test_adamw_default_weight_decay_is_torchs():
    w = torch.zeros(1, requires_grad=True)
    assert AdamW([w]).defaults["weight_decay"] == torch.optim.AdamW([w]).defaults["weight_decay"]


@pytest.mark.parametrize("i", [0, 6, len(COMBOS) - 1])
def test_adam_state_dict_round_trip(i):
    assert parity(lambda g: Adam(g), torch_adam, groups_for(i), roundtrip_at=19) == 0.0


def test_adam_with_step_lr_scheduler_and_closure():
    sched = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.3)  # noqa: E731
    assert parity(lambda g: Adam(g), torch_adam, groups_for(3), scheduler=sched,
                  roundtrip_at=10, closure=True) == 0.0


@pytest.mark.parametrize("direction", ["ours->torch", "torch->ours"])
def test_state_dicts_load_across(direction):
    """Run 10 steps with one implementation, continue 10 with the other: same as 20 with torch."""
    init, loss = make_problem()
    groups = [dict(lr=0.01, amsgrad=True)]
    first, second = (Adam, torch.optim.Adam) if direction == "ours->torch" else \
        (torch.optim.Adam, Adam)
    params = [p.clone().requires_grad_() for p in init]
    opt = first(params, lr=0.01, amsgrad=True)
    for _ in range(10):
        opt.zero_grad()
        loss(params).backward()
        opt.step()
    opt2 = second(params, lr=0.01, amsgrad=True)
    opt2.load_state_dict(opt.state_dict())
    for _ in range(10):
        opt2.zero_grad()
        loss(params).backward()
        opt2.step()
    ref = run_optimizer(torch_adam, init, loss, groups, steps=20)
    for a, b in zip(params, ref):
        torch.testing.assert_close(a.detach(), b, rtol=1e-13, atol=0)


@pytest.mark.parametrize("opts", COMBOS[::3])
def test_foreach_step_equals_single_tensor_step(opts):
    g = torch.Generator().manual_seed(0)
    shapes = [(3,), (2, 2), ()]

    def fresh():
        ps = [torch.randn(s, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
              for s in shapes]
        return (ps, [torch.zeros_like(p) for p in ps], [torch.zeros_like(p) for p in ps],
                [torch.zeros_like(p) for p in ps], [torch.tensor(0.0) for _ in ps])

    a, b = fresh(), fresh()
    for _ in range(5):
        grads = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
        for fn, st in ((adam_step, a), (adam_step_foreach, b)):
            fn(st[0], grads, *st[1:], lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, **opts)
    for xs, ys in zip(a, b):
        for x, y in zip(xs, ys):
            torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_without_bias_correction():
    """The first step: lr * sign(g) with the correction, lr*(1-b1)/sqrt(1-b2) ~ 3.16 lr without."""
    lr, b1, b2 = 0.1, 0.9, 0.999
    g = torch.tensor([2.0, -0.5], dtype=torch.float64)
    for corrected, expected in ((True, lr), (False, lr * (1 - b1) / math.sqrt(1 - b2))):
        w = torch.zeros(2, dtype=torch.float64)
        adam_step([w], [g], [torch.zeros_like(w)], [torch.zeros_like(w)], [],
                  [torch.tensor(0.0)], lr=lr, beta1=b1, beta2=b2, eps=0.0,
                  bias_correction=corrected)
        torch.testing.assert_close(w, -expected * g.sign())


def test_adam_without_bias_correction_is_the_plain_moment_rule():
    init, loss = make_problem()
    ours = run_optimizer(lambda g: Adam(g, bias_correction=False), init, loss, [dict(lr=0.01)],
                         steps=20)
    params = [p.clone().requires_grad_() for p in init]
    m = [torch.zeros_like(p) for p in init]
    v = [torch.zeros_like(p) for p in init]
    for _ in range(20):
        grads = torch.autograd.grad(loss(params), params)
        with torch.no_grad():
            for p, mk, vk, gk in zip(params, m, v, grads):
                mk.mul_(0.9).add_(0.1 * gk)
                vk.mul_(0.999).add_(0.001 * gk**2)
                p.sub_(0.01 * mk / (vk.sqrt() + 1e-8))
    for a, b in zip(ours, params):
        torch.testing.assert_close(a, b.detach(), rtol=1e-12, atol=1e-14)
    with_correction = run_optimizer(lambda g: Adam(g), init, loss, [dict(lr=0.01)], steps=20)
    assert max((a - b).abs().max().item() for a, b in zip(ours, with_correction)) > 1e-3


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-1e-3), "lr"),
    (dict(lr=math.inf), "lr"),
    (dict(betas=(1.0, 0.999)), r"betas\[0\]"),
    (dict(betas=(0.9, -0.1)), r"betas\[1\]"),
    (dict(betas=(0.9, math.nan)), r"betas\[1\]"),
    (dict(betas=0.9), "betas"),
    (dict(eps=-1e-8), "eps"),
    (dict(weight_decay=-0.01), "weight_decay"),
])
@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_invalid_hyperparameters(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls([torch.zeros(1, requires_grad=True)], **kwargs)
