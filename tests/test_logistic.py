"""labkit.logistic: the closed forms agree with autograd, and bad input is refused."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from labkit.logistic import (
    add_intercept,
    correct_digits,
    logistic_grad,
    logistic_hessian,
    logistic_loss,
    logistic_objective,
)


@pytest.fixture
def problem():
    g = torch.Generator().manual_seed(0)
    X = add_intercept(torch.randn(40, 5, generator=g, dtype=torch.float64))
    y = (torch.rand(40, generator=g, dtype=torch.float64) < 0.4).long()
    w = torch.randn(6, generator=g, dtype=torch.float64)
    return w, X, y


def test_loss_matches_binary_cross_entropy(problem):
    w, X, y = problem
    expected = F.binary_cross_entropy_with_logits(X @ w, y.double()) + 0.5 * 0.3 * (w @ w)
    assert torch.allclose(logistic_loss(w, X, y, 0.3), expected, rtol=1e-12, atol=0)


def test_loss_is_stable_for_huge_margins():
    X = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    y = torch.tensor([1, 0])
    w = torch.tensor([800.0], dtype=torch.float64)  # exp(800) overflows float64
    value = logistic_loss(w, X, y)
    assert torch.isfinite(value) and value.item() < 1e-300


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_gradient_matches_autograd(problem, l2):
    w, X, y = problem
    w = w.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(logistic_loss(w, X, y, l2), w)
    assert torch.allclose(logistic_grad(w.detach(), X, y, l2), auto, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_hessian_matches_autograd(problem, l2):
    w, X, y = problem
    auto = torch.autograd.functional.hessian(logistic_objective(X, y, l2), w)
    closed = logistic_hessian(w, X, y, l2)
    assert torch.allclose(closed, auto, rtol=1e-10, atol=1e-14)
    assert torch.allclose(closed, closed.T)


def test_hessian_is_positive_definite_with_l2(problem):
    w, X, y = problem
    smallest = torch.linalg.eigvalsh(logistic_hessian(w, X, y, 0.05)).min()
    assert smallest >= 0.05 - 1e-12


def test_gradient_vanishes_at_newton_solution(problem):
    _, X, y = problem
    w = torch.zeros(X.shape[1], dtype=torch.float64)
    for _ in range(30):
        w = w - torch.linalg.solve(logistic_hessian(w, X, y, 0.1), logistic_grad(w, X, y, 0.1))
    assert logistic_grad(w, X, y, 0.1).norm() < 1e-12


def test_add_intercept_appends_ones():
    X = torch.arange(6.0).reshape(3, 2)
    Xi = add_intercept(X)
    assert Xi.shape == (3, 3) and torch.equal(Xi[:, :2], X) and torch.all(Xi[:, 2] == 1)


def test_correct_digits():
    assert correct_digits(1e-6) == pytest.approx(6.0)
    assert correct_digits(1e-3, reference=10.0) == pytest.approx(4.0)
    assert math.isinf(correct_digits(0.0))
    with pytest.raises(ValueError, match="error"):
        correct_digits(-1.0)


def test_bad_input_is_refused(problem):
    w, X, y = problem
    with pytest.raises(ValueError, match="w must be a flat vector of length 6"):
        logistic_loss(w[:3], X, y)
    with pytest.raises(ValueError, match="y must be"):
        logistic_grad(w, X, y[:-1])
    with pytest.raises(ValueError, match="X must be a 2-D"):
        logistic_hessian(w, X[0], y)
    with pytest.raises(ValueError, match="l2 must be"):
        logistic_objective(X, y, l2=-1.0)
    with pytest.raises(ValueError, match="X must be a 2-D"):
        add_intercept(X[0])
