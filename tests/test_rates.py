"""labkit.rates: textbook rates of GD and heavy ball, spectral radii, and the rate fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from labkit.rates import (
    fit_linear_rate,
    gd_optimal_step,
    gd_rate,
    heavy_ball_optimal,
    heavy_ball_rate,
    momentum_matrix,
    momentum_spectral_radius,
)


@pytest.mark.parametrize("rho", [0.3, 0.9, 0.999])
def test_fit_recovers_an_exact_geometric_rate(rho):
    errors = 3.0 * rho ** np.arange(200)
    assert fit_linear_rate(errors) == pytest.approx(rho, rel=1e-10)
    windowed = fit_linear_rate(torch.tensor(errors), start=50, stop=120)
    assert windowed == pytest.approx(rho, rel=1e-10)


def test_fit_stops_at_the_round_off_floor():
    errors = np.maximum(0.5 ** np.arange(100), 1e-16)  # stalls at 1e-16 after ~53 steps
    assert fit_linear_rate(errors) > 0.6  # the floor biases the plain fit
    assert fit_linear_rate(errors, min_error=1e-14) == pytest.approx(0.5, rel=1e-10)


def test_fit_rejects_bad_windows():
    with pytest.raises(ValueError, match="at least 2"):
        fit_linear_rate([1.0, 1e-20], min_error=1e-10)
    with pytest.raises(ValueError, match="finite and positive"):
        fit_linear_rate([1.0, 0.5, float("inf")])
    with pytest.raises(ValueError, match="start"):
        fit_linear_rate([1.0, 0.5], start=5)


def test_textbook_rates():
    assert gd_rate(1.0) == 0.0
    assert gd_rate(100.0) == pytest.approx(99 / 101)
    assert heavy_ball_rate(100.0) == pytest.approx(9 / 11)
    alpha, beta = heavy_ball_optimal(L=100.0, mu=1.0)
    assert alpha == pytest.approx(4 / 121)
    assert math.sqrt(beta) == pytest.approx(heavy_ball_rate(100.0))
    assert gd_optimal_step(100.0, 1.0) == pytest.approx(2 / 101)
    with pytest.raises(ValueError, match="kappa"):
        gd_rate(0.5)
    with pytest.raises(ValueError, match="mu"):
        heavy_ball_optimal(L=1.0, mu=0.0)
    with pytest.raises(ValueError, match="L"):
        gd_optimal_step(L=0.5, mu=1.0)


@pytest.mark.parametrize("kappa", [4.0, 100.0, 1e4])
def test_spectral_radius_at_the_optimal_parameters(kappa):
    alpha, beta = heavy_ball_optimal(L=kappa, mu=1.0)
    curvatures = np.linspace(1.0, kappa, 7)
    assert momentum_spectral_radius(alpha, beta, curvatures) == pytest.approx(
        heavy_ball_rate(kappa), rel=1e-6)
    step = gd_optimal_step(kappa, 1.0)
    assert momentum_spectral_radius(step, 0.0, [1.0, kappa]) == pytest.approx(gd_rate(kappa))


def test_spectral_radius_of_a_spiral_is_sqrt_beta():
    # complex eigenvalues when (1 + beta - alpha*lam)^2 < 4 beta: modulus sqrt(beta)
    assert momentum_spectral_radius(0.02, 0.99, [1.0, 50.0, 150.0]) == pytest.approx(
        math.sqrt(0.99))
    assert momentum_spectral_radius(0.05, 0.0, [50.0]) > 1  # GD beyond 2/L diverges


def test_momentum_matrix_matches_simulated_iterates():
    """Iterating the matrix equals running heavy ball / Nesterov along one eigenvector."""
    lam, alpha, beta = 3.0, 0.1, 0.7
    for nesterov in (False, True):
        w_prev = w = 1.0
        state = np.array([w, w_prev])
        M = momentum_matrix(alpha, beta, lam, nesterov)
        for _ in range(20):
            y = w + beta * (w - w_prev) if nesterov else w
            w_prev, w = w, w - alpha * lam * y + beta * (w - w_prev)
            state = M @ state
        assert state[0] == pytest.approx(w, rel=1e-12)
    with pytest.raises(ValueError, match="beta"):
        momentum_matrix(0.1, 1.0, 1.0)
    with pytest.raises(ValueError, match="lr"):
        momentum_matrix(0.0, 0.5, 1.0)
    with pytest.raises(ValueError, match="empty"):
        momentum_spectral_radius(0.1, 0.5, [])
