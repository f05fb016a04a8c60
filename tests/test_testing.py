"""labkit.testing, the parity harness of the optimizer tests, the benchmark and chapters 4 and 6."""

from __future__ import annotations

import torch
from torch import nn

from labkit.optim import SGD
from labkit.testing import (
    SHAPES,
    assert_same_parameters,
    handover,
    make_problem,
    max_relative_difference,
    option_grid,
    parity,
    parity_on_model,
    run_optimizer,
)


def test_the_problem_is_reproducible_and_couples_its_tensors():
    init, loss = make_problem()
    again, loss_again = make_problem()
    assert [tuple(p.shape) for p in init] == list(SHAPES)
    assert all(torch.equal(a, b) for a, b in zip(init, again))
    assert loss(init).item() == loss_again(init).item()
    params = [p.clone().requires_grad_() for p in init]
    (g0,) = torch.autograd.grad(loss(params), params[:1])
    moved = [params[0].detach(), params[1].detach() + 1.0, *[p.detach() for p in params[2:]]]
    moved[0].requires_grad_()
    (g1,) = torch.autograd.grad(loss(moved), moved[:1])
    assert not torch.allclose(g0, g1), "the last term couples the tensors"


def test_max_relative_difference():
    a = [torch.tensor([1.0, 2.0]), torch.tensor(4.0), torch.zeros(0)]
    b = [torch.tensor([1.0, 1.0]), torch.tensor(2.0), torch.zeros(0)]
    assert max_relative_difference(a, b) == 1.0  # |2 - 1| / 1 and |4 - 2| / 2
    assert max_relative_difference(b, b) == 0.0


def test_option_grid_keeps_the_valid_combinations():
    grid = option_grid(dict(a=[0, 1], b=[False, True]), valid=lambda o: o["a"] or not o["b"])
    assert grid == [dict(a=0, b=False), dict(a=1, b=False), dict(a=1, b=True)]


def test_parity_sees_a_different_optimizer():
    same = parity(lambda g: SGD(g), lambda g: torch.optim.SGD(g), [dict(lr=0.01)])
    other = parity(lambda g: SGD(g), lambda g: torch.optim.SGD(g, momentum=0.5), [dict(lr=0.01)])
    assert same == 0.0 and other > 1e-3


def test_run_optimizer_splits_the_parameters_into_groups():
    init, loss = make_problem()
    seen = []

    def make(groups):
        seen.append([len(g["params"]) for g in groups])
        return SGD(groups)

    run_optimizer(make, init, loss, [dict(lr=0.01), dict(lr=0.02)], steps=2)
    assert seen == [[2, 2]]


def test_parity_on_model_trains_copies_and_reports_the_largest_difference():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    before = [p.detach().clone() for p in model.parameters()]
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(5, 3, generator=g, dtype=torch.float64),
                torch.randint(0, 2, (5,), generator=g)) for _ in range(4)]
    assert parity_on_model(lambda p: SGD(p, lr=0.1, momentum=0.9),
                           lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), model,
                           batches) == 0.0
    assert parity_on_model(lambda p: SGD(p, lr=0.1), lambda p: SGD(p, lr=0.2), model,
                           batches) > 1e-3
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_handover_really_hands_over():
    """The second optimizer does run the last steps, from the first one's state: a second
    optimizer with another rate ends elsewhere, and torch's SGD resumed from a checkpoint of
    itself ends where the uninterrupted run does."""
    class HalfGradientSGD(torch.optim.SGD):  # loads SGD's state, then takes other steps
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    p.grad.mul_(0.5)
            return super().step(closure)

    sgd = lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9)  # noqa: E731
    halved = lambda g: HalfGradientSGD(g, lr=0.1, momentum=0.9)  # noqa: E731
    handed, whole = handover(sgd, halved, sgd, [{}])
    assert not all(torch.equal(a, b) for a, b in zip(handed, whole))
    assert_same_parameters(*handover(sgd, sgd, sgd, [{}]))
