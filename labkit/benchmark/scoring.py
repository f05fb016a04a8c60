r"""AlgoPerf's scoring: time to target per workload, performance ratios and profiles, the score.

MLCommons' AlgoPerf benchmark (Dahl et al., 2023; ``references.bib``) ranks training algorithms by
the time each one needs to reach a fixed validation target on a fixed set of workloads. The lab
``labs/optimizer_benchmark.ipynb`` teaches it; :mod:`labkit.compare` is the course's protocol for
two methods on one workload, this module aggregates many workloads. The steps, each a function:

1. **Time to target of a workload** (:func:`time_to_target_per_workload`). External tuning: a
   submission runs :math:`3` independent *studies* of :math:`5` *trials* (hyper-parameter points
   from its declared search space); a study's time is its best trial's, the workload's time
   :math:`t_{s,w}` the median over studies. Self-tuning: one run per study, the median over
   studies. A miss counts as :math:`\infty` and takes part in the median.
2. **Held-out variants** (:func:`held_out_rule`). A base workload's time counts only if the
   submission also reached the target of its held-out variant within :math:`4\times` the fastest
   submission on that variant; otherwise the base time becomes :math:`\infty`.
3. **Performance ratios** (:func:`performance_ratios`),
   :math:`r_{s,w} = t_{s,w} / \min_{s'} t_{s',w}`.
4. **Performance profiles** (:func:`performance_profiles`, Dolan and Moré, 2002), the fraction
   of workloads within a factor :math:`\tau` of the fastest,
   :math:`\rho_s(\tau) = \frac1n\,\lvert\{w : r_{s,w} \le \tau\}\rvert`.
5. **The benchmark score** (:func:`benchmark_scores`),
   :math:`B_s = \frac{1}{r_{\max}-1}\int_1^{r_{\max}} \rho_s(\tau)\,d\tau \in [0, 1]`,
   with :math:`r_{\max} = 4`.

This follows the official code line by line, not only its documentation: MLCommons'
``scoring/performance_profile.py`` and ``scoring/score_submissions.py``, as in
github.com/mlcommons/algorithmic-efficiency at commit ``2c90454fc05d5bdf3598b0c7651e611f132a7060``
(September 2025) and github.com/mlcommons/submissions_algorithms at commit
``12c8e4ea93dc41a1ff6abc3debba9accd8ac1e3a`` (June 2026, where the scoring code now lives;
same functions). The details that the documentation leaves open, as that code settles them:

* **Time.** The leaderboard's time is the column ``score`` of the logs, the accumulated
  submission time in seconds (evaluations excluded); the same code also scores in steps.
* **Best trial.** Within a study the official code keeps the trial that reaches the target at the
  earliest *evaluation index*, the first one listed on a tie (the official code lists the trials
  in the order of their folders; here, in the order given), and takes that trial's time. When
  every trial is evaluated at the same times this is the fastest trial; when not, it can differ
  (on the v0.5 leaderboard it does, and it changes one published score). Give ``eval_indices``
  to reproduce it; without them the fastest trial is taken.
* **Median.** ``np.median`` over studies, :math:`\infty` included (with an even number of
  studies, the mean of the middle two).
* **Held-out variants.** In this order: a variant's time becomes :math:`\infty` where its base's
  is; every time above :math:`4\times` the fastest on its workload becomes :math:`\infty` (this
  cut, ``cutoff``, is a constant of the code, not :math:`r_{\max}`); a base's time becomes
  :math:`\infty` where its variant's is; the variants are dropped, and the ratios divide by the
  fastest time left. (The official code also counts a missing or NaN variant time, an
  out-of-memory run, as a miss; here such a time must be given as ``math.inf``.)
* **Weights.** Every base workload weighs :math:`1/n`, :math:`n` the number of base workloads;
  variants are no workloads of their own.
* **Nobody solves a workload.** The minimum is :math:`\infty` and the official ratio
  :math:`\infty/\infty` is NaN, which no :math:`\tau` reaches: the workload gives nobody credit but
  still counts in :math:`n`. Here its ratios are :math:`\infty` (the same profile).
* **Ties.** Two submissions with the same time both have ratio :math:`1`.
* **The grid.** :math:`\rho_s` is evaluated at ``num_points = 100`` values of :math:`\tau`,
  ``np.linspace(1, r_max, 100)`` (``scale="linear"``, the one used for the leaderboard) or
  ``np.logspace(0, log10(r_max), 100)`` (``scale="log"``), and integrated with the trapezoidal
  rule in :math:`\tau` (in :math:`\log_{10}\tau` for the log scale), divided by the width of the
  grid. So the score is the trapezoidal approximation of :math:`B_s` on that grid, exactly what the
  leaderboard publishes. A ratio that falls exactly on a grid point (:math:`2`, :math:`3` and
  :math:`4` do on the default grid) or on the cut-off is sensitive to rounding: scaling every time
  by a factor that is not a power of two can move it by one grid step, and a score by
  :math:`1/(n\,(\text{num\_points}-1))`.

``times[submission][workload]`` is a submission's time (seconds, or steps) to the target of a
workload, ``math.inf`` when it did not reach it (a dict of dicts, or a pandas DataFrame with one
row per submission). Every submission must give every workload.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

#: The official cut-off (``performance_profile.py``), times above four times the fastest are misses.
CUTOFF = 4.0
#: External tuning's studies and trials per study (``NUM_STUDIES``, ``NUM_TRIALS``), for ``strict``.
NUM_STUDIES, NUM_TRIALS = 3, 5

Times = Mapping[str, Mapping[str, float]]

_INF_HINT = "use math.inf for a target that was not reached"
_LISTS = (Sequence, np.ndarray)


class _checks:  # noqa: N801  (labkit._checks' messages, without its import of torch)
    """The few argument checks of :mod:`labkit._checks` this module needs, with the same
    messages: the scoring imports numpy only, so a leaderboard or a grader can use it without
    torch."""

    @staticmethod
    def finite(name: str, value) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number; got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"{name} must be finite; got {value!r}")
        return number

    @staticmethod
    def at_least(name: str, value, low: float) -> float:
        number = _checks.finite(name, value)
        if number < low:
            raise ValueError(f"{name} must be >= {low:g}; got {name}={value!r}")
        return number

    @staticmethod
    def positive(name: str, value) -> float:
        number = _checks.finite(name, value)
        if number <= 0:
            raise ValueError(f"{name} must be positive; got {name}={value!r}")
        return number

    @staticmethod
    def integer(name: str, value, low: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            bound = "a non-negative integer" if low == 0 else f"at least {low} (an integer)"
            raise ValueError(f"{name} must be {bound}; got {name}={value!r}")
        return int(value)

    @staticmethod
    def one_of(name: str, value, choices: Sequence):
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got "
                             f"{value!r}")
        return value


def _time(name: str, value) -> float:
    """A time to target: a positive number or ``math.inf``; NaN, zero and negatives are errors."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number (seconds or steps); got {value!r}")
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number (seconds or steps); got {value!r}") from None
    if math.isnan(t):
        raise ValueError(f"{name} is NaN; {_INF_HINT} (a diverged or crashed run is a miss)")
    if t <= 0:
        raise ValueError(f"{name} must be positive (a time or a number of steps); got {value!r}; "
                         f"{_INF_HINT}")
    return t


def _table(times: Times, name: str = "times") -> tuple[list, list, np.ndarray]:
    """``times`` checked and as (submissions, workloads, array[submission, workload]); a pandas
    DataFrame is read as one row per submission."""
    if type(times).__name__ == "DataFrame" and hasattr(times, "to_dict"):
        times = times.to_dict(orient="index")
    if not isinstance(times, Mapping):
        raise ValueError(f"{name} must be a mapping times[submission][workload] -> time; got "
                         f"{type(times).__name__}")
    if not times:
        raise ValueError(f"{name} is empty: give at least one submission, "
                         f"times[submission][workload] -> time")
    submissions = list(times)
    workloads = None
    for s in submissions:
        row = times[s]
        if not isinstance(row, Mapping) or not row:
            raise ValueError(f"{name}[{s!r}] must be a non-empty mapping workload -> time; got "
                             f"{row!r}")
        if workloads is None:
            workloads = list(row)
        elif set(row) != set(workloads):
            missing = sorted(map(str, set(workloads) - set(row)))
            extra = sorted(map(str, set(row) - set(workloads)))
            raise ValueError(
                f"{name}[{s!r}] has other workloads than {name}[{submissions[0]!r}] (missing "
                f"{missing}, extra {extra}): every submission must give every workload; "
                f"{_INF_HINT}")
    values = np.array([[_time(f"{name}[{s!r}][{w!r}]", times[s][w]) for w in workloads]
                       for s in submissions], dtype=float)
    return submissions, workloads, values


def time_to_target_per_workload(
    trial_times: Mapping[str, Sequence[Sequence[float]]],
    rule: str = "external",
    eval_indices: Mapping[str, Sequence[Sequence[int | None]]] | None = None,
    strict: bool = False,
) -> dict[str, float]:
    r"""A submission's time to target on each workload (the lab ``labs/optimizer_benchmark.ipynb``):
    ``trial_times[workload][j][i]`` is trial :math:`i` of study :math:`j`, its time :math:`t_{i,j}`
    to the validation target (``math.inf`` when missed). With ``rule="external"``

    .. math:: t_{s,w} = \operatorname{median}_{j}\ \min_{i}\ t_{i,j},

    and with ``rule="self"`` (self-tuning: one run per study, so each study holds one trial)
    :math:`t_{s,w} = \operatorname{median}_j t_{1,j}`. A miss takes part in the median, so a
    workload is missed when half of the studies (or more) miss it.

    ``eval_indices[workload][j][i]`` (optional, same shape; ``None`` for a miss) is the index of
    the evaluation at which trial :math:`i` first reached the target. Given, a study's time is that
    of the trial with the smallest index (the first one on a tie), as the official code chooses;
    see the module's notes. ``strict=True`` requires the official :math:`3` studies, each of
    :math:`5` trials under external tuning (the official ``--strict`` flag).
    """
    _checks.one_of("rule", rule, ("external", "self"))
    if not isinstance(trial_times, Mapping) or not trial_times:
        raise ValueError("trial_times must be a non-empty mapping workload -> studies -> trials "
                         f"(trial_times[workload][study][trial] = time); got {trial_times!r}")
    if eval_indices is not None and (not isinstance(eval_indices, Mapping)
                                     or set(eval_indices) != set(trial_times)):
        raise ValueError("eval_indices must be a mapping with the same workloads as trial_times; "
                         f"got {eval_indices!r}")
    out = {}
    for w, studies in trial_times.items():
        where = f"trial_times[{w!r}]"
        if isinstance(studies, (str, bytes)) or not isinstance(studies, _LISTS) \
                or len(studies) == 0:
            raise ValueError(f"{where} must be a non-empty list of studies, each a list of trial "
                             f"times; got {studies!r}")
        if strict and len(studies) != NUM_STUDIES:
            raise ValueError(f"{where} has {len(studies)} studies; strict scoring needs "
                             f"{NUM_STUDIES} (pass strict=False to score them anyway)")
        per_study = []
        for j, trials in enumerate(studies):
            here = f"{where}[{j}]"
            if isinstance(trials, (str, bytes)) or not isinstance(trials, _LISTS) \
                    or len(trials) == 0:
                raise ValueError(f"{here} must be a non-empty list of trial times (one study); got "
                                 f"{trials!r}")
            if rule == "self" and len(trials) != 1:
                raise ValueError(f"{here} has {len(trials)} trials; under rule='self' a study is "
                                 f"a single run (give [[t1], [t2], [t3]])")
            if rule == "external" and strict and len(trials) != NUM_TRIALS:
                raise ValueError(f"{here} has {len(trials)} trials; strict external scoring "
                                 f"needs {NUM_TRIALS} (pass strict=False to score them anyway)")
            t = [_time(f"{here}[{i}]", v) for i, v in enumerate(trials)]
            if eval_indices is None:
                per_study.append(min(t))
                continue
            idx = _indices(eval_indices, w, j, t)
            reached = [i for i in range(len(t)) if idx[i] is not None]
            best = min(reached, key=lambda i: idx[i]) if reached else None  # first on a tie
            per_study.append(math.inf if best is None else t[best])
        out[w] = float(np.median(per_study))
    return out


def _indices(eval_indices, w, j: int, t: list[float]) -> list[int | None]:
    """Study ``j`` of workload ``w``'s evaluation indices, checked against its times ``t``."""
    where = f"eval_indices[{w!r}][{j}]"
    try:
        idx = list(eval_indices[w][j])
    except (TypeError, IndexError, KeyError):
        raise ValueError(f"{where} is missing: eval_indices must have the shape of "
                         f"trial_times") from None
    if len(idx) != len(t):
        raise ValueError(f"{where} has {len(idx)} entries for {len(t)} trials")
    for i, (k, ti) in enumerate(zip(idx, t)):
        if k is not None:
            _checks.integer(f"{where}[{i}]", k)
        if (k is None) != math.isinf(ti):
            raise ValueError(f"{where}[{i}] is {k!r} but the trial's time is {ti!r}: give None "
                             f"exactly for the trials whose time is math.inf")
    return idx


def held_out_rule(
    times: Times,
    held_out: Mapping[str, str],
    cutoff: float | None = CUTOFF,
) -> dict[str, dict[str, float]]:
    r"""The times of the base workloads after AlgoPerf's held-out rule (the lab
    ``labs/optimizer_benchmark.ipynb``): ``held_out`` maps each held-out variant (a column of
    ``times``) to its base workload. In the official order,

    .. math::

        t_{s,v} \leftarrow \infty \text{ if } t_{s,b} = \infty; \qquad
        t_{s,w} \leftarrow \infty \text{ if } t_{s,w} > c \min_{s'} t_{s',w}
        \text{ (every column)}; \qquad
        t_{s,b} \leftarrow \infty \text{ if } t_{s,v} = \infty,

    with :math:`c` = ``cutoff`` (:math:`4`; ``None`` for none); then the variants are dropped. So
    a base workload counts only if the submission also reaches its variant's target within
    :math:`4\times` the fastest submission on the variant.
    """
    submissions, workloads, t = _table(times)
    if not isinstance(held_out, Mapping):
        raise ValueError(f"held_out must be a mapping variant -> base workload; got "
                         f"{type(held_out).__name__}")
    col = {w: k for k, w in enumerate(workloads)}
    for v, b in held_out.items():
        for role, name in (("variant", v), ("base workload", b)):
            if name not in col:
                raise ValueError(f"held_out: {role} {name!r} is not a workload of times "
                                 f"(workloads {workloads}); add its column")
        if b in held_out:
            raise ValueError(f"held_out: {v!r} -> {b!r}, but {b!r} is itself a variant")
    if cutoff is not None:
        cutoff = _checks.at_least("cutoff", cutoff, 1.0)
    t = t.copy()
    for v, b in held_out.items():
        t[np.isinf(t[:, col[b]]), col[v]] = math.inf
    if cutoff is not None:
        best = t.min(axis=0)
        t[t > cutoff * best] = math.inf
    for v, b in held_out.items():
        t[np.isinf(t[:, col[v]]), col[b]] = math.inf
    base = [w for w in workloads if w not in held_out]
    return {s: {w: float(t[i, col[w]]) for w in base} for i, s in enumerate(submissions)}


def performance_ratios(
    times: Times,
    held_out: Mapping[str, str] | None = None,
    cutoff: float | None = CUTOFF,
) -> dict[str, dict[str, float]]:
    r"""The performance ratios (the lab ``labs/optimizer_benchmark.ipynb``)

    .. math:: r_{s,w} = \frac{t_{s,w}}{\min_{s'} t_{s',w}} \in [1, \infty],

    :math:`\infty` for a miss and for every submission on a workload that nobody solved. Times
    above ``cutoff`` times the fastest count as misses (the official :math:`4`; ``None`` for no
    cut); with ``held_out`` (variant -> base workload) the held-out rule of :func:`held_out_rule`
    is applied first and only the base workloads are returned.
    """
    if held_out:  # the cut-off is applied once, inside, before the variants' misses
        times = held_out_rule(times, held_out, cutoff)
    submissions, workloads, t = _table(times)
    if cutoff is not None and not held_out:
        cutoff = _checks.at_least("cutoff", cutoff, 1.0)
        t = np.where(t > cutoff * t.min(axis=0), math.inf, t)
    best = t.min(axis=0)
    with np.errstate(invalid="ignore"):
        r = np.where(np.isinf(best), math.inf, t / best)
    return {s: {w: float(r[i, k]) for k, w in enumerate(workloads)}
            for i, s in enumerate(submissions)}


def _grid(r_max: float, num_points: int, scale: str) -> np.ndarray:
    """The official grid of :math:`\\tau`: ``num_points`` from 1 to ``r_max``."""
    r_max = _checks.finite("r_max", r_max)
    if r_max <= 1:
        raise ValueError(f"r_max must be above 1 (the profile starts at tau = 1; AlgoPerf uses "
                         f"r_max=4.0); got r_max={r_max!r}")
    _checks.integer("num_points", num_points, 2)
    _checks.one_of("scale", scale, ("linear", "log"))
    if scale == "linear":
        return np.linspace(1.0, r_max, num=num_points)
    return np.logspace(0.0, np.log10(r_max), num=num_points, base=10.0)


def performance_profiles(
    times: Times,
    taus: Sequence[float] | None = None,
    r_max: float = 4.0,
    num_points: int = 100,
    scale: str = "linear",
    held_out: Mapping[str, str] | None = None,
    cutoff: float | None = CUTOFF,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    r"""The performance profiles (the lab ``labs/optimizer_benchmark.ipynb``; Dolan and Moré,
    2002): for each submission :math:`s`, the fraction of the :math:`n` (base) workloads on which
    it is within a factor :math:`\tau` of the fastest,

    .. math:: \rho_s(\tau) = \frac1n\,\bigl\lvert\{w : r_{s,w} \le \tau\}\bigr\rvert,

    a non-decreasing step function from :math:`\rho_s(1)` (the share of workloads where
    :math:`s` is the fastest) to at most :math:`1`. Returns ``(taus, {submission: rho})``: by
    default the official grid, ``num_points`` values from 1 to ``r_max`` spaced evenly
    (``scale="linear"``) or evenly in :math:`\log\tau` (``scale="log"``); or the ``taus`` given.
    ``held_out`` and ``cutoff`` as in :func:`performance_ratios`.
    """
    ratios = performance_ratios(times, held_out, cutoff)
    if taus is None:
        grid = _grid(r_max, num_points, scale)
    else:
        try:
            grid = np.array([_checks.positive("taus", v) for v in taus], dtype=float)
        except TypeError:
            raise ValueError(f"taus must be a sequence of numbers; got {taus!r}") from None
        if grid.size == 0 or np.any(np.diff(grid) <= 0):
            raise ValueError(f"taus must be a non-empty, strictly increasing sequence; got "
                             f"{list(taus)}")
    profiles = {}
    for s, row in ratios.items():
        r = np.array(list(row.values()), dtype=float)
        profiles[s] = (r[None, :] <= grid[:, None]).sum(axis=1) / r.size
    return grid, profiles


def benchmark_scores(
    times: Times,
    r_max: float = 4.0,
    num_points: int = 100,
    scale: str = "linear",
    held_out: Mapping[str, str] | None = None,
    cutoff: float | None = CUTOFF,
) -> dict[str, float]:
    r"""The AlgoPerf benchmark score of each submission (the lab
    ``labs/optimizer_benchmark.ipynb``), the normalised integral of its performance profile
    (:func:`performance_profiles`),

    .. math:: B_s = \frac{1}{r_{\max} - 1} \int_1^{r_{\max}} \rho_s(\tau)\, d\tau \in [0, 1],

    computed as the official code does: the trapezoidal rule on the grid of ``num_points``
    values of :math:`\tau` (``np.trapezoid``), divided by the grid's width (:math:`r_{\max} - 1`;
    with ``scale="log"`` the integral and the width are in :math:`\log_{10}\tau`). :math:`1` for a
    submission that is the fastest on every workload, :math:`0` for one that never comes within
    ``r_max`` (or ``cutoff``) of the fastest. Scores are relative to the group of submissions
    scored together: adding a submission can lower the others'.
    """
    taus, profiles = performance_profiles(times, None, r_max, num_points, scale, held_out, cutoff)
    x = np.log10(taus) if scale == "log" else taus
    width = x[-1] - x[0]
    return {s: float(_trapezoid(rho, x) / width) for s, rho in profiles.items()}


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """``np.trapezoid`` (NumPy 2), ``np.trapz`` before it."""
    f = getattr(np, "trapezoid", None) or np.trapz
    return float(f(y, x=x))
