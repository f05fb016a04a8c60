"""labkit.losses against torch.nn.functional: shapes, dtypes, options and edge cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from labkit import losses as L

REDUCTIONS = ["none", "mean", "sum"]
DTYPES = [torch.float32, torch.float64]
# (N, C) and (C,) and the K-dimensional case (N, C, d1) and (N, C, d1, d2)
CLASS_SHAPES = [(7, 5), (5,), (4, 3, 6), (3, 4, 5, 2)]


def tol(dtype):
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12,
                                                                         "atol": 1e-12}


def labelled(reduction):
    """An assert_close message that says which reduction failed."""
    return lambda message: f"reduction={reduction}: {message}"


def index_target(shape, gen, ignore_index=None):
    cdim = 0 if len(shape) == 1 else 1
    tshape = shape[:cdim] + shape[cdim + 1:]
    target = torch.randint(0, shape[cdim], tshape, generator=gen)
    if ignore_index is not None and target.numel() > 1:
        mask = torch.rand(tshape, generator=gen) < 0.3
        target = torch.where(mask, torch.full_like(target, ignore_index), target)
    return target


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 4)])
def test_mse_and_l1(shape, reduction, dtype):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(shape, generator=g, dtype=dtype), torch.randn(shape, generator=g,
                                                                     dtype=dtype)
    torch.testing.assert_close(L.mse_loss(x, y, reduction), F.mse_loss(x, y, reduction=reduction),
                               **tol(dtype))
    torch.testing.assert_close(L.l1_loss(x, y, reduction), F.l1_loss(x, y, reduction=reduction),
                               **tol(dtype))


def test_regression_losses_reject_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(4, 1\).*\(4,\)"):
        L.mse_loss(torch.zeros(4, 1), torch.zeros(4))
    with pytest.raises(ValueError, match="reduction.*'avg'"):
        L.l1_loss(torch.zeros(4), torch.zeros(4), reduction="avg")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CLASS_SHAPES)
def test_log_softmax(shape, dtype):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(shape, generator=g, dtype=dtype) * 3
    dim = 0 if len(shape) == 1 else 1
    torch.testing.assert_close(L.log_softmax(z, dim), torch.log_softmax(z, dim), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("shape", CLASS_SHAPES)
def test_nll_loss(shape, ignore, use_weight, dtype):
    g = torch.Generator().manual_seed(2)
    cdim = 0 if len(shape) == 1 else 1
    logp = torch.log_softmax(torch.randn(shape, generator=g, dtype=dtype), cdim)
    target = index_target(shape, g, ignore_index=-100 if ignore else None)
    weight = torch.rand(shape[cdim], generator=g, dtype=dtype) + 0.1 if use_weight else None
    for reduction in REDUCTIONS:
        ours = L.nll_loss(logp, target, weight=weight, reduction=reduction)
        ref = F.nll_loss(logp, target, weight=weight, reduction=reduction)
        torch.testing.assert_close(ours, ref, **tol(dtype), msg=labelled(reduction))


def test_nll_weighted_mean_divides_by_sum_of_weights():
    logp = torch.log_softmax(torch.randn(6, 3, dtype=torch.float64), 1)
    target = torch.tensor([0, 1, 2, 2, 1, 0])
    weight = torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64)
    per_sample = L.nll_loss(logp, target, weight=weight, reduction="none")
    mean = L.nll_loss(logp, target, weight=weight)
    torch.testing.assert_close(mean, per_sample.sum() / weight[target].sum())
    assert not torch.isclose(mean, per_sample.mean())


def test_nll_custom_ignore_index_and_all_ignored():
    logp = torch.log_softmax(torch.randn(4, 3, dtype=torch.float64), 1)
    target = torch.tensor([0, 2, 2, 1])
    for red in REDUCTIONS:
        torch.testing.assert_close(L.nll_loss(logp, target, ignore_index=2, reduction=red),
                                   F.nll_loss(logp, target, ignore_index=2, reduction=red))
    all_ignored = torch.full((4,), -100)
    assert torch.isnan(L.nll_loss(logp, all_ignored))
    assert torch.isnan(F.nll_loss(logp, all_ignored))


def test_nll_rejects_bad_targets():
    logp = torch.log_softmax(torch.randn(4, 3), 1)
    with pytest.raises(ValueError, match="class index 3"):
        L.nll_loss(logp, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="shape"):
        L.nll_loss(logp, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="integer"):
        L.nll_loss(logp, torch.zeros(4))
    with pytest.raises(ValueError, match="weight"):
        L.nll_loss(logp, torch.tensor([0, 1, 2, 0]), weight=torch.ones(4))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("shape", CLASS_SHAPES)
def test_cross_entropy_class_indices(shape, ignore, use_weight, label_smoothing, dtype):
    g = torch.Generator().manual_seed(3)
    cdim = 0 if len(shape) == 1 else 1
    z = torch.randn(shape, generator=g, dtype=dtype) * 2
    target = index_target(shape, g, ignore_index=-1 if ignore else None)
    weight = torch.rand(shape[cdim], generator=g, dtype=dtype) + 0.1 if use_weight else None
    for reduction in REDUCTIONS:
        kw = dict(weight=weight, ignore_index=-1, reduction=reduction,
                  label_smoothing=label_smoothing)
        torch.testing.assert_close(L.cross_entropy(z, target, **kw),
                                   F.cross_entropy(z, target, **kw), **tol(dtype),
                                   msg=labelled(reduction))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("shape", CLASS_SHAPES)
def test_cross_entropy_class_probabilities(shape, use_weight, label_smoothing, dtype):
    g = torch.Generator().manual_seed(4)
    cdim = 0 if len(shape) == 1 else 1
    z = torch.randn(shape, generator=g, dtype=dtype)
    q = torch.softmax(torch.randn(shape, generator=g, dtype=dtype), cdim)
    weight = torch.rand(shape[cdim], generator=g, dtype=dtype) + 0.1 if use_weight else None
    for reduction in REDUCTIONS:
        kw = dict(weight=weight, reduction=reduction, label_smoothing=label_smoothing)
        torch.testing.assert_close(L.cross_entropy(z, q, **kw), F.cross_entropy(z, q, **kw),
                                   **tol(dtype), msg=labelled(reduction))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_is_log_softmax_then_nll(dtype):
    g = torch.Generator().manual_seed(5)
    z = torch.randn(8, 4, 3, generator=g, dtype=dtype)
    y = torch.randint(0, 4, (8, 3), generator=g)
    torch.testing.assert_close(L.cross_entropy(z, y), L.nll_loss(L.log_softmax(z, 1), y),
                               **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_stable_for_huge_logits(dtype):
    z = torch.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4 + 1.0, -1e4 - 3.0], [3e4, 3e4, 3e4]],
                     dtype=dtype)
    y = torch.tensor([1, 1, 2])
    ours = L.cross_entropy(z, y, reduction="none")
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, F.cross_entropy(z, y, reduction="none"), **tol(dtype))
    naive = -torch.log(torch.exp(z) / torch.exp(z).sum(1, keepdim=True))[torch.arange(3), y]
    assert not torch.isfinite(naive).all()  # the formula without the max shift breaks


def test_cross_entropy_gradient_matches_torch():
    z1 = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    z2 = z1.detach().clone().requires_grad_()
    y = torch.randint(0, 4, (6,))
    L.cross_entropy(z1, y, label_smoothing=0.1).backward()
    F.cross_entropy(z2, y, label_smoothing=0.1).backward()
    torch.testing.assert_close(z1.grad, z2.grad)


def test_cross_entropy_rejects_bad_options():
    z = torch.randn(3, 4)
    with pytest.raises(ValueError, match="label_smoothing.*1.5"):
        L.cross_entropy(z, torch.tensor([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="probabilities.*shape"):
        L.cross_entropy(z, torch.rand(3, 5))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pos_weight", [False, True])
@pytest.mark.parametrize("shape", [(6,), (4, 3)])
def test_binary_cross_entropy_with_logits(shape, pos_weight, reduction, dtype):
    g = torch.Generator().manual_seed(6)
    z = torch.randn(shape, generator=g, dtype=dtype) * 30  # large logits on purpose
    y = torch.rand(shape, generator=g, dtype=dtype)
    pw = torch.rand(shape[-1], generator=g, dtype=dtype) * 3 if pos_weight else None
    w = torch.rand(shape, generator=g, dtype=dtype)
    torch.testing.assert_close(
        L.binary_cross_entropy_with_logits(z, y, reduction, weight=w, pos_weight=pw),
        F.binary_cross_entropy_with_logits(z, y, weight=w, reduction=reduction, pos_weight=pw),
        **tol(dtype))


@pytest.mark.filterwarnings("ignore:reduction. 'mean'")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("shape", [(5,), (4, 6), (2, 3, 4)])
def test_kl_div(shape, log_target, reduction, dtype):
    g = torch.Generator().manual_seed(7)
    logp = torch.log_softmax(torch.randn(shape, generator=g, dtype=dtype), -1)
    q = torch.softmax(torch.randn(shape, generator=g, dtype=dtype), -1)
    if not log_target:
        q = torch.where(q < 0.1, torch.zeros_like(q), q)  # exact zeros: 0 log 0 = 0
    target = torch.log(q) if log_target else q
    ours = L.kl_div(logp, target, reduction=reduction, log_target=log_target)
    ref = F.kl_div(logp, target, reduction=reduction, log_target=log_target)
    torch.testing.assert_close(ours, ref, **tol(dtype))


def test_kl_div_is_zero_for_equal_distributions_and_positive_otherwise():
    p = torch.softmax(torch.randn(5, 4, dtype=torch.float64), 1)
    assert L.kl_div(p.log(), p, reduction="batchmean").abs() < 1e-12
    q = torch.softmax(torch.randn(5, 4, dtype=torch.float64), 1)
    assert L.kl_div(p.log(), q, reduction="batchmean") > 0


def test_penalties():
    a, b = torch.tensor([1.0, -2.0]), torch.tensor([[3.0], [-4.0]])
    assert L.l2_penalty([a, b]).item() == pytest.approx(1 + 4 + 9 + 16)
    assert L.l1_penalty([a, b]).item() == pytest.approx(1 + 2 + 3 + 4)
    model = torch.nn.Linear(3, 2)
    expected = sum((p**2).sum() for p in model.parameters())
    torch.testing.assert_close(L.l2_penalty(model), expected)
    assert L.l1_penalty(a).item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="empty"):
        L.l2_penalty([])


def test_l2_penalty_gradient_is_sgd_weight_decay():
    """d/dw (lam/2)*||w||^2 = lam*w: the same step as SGD's weight_decay=lam."""
    w1 = torch.randn(4, dtype=torch.float64, requires_grad=True)
    w2 = w1.detach().clone().requires_grad_()
    lam = 0.3
    (w1.sum() + lam / 2 * L.l2_penalty([w1])).backward()
    w2.sum().backward()
    opt1, opt2 = torch.optim.SGD([w1], lr=0.1), torch.optim.SGD([w2], lr=0.1, weight_decay=lam)
    opt1.step()
    opt2.step()
    torch.testing.assert_close(w1, w2)
