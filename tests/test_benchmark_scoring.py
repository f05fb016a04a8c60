"""labkit.benchmark.scoring: AlgoPerf's score, checked against the published v0.5 leaderboards,
against the official code ported here as a reference, by hand, by invariances and on bad input.

The official code is MLCommons' ``scoring/performance_profile.py`` and
``scoring/score_submissions.py`` (github.com/mlcommons/algorithmic-efficiency at commit
2c90454fc05d5bdf3598b0c7651e611f132a7060; the same functions in
github.com/mlcommons/submissions_algorithms at commit 12c8e4ea93dc41a1ff6abc3debba9accd8ac1e3a).
The fixtures ``tests/fixtures/algoperf_v05_*.json`` hold, for every trial of the v0.5
leaderboard's logs (submissions_algorithms, ``previous_leaderboards/algoperf_v05/logs/``), the
first evaluation that reached the validation target and its time (see their ``_source``); the
published scores are those of ``previous_leaderboards/algoperf_v05/README.md``, which the official
repository's own ``scoring/test_score_submissions.py`` also reproduces to 4 decimals.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labkit.benchmark import (
    benchmark_scores,
    held_out_rule,
    performance_profiles,
    performance_ratios,
    time_to_target_per_workload,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


# --- the official code, ported as a reference (pandas, as in performance_profile.py) ----------

def official_study_time(indices: list[int | None], times: list[float]) -> float:
    """``get_best_trial_index`` then ``group[time_col].loc[trial_idx][time_idx]``: among the
    trials that reach the target, the one with the smallest evaluation index (``idxmin``: the
    first on a tie), and its time; ``inf`` when none does."""
    reached = pd.Series({i: k for i, k in enumerate(indices) if k is not None}, dtype=float)
    if len(reached) == 0:
        return float("inf")
    return times[reached.idxmin()]


def official_scores(df: pd.DataFrame, base: list[str], variants: dict[str, str],
                    max_tau: float = 4.0, num_points: int = 100, scale: str = "linear"):
    """``compute_performance_profiles`` from the time-to-target table on, then
    ``score_submissions.compute_leaderboard_score(normalize=True)``; ``df`` is submissions x
    workloads (base and variants), ``variants`` maps a variant to its base."""
    df = df.reindex(sorted(df.columns), axis=1).copy()

    def variant_criteria_filter(base_workload, variant_workload):
        def filter(x):
            if x[variant_workload] == np.inf or np.isnan(x[variant_workload]):
                return np.inf
            return x[base_workload]
        return filter

    for workload in df.keys():
        if workload not in base:
            df[workload] = df.apply(variant_criteria_filter(workload, variants[workload]), axis=1)
    best_scores = df.min(axis=0)
    df[df.apply(lambda x: x > 4 * best_scores, axis=1)] = np.inf
    for workload in df.keys():
        if workload not in base:
            b = variants[workload]
            df[b] = df.apply(variant_criteria_filter(b, workload), axis=1)
    df = df[base]
    df.update(df.div(df.min(axis=0), axis=1))
    if scale == "linear":
        points = np.linspace(1.0, max_tau, num=num_points)
    else:
        points = np.logspace(np.log10(1.0), np.log10(max_tau), num=num_points, base=10.0)
    perf_df = pd.concat([(df <= tau).sum(axis=1) / len(base) for tau in points], axis=1)
    perf_df.columns = np.log10(points) if scale == "log" else points
    scores = np.trapezoid(perf_df, x=perf_df.columns)
    scores /= perf_df.columns.max() - perf_df.columns.min()
    return perf_df, pd.Series(scores, index=perf_df.index)


# --- (1) the published v0.5 leaderboards ---------------------------------------------------

def v05_times(ruleset: str, use_indices: bool = True) -> tuple[dict, dict, dict]:
    """(times, held_out, published) of the v0.5 leaderboard, the times from our per-workload
    function on the fixture's trials; a workload a submission did not run is a miss (the
    official code's NaN, which counts as one)."""
    doc = json.loads((FIXTURES / f"algoperf_v05_{ruleset}.json").read_text())
    base, variants = doc["base_workloads"], doc["held_out_workloads"]
    held_out = {v: next(b for b in base if b in v) for v in variants}  # as base_workload_name
    rule = "self" if ruleset == "self_tuning" else "external"
    times = {}
    for submission, per_workload in doc["trials"].items():
        trials = {w: [[math.inf if t is None else t[1] for t in study] for study in studies]
                  for w, studies in per_workload.items()}
        indices = {w: [[None if t is None else t[0] for t in study] for study in studies]
                   for w, studies in per_workload.items()}
        row = time_to_target_per_workload(trials, rule, indices if use_indices else None)
        times[submission] = {w: row.get(w, math.inf) for w in base + variants}
    return times, held_out, doc["published_scores"]


@pytest.mark.parametrize("ruleset", ["external_tuning", "self_tuning"])
def test_reproduces_the_published_v05_leaderboard(ruleset: str):
    times, held_out, published = v05_times(ruleset)
    scores = benchmark_scores(times, held_out=held_out)
    assert set(scores) == set(published)
    assert {s: round(v, 4) for s, v in scores.items()} == published
    base = [w for w in next(iter(times.values())) if w not in held_out]
    _, official = official_scores(pd.DataFrame(times).T, base, held_out)
    for s, v in scores.items():
        assert v == pytest.approx(official[s], abs=1e-12)


def test_the_official_choice_of_best_trial_matters_on_v05():
    """By time instead of by evaluation index, LAWA EMA's published 0.3384 becomes 0.3434."""
    times, held_out, published = v05_times("external_tuning", use_indices=False)
    scores = benchmark_scores(times, held_out=held_out)
    assert round(scores["lawa_ema"], 4) == 0.3434 != published["lawa_ema"]


# --- (1) the official code on random tables, infs and ties -------------------------------

def random_table(rng: np.random.Generator, k: int, base: list[str], variants: dict[str, str]):
    """Times drawn from a few values (ties), a quarter of them misses, sometimes a column that
    nobody solves."""
    workloads = base + list(variants)
    t = rng.choice([1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 13.0], size=(k, len(workloads)))
    t = t * rng.choice([1.0, 1.0, 1.1, 0.37], size=t.shape)
    t[rng.random(t.shape) < 0.25] = math.inf
    if rng.random() < 0.3:
        t[:, rng.integers(len(workloads))] = math.inf
    return {f"s{i}": {w: float(t[i, j]) for j, w in enumerate(workloads)} for i in range(k)}


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("scale", ["linear", "log"])
def test_matches_the_official_code_on_random_tables(seed: int, scale: str):
    rng = np.random.default_rng(seed)
    base = [f"w{j}" for j in range(int(rng.integers(1, 7)))]
    variants = {f"{b}_variant": b for b in base if rng.random() < 0.5}
    times = random_table(rng, int(rng.integers(1, 6)), base, variants)
    r_max = float(rng.choice([4.0, 2.5, 6.0]))
    num_points = int(rng.choice([100, 7]))
    official_profiles, official = official_scores(pd.DataFrame(times).T, base, variants, r_max,
                                                  num_points, scale)
    scores = benchmark_scores(times, r_max, num_points, scale, held_out=variants)
    taus, profiles = performance_profiles(times, None, r_max, num_points, scale, held_out=variants)
    expected_taus = official_profiles.columns.to_numpy()
    np.testing.assert_allclose(np.log10(taus) if scale == "log" else taus, expected_taus,
                               rtol=0, atol=1e-15)
    for s in times:
        np.testing.assert_array_equal(profiles[s], official_profiles.loc[s].to_numpy())
        assert scores[s] == pytest.approx(official[s], abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_time_to_target_matches_the_official_selection(seed: int):
    """Random studies whose trials reach the target at random evaluation indices (ties
    included) and times; the official code takes the median of each study's chosen time."""
    rng = np.random.default_rng(seed)
    trials, indices, expected = {}, {}, {}
    for w in ("a", "b", "c"):
        studies_t, studies_i, per_study = [], [], []
        for _ in range(int(rng.integers(1, 6))):
            n = int(rng.integers(1, 6))
            idx = [int(k) if rng.random() < 0.6 else None for k in rng.integers(0, 4, n)]
            t = [float(rng.choice([10.0, 20.0, 30.0, 40.0])) if k is not None else math.inf
                 for k in idx]
            studies_t.append(t)
            studies_i.append(idx)
            per_study.append(official_study_time(idx, t))
        trials[w], indices[w], expected[w] = studies_t, studies_i, float(np.median(per_study))
    assert time_to_target_per_workload(trials, eval_indices=indices) == expected


# --- (2) by hand ---------------------------------------------------------------------------

def test_a_hand_checked_table():
    # A: [10, 15, inf], B: [15, 10, 30]; the fastest: 10, 10, 30.
    # ratios A: [1, 1.5, inf], B: [1.5, 1, 1].
    # rho_A = 1/3 for tau < 1.5 and 2/3 from 1.5; rho_B = 2/3, then 1.
    # B_A = (0.5 * 1/3 + 2.5 * 2/3) / 3 = 11/18;  B_B = (0.5 * 2/3 + 2.5 * 1) / 3 = 17/18.
    # On the grid tau_k = 1 + k/33, tau = 1.5 falls in the middle of [tau_16, tau_17], where the
    # trapezoid averages the two steps: the trapezoidal rule is exact here.
    times = {"A": {"w1": 10, "w2": 15, "w3": math.inf}, "B": {"w1": 15, "w2": 10, "w3": 30}}
    assert performance_ratios(times) == {"A": {"w1": 1.0, "w2": 1.5, "w3": math.inf},
                                         "B": {"w1": 1.5, "w2": 1.0, "w3": 1.0}}
    taus, rho = performance_profiles(times)
    assert len(taus) == 100 and taus[0] == 1.0 and taus[-1] == 4.0
    np.testing.assert_array_equal(rho["A"], np.where(taus < 1.5, 1 / 3, 2 / 3))
    np.testing.assert_array_equal(rho["B"], np.where(taus < 1.5, 2 / 3, 1.0))
    scores = benchmark_scores(times)
    assert benchmark_scores(pd.DataFrame(times).T) == scores  # one row per submission
    assert time_to_target_per_workload({"w": np.array([[3.0, 2.0], [4.0, 5.0]])}) == {"w": 3.0}
    assert scores["A"] == pytest.approx(11 / 18, abs=1e-12)
    assert scores["B"] == pytest.approx(17 / 18, abs=1e-12)
    # given taus: rho_A at 1, 1.5 (a tie counts: r <= tau) and 2.
    taus, rho = performance_profiles(times, taus=[1.0, 1.5, 2.0])
    assert taus.tolist() == [1.0, 1.5, 2.0] and rho["A"].tolist() == [1 / 3, 2 / 3, 2 / 3]


def test_a_hand_checked_time_to_target():
    # external: the studies' best trials are 3, inf and 1; their median is 3 (the mean is inf).
    trials = {"w": [[5, math.inf, 3, 7, 9], [math.inf] * 5, [4, 8, 2, 6, 1]]}
    assert time_to_target_per_workload(trials) == {"w": 3.0}
    assert time_to_target_per_workload(trials, strict=True) == {"w": 3.0}
    # two studies out of three missed: the median is a miss.
    assert time_to_target_per_workload({"w": [[5], [math.inf], [math.inf]]}, "self") == {
        "w": math.inf}
    assert time_to_target_per_workload({"w": [[5], [7], [math.inf]]}, "self") == {"w": 7.0}
    # the official choice: trial 0 reaches the target at evaluation 2 (time 100), trial 1 at
    # evaluation 3 (time 90, evaluated later but on a faster clock): the study's time is 100.
    study = {"w": [[100.0, 90.0]]}
    assert time_to_target_per_workload(study) == {"w": 90.0}
    assert time_to_target_per_workload(study, eval_indices={"w": [[2, 3]]}) == {"w": 100.0}
    assert time_to_target_per_workload(study, eval_indices={"w": [[3, 3]]}) == {"w": 100.0}


def test_a_hand_checked_held_out_variant():
    # A is fastest on w (10 against 20) but needs 130 on its variant v, above 4 x 30 = 120:
    # its time on w becomes inf, and B, alone on w, scores 1.
    times = {"A": {"w": 10, "v": 130}, "B": {"w": 20, "v": 30}}
    assert held_out_rule(times, {"v": "w"}) == {"A": {"w": math.inf}, "B": {"w": 20.0}}
    assert benchmark_scores(times, held_out={"v": "w"}) == {"A": 0.0, "B": 1.0}
    # within 4 x (110 <= 120) A keeps w; without the rule v is a workload like the others.
    times["A"]["v"] = 110
    assert benchmark_scores(times, held_out={"v": "w"})["A"] == 1.0
    assert performance_ratios(times) == {"A": {"w": 1.0, "v": 110 / 30},
                                         "B": {"w": 2.0, "v": 1.0}}
    # a base workload missed: its variant is dropped with it, even when fastest there.
    times = {"A": {"w": math.inf, "v": 10}, "B": {"w": 20, "v": 35}}
    assert held_out_rule(times, {"v": "w"}) == {"A": {"w": math.inf}, "B": {"w": 20.0}}


def test_the_cutoff_counts_times_above_four_times_the_fastest_as_misses():
    times = {"A": {"w": 10.0}, "B": {"w": 50.0}}
    assert performance_ratios(times)["B"]["w"] == math.inf
    assert performance_ratios(times, cutoff=None)["B"]["w"] == 5.0
    taus, rho = performance_profiles(times, r_max=6.0, cutoff=None)
    assert rho["B"][-1] == 1.0 and rho["B"][0] == 0.0


# --- (3) invariances -----------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_invariances(seed: int):
    rng = np.random.default_rng(100 + seed)
    base = [f"w{j}" for j in range(5)]
    times = random_table(rng, 4, base, {})
    scores = benchmark_scores(times)
    # the unit does not matter: seconds, minutes or steps. This table's ratios (4/1, 3/1.5, ...)
    # fall on grid points (1 + k/33 holds 2, 3 and 4) and on the cut-off, where a rounding of
    # t c / (t_min c) moves rho by one grid step: scale by powers of two, which round nothing.
    for c in (2.0 ** -10, 64.0):
        scaled = {s: {w: t * c for w, t in row.items()} for s, row in times.items()}
        assert benchmark_scores(scaled) == scores
    # times drawn from a continuum: any factor.
    smooth = {s: {w: t * float(rng.uniform(0.9, 1.1)) for w, t in row.items()}
              for s, row in times.items()}
    smooth_scores = benchmark_scores(smooth)
    for c in (60.0, 1e-3, 7.3):
        scaled = {s: {w: t * c for w, t in row.items()} for s, row in smooth.items()}
        for s, v in benchmark_scores(scaled).items():
            assert v == pytest.approx(smooth_scores[s], abs=1e-12)
    # a submission that is never faster than the fastest does not move anybody's score.
    dominated = {w: min(row[w] for row in times.values()) * float(rng.uniform(1.0, 5.0))
                 for w in base}
    dominated[base[0]] = math.inf
    more = benchmark_scores({**times, "late": dominated})
    for s in times:
        assert more[s] == pytest.approx(scores[s], abs=1e-12)
    # the fastest everywhere (alone or tied) scores 1; one that never reaches a target, 0.
    fastest = {w: min(row[w] for row in times.values() if math.isfinite(row[w]))
               if any(math.isfinite(row[w]) for row in times.values()) else 1.0
               for w in base}
    fastest = {w: t / 2 for w, t in fastest.items()}
    with_best = benchmark_scores({**times, "best": fastest, "tie": dict(fastest),
                                  "never": {w: math.inf for w in base}})
    assert with_best["best"] == 1.0 and with_best["tie"] == 1.0
    assert with_best["never"] == 0.0
    assert all(0.0 <= v <= 1.0 for v in with_best.values())


def test_a_workload_nobody_solves_still_counts():
    times = {"A": {"w1": 1.0, "w2": math.inf}, "B": {"w1": 2.0, "w2": math.inf}}
    assert performance_ratios(times)["A"]["w2"] == math.inf
    assert benchmark_scores(times)["A"] == 0.5


def test_the_log_scale_integrates_in_log_tau():
    # ratio 2 for B: rho_B = 0 below tau = 2 and 1 from 2; in log10 tau, 2 sits at
    # log10(2)/log10(4) = 1/2 of the range, so B_B = 1/2 up to the grid (the trapezoid on 100
    # points puts it within half a step, 1/198).
    times = {"A": {"w": 1.0}, "B": {"w": 2.0}}
    taus, _ = performance_profiles(times, scale="log")
    np.testing.assert_allclose(np.log10(taus), np.linspace(0, np.log10(4), 100), atol=1e-15)
    b = benchmark_scores(times, scale="log")["B"]
    assert abs(b - 0.5) <= 1 / 198 and b != benchmark_scores(times)["B"]


# --- (4) bad input -------------------------------------------------------------------------

@pytest.mark.parametrize("times, match", [
    ({"A": {"w": -1.0}}, r"times\['A'\]\['w'\] must be positive.*math.inf"),
    ({"A": {"w": 0.0}}, r"times\['A'\]\['w'\] must be positive"),
    ({"A": {"w": math.nan}}, r"times\['A'\]\['w'\] is NaN; use math.inf"),
    ({"A": {"w": "fast"}}, r"times\['A'\]\['w'\] must be a number"),
    ({}, r"times is empty: give at least one submission"),
    ({"A": {}}, r"times\['A'\] must be a non-empty mapping"),
    ([1.0, 2.0], r"times must be a mapping times\[submission\]\[workload\]"),
    ({"A": {"w1": 1.0, "w2": 2.0}, "B": {"w1": 1.0}},
     r"times\['B'\] has other workloads.*missing \['w2'\].*every submission must give every "
     r"workload; use math.inf"),
])
def test_bad_tables_are_refused(times, match):
    for fn in (benchmark_scores, performance_ratios, performance_profiles):
        with pytest.raises(ValueError, match=match):
            fn(times)


@pytest.mark.parametrize("kwargs, match", [
    ({"r_max": 1.0}, r"r_max must be above 1 .*r_max=4.0"),
    ({"r_max": 0.5}, r"r_max must be above 1"),
    ({"r_max": math.nan}, r"r_max must be finite"),
    ({"num_points": 1}, r"num_points must be at least 2"),
    ({"scale": "cubic"}, r"scale must be one of 'linear', 'log'"),
    ({"cutoff": 0.5}, r"cutoff must be >= 1"),
    ({"held_out": {"v": "w"}}, r"held_out: variant 'v' is not a workload of times"),
    ({"held_out": {"w": "x"}}, r"held_out: base workload 'x' is not a workload"),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        benchmark_scores({"A": {"w": 1.0}, "B": {"w": 2.0}}, **kwargs)


def test_bad_taus_are_refused():
    times = {"A": {"w": 1.0}}
    with pytest.raises(ValueError, match="taus must be a non-empty, strictly increasing"):
        performance_profiles(times, taus=[1.0, 3.0, 2.0])
    with pytest.raises(ValueError, match="taus must be a non-empty"):
        performance_profiles(times, taus=[])
    with pytest.raises(ValueError, match="taus must be positive"):
        performance_profiles(times, taus=[-1.0, 2.0])


@pytest.mark.parametrize("args, kwargs, match", [
    (({},), {}, r"trial_times must be a non-empty mapping"),
    (({"w": []},), {}, r"trial_times\['w'\] must be a non-empty list of studies"),
    (({"w": [[]]},), {}, r"trial_times\['w'\]\[0\] must be a non-empty list of trial times"),
    (({"w": [[1.0, math.nan]]},), {}, r"trial_times\['w'\]\[0\]\[1\] is NaN; use math.inf"),
    (({"w": [[-3.0]]},), {}, r"trial_times\['w'\]\[0\]\[0\] must be positive"),
    (({"w": [[1.0, 2.0]]}, "self"), {}, r"under rule='self' a study is a single run"),
    (({"w": [[1.0]]}, "bayes"), {}, r"rule must be one of 'external', 'self'"),
    (({"w": [[1.0]] * 2},), {"strict": True}, r"has 2 studies; strict scoring needs 3"),
    (({"w": [[1.0]] * 3},), {"strict": True}, r"has 1 trials; strict external scoring needs 5"),
    (({"w": [[1.0, math.inf]]},), {"eval_indices": {"w": [[0, 2]]}},
     r"eval_indices\['w'\]\[0\]\[1\] is 2 but the trial's time is inf: give None"),
    (({"w": [[1.0]]},), {"eval_indices": {"x": [[0]]}},
     r"eval_indices must be a mapping with the same workloads"),
    (({"w": [[1.0]]},), {"eval_indices": {"w": [[0, 1]]}}, r"has 2 entries for 1 trials"),
])
def test_bad_trials_are_refused(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        time_to_target_per_workload(*args, **kwargs)
