"""labkit.optim.SGDScheduleFree and AdamWScheduleFree against the schedulefree package (pinned):
every option, train() and eval(), bit for bit."""

from __future__ import annotations

import pytest
import schedulefree
import torch

from labkit.optim import AdamWScheduleFree, SGDScheduleFree
from labkit.testing import assert_same_parameters, make_problem, option_grid, run_optimizer

SGD_COMBOS = option_grid(dict(momentum=[0.9, 0.5], weight_decay=[0.0, 0.1], warmup_steps=[0, 10],
                              r=[0.0, 1.0], weight_lr_power=[2.0, 0.0]))
ADAMW_COMBOS = option_grid(dict(betas=[(0.9, 0.999), (0.5, 0.9)], weight_decay=[0.0, 0.1],
                                warmup_steps=[0, 10], r=[0.0, 1.0], weight_lr_power=[2.0, 0.0],
                                eps=[1e-8, 1e-3]))
# (ours, reference, combinations, learning rates of the two groups)
KINDS = {
    "SGD": (SGDScheduleFree, schedulefree.SGDScheduleFree, SGD_COMBOS, (0.05, 0.2)),
    "AdamW": (AdamWScheduleFree, schedulefree.AdamWScheduleFree, ADAMW_COMBOS, (0.01, 0.05)),
}
CASES = [(kind, i) for kind in KINDS for i in range(len(KINDS[kind][2]))]


def training(cls, **kwargs):
    """A builder that switches the optimizer to train mode, as a training loop must."""
    def make(groups):
        opt = cls(groups, **kwargs)
        opt.train()
        return opt
    return make


def groups_for(kind: str, i: int) -> list[dict]:
    combos, (lr1, lr2) = KINDS[kind][2], KINDS[kind][3]
    return [dict(combos[i], lr=lr1), dict(combos[(i + 5) % len(combos)], lr=lr2)]


@pytest.mark.parametrize("foreach", [False, True], ids=["ref-for-loop", "ref-foreach"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind, i", CASES, ids=[f"{k}-{i}" for k, i in CASES])
def test_schedulefree_matches_reference(kind, i, dtype, foreach):
    ours, ref = KINDS[kind][:2]
    init, loss = make_problem(dtype=dtype)
    groups = groups_for(kind, i)
    assert_same_parameters(run_optimizer(training(ours), init, loss, groups),
                 run_optimizer(training(ref, foreach=foreach), init, loss, groups))


@pytest.mark.parametrize("kind", KINDS)
def test_train_eval_switch_matches_reference(kind):
    """20 steps, eval() (x in the parameters), train() (y back), 20 steps, eval(): the same
    parameters as the reference's at every switch, and x differs from y."""
    init, loss = make_problem()
    runs = []
    for cls in KINDS[kind][:2]:
        params = [p.clone().requires_grad_() for p in init]
        opt = cls([dict(params=params[:2], lr=0.05), dict(params=params[2:], lr=0.02,
                                                          warmup_steps=5)])
        snapshots = []
        for _phase in range(2):
            opt.train()
            for _ in range(20):
                opt.zero_grad()
                loss(params).backward()
                opt.step()
            snapshots.append([p.detach().clone() for p in params])
            opt.eval()
            snapshots.append([p.detach().clone() for p in params])
        runs.append(snapshots)
    for ours, ref in zip(*runs):
        assert_same_parameters(ours, ref)
    y, x = runs[0][2], runs[0][3]
    assert max((a - b).abs().max().item() for a, b in zip(x, y)) > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_schedulefree_state_dict_round_trip(kind):
    ours, ref = KINDS[kind][:2]
    init, loss = make_problem()
    groups = groups_for(kind, 3)
    assert_same_parameters(run_optimizer(training(ours), init, loss, groups, roundtrip_at=19),
                 run_optimizer(training(ref), init, loss, groups))


@pytest.mark.parametrize("direction", ["ours->ref", "ref->ours"])
@pytest.mark.parametrize("kind", KINDS)
def test_schedulefree_state_dicts_load_across(kind, direction):
    ours, ref = KINDS[kind][:2]
    first, second = (ours, ref) if direction == "ours->ref" else (ref, ours)
    init, loss = make_problem()
    groups = groups_for(kind, 6)
    handed = run_optimizer(training(first), init, loss, groups, 20, roundtrip_at=10,
                           resume_with=training(second), closure=True)
    assert_same_parameters(handed, run_optimizer(training(ref), init, loss, groups, 20))


@pytest.mark.parametrize("kind", KINDS)
def test_step_in_eval_mode_raises(kind):
    w = torch.zeros(2, requires_grad=True)
    for cls in KINDS[kind][:2]:
        opt = cls([w])
        w.sum().backward()
        with pytest.raises(Exception, match="train"):
            opt.step()


def test_sgd_schedulefree_is_averaged_sgd():
    """Without warmup and with r = 0 the x sequence is the uniform average of the z sequence,
    and z is plain SGD at the y's: checked against the three lines written out."""
    beta, lr = 0.9, 0.1
    target = torch.tensor([1.0, -2.0], dtype=torch.float64)
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = SGDScheduleFree([w], lr=lr, momentum=beta)
    opt.train()
    z = x = torch.zeros(2, dtype=torch.float64)
    for t in range(1, 21):
        y = (1 - beta) * z + beta * x
        g = 2 * (y - target) * torch.tensor([1.0, 5.0], dtype=torch.float64)
        z = z - lr * g
        x = (1 - 1 / t) * x + (1 / t) * z
        opt.zero_grad()
        (((w - target) ** 2) * torch.tensor([1.0, 5.0], dtype=torch.float64)).sum().backward()
        opt.step()
    opt.eval()
    torch.testing.assert_close(w.detach(), x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-0.1), "lr"),
    (dict(weight_decay=-0.1), "weight_decay"),
    (dict(momentum=0.0), "momentum"),
    (dict(momentum=1.0), "momentum"),
])
def test_sgd_schedulefree_rejects_what_the_reference_rejects(kwargs, name):
    with pytest.raises(ValueError):
        schedulefree.SGDScheduleFree([torch.zeros(1, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError, match=name):
        SGDScheduleFree([torch.zeros(1, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-0.1), "lr"),
    (dict(betas=(0.0, 0.999)), r"betas\[0\]"),
    (dict(betas=(0.9, 1.0)), r"betas\[1\]"),
    (dict(eps=-1.0), "eps"),
    (dict(warmup_steps=2.5), "warmup_steps"),
])
def test_adamw_schedulefree_checks_what_the_reference_does_not(kwargs, name):
    """The package accepts these silently (and beta1 = 0 divides by zero in eval())."""
    schedulefree.AdamWScheduleFree([torch.zeros(1, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError, match=name):
        AdamWScheduleFree([torch.zeros(1, requires_grad=True)], **kwargs)
