"""labkit.compare: the fair-comparison protocol (tuning grid and its edges, fresh seeds, paired
statistics, equal budgets, bad input)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from labkit import compare as C


def quadratic_train(best_lr: float, noise: float = 0.01, offset: float = 0.0):
    """A workload whose final metric is (log10 lr - log10 best_lr)^2 + offset + seed noise,
    recording every (lr, seed) it is called with."""
    calls = []

    def train(config, seed):
        calls.append((config["lr"], seed))
        rng = np.random.default_rng(seed)
        return (math.log10(config["lr"]) - math.log10(best_lr)) ** 2 + offset \
            + noise * rng.standard_normal()

    train.calls = calls
    return train


def test_log_grid_and_its_checks():
    grid = C.log_grid(1e-3, 1.0, 4)
    assert np.allclose(grid, [1e-3, 1e-2, 1e-1, 1.0])
    assert C.check_log_grid(grid) == grid
    with pytest.raises(ValueError, match="log-spaced"):
        C.check_log_grid([0.01, 0.02, 0.1])
    with pytest.raises(ValueError, match="increasing"):
        C.check_log_grid([0.1, 0.01])
    with pytest.raises(ValueError, match="at least 2"):
        C.check_log_grid([0.1])
    with pytest.raises(ValueError, match="positive"):
        C.check_log_grid([-0.1, 0.1])


def test_the_best_interior_rate_is_chosen_and_not_flagged():
    m = C.Method("A", C.log_grid(1e-3, 1.0, 7), quadratic_train(0.03))
    t = C.tune(m, [0, 1])
    assert math.isclose(t.best_lr, 10 ** -1.5, rel_tol=1e-9)
    assert not t.on_edge and t.widened == 0


def test_a_best_rate_on_the_edge_widens_the_grid():
    m = C.Method("A", [1e-3, 1e-2, 1e-1], quadratic_train(30.0))  # best is above the grid
    t = C.tune(m, [0], max_widen=2)
    assert t.widened == 2 and t.on_edge, "still on the edge after two widenings: flagged"
    assert np.allclose(t.lrs, [1e-3, 1e-2, 1e-1, 1.0, 10.0])
    t = C.tune(m, [0], max_widen=5)
    assert not t.on_edge and math.isclose(t.best_lr, 10.0) and t.widened == 3
    low = C.tune(C.Method("B", [1e-2, 1e-1, 1.0], quadratic_train(1e-4)), [0], max_widen=1)
    assert low.on_edge and np.allclose(low.lrs, [1e-3, 1e-2, 1e-1, 1.0])
    fixed = C.tune(m, [0], max_widen=0)
    assert fixed.on_edge and fixed.widened == 0 and fixed.best_lr == 0.1


def test_a_diverged_run_counts_as_the_worst():
    def train(config, seed):
        return math.nan if config["lr"] > 0.05 else -math.log10(config["lr"])

    t = C.tune(C.Method("A", [1e-3, 1e-2, 1e-1, 1.0], train), [0], max_widen=0)
    assert t.best_lr == 1e-2
    t = C.tune(C.Method("A", [1e-3, 1e-2, 1e-1, 1.0], train), [0], minimize=False, max_widen=0)
    assert t.best_lr == 1e-3


def test_the_chosen_rate_is_rerun_on_fresh_seeds_only():
    train = quadratic_train(0.03)
    result = C.compare([C.Method("A", C.log_grid(1e-3, 1.0, 7), train)], C.Budget(steps=10),
                       tuning_seeds=[0, 1], eval_seeds=[7, 8, 9])
    r = result["A"]
    eval_calls = [(lr, s) for lr, s in train.calls if s in (7, 8, 9)]
    assert sorted(s for _, s in eval_calls) == [7, 8, 9]
    assert all(lr == r.tuning.best_lr for lr, _ in eval_calls)
    tuning_seeds_used = {s for lr, s in train.calls if (lr, s) not in eval_calls}
    assert tuning_seeds_used == {0, 1}
    assert r.seeds == [7, 8, 9]
    expected = [train(dict(lr=r.tuning.best_lr), s) for s in (7, 8, 9)]
    assert np.allclose(r.values, expected)
    assert math.isclose(r.mean, np.mean(expected)) and math.isclose(r.std, np.std(expected, ddof=1))


def test_eval_seeds_that_are_tuning_seeds_are_refused():
    m = C.Method("A", [0.01, 0.1], quadratic_train(0.03))
    with pytest.raises(ValueError, match="fresh seeds"):
        C.compare([m], C.Budget(steps=1), tuning_seeds=[0, 1], eval_seeds=[1, 2, 3])
    with pytest.raises(ValueError, match="at least 3"):
        C.compare([m], C.Budget(steps=1), tuning_seeds=[0], eval_seeds=[1, 2])
    with pytest.raises(ValueError, match="at least 3"):
        C.compare([m], C.Budget(steps=1), tuning_seeds=[0], eval_seeds=[1, 1, 2])


def test_paired_statistics_match_scipy():
    result = C.compare(
        [C.Method("A", C.log_grid(1e-3, 1.0, 7), quadratic_train(0.03, noise=0.1)),
         C.Method("B", C.log_grid(1e-2, 10.0, 7), quadratic_train(0.3, noise=0.3, offset=0.05))],
        C.Budget(samples=100), tuning_seeds=[0], eval_seeds=[10, 11, 12, 13, 14])
    p = result.pair("A", "B")
    a, b = result["A"].values, result["B"].values
    ref = stats.ttest_rel(a, b)
    assert np.allclose(p.differences, a - b)
    assert math.isclose(p.mean, float(np.mean(a - b)))
    assert math.isclose(p.std, float(np.std(a - b, ddof=1)))
    assert math.isclose(p.t, float(ref.statistic), rel_tol=1e-9)
    assert math.isclose(p.p, float(ref.pvalue), rel_tol=1e-9)
    q = result.pair("B", "A")
    assert math.isclose(q.t, -p.t) and np.allclose(q.differences, b - a)
    assert result.ranking()[0] == ("A" if p.mean < 0 else "B")
    text = result.report()
    assert "paired A - B" in text and "budget: 100 samples" in text


def test_paired_needs_matching_values():
    with pytest.raises(ValueError, match="one value per seed"):
        C.paired("a", "b", [1.0, 2.0], [1.0], [0, 1])
    with pytest.raises(ValueError, match="at least 2"):
        C.paired("a", "b", [1.0], [2.0], [0])
    same = C.paired("a", "b", [2.0, 3.0], [1.0, 2.0], [0, 1])
    assert same.t == math.inf and same.p == 0.0


def test_every_method_must_use_the_stated_budget():
    def train_with(steps):
        return lambda config, seed: C.Outcome(config["lr"], steps=steps)

    budget = C.Budget(steps=100)
    ok = C.compare([C.Method("A", [0.1, 1.0], train_with(100)),
                    C.Method("B", [0.1, 1.0], train_with(100))], budget, max_widen=0)
    assert str(ok.budget) == "100 steps"
    with pytest.raises(ValueError, match="used 120 steps but the budget is 100"):
        C.compare([C.Method("A", [0.1, 1.0], train_with(100)),
                   C.Method("B", [0.1, 1.0], train_with(120))], budget, max_widen=0)
    with pytest.raises(ValueError, match="steps, samples or seconds"):
        C.Budget()
    with pytest.raises(TypeError, match="Budget"):
        C.compare([C.Method("A", [0.1, 1.0], train_with(100))], 100)


def test_time_to_target_on_curves():
    def train(config, seed):  # a curve that falls by lr per step, from 1
        return C.Outcome(max(0.0, 1 - 10 * config["lr"]),
                         curve=[1 - config["lr"] * k for k in range(11)], at=range(0, 110, 10))

    r = C.compare([C.Method("A", [0.01, 0.1], train)], C.Budget(steps=100), target=0.5,
                  max_widen=0)
    assert r["A"].tuning.best_lr == 0.1
    assert r["A"].time_to_target == [50.0, 50.0, 50.0]
    assert C.time_to_target(C.Outcome(1.0, curve=[1.0, 0.9]), 0.5) is None
    assert "time to metric 0.5: reached on 3/3 seeds, mean 50" in r.report()


def test_results_as_curves_floats_and_tensors():
    assert C.as_outcome([3.0, 2.0, 1.0], "A").metric == 1.0
    assert C.as_outcome(torch.tensor(2.5), "A").metric == 2.5
    assert C.as_outcome(np.float64(1.5), "A").metric == 1.5
    with pytest.raises(TypeError, match="must return a number"):
        C.as_outcome("0.5", "A")
    with pytest.raises(TypeError, match="must return a number"):
        C.as_outcome([], "A")


def test_bad_methods_are_refused():
    train = quadratic_train(0.1)
    with pytest.raises(TypeError, match="needs train"):
        C.Method("A", [0.1, 1.0])
    with pytest.raises(ValueError, match="must not hold 'lr'"):
        C.Method("A", [0.1, 1.0], train, config={"lr": 0.1})
    with pytest.raises(ValueError, match="distinct"):
        C.compare([C.Method("A", [0.1, 1.0], train), C.Method("A", [0.1, 1.0], train)],
                  C.Budget(steps=1))
    with pytest.raises(ValueError, match="empty"):
        C.compare([], C.Budget(steps=1))
    bad = C.Method("A", [0.1, 1.0], train_many=lambda configs, seed: [1.0])
    with pytest.raises(ValueError, match="returned 1 results for 2"):
        C.tune(bad, [0])


def test_train_many_equals_train_one_by_one():
    one = quadratic_train(0.03)
    many = C.Method("A", C.log_grid(1e-3, 1.0, 7),
                    train_many=lambda configs, seed: [one(c, seed) for c in configs])
    single = C.Method("A", C.log_grid(1e-3, 1.0, 7), one)
    a, b = C.tune(many, [0, 1]), C.tune(single, [0, 1])
    assert np.allclose(a.values, b.values) and a.best_lr == b.best_lr


def test_sweep_trainer_matches_separate_runs():
    """The vectorised grid (labkit.sweep) gives each rate what a separate sweep of it gives."""
    torch.manual_seed(0)
    X, y = torch.randn(96, 5), torch.randint(0, 3, (96,))
    make = lambda: torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(),  # noqa: E731
                                       torch.nn.Linear(8, 3))
    train_many = C.sweep_trainer(make, X, y, epochs=2, batch_size=32, metric="loss")
    configs = [{"optimizer": "SGD", "lr": lr} for lr in (0.01, 0.1)]
    together = train_many(configs, seed=3)
    apart = [train_many([c], seed=3)[0] for c in configs]
    assert [o.steps for o in together] == [6, 6] and together[0].samples == 192
    for t, a in zip(together, apart):
        assert math.isclose(t.metric, a.metric, rel_tol=1e-4)
    assert together[0].metric != together[1].metric
    with pytest.raises(ValueError, match="test_data"):
        C.sweep_trainer(make, X, y, metric="test_loss")


def test_plot_comparison_draws_a_band_per_method():
    import matplotlib

    matplotlib.use("Agg")
    from labkit.plot import plot_comparison

    r = C.compare([C.Method("A", C.log_grid(1e-3, 1.0, 4), quadratic_train(0.03)),
                   C.Method("B", C.log_grid(1e-2, 10.0, 4), quadratic_train(0.3))],
                  C.Budget(steps=5), tuning_seeds=[0, 1], max_widen=0)
    ax = plot_comparison(r)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["A", "B"]
    assert len(ax.collections) >= 2 and ax.get_xscale() == "log"


def test_training_code_does_not_import_matplotlib():
    import subprocess
    import sys

    code = "import sys, labkit.compare, labkit.sweep; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
