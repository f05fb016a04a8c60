"""labkit.schedules: the WSD and cosine multipliers, with LambdaLR on any optimizer."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from labkit.optim import SGD, Lion
from labkit.schedules import cosine_schedule, wsd_schedule
from labkit.testing import make_problem


def test_wsd_values():
    f = wsd_schedule(4, 10, 5)
    values = [f(t) for t in range(17)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[4:10] == [1.0] * 6
    assert values[10:15] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    assert values[15:] == [0.0, 0.0]


@pytest.mark.parametrize("shape, middle", [("linear", 0.5), ("sqrt", 1 - math.sqrt(0.5)),
                                           ("cosine", 0.5)])
def test_wsd_shapes_and_final(shape, middle):
    f = wsd_schedule(0, 0, 10, shape=shape, final=0.1)
    assert f(0) == 1.0 and f(5) == pytest.approx(0.1 + 0.9 * middle) and f(10) == 0.1


def test_cosine_schedule():
    f = cosine_schedule(10, warmup_steps=2)
    assert [f(0), f(1), f(2)] == [0.5, 1.0, 1.0]
    assert f(6) == pytest.approx(0.5) and f(10) == 0.0


def train(make, init, loss, multiplier, steps, start=None):
    """``steps`` steps with ``LambdaLR(optimizer, multiplier)``; ``start`` = (parameters,
    optimizer state_dict, step) continues a saved run (a fresh optimizer loads the state)."""
    params = [p.clone().requires_grad_() for p in (start[0] if start else init)]
    opt = make([dict(params=params[:2], lr=0.05), dict(params=params[2:], lr=0.02)])
    first = 0
    if start:
        opt.load_state_dict(copy.deepcopy(start[1]))
        first = start[2]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: multiplier(first + t))
    for _ in range(steps):
        opt.zero_grad()
        loss(params).backward()
        opt.step()
        sched.step()
    return [p.detach() for p in params], opt.state_dict()


@pytest.mark.parametrize("make", [lambda g: SGD(g, lr=0.1, momentum=0.9),
                                  lambda g: torch.optim.Adam(g), lambda g: Lion(g, lr=0.01)],
                         ids=["SGD", "torch Adam", "Lion"])
def test_wsd_cooldown_branched_from_a_checkpoint(make):
    """A run at the constant rate saved at step 30 and cooled down for 10 steps gives the same
    parameters as the WSD run of 40 steps: the stable phase does not depend on the decay."""
    init, loss = make_problem()
    f = wsd_schedule(5, 30, 10)
    stable = wsd_schedule(5, 10**9, 0)
    whole, _ = train(make, init, loss, f, 40)
    checkpoint = train(make, init, loss, stable, 30)
    branched, _ = train(make, init, loss, f, 10, start=(*checkpoint, 30))
    assert all(torch.equal(a, b) for a, b in zip(whole, branched))
    constant, _ = train(make, init, loss, stable, 40)
    assert max((a - b).abs().max().item() for a, b in zip(whole, constant)) > 1e-4


@pytest.mark.parametrize("args, kwargs, name", [
    ((5, 3, 10), {}, "decay_start"),
    ((-1, 3, 10), {}, "warmup_steps"),
    ((0, 3, 2.5), {}, "decay_steps"),
    ((0, 3, 10), dict(shape="exp"), "shape"),
    ((0, 3, 10), dict(final=1.5), "final"),
])
def test_wsd_rejects(args, kwargs, name):
    with pytest.raises(ValueError, match=name):
        wsd_schedule(*args, **kwargs)


def test_cosine_rejects():
    with pytest.raises(ValueError, match="warmup_steps"):
        cosine_schedule(10, 11)
