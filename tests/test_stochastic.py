"""labkit.stochastic: mini-batch gradients, their measured variance and its 1/b law."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labkit.stochastic import (
    flat_gradient_fn,
    minibatch_gradient_variance,
    per_sample_variance,
    predicted_minibatch_variance,
    sample_batch,
)


@pytest.fixture
def problem():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(60, 3, generator=g, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + torch.randn(60, generator=g,
                                                                               dtype=torch.float64)
    model = torch.nn.Linear(3, 1).double()
    return model, X, y.unsqueeze(1)


def test_flat_gradient_matches_the_closed_form(problem):
    model, X, y = problem
    grad = flat_gradient_fn(model, F.mse_loss, X, y)
    idx = torch.tensor([3, 7, 11, 20])
    residual = model(X[idx]) - y[idx]  # d/dw mean (Xw + b - y)^2 = 2/b X^T r
    expected = torch.cat([(2 / 4 * X[idx].T @ residual).reshape(-1), 2 / 4 * residual.sum(0)])
    assert torch.allclose(grad(idx), expected.detach())


def test_per_sample_variance_is_the_mean_squared_deviation(problem):
    model, X, y = problem
    grad = flat_gradient_fn(model, F.mse_loss, X, y)
    G = torch.stack([grad(torch.tensor([i])) for i in range(len(X))])
    expected = (G - G.mean(0)).pow(2).sum(1).mean().item()
    assert per_sample_variance(grad, len(X)) == pytest.approx(expected, rel=1e-10)
    # the mean of the per-sample gradients is the full gradient
    assert torch.allclose(G.mean(0), grad(torch.arange(len(X))))


@pytest.mark.parametrize("replacement", [False, True])
def test_measured_variance_follows_the_prediction(problem, replacement):
    model, X, y = problem
    grad = flat_gradient_fn(model, F.mse_loss, X, y)
    sigma2 = per_sample_variance(grad, len(X))
    gen = torch.Generator().manual_seed(1)
    sizes = [1, 4, 16]
    measured = [minibatch_gradient_variance(grad, len(X), b, draws=3000, replacement=replacement,
                                            generator=gen) for b in sizes]
    predicted = [predicted_minibatch_variance(sigma2, len(X), b, replacement) for b in sizes]
    assert np.allclose(measured, predicted, rtol=0.12)
    slope = np.polyfit(np.log(sizes), np.log(measured), 1)[0]
    assert -1.2 < slope < -0.9


def test_a_batch_of_everything_has_no_noise(problem):
    model, X, y = problem
    grad = flat_gradient_fn(model, F.mse_loss, X, y)
    assert minibatch_gradient_variance(grad, len(X), len(X), draws=3) == pytest.approx(0, abs=1e-20)
    assert predicted_minibatch_variance(2.0, len(X), len(X)) == 0.0
    assert predicted_minibatch_variance(2.0, len(X), len(X), replacement=True) == pytest.approx(
        2.0 / len(X))


def test_sample_batch():
    gen = torch.Generator().manual_seed(0)
    idx = sample_batch(10, 10, generator=gen)
    assert sorted(idx.tolist()) == list(range(10))
    assert len(sample_batch(3, 8, replacement=True, generator=gen)) == 8
    with pytest.raises(ValueError, match="batch_size"):
        sample_batch(10, 11)
    with pytest.raises(ValueError, match="batch_size"):
        sample_batch(10, 0, replacement=True)


def test_bad_arguments(problem):
    model, X, y = problem
    with pytest.raises(ValueError, match="rows"):
        flat_gradient_fn(model, F.mse_loss, X, y[:5])
    grad = flat_gradient_fn(model, F.mse_loss, X, y)
    with pytest.raises(ValueError, match="draws"):
        minibatch_gradient_variance(grad, len(X), 4, draws=0)
    with pytest.raises(ValueError, match="sigma2"):
        predicted_minibatch_variance(-1.0, 10, 2)


def test_sgd_stability_limit_in_one_dimension_is_m2_over_m4():
    """With one feature and b = 1 the map is 1 - 2 alpha H + alpha^2 M, H = 2 E[x^2],
    M = 4 E[x^4]: the second moment is stable below alpha = H / (M / 2) = E[x^2] / E[x^4]."""
    from labkit.stochastic import sgd_stability_limit

    x = torch.tensor([[0.5], [1.0], [2.0], [-1.5]], dtype=torch.float64)
    m2, m4 = x.pow(2).mean().item(), x.pow(4).mean().item()
    assert math.isclose(sgd_stability_limit(x, 1, replacement=True), m2 / m4, rel_tol=1e-5)


def test_sgd_stability_limit_grows_to_gradient_descents_two_over_l():
    from labkit.stochastic import sgd_stability_limit

    A = torch.randn(40, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    two_over_l = 2 / torch.linalg.eigvalsh(2 * A.T @ A / 40).max().item()
    limits = [sgd_stability_limit(A, b) for b in (1, 4, 16, 40)]
    assert all(a < b for a, b in zip(limits, limits[1:]))
    assert limits[0] < 0.6 * two_over_l
    assert math.isclose(limits[-1], two_over_l, rel_tol=1e-6), "b = N is full-batch GD"
    with pytest.raises(ValueError, match="batch_size"):
        sgd_stability_limit(A, 41)
