"""Newton's method (safeguarded), Hessians, Hessian-vector products and Newton-CG."""

from __future__ import annotations

import pytest
import torch

from labkit.gradients import gradient, hessian, hvp
from labkit.losses import binary_cross_entropy_with_logits
from labkit.optim import conjugate_gradient, newton, newton_cg_step, newton_step


def logistic_problem(n=200, d=6, lam=1e-2, seed=0):
    """L2-regularised logistic regression: f(w) = mean BCE(Xw, y) + lam/2 ||w||^2."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    w_true = torch.randn(d, generator=g, dtype=torch.float64)
    y = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(X @ w_true)).double()

    def f(w):
        return binary_cross_entropy_with_logits(X @ w, y) + 0.5 * lam * (w**2).sum()

    return f, X, y, lam


def rosenbrock(w):
    return (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2


def one_step(f, w, **kwargs):
    """newton_step on the flat vector w (a copy), the step functions' list convention."""
    w = w.clone()
    info = newton_step([w], [gradient(f, w)], hessian(f, w), lambda: f(w), **kwargs)
    return w, info


def one_cg_step(f, w, **kwargs):
    w, w0 = w.clone(), w.clone()
    info = newton_cg_step([w], [gradient(f, w)], lambda v: hvp(f, w0, v), lambda: f(w), **kwargs)
    return w, info


def test_hessian_of_rosenbrock_is_the_analytic_one():
    w = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    x, y = w
    expected = torch.tensor([[2 - 400 * (y - 3 * x**2), -400 * x], [-400 * x, 200.0]],
                            dtype=torch.float64)
    torch.testing.assert_close(hessian(rosenbrock, w), expected)
    torch.testing.assert_close(gradient(rosenbrock, w), torch.tensor(
        [-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)], dtype=torch.float64))


def test_logistic_hessian_is_x_s_x():
    f, X, y, lam = logistic_problem()
    w = torch.randn(X.shape[1], dtype=torch.float64)
    p = torch.sigmoid(X @ w)
    expected = X.T @ (X * (p * (1 - p))[:, None]) / len(X) + lam * torch.eye(X.shape[1],
                                                                             dtype=X.dtype)
    torch.testing.assert_close(hessian(f, w), expected)


def test_hvp_equals_hessian_times_vector_and_double_backward():
    f, X, *_ = logistic_problem(d=20)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(20, generator=g, dtype=torch.float64)
    v = torch.randn(20, generator=g, dtype=torch.float64)
    torch.testing.assert_close(hvp(f, w, v), hessian(f, w) @ v)
    wr = w.clone().requires_grad_()
    (gw,) = torch.autograd.grad(f(wr), wr, create_graph=True)
    (hv,) = torch.autograd.grad(gw @ v, wr)
    torch.testing.assert_close(hvp(f, w, v), hv)
    with pytest.raises(ValueError, match="shape"):
        hvp(f, w, v[:3])


def test_one_newton_step_solves_a_quadratic():
    A = torch.tensor([[10.0, 2.0], [2.0, 1.0]], dtype=torch.float64)
    b = torch.tensor([1.0, -3.0], dtype=torch.float64)

    def f(w):
        return 0.5 * w @ A @ w - b @ w

    w1, info = one_step(f, torch.tensor([5.0, 5.0], dtype=torch.float64))
    torch.testing.assert_close(w1, torch.linalg.solve(A, b))
    assert info["step_size"] == 1.0 and info["damping"] == 0.0 and info["backtracks"] == 0
    # decrement^2 / 2 is the exact suboptimality on a quadratic
    gap = f(torch.tensor([5.0, 5.0], dtype=torch.float64)) - f(w1)
    assert info["decrement"] ** 2 / 2 == pytest.approx(gap.item(), rel=1e-12)


def test_newton_converges_quadratically_on_logistic_regression():
    f, X, *_ = logistic_problem()
    traj, infos = newton(f, torch.zeros(X.shape[1], dtype=torch.float64), 12, tol=1e-13,
                         return_info=True)
    w_star = traj[-1]
    assert gradient(f, w_star).norm() < 1e-12
    errors = [(w - w_star).norm().item() for w in traj[:-1]]
    errors = [e for e in errors if e > 1e-10]
    assert len(errors) <= 8
    # quadratic: e_{k+1} <= C e_k^2 once close; the number of correct digits roughly doubles
    ratios = [e1 / e0**2 for e0, e1 in zip(errors[-4:], errors[-3:])]
    assert max(ratios) < 10
    assert all(info["step_size"] == 1.0 for info in infos[-3:])


def test_pure_newton_diverges_where_the_safeguarded_one_converges():
    """f(x) = sqrt(1 + x^2): pure Newton maps x to -x^3, so from |x| > 1 it diverges."""
    def f(w):
        return torch.sqrt(1 + w**2).sum()

    w0 = torch.tensor([1.5], dtype=torch.float64)
    pure = newton(f, w0, 4, line_search=False)
    torch.testing.assert_close(pure[1], -w0**3)
    assert pure[-1].abs().item() > 1e10
    safe, infos = newton(f, w0, 30, return_info=True)
    assert safe[-1].abs().item() < 1e-10
    values = [f(w).item() for w in safe]
    assert all(b <= a for a, b in zip(values, values[1:]))  # monotone decrease
    assert infos[0]["backtracks"] > 0


def test_damping_turns_an_indefinite_hessian_into_a_descent_direction():
    """At (0, 0.1) the Hessian of x^2 - y^2 + y^4 is indefinite: pure Newton climbs towards
    the saddle at y = 0, the damped step goes downhill towards the minimum at y = 1/sqrt(2)."""
    def f(w):
        return w[0] ** 2 - w[1] ** 2 + w[1] ** 4

    w0 = torch.tensor([0.5, 0.1], dtype=torch.float64)
    assert torch.linalg.eigvalsh(hessian(f, w0)).min() < 0
    pure, _ = one_step(f, w0, line_search=False)
    assert f(pure) > f(torch.tensor([0.0, 0.0], dtype=torch.float64)) - 1e-3  # near the saddle
    traj, infos = newton(f, w0, 40, return_info=True, tol=1e-12)
    assert infos[0]["damping"] > 0
    torch.testing.assert_close(traj[-1], torch.tensor([0.0, 2**-0.5], dtype=torch.float64))


def test_newton_on_rosenbrock_from_the_classic_start():
    traj = newton(rosenbrock, torch.tensor([-1.2, 1.0], dtype=torch.float64), 100, tol=1e-10)
    torch.testing.assert_close(traj[-1], torch.ones(2, dtype=torch.float64))
    values = [rosenbrock(w).item() for w in traj]
    assert all(b <= a for a, b in zip(values, values[1:]))
    assert len(traj) < 40


def test_conjugate_gradient_solves_spd_systems_in_n_steps():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(8, 8, generator=g, dtype=torch.float64)
    A = M @ M.T + 0.5 * torch.eye(8, dtype=torch.float64)
    b = torch.randn(8, generator=g, dtype=torch.float64)
    x, iters, negative = conjugate_gradient(lambda v: A @ v, b, max_iters=8, tol=1e-12)
    torch.testing.assert_close(x, torch.linalg.solve(A, b))
    assert iters <= 8 and not negative
    x, iters, negative = conjugate_gradient(lambda v: -A @ v, b, max_iters=8, tol=1e-12)
    assert negative and iters == 0
    torch.testing.assert_close(x, b)


def test_newton_cg_reaches_the_newton_solution_without_the_hessian():
    f, X, *_ = logistic_problem(d=30)
    w0 = torch.zeros(30, dtype=torch.float64)
    exact = newton(f, w0, 20, tol=1e-12)[-1]
    traj, infos = newton(f, w0, 30, method="newton-cg", tol=1e-10, return_info=True)
    torch.testing.assert_close(traj[-1], exact, atol=1e-9, rtol=0)
    assert len(traj) <= 15
    assert max(info["cg_iters"] for info in infos) <= 30
    w1, info = one_cg_step(f, w0, cg_iters=30, tol=1e-14)
    w1_exact, _ = one_step(f, w0)
    torch.testing.assert_close(w1, w1_exact)


@pytest.mark.parametrize("kwargs, name", [
    (dict(damping=-1.0), "damping"),
    (dict(c=1.5), "c"),
    (dict(shrink=0.0), "shrink"),
    (dict(max_backtracks=-1), "max_backtracks"),
])
def test_invalid_options(kwargs, name):
    with pytest.raises(ValueError, match=name):
        one_step(rosenbrock, torch.zeros(2), **kwargs)


def test_invalid_inputs():
    with pytest.raises(ValueError, match="1-D"):
        newton(rosenbrock, torch.zeros(2, 1), 1)
    with pytest.raises(ValueError, match="method"):
        newton(rosenbrock, torch.zeros(2), 3, method="bfgs")
    with pytest.raises(ValueError, match="cg_iters"):
        newton(rosenbrock, torch.zeros(2), 1, method="newton-cg", cg_iters=0)


def test_newton_step_on_several_tensors_is_the_step_on_their_concatenation():
    """The list convention: parameters of several shapes move as one flat vector would."""
    f, X, *_ = logistic_problem(d=6)
    w0 = torch.linspace(-1, 1, 6, dtype=torch.float64)
    flat, flat_info = one_step(f, w0)
    a, b = w0[:2].clone().reshape(2, 1), w0[2:].clone()

    def loss():
        return f(torch.cat([a.reshape(-1), b]))

    g = gradient(f, w0)
    info = newton_step([a, b], [g[:2].reshape(2, 1), g[2:]], hessian(f, w0), loss)
    torch.testing.assert_close(torch.cat([a.reshape(-1), b]), flat, rtol=0, atol=0)
    assert info == flat_info
