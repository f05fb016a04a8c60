"""labkit.flat: a model's loss as a function of one flat vector gives the model's own numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labkit.flat import flat_loss, flatten_parameters, unflatten_parameters


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    X = torch.randn(10, 4, dtype=torch.float64)
    y = torch.randint(0, 2, (10,))
    return model, X, y


def test_flatten_then_unflatten_round_trips(setup):
    model, _, _ = setup
    w = flatten_parameters(model)
    assert w.shape == (3 * 4 + 3 + 2 * 3 + 2,)
    pieces = unflatten_parameters(model, w)
    for name, p in model.named_parameters():
        assert torch.equal(pieces[name], p.detach())


def test_flat_loss_and_gradient_match_the_model(setup):
    model, X, y = setup
    f, w0 = flat_loss(model, F.cross_entropy, X, y)
    loss = F.cross_entropy(model(X), y)
    assert torch.allclose(f(w0), loss, rtol=1e-14, atol=0)
    w = w0.clone().requires_grad_(True)
    (g_flat,) = torch.autograd.grad(f(w), w)
    g_model = torch.autograd.grad(loss, list(model.parameters()))
    assert torch.allclose(g_flat, torch.cat([g.reshape(-1) for g in g_model]), atol=1e-14)


def test_flat_loss_leaves_the_model_alone(setup):
    model, X, y = setup
    before = flatten_parameters(model)
    f, w0 = flat_loss(model, F.cross_entropy, X, y)
    f(w0 + 1.0)
    assert torch.equal(flatten_parameters(model), before)
    w0.add_(1.0)  # w0 is a copy, not the model's storage
    assert torch.equal(flatten_parameters(model), before)


def test_hessian_through_flat_loss_is_symmetric(setup):
    model, X, y = setup
    f, w0 = flat_loss(model, F.cross_entropy, X, y)
    H = torch.autograd.functional.hessian(f, w0)
    assert H.shape == (len(w0), len(w0))
    assert torch.allclose(H, H.T, atol=1e-12)


def test_bad_input_is_refused(setup):
    model, X, y = setup
    with pytest.raises(ValueError, match="w must be a flat vector of length 23"):
        unflatten_parameters(model, torch.zeros(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="X has 10 rows but y has 9"):
        flat_loss(model, F.cross_entropy, X, y[:-1])
    with pytest.raises(ValueError, match="no trainable parameters"):
        flatten_parameters(nn.ReLU())
