r"""One fair comparison between optimisers or settings: tune each, re-run on fresh seeds, pair.

Every "X beats Y" of the course goes through :func:`compare`, which follows the protocol of the
optimiser-benchmark literature: DeepOBS (Schneider, Balles and Hennig, ICLR 2019: each
optimiser tuned on its own log-spaced learning-rate grid, results over several seeds with their
spread), Schmidt, Schneider and Hennig (ICML 2021, "Descending through a crowded valley": the
tuned configuration re-run on fresh seeds, one budget for every method) and AlgoPerf's tuning
rulesets (Dahl et al., 2023: tuning and scoring separated, training budgets fixed in advance,
time to a target); ``references.bib`` holds them. Used wherever the course ranks methods
(chapters 4, 6 and 7, the labs). The steps:

1. **Tune.** Each method :math:`m` has its own search space, a log-spaced grid of learning
   rates :math:`\eta_1 < \dots < \eta_n` (a constant ratio :math:`\eta_{i+1}/\eta_i`), and is
   trained once per tuning seed :math:`s \in S_{\text{tune}}` at every :math:`\eta_i`. The chosen
   rate minimises (or maximises) the mean over tuning seeds,
   :math:`\hat\eta_m = \arg\min_i \frac{1}{|S_{\text{tune}}|}\sum_s f_m(\eta_i, s)`; a diverged
   run (NaN or infinite) counts as the worst value. A :math:`\hat\eta_m` at either end of the grid
   is *on the edge* (the optimum may lie outside): the grid is widened by one step of the same
   ratio on that side, up to ``max_widen`` times, and a choice still on the edge is flagged.
2. **Evaluate.** :math:`\hat\eta_m` is trained again on at least three *fresh* seeds
   :math:`S_{\text{eval}}`, disjoint from :math:`S_{\text{tune}}` (the tuning seeds' values are
   biased towards the rate they chose). Reported: the mean :math:`\bar f_m` and the sample
   standard deviation :math:`s_m` over :math:`S_{\text{eval}}`.
3. **Pair.** Methods evaluated on the same seeds share each seed's initial weights and data
   order, so their difference is measured seed by seed: :math:`d_s = f_A(s) - f_B(s)`, with mean
   :math:`\bar d`, spread :math:`s_d` and the paired :math:`t = \bar d / (s_d/\sqrt{k})` on
   :math:`k - 1` degrees of freedom (what ``scipy.stats.ttest_rel`` computes).
4. **Budget.** Every method runs under one :class:`Budget` (steps, samples and/or seconds);
   a run that reports a different number of steps or samples is an error, not a footnote.
   With a ``target``, a run that returns a curve also gets its *time to target*: the first
   point of the curve that reaches it, in the curve's unit (steps, samples or seconds).

A workload is any ``train(config, seed)`` callable: ``config`` is the method's fixed
hyper-parameters plus ``"lr"``; it returns the final metric (a float), a curve (a sequence whose
last value is the final metric) or an :class:`Outcome`. A method can also give
``train_many(configs, seed)``, which trains a whole grid for one seed at once and returns one
result per configuration, e.g. :func:`sweep_trainer` on :func:`labkit.sweep.sweep_mlp`.
The standard figure, final metric against learning rate with a band over seeds, is
:func:`labkit.plot.plot_comparison`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats
from torch import nn

from labkit import _checks as checks

#: ``train(config, seed)``, one run, returns a float, a curve (sequence) or an :class:`Outcome`.
Train = Callable[[dict, int], object]
#: ``train_many(configs, seed)``, one run per configuration, for one seed, all at once.
TrainMany = Callable[[list[dict], int], Sequence[object]]


@dataclass(frozen=True)
class Budget:
    """What every method of a comparison is allowed (chapters 6 and 7, the labs): ``steps``,
    ``samples`` (training examples seen) and/or ``seconds`` (wall-clock). At least one must be
    given; the comparison states it, and a run reporting other steps or samples is rejected."""

    steps: int | None = None
    samples: int | None = None
    seconds: float | None = None

    def __post_init__(self):
        if self.steps is None and self.samples is None and self.seconds is None:
            raise ValueError("Budget needs steps, samples or seconds (e.g. Budget(steps=500)); "
                             "a comparison without a stated budget is not a fair one")
        if self.steps is not None:
            checks.integer("Budget.steps", self.steps, 1)
        if self.samples is not None:
            checks.integer("Budget.samples", self.samples, 1)
        if self.seconds is not None:
            checks.positive("Budget.seconds", self.seconds)

    def __str__(self) -> str:
        parts = [f"{self.steps} steps" if self.steps is not None else "",
                 f"{self.samples} samples" if self.samples is not None else "",
                 f"{self.seconds:g} s" if self.seconds is not None else ""]
        return ", ".join(p for p in parts if p)


@dataclass
class Outcome:
    """One run's result (chapters 6 and 7, the labs): the final ``metric``, optionally its ``curve``
    (values at ``at``, e.g. steps or samples) and the budget it used (``steps``, ``samples``),
    checked against the comparison's :class:`Budget`."""

    metric: float
    curve: Sequence[float] | None = None
    at: Sequence[float] | None = None
    steps: int | None = None
    samples: int | None = None
    seconds: float | None = None


@dataclass
class Method:
    """A method to compare (chapters 6 and 7, the labs): a ``name``, its workload ``train(config,
    seed)`` (or ``train_many``), its own learning-rate grid ``lrs`` (log-spaced, increasing) and
    fixed hyper-parameters ``config`` (``momentum``, ``optimizer``, ...) merged into every run's
    configuration."""

    name: str
    lrs: Sequence[float]
    train: Train | None = None
    config: dict = field(default_factory=dict)
    train_many: TrainMany | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Method.name must be a non-empty string; got {self.name!r}")
        if self.train is None and self.train_many is None:
            raise TypeError(f"method {self.name!r} needs train(config, seed) or "
                            f"train_many(configs, seed)")
        for fn in (self.train, self.train_many):
            if fn is not None and not callable(fn):
                raise TypeError(f"method {self.name!r}: train/train_many must be callable; "
                                f"got {type(fn).__name__}")
        self.lrs = check_log_grid(self.lrs, f"method {self.name!r}: lrs")
        if "lr" in self.config:
            raise ValueError(f"method {self.name!r}: config must not hold 'lr'; the grid lrs "
                             f"is its search space")

    def run(self, lrs: Sequence[float], seed: int) -> list[Outcome]:
        """One outcome per learning rate in ``lrs``, for ``seed`` (one ``train_many`` call when
        there is one), each with its wall-clock seconds when the workload did not report them."""
        configs = [{**self.config, "lr": lr} for lr in lrs]
        if self.train_many is not None:
            start = time.perf_counter()
            results = list(self.train_many(configs, seed))
            if len(results) != len(configs):
                raise ValueError(f"method {self.name!r}: train_many returned {len(results)} "
                                 f"results for {len(configs)} configurations")
            each = (time.perf_counter() - start) / len(configs)
            return [as_outcome(r, self.name, each) for r in results]
        out = []
        for config in configs:
            start = time.perf_counter()
            result = self.train(config, seed)
            out.append(as_outcome(result, self.name, time.perf_counter() - start))
        return out


def log_grid(low: float, high: float, num: int) -> list[float]:
    """``num`` learning rates from ``low`` to ``high``, equally spaced in :math:`\\log\\eta`
    (the grids of chapters 6 and 7 and the labs)."""
    checks.positive("low", low)
    checks.positive("high", high)
    checks.integer("num", num, 2)
    if high <= low:
        raise ValueError(f"high must be above low; got low={low!r}, high={high!r}")
    return [float(v) for v in np.geomspace(low, high, num)]


def check_log_grid(lrs: Sequence[float], name: str = "lrs") -> list[float]:
    """``lrs`` as a list (chapters 6 and 7, the labs): at least two positive, increasing values with
    one constant ratio, up to 1% (a log-spaced grid, so that widening it by one step keeps it
    log-spaced; rounded values such as 0.1, 0.316, 1, 3.16 pass)."""
    try:
        values = [float(v) for v in lrs]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers; got {lrs!r}") from None
    if len(values) < 2:
        raise ValueError(f"{name} needs at least 2 learning rates to tune over; got {values}")
    for v in values:
        checks.positive(name, v)
    ratios = [b / a for a, b in zip(values, values[1:])]
    if min(ratios) <= 1:
        raise ValueError(f"{name} must be strictly increasing; got {values}")
    if max(ratios) / min(ratios) > 1.01:  # rounded values such as 0.1, 0.316, 1 are fine
        raise ValueError(f"{name} must be log-spaced (one constant ratio, e.g. "
                         f"labkit.compare.log_grid(1e-3, 1, 7)); got ratios "
                         f"{[round(r, 4) for r in ratios]}")
    return values


def as_outcome(result: object, method: str, seconds: float | None = None) -> Outcome:
    """A workload's result as an :class:`Outcome` (chapters 6 and 7, the labs): a float is the
    metric, a sequence a curve (its last value the metric). NaN and infinite metrics are kept (a
    diverged run)."""
    if isinstance(result, Outcome):
        outcome = result
    elif isinstance(result, (int, float, np.floating, np.integer)) and not isinstance(
            result, bool):
        outcome = Outcome(float(result))
    elif isinstance(result, torch.Tensor) and result.numel() == 1:
        outcome = Outcome(float(result))
    elif isinstance(result, (Sequence, np.ndarray, torch.Tensor)) and not isinstance(
            result, str) and len(result) > 0:
        curve = [float(v) for v in result]
        outcome = Outcome(curve[-1], curve=curve)
    else:
        raise TypeError(f"method {method!r}: train must return a number, a non-empty curve or "
                        f"an Outcome; got {type(result).__name__}")
    if outcome.seconds is None:
        outcome.seconds = seconds
    return outcome


def _score(values: np.ndarray, minimize: bool) -> np.ndarray:
    """Mean over seeds (last axis), a non-finite value counting as the worst possible."""
    worst = math.inf if minimize else -math.inf
    clean = np.where(np.isfinite(values), values, worst)
    return clean.mean(axis=-1)


@dataclass
class Tuning:
    """One method's tuning (chapters 6 and 7, the labs): the grid ``lrs`` (widened if needed),
    ``values[i, j]`` at ``lrs[i]`` and tuning seed ``j``, the chosen ``best_lr`` and whether it lies
    on the grid's edge."""

    lrs: list[float]
    values: np.ndarray
    best_index: int
    on_edge: bool
    widened: int

    @property
    def best_lr(self) -> float:
        return self.lrs[self.best_index]


def tune(method: Method, seeds: Sequence[int], minimize: bool = True, max_widen: int = 2,
         budget: Budget | None = None) -> Tuning:
    """Step 1 of the protocol (chapters 6 and 7, the labs): train ``method`` at every learning rate
    of its grid on each tuning seed, choose the best mean, and while it lies on an edge of the grid
    extend the grid by one log step on that side (at most ``max_widen`` times). A choice still on
    the edge is returned with ``on_edge=True``."""
    checks.integer("max_widen", max_widen)
    lrs = list(method.lrs)
    columns = {lr: [] for lr in lrs}  # lr -> one value per tuning seed
    for seed in seeds:
        for lr, outcome in zip(lrs, method.run(lrs, seed)):
            columns[lr].append(_checked(outcome, method.name, budget).metric)
    widened = 0
    while True:
        values = np.array([columns[lr] for lr in lrs], dtype=float)
        best = int(np.argmin(_score(values, True)) if minimize
                   else np.argmax(_score(values, False)))
        on_edge = best in (0, len(lrs) - 1)
        if not on_edge or widened == max_widen:
            return Tuning(lrs, values, best, on_edge, widened)
        new = lrs[0] ** 2 / lrs[1] if best == 0 else lrs[-1] ** 2 / lrs[-2]
        for seed in seeds:
            (outcome,) = method.run([new], seed)
            columns.setdefault(new, []).append(_checked(outcome, method.name, budget).metric)
        lrs = [new] + lrs if best == 0 else lrs + [new]
        widened += 1


def _checked(outcome: Outcome, method: str, budget: Budget | None) -> Outcome:
    """The outcome, after checking that it used the comparison's budget of steps and samples."""
    if budget is not None:
        for unit in ("steps", "samples"):
            used, allowed = getattr(outcome, unit), getattr(budget, unit)
            if used is not None and allowed is not None and used != allowed:
                raise ValueError(f"method {method!r} used {used} {unit} but the budget is "
                                 f"{allowed} {unit}: every method must get the same budget")
    return outcome


@dataclass
class Paired:
    """A paired comparison (chapters 6 and 7, the labs) of methods ``a`` and ``b`` on shared seeds:
    ``differences[s] = f_a(s) - f_b(s)``, their mean and sample standard deviation, the paired ``t``
    and its two-sided ``p`` (``scipy.stats.ttest_rel``'s numbers)."""

    a: str
    b: str
    seeds: list[int]
    differences: np.ndarray
    mean: float
    std: float
    t: float
    p: float


def paired(a: str, b: str, values_a: Sequence[float], values_b: Sequence[float],
           seeds: Sequence[int]) -> Paired:
    r"""The paired comparison (chapters 6 and 7, the labs) of two methods measured on the same
    ``seeds``: :math:`d_s = a_s - b_s`, :math:`t = \bar d / (s_d / \sqrt{k})` with :math:`k - 1`
    degrees of freedom. Needs at least two seeds; ``t`` is infinite when every difference is equal
    and non-zero."""
    da, db = np.asarray(values_a, dtype=float), np.asarray(values_b, dtype=float)
    if da.shape != db.shape or da.ndim != 1 or len(da) != len(seeds):
        raise ValueError(f"paired needs one value per seed for both methods; got "
                         f"{da.shape}, {db.shape} for {len(seeds)} seeds")
    if len(da) < 2:
        raise ValueError("paired needs at least 2 shared seeds (a spread needs two values)")
    d = da - db
    k = len(d)
    mean, std = float(d.mean()), float(d.std(ddof=1))
    if std == 0:
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0 else 0.0
    else:
        t = mean / (std / math.sqrt(k))
        p = float(2 * stats.t.sf(abs(t), k - 1))
    return Paired(a, b, [int(s) for s in seeds], d, mean, std, float(t), p)


@dataclass
class Result:
    """One method's part of a comparison (chapters 6 and 7, the labs): its :class:`Tuning`, the
    chosen rate's outcomes on the fresh seeds, their ``mean`` and sample standard deviation ``std``,
    and the time to target (one per fresh seed, ``None`` where the run never reached it)."""

    name: str
    tuning: Tuning
    seeds: list[int]
    outcomes: list[Outcome]
    time_to_target: list[float | None] | None = None

    @property
    def values(self) -> np.ndarray:
        return np.array([o.metric for o in self.outcomes], dtype=float)

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def std(self) -> float:
        return float(self.values.std(ddof=1))

    @property
    def seconds(self) -> float:
        """Mean wall-clock seconds of one evaluation run."""
        return float(np.mean([o.seconds or 0.0 for o in self.outcomes]))


@dataclass
class Comparison:
    """The result of :func:`compare` (chapters 6 and 7, the labs): one :class:`Result` per method,
    in the order given, the :class:`Paired` comparisons of every pair, the budget and the seeds."""

    results: list[Result]
    pairs: list[Paired]
    budget: Budget
    tuning_seeds: list[int]
    eval_seeds: list[int]
    minimize: bool
    metric: str = "metric"
    target: float | None = None

    def __getitem__(self, name: str) -> Result:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no method {name!r}; the methods are {[r.name for r in self.results]}")

    def pair(self, a: str, b: str) -> Paired:
        """The paired comparison ``a - b`` (computed as ``b - a`` and negated when needed)."""
        for p in self.pairs:
            if (p.a, p.b) == (a, b):
                return p
            if (p.a, p.b) == (b, a):
                return Paired(a, b, p.seeds, -p.differences, -p.mean, p.std, -p.t, p.p)
        raise KeyError(f"no pair ({a!r}, {b!r})")

    def ranking(self) -> list[str]:
        """The methods from best to worst mean on the fresh seeds."""
        order = sorted(self.results, key=lambda r: r.mean, reverse=not self.minimize)
        return [r.name for r in order]

    def report(self, digits: int = 4) -> str:
        """Deterministic text for a checked notebook cell: budget, seeds, each method's grid,
        chosen rate (flagged when on the grid's edge), mean ± std on the fresh seeds, and the
        paired comparisons. No timings (they go in an unchecked cell)."""
        g = f".{digits}g"
        lines = [f"budget: {self.budget}; tuning seeds {self.tuning_seeds}, "
                 f"fresh seeds {self.eval_seeds}; {self.metric} "
                 f"({'lower' if self.minimize else 'higher'} is better)"]
        for r in self.results:
            t = r.tuning
            edge = "  ON THE GRID'S EDGE" if t.on_edge else ""
            wid = f", widened {t.widened}x" if t.widened else ""
            lines.append(f"{r.name}: lr grid {t.lrs[0]:.3g}..{t.lrs[-1]:.3g} ({len(t.lrs)} "
                         f"rates{wid}), chosen lr {t.best_lr:.3g}{edge}; "
                         f"{self.metric} {r.mean:{g}} ± {r.std:{g}} (mean ± std, "
                         f"{len(r.seeds)} seeds)")
            if r.time_to_target is not None:
                reached = [v for v in r.time_to_target if v is not None]
                lines.append(f"  time to {self.metric} {self.target:g}: reached on "
                             f"{len(reached)}/{len(r.seeds)} seeds"
                             + (f", mean {np.mean(reached):{g}}" if reached else ""))
        for p in self.pairs:
            lines.append(f"paired {p.a} - {p.b}: per seed "
                         f"{[float(f'{d:{g}}') for d in p.differences]}, mean {p.mean:{g}} "
                         f"± {p.std:{g}}, t = {p.t:.3g} (p = {p.p:.2g}, {len(p.seeds)} seeds)")
        return "\n".join(lines)


def time_to_target(outcome: Outcome, target: float, minimize: bool = True) -> float | None:
    """The first point of the run's curve (chapters 6 and 7, the labs) at which the metric reaches
    ``target`` (``<=`` when minimising), in the unit of ``outcome.at`` (steps, samples, seconds; the
    index when absent); ``None`` when it never does or the run has no curve."""
    if outcome.curve is None:
        return None
    at = outcome.at if outcome.at is not None else range(len(outcome.curve))
    for x, v in zip(at, outcome.curve):
        if math.isfinite(v) and (v <= target if minimize else v >= target):
            return float(x)
    return None


def compare(
    methods: Sequence[Method],
    budget: Budget,
    tuning_seeds: Sequence[int] = (0,),
    eval_seeds: Sequence[int] = (100, 101, 102),
    minimize: bool = True,
    max_widen: int = 2,
    target: float | None = None,
    metric: str = "metric",
) -> Comparison:
    """The fair comparison of ``methods`` under one ``budget`` (the protocol above; chapters 6
    and 7, the labs).

    Each method is tuned on its own grid with ``tuning_seeds`` (:func:`tune`), its chosen rate
    re-run on ``eval_seeds`` (at least 3, none of them a tuning seed), and every pair of methods
    compared seed by seed (:func:`paired`). ``target`` adds each run's time to target.
    """
    methods = list(methods)
    if not methods:
        raise ValueError("methods is empty: give at least one Method")
    if not isinstance(budget, Budget):
        raise TypeError(f"budget must be a labkit.compare.Budget (e.g. Budget(steps=500)); "
                        f"got {type(budget).__name__}")
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"method names must be distinct; got {names}")
    tuning_seeds = [checks.integer("tuning seed", int(s)) for s in tuning_seeds]
    eval_seeds = [checks.integer("eval seed", int(s)) for s in eval_seeds]
    if not tuning_seeds:
        raise ValueError("tuning_seeds is empty: tune on at least one seed")
    if len(set(eval_seeds)) < 3 or len(set(eval_seeds)) != len(eval_seeds):
        raise ValueError(f"eval_seeds must be at least 3 distinct seeds (a mean needs a spread); "
                         f"got {eval_seeds}")
    reused = sorted(set(eval_seeds) & set(tuning_seeds))
    if reused:
        raise ValueError(f"eval_seeds {reused} are also tuning seeds: the chosen configuration "
                         f"must be re-run on fresh seeds (its tuning values are biased)")
    results = []
    for method in methods:
        tuning = tune(method, tuning_seeds, minimize, max_widen, budget)
        outcomes = [_checked(method.run([tuning.best_lr], seed)[0], method.name, budget)
                    for seed in eval_seeds]
        ttt = None if target is None else [time_to_target(o, target, minimize)
                                           for o in outcomes]
        results.append(Result(method.name, tuning, list(eval_seeds), outcomes, ttt))
    pairs = [paired(a.name, b.name, a.values, b.values, eval_seeds)
             for i, a in enumerate(results) for b in results[i + 1:]]
    return Comparison(results, pairs, budget, tuning_seeds, eval_seeds, minimize, metric, target)


def sweep_trainer(
    make_model: Callable[[], nn.Module],
    X: torch.Tensor,
    y: torch.Tensor,
    epochs: int = 1,
    batch_size: int = 64,
    test_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    metric: str = "test_loss",
) -> TrainMany:
    """A ``train_many(configs, seed)`` (chapter 7, the labs) that trains a whole grid of one
    optimiser at once with :func:`labkit.sweep.sweep_mlp` (the labs' MLPs): for each seed,
    ``torch.manual_seed(seed)`` then ``make_model()`` gives the shared initial weights and a
    generator seeded with ``seed`` the batch order. ``metric`` is the final ``"test_loss"``,
    ``"test_accuracy"`` or training ``"loss"`` (then the curve is the mini-batch loss against
    samples seen). A diverged run's metric is NaN."""
    from labkit.sweep import sweep_mlp  # the sweep imports the training loops

    checks.one_of("metric", metric, ("test_loss", "test_accuracy", "loss"))
    if metric != "loss" and test_data is None:
        raise ValueError(f"metric={metric!r} needs test_data=(X_test, y_test)")

    def train_many(configs: list[dict], seed: int) -> list[Outcome]:
        torch.manual_seed(seed)
        model = make_model()
        generator = torch.Generator(device=X.device).manual_seed(seed)
        result = sweep_mlp(model, configs, X, y, epochs, batch_size, generator, test_data)
        steps = epochs * math.ceil(len(X) / batch_size)
        out = []
        for h in result.histories:
            series = getattr(h, metric)
            value = math.nan if h.diverged or not series else float(series[-1])
            curve, at = (h.loss, h.samples) if metric == "loss" else (None, None)
            out.append(Outcome(value, curve, at, steps=None if h.diverged else steps,
                               samples=None if h.diverged else epochs * len(X)))
        return out

    return train_many
