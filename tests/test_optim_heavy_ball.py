"""The lecture's heavy ball and Nesterov forms, and how they map onto torch.optim.SGD."""

from __future__ import annotations

import pytest
import torch

from labkit.optim import HeavyBall, heavy_ball_step, lookahead, pytorch_sgd_equivalent
from labkit.testing import make_problem, parity

PAIRS = [(0.01, 0.5), (0.02, 0.9), (0.005, 0.99)]


def torch_equivalent(nesterov=False):
    def make(groups):
        return torch.optim.SGD([
            dict(params=g["params"], **pytorch_sgd_equivalent(g["lr"], g["beta"], nesterov))
            for g in groups])
    return make


def trajectories(make_a, make_b, steps=50, closure_a=False, seed=0):
    """Iterates of two optimizers (one param group each) from the same start, step by step."""
    init, loss = make_problem(seed=seed)
    pa = [p.clone().requires_grad_() for p in init]
    pb = [p.clone().requires_grad_() for p in init]
    opt_a, opt_b = make_a(pa), make_b(pb)
    out_a, out_b = [], []
    for _ in range(steps):
        def closure(ps=pa, opt=opt_a):
            opt.zero_grad()
            value = loss(ps)
            value.backward()
            return value
        if closure_a:
            opt_a.step(closure)
        else:
            closure()
            opt_a.step()
        opt_b.zero_grad()
        loss(pb).backward()
        opt_b.step()
        out_a.append((snapshot(opt_a, pa), [p.detach().clone() for p in pa]))
        out_b.append((snapshot(opt_b, pb), [p.detach().clone() for p in pb]))
    return out_a, out_b


def snapshot(opt, params):
    """A copy of each parameter's optimizer state, in parameter order."""
    return [{k: v.clone() for k, v in opt.state[p].items()} for p in params]


def max_diff(xs, ys):
    return max((x - y).abs().max().item() for x, y in zip(xs, ys))


def test_heavy_ball_step_formula():
    w, w_prev, g = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 2.5]), torch.tensor([1.0, -1.0])
    w2, prev2 = w.clone(), w_prev.clone()
    heavy_ball_step([w2], [g], [prev2], lr=0.1, beta=0.9)
    torch.testing.assert_close(w2, w - 0.1 * g + 0.9 * (w - w_prev))
    torch.testing.assert_close(prev2, w)  # the state moves on: w_{t-1} <- w_t
    torch.testing.assert_close(g, torch.tensor([1.0, -1.0]))  # the gradient is not touched
    torch.testing.assert_close(lookahead(w, w_prev, 0.5), torch.tensor([1.25, 1.75]))


@pytest.mark.parametrize("lr, beta", PAIRS)
def test_heavy_ball_is_torch_sgd_with_momentum_beta(lr, beta):
    """Every iterate of heavy ball (lr, beta) equals torch SGD(lr, momentum=beta, dampening=0)."""
    assert pytorch_sgd_equivalent(lr, beta) == dict(lr=lr, momentum=beta, dampening=0.0,
                                                     nesterov=False)
    ours, ref = trajectories(lambda p: HeavyBall(p, lr=lr, beta=beta),
                             lambda p: torch.optim.SGD(p, lr=lr, momentum=beta))
    for (_, a), (_, b) in zip(ours, ref):
        assert max_diff(a, b) <= 1e-12 * max(x.abs().max().item() for x in b)


def test_heavy_ball_two_groups_and_round_trip():
    groups = [dict(lr=0.02, beta=0.9), dict(lr=0.01, beta=0.5)]
    assert parity(lambda g: HeavyBall(g, lr=1.0, beta=0.0), torch_equivalent(), groups) <= 1e-12
    assert parity(lambda g: HeavyBall(g, lr=1.0, beta=0.0), torch_equivalent(), groups,
                  roundtrip_at=21) <= 1e-12


def test_only_the_stated_pair_matches():
    """Among torch (lr', momentum') pairs near (lr, beta), only lr'=lr, momentum'=beta matches;
    in particular the EMA form (dampening=beta, lr'=lr/(1-beta)) does not, because PyTorch's
    first step skips the dampening."""
    lr, beta = 0.02, 0.9
    init, loss = make_problem()
    reference = parity(lambda g: HeavyBall(g, lr=lr, beta=beta),
                       lambda g: torch.optim.SGD(g, lr=lr, momentum=beta), [{}])
    assert reference <= 1e-12
    candidates = [dict(lr=lr2, momentum=m2) for lr2 in (lr / 2, lr, 2 * lr, lr * (1 - beta))
                  for m2 in (beta / 2, beta, (1 + beta) / 2) if (lr2, m2) != (lr, beta)]
    candidates.append(dict(lr=lr / (1 - beta), momentum=beta, dampening=beta))
    for opts in candidates:
        diff = parity(lambda g: HeavyBall(g, lr=lr, beta=beta),
                      lambda g, o=opts: torch.optim.SGD(g, **o), [{}])
        assert diff > 1e-3, opts


@pytest.mark.parametrize("lr, beta", PAIRS)
def test_nesterov_form_maps_onto_torch_lookahead_points(lr, beta):
    """torch SGD(nesterov=True) iterates p_t are the lecture's look-ahead points
    y_t = w_t + beta (w_t - w_{t-1}); and w_t = p_t + lr * beta * b, with b torch's momentum
    buffer right after the step that produced p_t."""
    ours, ref = trajectories(lambda p: HeavyBall(p, lr=lr, beta=beta, nesterov=True),
                             lambda p: torch.optim.SGD(p, lr=lr, momentum=beta, nesterov=True),
                             closure_a=True)
    for (state, w), (tstate, p) in zip(ours, ref):
        # state["prev"] is w_{t-1} after the step that produced w_t
        y = [lookahead(wk, st["prev"], beta) for wk, st in zip(w, state)]
        scale = max(x.abs().max().item() for x in p)
        assert max_diff(y, p) <= 1e-12 * scale
        buffers = [st["momentum_buffer"] for st in tstate]
        recovered = [pk + lr * beta * bk for pk, bk in zip(p, buffers)]
        assert max_diff(recovered, w) <= 1e-12 * scale
    # and the iterates themselves differ: w_t is not p_t
    assert max_diff(ours[-1][1], ref[-1][1]) > 1e-6


def test_nesterov_needs_a_closure():
    w = torch.zeros(2, requires_grad=True)
    opt = HeavyBall([w], lr=0.1, beta=0.9, nesterov=True)
    w.sum().backward()
    with pytest.raises(ValueError, match="closure"):
        opt.step()


def test_a_learning_rate_schedule_breaks_the_equivalence():
    """PyTorch multiplies its whole buffer by the new lr; heavy ball's past moves keep the old."""
    sched = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)  # noqa: E731
    same_before = parity(lambda g: HeavyBall(g, lr=0.02, beta=0.9),
                         lambda g: torch.optim.SGD(g, lr=0.02, momentum=0.9), [{}],
                         steps=10, scheduler=sched)
    after = parity(lambda g: HeavyBall(g, lr=0.02, beta=0.9),
                   lambda g: torch.optim.SGD(g, lr=0.02, momentum=0.9), [{}],
                   steps=20, scheduler=sched)
    assert same_before <= 1e-12
    assert after > 1e-4


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-1.0, beta=0.9), "lr"),
    (dict(lr=0.1, beta=-0.1), "beta"),
    (dict(lr=float("nan"), beta=0.9), "lr"),
    (dict(lr=0.1, beta=float("inf")), "beta"),
])
def test_invalid_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        HeavyBall([torch.zeros(1, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError, match=name):
        pytorch_sgd_equivalent(**kwargs)
