"""labkit.gradients: finite differences against autograd, gradient descent against theory."""

from __future__ import annotations

import math

import pytest
import torch

from labkit.gradients import finite_difference_gradient, first_index_below, gradient_descent


def _problem(seed: int = 0, n: int = 40, d: int = 5):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    return X, y


def _smooth(w: torch.Tensor) -> torch.Tensor:
    X, y = _problem()
    return torch.nn.functional.softplus(X @ w - y).mean() + 0.5 * torch.sin(w).pow(2).sum()


def _autograd(f, w):
    w = w.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(w), w)
    return g


@pytest.mark.parametrize("scheme, tol", [("forward", 1e-6), ("central", 1e-9)])
def test_finite_differences_match_autograd(scheme, tol):
    w = torch.linspace(-1, 1, 5, dtype=torch.float64)
    fd = finite_difference_gradient(_smooth, w, eps=1e-7 if scheme == "forward" else 1e-5,
                                    scheme=scheme)
    assert fd.shape == w.shape and fd.dtype == w.dtype
    assert torch.allclose(fd, _autograd(_smooth, w), atol=tol, rtol=0)


def test_central_differences_are_second_order():
    # Halving eps divides the truncation error by about 2 (forward) and 4 (central).
    w = torch.tensor([0.3, -0.7], dtype=torch.float64)

    def f(v):
        return torch.exp(v[0]) * torch.cos(v[1])

    exact = _autograd(f, w)
    for scheme, expected in [("forward", 2.0), ("central", 4.0)]:
        e1 = (finite_difference_gradient(f, w, 1e-2, scheme) - exact).abs().max()
        e2 = (finite_difference_gradient(f, w, 5e-3, scheme) - exact).abs().max()
        assert e1 / e2 == pytest.approx(expected, rel=0.05)


def test_finite_differences_keep_shape_and_do_not_modify_w():
    w = torch.arange(6, dtype=torch.float64).reshape(2, 3) / 10
    before = w.clone()
    fd = finite_difference_gradient(lambda v: (v**3).sum(), w)
    assert torch.equal(w, before)
    assert torch.allclose(fd, 3 * w**2, atol=1e-8)


@pytest.mark.parametrize("kwargs, match", [
    ({"scheme": "backward"}, "scheme"),
    ({"eps": 0.0}, "eps"),
    ({"eps": float("nan")}, "eps"),
])
def test_finite_differences_reject_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        finite_difference_gradient(_smooth, torch.zeros(5, dtype=torch.float64), **kwargs)


def test_finite_differences_need_a_scalar_and_floats():
    with pytest.raises(ValueError, match="scalar"):
        finite_difference_gradient(lambda v: v * 2, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="floating"):
        finite_difference_gradient(lambda v: v.sum(), torch.zeros(3, dtype=torch.int64))


def _quadratic(seed: int = 1):
    X, y = _problem(seed)
    H = X.T @ X / len(X)
    w_star = torch.linalg.solve(H, X.T @ y / len(X))
    eig = torch.linalg.eigvalsh(H)

    def f(w):
        return 0.5 * ((X @ w - y) ** 2).mean()

    return f, w_star, eig


def test_gradient_descent_records_iterates_and_losses():
    f, _, eig = _quadratic()
    w0 = torch.zeros(5, dtype=torch.float64)
    run = gradient_descent(f, w0, lr=1 / eig[-1].item(), steps=30)
    assert run.iterates.shape == (31, 5) and run.losses.shape == (31,)
    assert torch.equal(w0, torch.zeros(5, dtype=torch.float64))
    assert torch.equal(run.iterates[0], w0)
    for k in (0, 10, 30):
        assert run.losses[k].item() == pytest.approx(f(run.iterates[k]).item(), rel=1e-12)
    # One step by hand.
    w = w0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(w), w)
    assert torch.allclose(run.iterates[1], w0 - g / eig[-1], atol=1e-14)


def test_gradient_descent_rate_on_a_quadratic_matches_theory():
    # On a quadratic, w_k - w* = (I - eta H)^k (w_0 - w*): the error contracts at most by
    # rho = max_i |1 - eta lambda_i| per step, exactly so along the worst eigenvector; below 2/L
    # it converges, above it diverges.
    f, w_star, eig = _quadratic()
    X, _ = _problem(1)
    vals, vecs = torch.linalg.eigh(X.T @ X / len(X))
    L = eig[-1].item()
    for scale in (0.5, 1.0, 1.9, 2.1):
        eta = scale / L
        rho = (1 - eta * vals).abs().max().item()
        worst = vecs[:, (1 - eta * vals).abs().argmax()]
        run = gradient_descent(f, w_star + worst, lr=eta, steps=40)
        err = (run.iterates - w_star).norm(dim=1)
        assert (err[40] / err[0]).item() ** (1 / 40) == pytest.approx(rho, rel=1e-6)
        run = gradient_descent(f, torch.zeros(5, dtype=torch.float64), lr=eta, steps=40)
        err = (run.iterates - w_star).norm(dim=1)
        bound = err[0] * rho ** torch.arange(41, dtype=torch.float64)
        assert torch.all(err <= bound * (1 + 1e-9))
        assert (err[-1] < err[0]) == (scale < 2)


def test_gradient_descent_accepts_a_schedule():
    f, w_star, eig = _quadratic()
    seen = []

    def schedule(k):
        seen.append(k)
        return 1 / (eig[-1].item() * (1 + k))

    run = gradient_descent(f, torch.zeros(5, dtype=torch.float64), lr=schedule, steps=5)
    assert seen == [0, 1, 2, 3, 4]
    assert torch.all(run.losses[1:] <= run.losses[:-1])


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": 0.0, "steps": 3}, "lr"),
    ({"lr": -1.0, "steps": 3}, "lr"),
    ({"lr": math.inf, "steps": 3}, "lr"),
    ({"lr": lambda k: -0.1, "steps": 3}, r"lr\(0\)"),
    ({"lr": 0.1, "steps": -1}, "steps"),
    ({"lr": 0.1, "steps": 2.5}, "steps"),
])
def test_gradient_descent_rejects_bad_arguments(kwargs, match):
    f, _, _ = _quadratic()
    with pytest.raises(ValueError, match=match):
        gradient_descent(f, torch.zeros(5, dtype=torch.float64), **kwargs)


def test_first_index_below():
    assert first_index_below([3.0, 2.0, 0.5, 0.1], 1.0) == 2
    assert first_index_below(torch.tensor([3.0, float("nan"), 2.0]), 2.5) == 2
    assert first_index_below([3.0, 2.0], 1.0) is None
