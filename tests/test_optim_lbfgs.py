"""labkit.optim.LBFGS and the two-loop recursion against torch.optim.LBFGS."""

from __future__ import annotations

import copy

import pytest
import torch

from labkit.losses import binary_cross_entropy_with_logits
from labkit.optim import LBFGS, lbfgs_direction
from labkit.testing import make_problem, max_relative_difference


def logistic(n=200, d=8, lam=1e-3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)
    w_true = 2 * torch.randn(d, generator=g, dtype=torch.float64).to(dtype)
    y = (torch.rand(n, generator=g, dtype=torch.float64).to(dtype)
         < torch.sigmoid(X @ w_true)).to(dtype)

    def loss(params):
        w, b = params
        return binary_cross_entropy_with_logits(X @ w + b, y) + lam / 2 * (w**2).sum()

    return [torch.zeros(d, dtype=dtype), torch.zeros((), dtype=dtype)], loss


def run(cls, problem, steps, roundtrip_at=None, **kwargs):
    init, loss = problem
    params = [p.clone().requires_grad_() for p in init]
    opt = cls(params, **kwargs)

    def closure():
        opt.zero_grad()
        value = loss(params)
        value.backward()
        return value

    losses = []
    for t in range(steps):
        if roundtrip_at == t:
            saved = copy.deepcopy(opt.state_dict())
            params = [p.detach().clone().requires_grad_() for p in params]
            opt = cls(params, **kwargs)
            opt.load_state_dict(saved)
        losses.append(opt.step(closure).item())
    return [p.detach() for p in params], losses


OPTIONS = [
    dict(lr=1, history_size=10, max_iter=20),
    dict(lr=1, history_size=3, max_iter=7, line_search_fn="strong_wolfe"),
    dict(lr=0.5, history_size=5, max_iter=10),
    dict(lr=1, history_size=10, max_iter=20, line_search_fn="strong_wolfe"),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_lbfgs_matches_torch_on_logistic_regression(opts, dtype):
    problem = logistic(dtype=dtype)
    ours, our_losses = run(LBFGS, problem, 5, **opts)
    ref, ref_losses = run(torch.optim.LBFGS, problem, 5, **opts)
    assert max_relative_difference(ours, ref) <= (1e-10 if dtype == torch.float64 else 1e-4)
    assert our_losses == pytest.approx(ref_losses, rel=1e-6)


@pytest.mark.parametrize("opts", [OPTIONS[0], OPTIONS[1], dict(lr=0.3, history_size=4,
                                                                 max_iter=5, maximize=True)])
def test_lbfgs_matches_torch_on_the_parity_problem(opts):
    """A non-quadratic problem with tensors of several shapes (and maximize on -f)."""
    init, f = make_problem()
    loss = (lambda ps: -f(ps)) if opts.get("maximize") else f
    ours, _ = run(LBFGS, (init, loss), 4, **opts)
    ref, _ = run(torch.optim.LBFGS, (init, loss), 4, **opts)
    assert max_relative_difference(ours, ref) <= 1e-10


def test_lbfgs_state_dict_round_trip():
    problem = logistic()
    opts = dict(lr=1, history_size=5, max_iter=4)
    straight, _ = run(LBFGS, problem, 6, **opts)
    resumed, _ = run(LBFGS, problem, 6, roundtrip_at=3, **opts)
    ref, _ = run(torch.optim.LBFGS, problem, 6, **opts)
    assert max_relative_difference(resumed, straight) <= 1e-12
    assert max_relative_difference(resumed, ref) <= 1e-10


def test_lbfgs_converges_like_torch():
    problem = logistic()
    _, losses = run(LBFGS, problem, 10, line_search_fn="strong_wolfe", history_size=10)
    _, ref = run(torch.optim.LBFGS, problem, 10, line_search_fn="strong_wolfe",
                 history_size=10)
    assert losses[-1] == pytest.approx(ref[-1], rel=1e-10)
    assert losses[-1] < 0.5 * losses[0]


def test_two_loop_recursion_is_the_bfgs_inverse_on_a_quadratic():
    """With pairs (s, y = A s) from a quadratic, the two-loop recursion satisfies the secant
    equation for the last pair and equals the explicit BFGS inverse-Hessian updates."""
    g = torch.Generator().manual_seed(0)
    n = 5
    M = torch.randn(n, n, generator=g, dtype=torch.float64)
    A = M @ M.T + n * torch.eye(n, dtype=torch.float64)
    S = [torch.randn(n, generator=g, dtype=torch.float64) for _ in range(n)]
    Y = [A @ s for s in S]
    # secant equation for the most recent pair: -direction(y_last) == s_last
    torch.testing.assert_close(-lbfgs_direction(Y[-1], S, Y), S[-1])
    assert torch.equal(lbfgs_direction(Y[0], [], []), -Y[0])
    # explicit BFGS updates of the inverse, H <- V^T H V + rho s s^T, from H0 = gamma I
    H = (S[-1] @ Y[-1]) / (Y[-1] @ Y[-1]) * torch.eye(n, dtype=torch.float64)
    for s, y in zip(S, Y):
        rho = 1 / (y @ s)
        V = torch.eye(n, dtype=torch.float64) - rho * torch.outer(y, s)
        H = V.T @ H @ V + rho * torch.outer(s, s)
    v = torch.randn(n, generator=g, dtype=torch.float64)
    torch.testing.assert_close(lbfgs_direction(v, S, Y), -H @ v)
    with pytest.raises(ValueError, match="pairs"):
        lbfgs_direction(v, S, Y[:-1])


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-1.0), "lr"),
    (dict(history_size=0), "history_size"),
    (dict(max_iter=0), "max_iter"),
    (dict(line_search_fn="armijo"), "line_search_fn"),
    (dict(tolerance_grad=-1.0), "tolerance_grad"),
])
def test_invalid_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LBFGS([torch.zeros(1, requires_grad=True)], **kwargs)


def test_needs_a_closure_and_one_group():
    w = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="closure"):
        LBFGS([w]).step(None)
    with pytest.raises(ValueError, match="single param group"):
        LBFGS([dict(params=[w]), dict(params=[torch.zeros(1, requires_grad=True)])])
