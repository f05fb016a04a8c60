"""labkit.optim.SGD and sgd_step against torch.optim.SGD: every option, 50 steps, round trips."""

from __future__ import annotations

import math

import pytest
import torch

from labkit.optim import SGD, sgd_step, sgd_step_foreach
from labkit.testing import make_problem, option_grid, parity

COMBOS = option_grid(
    dict(momentum=[0.0, 0.9], dampening=[0.0, 0.3], weight_decay=[0.0, 0.1],
         nesterov=[False, True], maximize=[False, True]),
    valid=lambda o: not o["nesterov"] or (o["momentum"] > 0 and o["dampening"] == 0),
)
TOL = {torch.float64: 0.0, torch.float32: 0.0}  # bit for bit, as the docs claim


def groups_for(i: int) -> list[dict]:
    """Two param groups with different options: combination i and another one."""
    return [dict(COMBOS[i], lr=0.02), dict(COMBOS[(i + 7) % len(COMBOS)], lr=0.005)]


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("i", range(len(COMBOS)), ids=lambda i: "-".join(
    f"{k}={v}" for k, v in COMBOS[i].items()))
def test_sgd_matches_torch(i, dtype, foreach):
    diff = parity(lambda g: SGD(g, foreach=foreach), lambda g: torch.optim.SGD(g),
                  groups_for(i), dtype=dtype)
    assert diff <= TOL[dtype]


@pytest.mark.parametrize("i", [0, 5, len(COMBOS) - 1])
def test_sgd_state_dict_round_trip(i):
    diff = parity(lambda g: SGD(g), lambda g: torch.optim.SGD(g), groups_for(i),
                  roundtrip_at=23)
    assert diff == 0.0


def test_sgd_state_dict_loads_into_torch():
    init, loss = make_problem()
    p1 = [p.clone().requires_grad_() for p in init]
    p2 = [p.clone().requires_grad_() for p in init]
    ours, ref = SGD(p1, lr=0.01, momentum=0.9), torch.optim.SGD(p2, lr=0.01, momentum=0.9)
    for _ in range(3):
        for opt, ps in ((ours, p1), (ref, p2)):
            opt.zero_grad()
            loss(ps).backward()
            opt.step()
    torch.testing.assert_close(ours.state_dict()["state"], ref.state_dict()["state"])


def test_sgd_with_step_lr_scheduler():
    sched = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)  # noqa: E731
    diff = parity(lambda g: SGD(g), lambda g: torch.optim.SGD(g),
                  [dict(lr=0.05, momentum=0.9), dict(lr=0.01, nesterov=True, momentum=0.5)],
                  scheduler=sched, roundtrip_at=17)
    assert diff == 0.0


def test_sgd_closure_returns_loss():
    diff = parity(lambda g: SGD(g), lambda g: torch.optim.SGD(g), [dict(lr=0.01, momentum=0.5)],
                  closure=True)
    assert diff == 0.0


def test_sgd_step_function_plain_gradient_descent():
    w = torch.tensor([1.0, -2.0])
    sgd_step([w], [torch.tensor([0.5, 0.5])], [None], lr=0.1)
    torch.testing.assert_close(w, torch.tensor([0.95, -2.05]))


@pytest.mark.parametrize("opts", [COMBOS[3], COMBOS[9], COMBOS[-1]])
def test_foreach_path_equals_single_tensor(opts):
    g = torch.Generator().manual_seed(0)
    shapes = [(3,), (2, 2), ()]
    p1 = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    p2 = [p.clone() for p in p1]
    b1, b2 = [None] * 3, [None] * 3
    for _ in range(5):
        grads = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
        sgd_step(p1, grads, b1, lr=0.1, **opts)
        sgd_step_foreach(p2, grads, b2, lr=0.1, **opts)
    for a, b in zip(p1 + [x for x in b1 if x is not None], p2 + [x for x in b2 if x is not None]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)


def test_params_without_grad_are_left_alone():
    a, b = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    opt = SGD([a, b], lr=0.1, momentum=0.9)
    a.sum().backward()
    opt.step()
    torch.testing.assert_close(b.detach(), torch.ones(2))
    assert "momentum_buffer" not in opt.state[b]


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-0.1), "lr"),
    (dict(lr=math.nan), "lr"),
    (dict(lr=0.1, momentum=-0.5), "momentum"),
    (dict(lr=0.1, weight_decay=-1e-4), "weight_decay"),
    (dict(lr=0.1, weight_decay=math.inf), "weight_decay"),
    (dict(lr=0.1, dampening=math.nan), "dampening"),
    (dict(lr=0.1, nesterov=True), "nesterov"),
    (dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
])
def test_invalid_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SGD([torch.zeros(1, requires_grad=True)], **kwargs)


def test_each_param_group_is_checked_once(monkeypatch):
    checked = []
    check = SGD.check_group
    monkeypatch.setattr(SGD, "check_group",
                        lambda self, g: (checked.append(g["lr"]), check(self, g)))
    opt = SGD([dict(params=[torch.zeros(1, requires_grad=True)]),
               dict(params=[torch.zeros(1, requires_grad=True)], lr=0.2)], lr=0.1)
    opt.add_param_group(dict(params=[torch.zeros(1, requires_grad=True)], lr=0.3))
    assert checked == [0.1, 0.2, 0.3]


def test_invalid_param_group_is_rejected():
    opt = SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="momentum=-1"):
        opt.add_param_group(dict(params=[torch.zeros(1, requires_grad=True)], momentum=-1))


@pytest.mark.parametrize("foreach", [False, True])
def test_a_parameter_that_gets_its_first_gradient_later(foreach):
    """One momentum buffer is new while another is old (the foreach path's mixed branch): the
    old one must still be damped. Bit for bit against torch.optim.SGD."""
    torch.manual_seed(0)
    start = [torch.randn(4, dtype=torch.float64), torch.randn(3, dtype=torch.float64)]
    ps = {name: [w.clone().requires_grad_() for w in start] for name in ("labkit", "torch")}
    opts = {"labkit": SGD(ps["labkit"], lr=0.1, momentum=0.9, dampening=0.3, foreach=foreach),
            "torch": torch.optim.SGD(ps["torch"], lr=0.1, momentum=0.9, dampening=0.3)}
    for step in range(4):
        for name, (a, b) in ps.items():
            opts[name].zero_grad()
            loss = (a ** 2).sum() + (step > 0) * (b ** 3).sum()  # b's first gradient at step 1
            loss.backward()
            if step == 0:
                b.grad = None
            opts[name].step()
    for x, y in zip(ps["labkit"], ps["torch"]):
        assert torch.equal(x, y)
