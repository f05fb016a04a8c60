"""2-D test functions, the trajectory recorder and the contour plot."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from labkit import optim  # noqa: E402
from labkit.functions import quadratic, rosenbrock, valley  # noqa: E402
from labkit.gradients import gradient, hessian  # noqa: E402
from labkit.plot import plot_contours  # noqa: E402
from labkit.trajectory import losses_along, record_trajectory  # noqa: E402

FUNCTIONS = [quadratic(10.0), quadratic(50.0, angle=0.4), rosenbrock(), rosenbrock(0.5, 10.0),
             valley()]


@pytest.mark.parametrize("f", FUNCTIONS, ids=lambda f: f.name)
def test_minimiser_is_a_strict_minimum(f):
    w_star = f.minimiser_tensor()
    assert f(w_star).item() == pytest.approx(f.f_min, abs=1e-12)
    assert gradient(f, w_star).abs().max() < 1e-12
    assert torch.linalg.eigvalsh(hessian(f, w_star)).min() > 0
    g = torch.Generator().manual_seed(0)
    others = w_star + torch.randn(50, 2, generator=g, dtype=torch.float64)
    assert (f(others) > f.f_min).all()


@pytest.mark.parametrize("f", FUNCTIONS, ids=lambda f: f.name)
def test_batched_evaluation_matches_pointwise(f):
    grid = torch.randn(3, 4, 2, dtype=torch.float64)
    values = f(grid)
    assert values.shape == (3, 4)
    torch.testing.assert_close(values[1, 2], f(grid[1, 2]))


def test_quadratic_curvatures():
    f = quadratic(25.0, angle=0.7)
    H = hessian(f, torch.tensor([0.3, -1.0], dtype=torch.float64))
    torch.testing.assert_close(torch.linalg.eigvalsh(H), torch.tensor([1.0, 25.0],
                                                                      dtype=torch.float64))
    torch.testing.assert_close(H, f.info["hessian"])
    assert (f.info["L"], f.info["mu"]) == (25.0, 1.0)
    assert quadratic(4.0)(torch.tensor([2.0, 1.0])).item() == pytest.approx(0.5 * (4 + 4))


def test_rosenbrock_formula():
    f = rosenbrock()
    assert f(torch.tensor([-1.2, 1.0])).item() == pytest.approx(2.2**2 + 100 * 0.44**2, rel=1e-6)
    assert f.minimiser == (1.0, 1.0) and rosenbrock(2.0).minimiser == (2.0, 4.0)


def test_valley_is_steep_across_and_flat_along():
    f = valley(steepness=100.0, slope=1.0)
    eig = torch.linalg.eigvalsh(hessian(f, f.minimiser_tensor()))
    assert eig.max() / eig.min() > 50


@pytest.mark.parametrize("bad", [dict(kappa=0.0), dict(kappa=math.nan), dict(kappa=-1.0)])
def test_invalid_parameters(bad):
    with pytest.raises(ValueError, match="kappa"):
        quadratic(**bad)
    with pytest.raises(ValueError, match="shape"):
        rosenbrock()(torch.zeros(3))


def test_record_trajectory_is_the_same_for_labkit_and_torch():
    f = rosenbrock()
    ours = record_trajectory(lambda p: optim.Adam(p, lr=0.05), f, (-1.2, 1.0), 100)
    ref = record_trajectory(lambda p: torch.optim.Adam(p, lr=0.05), f, (-1.2, 1.0), 100)
    assert ours.shape == (101, 2)
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    torch.testing.assert_close(ours[0], torch.tensor([-1.2, 1.0], dtype=torch.float64))
    values = losses_along(f, ours)
    assert values.shape == (101,) and values[-1] < values[0]


def test_gradient_descent_step_size_limit_2_over_L():
    f = quadratic(10.0)
    stable = record_trajectory(lambda p: optim.SGD(p, lr=1.9 / 10), f, (1.0, 1.0), 200)
    unstable = record_trajectory(lambda p: optim.SGD(p, lr=2.1 / 10), f, (1.0, 1.0), 200)
    assert stable[-1].norm() < 1e-6
    assert unstable[-1].norm() > 1e6  # |1 - 2.1| = 1.1 per step along the steep axis
    overflow = record_trajectory(lambda p: optim.SGD(p, lr=3 / 10), f, (1.0, 1.0), 1200)
    assert overflow.shape == (1201, 2) and torch.isnan(overflow[-1]).all()
    assert torch.isfinite(overflow[:1000]).all()  # 2^1000 is still a float64
    assert losses_along(f, overflow).isnan().any()


def test_momentum_beats_gradient_descent_on_an_ill_conditioned_quadratic():
    kappa = 100.0
    f = quadratic(kappa)
    gd = record_trajectory(lambda p: optim.SGD(p, lr=1 / kappa), f, (1.0, 1.0), 200)
    beta = ((math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)) ** 2
    lr = (2 / (math.sqrt(kappa) + 1)) ** 2
    hb = record_trajectory(lambda p: optim.HeavyBall(p, lr=lr, beta=beta), f, (1.0, 1.0), 200)
    assert losses_along(f, hb)[-1] < 1e-6 * losses_along(f, gd)[-1]


def test_closure_optimizers_record_too():
    f = valley()
    lbfgs = record_trajectory(lambda p: optim.LBFGS(p, line_search_fn="strong_wolfe"), f,
                              (-3.0, 1.0), 5)
    assert lbfgs[-1].norm() < 1e-5
    nesterov = record_trajectory(lambda p: optim.HeavyBall(p, lr=0.009, beta=0.9,
                                                           nesterov=True), f, (-3.0, 1.0), 300)
    assert losses_along(f, nesterov)[-1] < 1e-3 * losses_along(f, nesterov)[0]


def test_plot_contours_draws_every_path():
    f = rosenbrock()
    paths = {
        "GD": record_trajectory(lambda p: optim.SGD(p, lr=1e-3), f, (-1.2, 1.0), 50),
        "diverged": record_trajectory(lambda p: optim.SGD(p, lr=0.1), f, (-1.2, 1.0), 50),
        "newton": optim.newton(f, torch.tensor([-1.2, 1.0], dtype=torch.float64), 10),
    }
    ax = plot_contours(f, paths, xlim=(-2, 2), ylim=(-1, 3), levels=15)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["minimiser", "GD", "diverged", "newton"]
    assert len(ax.lines) == 1 + 2 * len(paths)
    ax2 = plot_contours(quadratic(5.0), {}, log_levels=False)
    assert ax2.get_legend() is None
    import matplotlib.pyplot as plt

    plt.close("all")
