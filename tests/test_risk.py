"""labkit.risk: the empirical risk three ways, ridge and lasso (chapter 1)."""

from __future__ import annotations

import pytest
import torch

from labkit.risk import (
    empirical_risk,
    empirical_risk_loop,
    lasso_fit,
    polynomial_features,
    ridge_fit,
    soft_threshold,
)


def _problem(n=80, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    y = X @ w + 0.3 + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    return X, y


def test_loop_batched_and_torch_agree():
    X, y = _problem()
    w = torch.ones(5, dtype=torch.float64)

    def predict(x):
        return x @ w

    def loss(p, t):
        return (p - t) ** 2

    expected = torch.nn.functional.mse_loss(predict(X), y)
    assert torch.allclose(empirical_risk_loop(predict, loss, X, y), expected)
    for bs in (None, 7, 80, 1000):
        assert torch.allclose(empirical_risk(predict, loss, X, y, batch_size=bs), expected)


def test_risk_rejects_mismatched_or_empty_data():
    X, y = _problem()
    with pytest.raises(ValueError, match="80 rows but y has 79"):
        empirical_risk(lambda x: x.sum(1), lambda p, t: p - t, X, y[:-1])
    with pytest.raises(ValueError, match="empty"):
        empirical_risk_loop(lambda x: x, lambda p, t: p, X[:0], y[:0])


def test_ridge_solves_its_normal_equations():
    X, y = _problem()
    for lam in (0.0, 0.1, 3.0):
        w, b = ridge_fit(X, y, lam)
        w = w.clone().requires_grad_(True)
        b = b.clone().requires_grad_(True)
        objective = ((X @ w + b - y) ** 2).mean() + lam * (w ** 2).sum()
        gw, gb = torch.autograd.grad(objective, (w, b))
        assert gw.abs().max() < 1e-10 and gb.abs() < 1e-10
    with pytest.raises(ValueError, match="lam must be >= 0"):
        ridge_fit(X, y, -1.0)


def test_penalty_shrinks_weights_and_lasso_zeroes_them():
    X, y = _problem(d=8)
    norms = [ridge_fit(X, y, lam)[0].norm().item() for lam in (0.0, 0.1, 1.0, 10.0)]
    assert norms == sorted(norms, reverse=True)
    w_small, _ = lasso_fit(X, y, 1e-4)
    w_big, _ = lasso_fit(X, y, 0.5)
    assert (w_small != 0).sum() == 8 and (w_big == 0).sum() >= 2
    assert w_big.abs().sum() < w_small.abs().sum()
    # Lasso optimality: |gradient of the smooth part| <= lam where w = 0, = lam elsewhere.
    lam = 0.05
    w, b = lasso_fit(X, y, lam, steps=5000)
    grad = 2.0 / len(X) * X.T @ (X @ w + b - y)
    assert torch.all(grad[w == 0].abs() <= lam + 1e-6)
    assert torch.allclose(grad[w != 0], -lam * torch.sign(w[w != 0]), atol=1e-5)


def test_soft_threshold_and_polynomial_features():
    v = torch.tensor([-2.0, -0.5, 0.0, 0.4, 3.0])
    assert soft_threshold(v, 1.0).tolist() == [-1.0, 0.0, 0.0, 0.0, 2.0]
    X = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert polynomial_features(X, 2).tolist() == [[1, 2, 1, 2, 4], [3, 4, 9, 12, 16]]
    assert polynomial_features(torch.zeros(3, 10), 2).shape == (3, 65)
    with pytest.raises(ValueError, match="degree"):
        polynomial_features(X, 0)
