"""labkit.optim.LBFGS and the two-loop recursion against torch.optim.LBFGS."""

from __future__ import annotations

import copy
import importlib
import inspect

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
    assert max_relative_difference(ours, ref) == 0.0  # the same steps, bit for bit
    assert our_losses == ref_losses


#: torch.optim.LBFGS has ``maximize`` only in recent versions (not in 2.9.1): no reference there.
TORCH_LBFGS_MAXIMIZES = "maximize" in inspect.signature(torch.optim.LBFGS).parameters


@pytest.mark.parametrize("opts", [
    OPTIONS[0], OPTIONS[1],
    pytest.param(dict(lr=0.3, history_size=4, max_iter=5, maximize=True),
                 marks=pytest.mark.skipif(not TORCH_LBFGS_MAXIMIZES,
                                          reason="this torch's LBFGS has no maximize")),
])
def test_lbfgs_matches_torch_on_the_parity_problem(opts):
    """A non-quadratic problem with tensors of several shapes (and maximize on -f)."""
    init, f = make_problem()
    loss = (lambda ps: -f(ps)) if opts.get("maximize") else f
    ours, _ = run(LBFGS, (init, loss), 4, **opts)
    ref, _ = run(torch.optim.LBFGS, (init, loss), 4, **opts)
    assert max_relative_difference(ours, ref) == 0.0


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


#: Line problems phi(t) = f(x + t d), d the steepest descent direction. All but the first were
#: found by searching random ones for cases where the zoom phase moves a trial off a bracket's
#: end (10% of its width inside, on either side, after one or two close trials), or where exp
#: overflows (the cubic's minimiser is then NaN and the midpoint is taken).
FUNCTIONS = {
    "quartic": (lambda w: (w ** 4).sum() / 4 + (w ** 2).sum() + w.sum(), [1.5, -2.0, 0.5]),
    "sine": (lambda w: (torch.sin(3 * w) + w ** 2 / 2).sum(),
             [1.1014905993699804, 0.5407282877717924]),
    "sine-b": (lambda w: (torch.sin(3 * w) + w ** 2 / 2).sum(),
               [3.0507750453453966, 3.0226317859422296]),
    "exponential": (lambda w: torch.exp(w).sum() + torch.exp(-2 * w).sum(),
                    [-0.05070237432238867, 2.1478004893107348]),
}


def _line_problem(name: str = "quartic"):
    f, start = FUNCTIONS[name]
    x = torch.tensor(start, dtype=torch.float64)

    def value_and_grad(w):
        w = w.detach().requires_grad_()
        value = f(w)
        value.backward()
        return value.detach(), w.grad

    f0, g0 = value_and_grad(x)
    d = -g0
    return x, d, f0, g0, g0.dot(d), value_and_grad, (lambda _, t, direction:
                                                    value_and_grad(x + t * direction))


CASES = [("quartic", s) for s in (0.05, 1.0, 30.0, 300.0, 3e4)] + [
    ("sine", 6.220677210848181), ("sine-b", 0.09509428575954104),
    ("exponential", 28.445766394798902), ("exponential", 300.0)]
#: where exp overflows no step can be judged: every case but those
FINITE = [case for case in CASES if case[0] != "exponential"]


@pytest.mark.parametrize("name,start", FINITE)
def test_the_line_search_step_satisfies_the_strong_wolfe_conditions(start, name):
    """The step returned satisfies sufficient decrease and the curvature condition, whether the
    first trial is too short (bracketing) or too long (zoom, with trials moved off the ends)."""
    from labkit.optim.line_search import strong_wolfe

    x, d, f0, g0, gtd, value_and_grad, phi = _line_problem(name)
    f_t, g_t, t, evals = strong_wolfe(phi, [x], start, d, f0, g0, gtd)
    assert 1 <= evals <= 26  # the first trial, then at most max_ls = 25 more
    assert f_t <= f0 + 1e-4 * t * gtd  # sufficient decrease
    assert abs(g_t.dot(d)) <= 0.9 * abs(gtd)  # curvature
    assert torch.equal(value_and_grad(x + t * d)[0], f_t)


TORCH_STRONG_WOLFE = getattr(importlib.import_module("torch.optim.lbfgs"), "_strong_wolfe", None)


@pytest.mark.skipif(TORCH_STRONG_WOLFE is None, reason="this torch has no _strong_wolfe to compare")
@pytest.mark.parametrize("name,start", CASES)
@pytest.mark.parametrize("max_ls", [3, 25])
def test_the_line_search_is_torchs(start, max_ls, name):
    """labkit's copy against torch's private original (the reference; labkit no longer imports
    it): the same step, value, gradient and number of evaluations."""
    from labkit.optim.line_search import strong_wolfe

    x, d, f0, g0, gtd, _, phi = _line_problem(name)
    ours = strong_wolfe(phi, [x], start, d, f0, g0, gtd, max_ls=max_ls)
    ref = TORCH_STRONG_WOLFE(phi, [x], start, d, f0, g0, gtd, max_ls=max_ls)
    for a, b in zip(ours[:3], ref[:3]):  # NaN where exp overflowed, in both
        torch.testing.assert_close(torch.as_tensor(a), torch.as_tensor(b), rtol=0, atol=0,
                                   equal_nan=True)
    assert ours[3] == ref[3]


@pytest.mark.parametrize("start", [(-1.2, 1.0), (2.0, -1.5), (-0.5, 2.5)])
@pytest.mark.parametrize("history_size", [2, 10])
def test_strong_wolfe_lbfgs_on_rosenbrock_takes_torchs_steps(start, history_size):
    """Rosenbrock's curved valley sends the line search through its zoom phase, including trials
    moved off the bracket's ends: every iterate equals torch.optim.LBFGS's."""
    def rosenbrock(params):
        (w,) = params
        return (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2

    problem = ([torch.tensor(start, dtype=torch.float64)], rosenbrock)
    opts = dict(lr=1, history_size=history_size, max_iter=3, line_search_fn="strong_wolfe")
    ours, our_losses = run(LBFGS, problem, 12, **opts)
    ref, ref_losses = run(torch.optim.LBFGS, problem, 12, **opts)
    assert our_losses == ref_losses
    assert torch.equal(ours[0], ref[0])
