"""labkit.benchmark.runner: trials, AlgoPerf's tuning rules, the held-out rule and the targets.

Most tests use tiny fake workloads: a model with one scalar weight ``w`` that a student-style
optimiser moves by ``lr`` per step, and the metric ``1 - w``, so that the step at which a trial
reaches its target is known in closed form.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import labkit.optim
from labkit.benchmark import runner
from labkit.benchmark.runner import (
    Submission,
    external_tuning,
    run_benchmark,
    run_trial,
    sample_space,
    self_tuning,
)
from labkit.benchmark.workloads import TARGETS, Workload, load_targets, logistic_workload


class Scalar(nn.Module):
    """One weight ``w``, initialised at 0; its 'logits' make a loss that does not matter."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x * self.w


class Walk:
    """A student's optimiser (no torch base class): ``w += lr`` every step, recording its
    hyper-parameters in ``Walk.seen``."""

    seen: list[dict] = []

    def __init__(self, params, lr=0.1, extra=0.0):
        self.params = list(params)
        self.lr = lr
        Walk.seen.append({"lr": lr, "extra": extra})

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for p in self.params:
            p.add_(self.lr)


def _loss(out, y):
    return (out - y).pow(2).mean()


def _metric(model, x, y):
    return 1.0 - float(model.w.detach())


def walk_workload(target=0.5, budget=40, eval_every=2, held_out=None, name="walk"):
    x = torch.ones(4)
    return Workload(name, lambda seed: Scalar(), (x, x), (x, x), step_budget=budget,
                    eval_every=eval_every, batch_size=None, target=target, loss=_loss,
                    metric=_metric, held_out=held_out)


def expected_steps(lr, target=0.5, eval_every=2, budget=40):
    """The first multiple of eval_every at which 1 - k lr <= target (inf past the budget)."""
    k = math.ceil((1 - target) / lr - 1e-9)
    k = eval_every * math.ceil(k / eval_every)
    return float(k) if k <= budget else math.inf


@pytest.fixture(autouse=True)
def _clear_walk():
    Walk.seen = []


def test_a_trial_stops_at_the_first_evaluation_that_reaches_the_target():
    sub = Submission("walk", Walk, {"lr": (0.01, 1.0, "log")})
    trial = run_trial(walk_workload(target=0.5, eval_every=2), sub, {"lr": 0.1}, seed=0)
    # w = 0.1 k, so 1 - w <= 0.5 first at k = 5; the evaluations are at 2, 4, 6: the answer is 6
    assert trial.steps == 6 and trial.steps_run == 6
    assert trial.at == [2, 4, 6]
    assert trial.curve == pytest.approx([0.8, 0.6, 0.4], abs=1e-6)
    assert 0 < trial.seconds < math.inf and not trial.diverged


def test_a_trial_that_never_reaches_the_target_gets_inf_and_runs_the_whole_budget():
    sub = Submission("walk", Walk, {"lr": (0.01, 1.0, "log")})
    trial = run_trial(walk_workload(target=0.5, budget=40), sub, {"lr": 0.001}, seed=0)
    assert trial.steps == math.inf and trial.seconds == math.inf
    assert trial.steps_run == 40 and len(trial.curve) == 20 and not trial.diverged


class Explode(Walk):
    def step(self):
        with torch.no_grad():
            for p in self.params:
                p.fill_(math.nan)


def test_a_diverged_trial_gets_inf_and_stops():
    sub = Submission("boom", Explode, {"lr": (0.01, 1.0, "log")})
    trial = run_trial(walk_workload(budget=40), sub, {"lr": 0.1}, seed=0)
    assert trial.diverged and trial.steps == math.inf and trial.steps_run < 40


def test_external_tuning_draws_trials_times_studies_points_from_the_space_reproducibly():
    space = {"lr": (0.02, 0.5, "log"), "extra": (-1.0, 1.0, "linear")}
    sub = Submission("walk", Walk, space)
    tuning = external_tuning(walk_workload(), sub, trials=4, studies=3, seed=7)
    first = list(Walk.seen)
    assert len(first) == 12 and len(tuning.trials) == 12
    assert all(0.02 <= h["lr"] <= 0.5 and -1 <= h["extra"] <= 1 for h in first)
    # one quasi-random sequence dealt to the studies (AlgoPerf), not one sequence per study,
    # whose scrambled first points nearly coincide
    assert sorted(h["lr"] for h in first) == sorted(
        p["lr"] for p in sample_space(space, 12, seed=7))
    Walk.seen = []
    again = external_tuning(walk_workload(), sub, trials=4, studies=3, seed=7)
    assert Walk.seen == first and again.time() == tuning.time()
    Walk.seen = []
    external_tuning(walk_workload(), sub, trials=4, studies=3, seed=8)
    assert Walk.seen != first


def test_external_tuning_time_is_the_median_over_studies_of_the_fastest_trial():
    sub = Submission("walk", Walk, {"lr": (0.02, 0.3, "log")})
    tuning = external_tuning(walk_workload(), sub, trials=3, studies=3, seed=1)
    lrs = [h["lr"] for h in Walk.seen]
    per_study = [min(expected_steps(lr) for lr in lrs[3 * s: 3 * s + 3]) for s in range(3)]
    assert tuning.study_times() == per_study
    assert tuning.time() == float(np.median(per_study))
    assert tuning.time() != pytest.approx(np.mean(per_study))  # so a mean would fail
    # a smaller tuning budget is the first trials of each study
    assert tuning.study_times(trials=1) == [expected_steps(lrs[3 * s]) for s in range(3)]


def test_the_first_k_draws_do_not_depend_on_how_many_are_drawn():
    space = {"lr": (1e-4, 1.0, "log"), "beta": [0.9, 0.95, 0.99]}
    assert sample_space(space, 5, seed=3)[:2] == sample_space(space, 2, seed=3)
    assert {p["beta"] for p in sample_space(space, 30, seed=3)} == {0.9, 0.95, 0.99}


def test_self_tuning_runs_only_the_defaults_once_per_study():
    sub = Submission("walk", Walk, {"lr": (0.01, 1.0, "log")}, defaults={"lr": 0.125})
    tuning = self_tuning(walk_workload(), sub, studies=3, seed=0)
    assert Walk.seen == [{"lr": 0.125, "extra": 0.0}] * 3
    assert [len(s.trials) for s in tuning.studies] == [1, 1, 1]
    assert tuning.time() == expected_steps(0.125)


def test_missing_the_held_out_target_makes_the_base_workload_inf():
    held = walk_workload(target=0.5, budget=10, name="walk-held")
    base = walk_workload(target=0.5, budget=40, held_out=held)
    fast = Submission("fast", Walk, {"lr": [0.25]})  # held out: reached at step 2
    slow = Submission("slow", Walk, {"lr": [0.04]})  # base at step 14; held out: never (budget 10)
    bench = run_benchmark([fast, slow], [base], rule="external", trials=1, studies=1)
    raw = bench.raw()
    assert raw["slow"]["walk"] == 14 and raw["slow"]["walk-held"] == math.inf
    times = bench.times(cutoff=None)  # no 4x cut: the held-out miss alone
    assert times == {"fast": {"walk": 2.0}, "slow": {"walk": math.inf}}
    assert "slow" in bench.report() and "14 (-)" in bench.report()
    assert bench.scores()["slow"] == 0.0 and bench.scores()["fast"] == 1.0


def test_held_out_more_than_r_max_times_slower_than_the_fastest_counts_as_a_miss():
    held = walk_workload(target=0.5, budget=40, name="walk-held")
    base = walk_workload(target=0.5, budget=40, held_out=held)
    fast = Submission("fast", Walk, {"lr": [0.25]})   # held out at step 2
    slow = Submission("slow", Walk, {"lr": [0.05]})   # held out at step 10 > 4 x 2
    times = run_benchmark([fast, slow], [base], trials=1, studies=1).times(cutoff=4)
    assert times["slow"]["walk"] == math.inf
    assert run_benchmark([fast, slow], [base], trials=1, studies=1).times(
        cutoff=5)["slow"]["walk"] == 10


def _blobs():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(40, 2, generator=g) + 2, torch.randn(40, 2, generator=g) - 2])
    y = torch.cat([torch.zeros(40), torch.ones(40)]).long()
    return Workload("blobs", lambda seed: (torch.manual_seed(seed), nn.Linear(2, 2))[1],
                    (x, y), (x, y), step_budget=60, eval_every=5, batch_size=16, target=0.05)


@pytest.mark.parametrize("optimizer", [torch.optim.SGD, labkit.optim.SGD, Walk, "function"])
def test_a_submission_may_be_a_torch_class_a_labkit_class_a_plain_class_or_a_function(
        optimizer):
    if optimizer == "function":
        def optimizer(params, lr):
            return torch.optim.Adam(params, lr=lr)
    if optimizer is Walk:  # the student's optimiser on the scalar workload
        trial = run_trial(walk_workload(), Submission("s", Walk, {"lr": [0.3]}), {"lr": 0.3}, 0)
    else:
        trial = run_trial(_blobs(), Submission("s", optimizer, {"lr": [0.1]}), {"lr": 0.1}, 0)
    assert math.isfinite(trial.steps)


def test_schedule_free_is_evaluated_at_its_average_and_trained_at_y():
    sub = Submission("sf", labkit.optim.AdamWScheduleFree, {"lr": [0.05]})
    trial = run_trial(_blobs(), sub, {"lr": 0.05}, 0)
    assert math.isfinite(trial.steps)


def test_muon_takes_the_hidden_matrices_only():
    from labkit.models import MLP
    matrices, rest = runner.hidden_matrices(MLP(in_features=4, hidden=3))
    assert [tuple(p.shape) for p in matrices] == [(3, 4), (3, 3)]
    assert len(rest) == 4  # three biases and the output layer
    matrices, rest = runner.hidden_matrices(nn.Linear(3, 2))
    assert matrices == [] and len(rest) == 2


@pytest.mark.parametrize("space, message", [
    ({}, "non-empty"),
    ({"lr": (1.0, 0.1, "log")}, "low must be <= high"),
    ({"lr": (0.0, 1.0, "log")}, "low > 0"),
    ({"lr": (0.1, 1.0, "cubic")}, "scale"),
    ({"lr": []}, "empty list"),
    ({"lr": 0.1}, "list of choices"),
])
def test_a_bad_search_space_raises_a_clear_value_error(space, message):
    with pytest.raises(ValueError, match=message):
        Submission("bad", torch.optim.SGD, space)


def test_bad_rule_and_missing_target_raise():
    sub = Submission("walk", Walk, {"lr": [0.1]})
    with pytest.raises(ValueError, match="rule"):
        run_benchmark([sub], [walk_workload()], rule="tuned-by-hand")
    with pytest.raises(ValueError, match="no target"):
        run_benchmark([sub], [walk_workload(target=None)])
    with pytest.raises(TypeError, match="optimizer"):
        Submission("x", 3, {"lr": [0.1]})


def test_the_stored_targets_are_what_the_target_setting_script_wrote():
    stored = load_targets()
    assert stored, "run benchmarks/benchmark_targets.py"
    assert TARGETS == stored


def test_the_targets_were_set_on_the_workloads_as_they_are_now():
    """A changed budget, batch size or data set needs new targets: the script records what it
    trained on, and it must match the workloads of today."""
    import json

    from labkit.benchmark.workloads import TARGETS_FILE, workloads
    records = json.loads(TARGETS_FILE.read_text())
    for w in workloads():
        for v in w.variants:
            assert records[v.name]["workload"] == {
                "step_budget": v.step_budget, "eval_every": v.eval_every,
                "batch_size": v.batch_size, "n_train": len(v.train[0]),
                "n_val": len(v.val[0])}, f"{v.name}: run benchmarks/benchmark_targets.py"


def test_the_logistic_target_is_what_algoperfs_recipe_gives():
    """Recompute one workload's target from scratch (a few seconds) with the stored settings."""
    import json

    from labkit.benchmark.workloads import TARGETS_FILE
    record = json.loads(TARGETS_FILE.read_text())["logistic"]
    torch.set_num_threads(1)
    setting = runner.set_target(logistic_workload(), runner.algoperf_baselines(),
                                trials=record["trials"], repeats=record["n_repeats"],
                                seed=record["seed"], budget_fraction=record["budget_fraction"])
    assert setting.baseline == record["baseline"]
    assert setting.repeats == pytest.approx(record["repeats"])
    assert setting.target == pytest.approx(TARGETS["logistic"])
    assert setting.target == pytest.approx(float(np.median(setting.repeats)))
