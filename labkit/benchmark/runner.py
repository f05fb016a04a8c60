r"""AlgoPerf's rules at CPU scale: trials, the external and self-tuning rulesets, targets (the lab
``labs/optimizer_benchmark.ipynb``).

AlgoPerf (Dahl et al., 2023; MLCommons' ``algorithmic-efficiency``, ``docs/DOCUMENTATION.md``)
scores a *submission* (a training algorithm: here an optimiser class with its search space) by
the time it needs to reach a fixed validation target on each workload. The pieces:

- **Trial** (:func:`run_trial`): one training run with fixed hyper-parameters :math:`h` and seed;
  it stops at the first evaluation that reaches the target or at the step budget. Its time is
  :math:`t(h) = \min\{t \in \{k, 2k, \dots\} : \operatorname{err}_{\text{val}}(w_t) \le
  \text{target}\}` (``k = eval_every``), and :math:`\infty` when there is none or the run
  diverged (a non-finite loss).
- **External tuning** (:func:`external_tuning`): :math:`S` independent *studies*, each of
  :math:`T` trials whose hyper-parameters are quasi-random draws :math:`h_{s,1..T}` from the
  declared search space (one scrambled Halton sequence of :math:`S T` points dealt to the
  studies in a random order, as AlgoPerf draws its quasi-random search). A study's time is its
  fastest trial, the submission's time the median over studies:

  .. math:: t_{\text{ext}} = \operatorname{median}_{s=1..S}\; \min_{j=1..T} t(h_{s,j}).

  AlgoPerf uses :math:`T = 5`, :math:`S = 3`.
- **Self-tuning** (:func:`self_tuning`): no search; each study runs the submission's defaults
  once (on its own seed), :math:`t_{\text{self}} = \operatorname{median}_s t_s(h_{\text{default}})`.
  (AlgoPerf's self-tuning may also tune inside the run, on the clock, and gets a longer budget:
  3 times in the 2024 competition, 1.5 times since v0.6; here both rules share the workload's
  budget, which handicaps self-tuning.)
- **Held-out variants**: a workload's variant is tuned by the same rule; if a submission misses
  the variant's target, or takes more than 4 times the fastest submission's time there, its time
  on the base workload counts as :math:`\infty` (AlgoPerf v0.5 drew its variants after the
  submission deadline and dropped them from v0.6; here they are public and only show the rule)
  (:meth:`Benchmark.times`; the rule of AlgoPerf's "Using held-out workloads in scoring").
  The medians, the held-out rule, the profiles and the score are computed by
  :mod:`labkit.benchmark.scoring`, which follows the official scoring code.
- **Targets** (:func:`set_target`): AlgoPerf's recipe, see there.

The default unit of time is **steps** to target, not seconds: on a shared 2-core machine the
wall-clock time of a sub-second trial varies by tens of percent from run to run, while the
steps are exact. Steps ignore the cost of a step (Muon's adds Newton-Schulz iterations), which
AlgoPerf's seconds include, so the two units can rank submissions differently.
Seconds are recorded too (training time only, evaluations excluded, as AlgoPerf excludes them)
and every table can be asked for them with ``unit="seconds"``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from scipy.stats import qmc
from torch import nn

from labkit import _checks as checks
from labkit.benchmark.scoring import (
    benchmark_scores,
    held_out_rule,
    performance_profiles,
    time_to_target_per_workload,
)
from labkit.benchmark.workloads import Workload

RULES = ("external", "self")
UNITS = ("steps", "seconds")

#: A search space, name -> ``(low, high, "log" | "linear")`` or a list of choices.
Space = Mapping[str, object]


def check_space(space: Space, name: str = "space") -> dict:
    """``space`` checked (the lab): a non-empty mapping whose entries are ``(low, high, scale)``
    with ``low <= high`` and ``scale`` ``"log"`` (then ``low > 0``) or ``"linear"``, or a
    non-empty list of choices. Returns it as a dict of tuples and lists."""
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"{name} must be a non-empty dict of name -> (low, high, 'log'|'linear') "
                         f"or a list of choices; got {space!r}")
    out: dict = {}
    for key, entry in space.items():
        if isinstance(entry, list):
            if not entry:
                raise ValueError(f"{name}[{key!r}] is an empty list of choices; give at least one")
            out[key] = list(entry)
            continue
        if not (isinstance(entry, tuple) and len(entry) == 3):
            raise ValueError(f"{name}[{key!r}] must be (low, high, 'log'|'linear') or a list of "
                             f"choices; got {entry!r}")
        low, high, scale = entry
        low, high = checks.finite(f"{name}[{key!r}] low", low), \
            checks.finite(f"{name}[{key!r}] high", high)
        checks.one_of(f"{name}[{key!r}] scale", scale, ("log", "linear"))
        if low > high:
            raise ValueError(f"{name}[{key!r}]: low must be <= high; got low={low!r}, "
                             f"high={high!r} (swap them)")
        if scale == "log" and low <= 0:
            raise ValueError(f"{name}[{key!r}]: a log scale needs low > 0; got low={low!r}")
        out[key] = (low, high, scale)
    return out


def sample_space(space: Space, n: int, seed: int) -> list[dict]:
    r"""``n`` hyper-parameter points drawn from ``space`` (the lab): the first ``n`` points
    :math:`u_1, \dots, u_n \in [0, 1)^d` of a scrambled Halton sequence seeded with ``seed``
    (quasi-random, as AlgoPerf's search), mapped per coordinate to
    :math:`\text{low}\,(\text{high}/\text{low})^{u}` (log), :math:`\text{low} + u\,(\text{high} -
    \text{low})` (linear) or the choice :math:`\lfloor u\,m \rfloor` of :math:`m`. The first
    :math:`k` of ``n`` points are the same as the ``k`` points drawn alone."""
    space = check_space(space)
    checks.integer("n", n, 1)
    u = qmc.Halton(d=len(space), scramble=True, seed=seed).random(n)
    points = []
    for row in u:
        point = {}
        for value, (key, entry) in zip(row, space.items()):
            if isinstance(entry, list):
                point[key] = entry[min(int(value * len(entry)), len(entry) - 1)]
            else:
                low, high, scale = entry
                point[key] = float(low * (high / low) ** value if scale == "log"
                                   else low + value * (high - low))
        points.append(point)
    return points


class OptimizerChain:
    """Several optimisers stepped as one (the lab: Muon on the hidden matrices, AdamW on the
    rest): ``step``, ``zero_grad``, and ``train``/``eval`` forwarded to those that have them."""

    def __init__(self, *optimizers):
        self.optimizers = [o for o in optimizers if o is not None]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def train(self) -> None:
        for o in self.optimizers:
            if callable(getattr(o, "train", None)):
                o.train()

    def eval(self) -> None:
        for o in self.optimizers:
            if callable(getattr(o, "eval", None)):
                o.eval()


def hidden_matrices(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(for_muon, for_adamw)`` (chapter 8, the lab): the 2-D weights of the model's hidden
    layers for Muon; embeddings, the output layer (the last ``nn.Linear``, or one named
    ``head``), convolution kernels (4-D) and vectors for AdamW. A model whose only matrix is its
    output layer (logistic regression) gives Muon nothing."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    output = {id(p) for p in linears[-1].parameters()} if linears else set()
    for_muon, for_adamw = [], []
    for name, p in model.named_parameters():
        hidden = (p.dim() == 2 and id(p) not in output
                  and not any(word in name for word in ("embed", "head")))
        (for_muon if hidden else for_adamw).append(p)
    return for_muon, for_adamw


def muon_with_adamw(model: nn.Module, lr: float = 0.02, adamw_lr: float = 1e-3,
                    weight_decay: float = 0.1) -> OptimizerChain:
    """Muon (:class:`labkit.optim.muon.Muon`) on :func:`hidden_matrices`, AdamW
    (:class:`labkit.optim.adam.AdamW`, rate ``adamw_lr``) on the rest, both with decoupled
    ``weight_decay`` (chapter 8, the lab); Muon is left out where there is no hidden matrix."""
    from labkit.optim import AdamW, Muon

    matrices, rest = hidden_matrices(model)
    return OptimizerChain(Muon(matrices, lr=lr, weight_decay=weight_decay) if matrices else None,
                          AdamW(rest, lr=adamw_lr, weight_decay=weight_decay) if rest else None)


@dataclass
class Submission:
    """A submission (the lab): a ``name``, an ``optimizer`` (a ``torch.optim`` or
    ``labkit.optim`` class, a student's plain class with ``step()`` and ``zero_grad()``, or any
    callable returning such an object), called as ``optimizer(model.parameters(), **hparams)``
    (``optimizer(model, **hparams)`` when ``takes_model``), its search ``space`` (name ->
    ``(low, high, "log"|"linear")`` or a list of choices) and the ``defaults`` that self-tuning
    runs and every drawn point extends (fixed hyper-parameters go there)."""

    name: str
    optimizer: Callable
    space: Space
    defaults: dict = field(default_factory=dict)
    takes_model: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Submission.name must be a non-empty string; got {self.name!r}")
        if not callable(self.optimizer):
            raise TypeError(f"submission {self.name!r}: optimizer must be an optimizer class or "
                            f"a callable; got {type(self.optimizer).__name__}")
        self.space = check_space(self.space, f"submission {self.name!r}: space")
        if not isinstance(self.defaults, Mapping):
            raise TypeError(f"submission {self.name!r}: defaults must be a dict; got "
                            f"{type(self.defaults).__name__}")

    def build(self, model: nn.Module, hparams: Mapping) -> object:
        """The optimiser for ``model`` with ``{**defaults, **hparams}``."""
        config = {**self.defaults, **hparams}
        target = model if self.takes_model else model.parameters()
        optimizer = self.optimizer(target, **config)
        for method in ("step", "zero_grad"):
            if not callable(getattr(optimizer, method, None)):
                raise TypeError(f"submission {self.name!r}: the optimizer it builds has no "
                                f"{method}() method; got {type(optimizer).__name__}")
        return optimizer


@dataclass
class Trial:
    """One training run (the lab): its ``hparams`` and ``seed``, the validation metric
    ``curve`` at steps ``at``, ``steps`` and ``seconds`` to target (``inf`` when not reached),
    ``steps_run`` and ``diverged``."""

    workload: str
    hparams: dict
    seed: int
    at: list[int]
    curve: list[float]
    steps: float
    seconds: float
    steps_run: int
    diverged: bool

    @property
    def best(self) -> float:
        """The best (lowest) validation metric the run reached, ``inf`` when none."""
        finite = [v for v in self.curve if math.isfinite(v)]
        return min(finite) if finite else math.inf

    def time(self, unit: str = "steps") -> float:
        """Time to target in ``unit`` (``"steps"`` or ``"seconds"``)."""
        checks.one_of("unit", unit, UNITS)
        return self.steps if unit == "steps" else self.seconds


def _mode(optimizer: object, mode: str) -> None:
    """Put a Schedule-Free-style optimiser into ``train`` or ``eval`` mode (others: no-op)."""
    if isinstance(optimizer, torch.optim.Optimizer) and type(optimizer).__module__.startswith(
            "torch.optim"):
        return  # torch's own have no modes
    method = getattr(optimizer, mode, None)
    if callable(method):
        method()


def run_trial(workload: Workload, submission: Submission, hparams: Mapping, seed: int,
              target: float | None | str = "workload") -> Trial:
    """One trial (the lab): ``workload.build_model(seed)``, the submission's optimiser with
    ``hparams``, mini-batches drawn with replacement by a generator seeded with ``seed`` (full
    batch when ``batch_size`` is ``None``), the metric on the validation tensors every
    ``eval_every`` steps; it stops at the first evaluation with metric ``<= target`` (time to
    target = that step), at a non-finite loss or metric (``diverged``), or at the step budget.
    ``target="workload"`` uses ``workload.target``; ``None`` trains the whole budget (target
    setting)."""
    checks.integer("seed", seed)
    if target == "workload":
        target = workload.target
    model = workload.build_model(seed)
    optimizer = submission.build(model, hparams)
    generator = torch.Generator().manual_seed(seed)
    x, y = workload.train
    xv, yv = workload.val
    at: list[int] = []
    curve: list[float] = []
    seconds = 0.0
    diverged = False
    step = 0
    for step in range(1, workload.step_budget + 1):
        start = time.perf_counter()
        _mode(optimizer, "train")
        if workload.batch_size is None:
            xb, yb = x, y
        else:
            idx = torch.randint(len(x), (workload.batch_size,), generator=generator)
            xb, yb = x[idx], y[idx]
        loss = workload.loss(model(xb), yb)
        if not torch.isfinite(loss):
            diverged = True
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seconds += time.perf_counter() - start
        if step % workload.eval_every == 0:
            _mode(optimizer, "eval")
            value = float(workload.metric(model, xv, yv))
            if not math.isfinite(value):
                diverged = True
                break
            at.append(step)
            curve.append(value)
            if target is not None and value <= target:
                return Trial(workload.name, dict(hparams), seed, at, curve, float(step),
                             seconds, step, False)
    return Trial(workload.name, dict(hparams), seed, at, curve, math.inf, math.inf, step,
                 diverged)


@dataclass
class Study:
    """One study (the lab): its trials, in the order drawn."""

    trials: list[Trial]

    def time(self, unit: str = "steps", trials: int | None = None) -> float:
        """The fastest of the first ``trials`` trials (all by default): the study's time."""
        used = self.trials if trials is None else self.trials[:trials]
        if not used:
            raise ValueError(f"trials must be >= 1; got trials={trials!r}")
        return min(t.time(unit) for t in used)


@dataclass
class Tuning:
    """A submission's tuning on one workload under one ``rule`` (the lab): its studies."""

    workload: str
    submission: str
    rule: str
    studies: list[Study]

    def study_times(self, unit: str = "steps", trials: int | None = None) -> list[float]:
        """Each study's time (its fastest trial among the first ``trials``)."""
        return [s.time(unit, trials) for s in self.studies]

    def trial_times(self, unit: str = "steps", trials: int | None = None) -> list[list[float]]:
        """``[study][trial]`` times to target, the first ``trials`` of each study."""
        return [[t.time(unit) for t in (s.trials if trials is None else s.trials[:trials])]
                for s in self.studies]

    def time(self, unit: str = "steps", trials: int | None = None) -> float:
        """The median over studies of the study times (``inf`` when half of them miss or more),
        by :func:`labkit.benchmark.scoring.time_to_target_per_workload`."""
        if trials is not None:
            checks.integer("trials", trials, 1)
        return time_to_target_per_workload({self.workload: self.trial_times(unit, trials)},
                                           self.rule)[self.workload]

    @property
    def trials(self) -> list[Trial]:
        return [t for s in self.studies for t in s.trials]


def _study_seed(seed: int, study: int) -> int:
    return seed + 1000 * study


def external_tuning(workload: Workload, submission: Submission, trials: int = 5,
                    studies: int = 3, seed: int = 0) -> Tuning:
    """AlgoPerf's external-tuning ruleset (the lab): ``studies`` studies of ``trials`` trials.
    As AlgoPerf does, all ``trials * studies`` points are drawn from one quasi-random sequence
    (:func:`sample_space` seeded ``seed``) and dealt to the studies in a random order (seeded
    ``seed``), so that the studies search different parts of the space; study :math:`s` runs its
    trial :math:`j` on seed ``seed + 1000 s + j``; time = median over studies of the fastest trial
    (:meth:`Tuning.time`)."""
    checks.integer("trials", trials, 1)
    checks.integer("studies", studies, 1)
    points = sample_space(submission.space, trials * studies, seed)
    order = np.random.default_rng(seed).permutation(trials * studies)
    out = []
    for s in range(studies):
        base = _study_seed(seed, s)
        mine = [points[i] for i in order[s * trials:(s + 1) * trials]]
        out.append(Study([run_trial(workload, submission, h, base + j)
                          for j, h in enumerate(mine)]))
    return Tuning(workload.name, submission.name, "external", out)


def self_tuning(workload: Workload, submission: Submission, studies: int = 3,
                seed: int = 0) -> Tuning:
    """AlgoPerf's self-tuning ruleset (the lab): no search; study :math:`s` runs the
    submission's ``defaults`` once, on seed ``seed + 1000 s``; time = median over studies."""
    checks.integer("studies", studies, 1)
    return Tuning(workload.name, submission.name, "self",
                  [Study([run_trial(workload, submission, {}, _study_seed(seed, s))])
                   for s in range(studies)])


@dataclass
class Benchmark:
    """Every submission's :class:`Tuning` on every workload and held-out variant under one
    ``rule`` (the lab); :meth:`times` gives the table the scoring takes."""

    rule: str
    submissions: list[str]
    workloads: list[str]
    held_out: dict[str, str]
    tunings: dict[tuple[str, str], Tuning]

    def raw(self, unit: str = "steps", trials: int | None = None) -> dict[str, dict[str, float]]:
        """``raw[submission][workload]``: the time to target on every workload and variant,
        before the held-out rule."""
        return {s: {w: self.tunings[s, w].time(unit, trials)
                    for w in self.workloads + list(self.held_out.values())}
                for s in self.submissions}

    @property
    def variants(self) -> dict[str, str]:
        """Held-out variant -> base workload, as :mod:`labkit.benchmark.scoring` takes it."""
        return {v: w for w, v in self.held_out.items()}

    def times(self, unit: str = "steps", trials: int | None = None,
              cutoff: float | None = 4.0) -> dict[str, dict[str, float]]:
        r"""``times[submission][workload]`` on the base workloads after AlgoPerf's held-out rule
        (:func:`labkit.benchmark.scoring.held_out_rule`): a base time counts only if the
        submission also reached the held-out variant's target within ``cutoff`` times the
        fastest on it. ``trials`` uses the first ``trials`` of each study (the effect of a
        smaller tuning budget, external rule)."""
        return held_out_rule(self.raw(unit, trials), self.variants, cutoff)

    def scores(self, unit: str = "steps", trials: int | None = None,
               r_max: float = 4.0) -> dict[str, float]:
        """AlgoPerf's benchmark score of every submission
        (:func:`labkit.benchmark.scoring.benchmark_scores`, held-out rule included)."""
        return benchmark_scores(self.raw(unit, trials), r_max=r_max, held_out=self.variants)

    def profiles(self, unit: str = "steps", trials: int | None = None, r_max: float = 4.0
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        r"""The performance profiles :math:`\rho_s(\tau)` on the official grid
        (:func:`labkit.benchmark.scoring.performance_profiles`, held-out rule included)."""
        return performance_profiles(self.raw(unit, trials), r_max=r_max, held_out=self.variants)

    def report(self, unit: str = "steps", trials: int | None = None) -> str:
        """The table as text: per submission, the time on each workload and, in brackets, on
        its held-out variant (``-`` = not reached), then the count reached."""
        raw = self.raw(unit, trials)
        fmt = (lambda v: f"{v:.0f}" if math.isfinite(v) else "-") if unit == "steps" else \
            (lambda v: f"{v:.2f}" if math.isfinite(v) else "-")
        width = max(len(s) for s in self.submissions)
        lines = [f"{self.rule} tuning, {unit} to target: workload (held-out variant)"]
        lines.append(" " * width + "  " + "  ".join(f"{w:>16s}" for w in self.workloads))
        for s in self.submissions:
            cells = [f"{fmt(raw[s][w]) + ' (' + fmt(raw[s][self.held_out[w]]) + ')':>16s}"
                     if w in self.held_out else f"{fmt(raw[s][w]):>16s}" for w in self.workloads]
            lines.append(f"{s:<{width}s}  " + "  ".join(cells))
        return "\n".join(lines)


def run_benchmark(submissions: Sequence[Submission], workloads: Sequence[Workload],
                  rule: str = "external", trials: int = 5, studies: int = 3, seed: int = 0,
                  progress: Callable[[str], None] | None = None) -> Benchmark:
    """Every submission on every workload and its held-out variant under ``rule``
    (``"external"``: :func:`external_tuning` with ``trials`` x ``studies``; ``"self"``:
    :func:`self_tuning` with ``studies``), the lab's benchmark. Every workload needs a target."""
    checks.one_of("rule", rule, RULES)
    submissions, workloads = list(submissions), list(workloads)
    if not submissions or not workloads:
        raise ValueError("run_benchmark needs at least one submission and one workload")
    names = [s.name for s in submissions]
    if len(set(names)) != len(names):
        raise ValueError(f"submission names must be distinct; got {names}")
    tunings = {}
    held_out = {}
    for w in workloads:
        for v in w.variants:
            if v.target is None:
                raise ValueError(f"workload {v.name!r} has no target: set it first "
                                 f"(labkit.benchmark.runner.set_target)")
        if w.held_out is not None:
            held_out[w.name] = w.held_out.name
    for sub in submissions:
        for w in workloads:
            for v in w.variants:
                if progress is not None:
                    progress(f"{sub.name} on {v.name}")
                tunings[sub.name, v.name] = (
                    external_tuning(v, sub, trials, studies, seed) if rule == "external"
                    else self_tuning(v, sub, studies, seed))
    return Benchmark(rule, names, [w.name for w in workloads], held_out, tunings)


@dataclass
class TargetSetting:
    """How a workload's target was set (the lab): the winning ``baseline`` and its ``hparams``,
    every baseline's best tuning value, the best validation metric of each of the ``repeats``
    re-runs, and the ``target`` (their median)."""

    workload: str
    baseline: str
    hparams: dict
    tuning_best: dict[str, float]
    repeats: list[float]
    target: float


def set_target(workload: Workload, baselines: Sequence[Submission], trials: int = 8,
               repeats: int = 5, seed: int = 0, budget_fraction: float = 0.75) -> TargetSetting:
    r"""A workload's validation target by AlgoPerf's recipe (the benchmark lab;
    ``docs/DOCUMENTATION.md``,
    "Defining target performance", mlcommons/algorithmic-efficiency at commit ``0390e13f``, and
    the procedure recorded in its pull request #541), scaled down:

    1. each baseline is tuned as in external tuning, one study of ``trials`` quasi-random points
       (AlgoPerf: AdamW, NAdamW, Nesterov and heavy-ball momentum, 200 trials), every trial
       trained for ``budget_fraction`` of the step budget :math:`T` (rounded down to an
       evaluation step): AlgoPerf gave submissions a budget 1/3 longer than the target-setting
       runs took, i.e. the target-setting runs had 3/4 of it;
    2. the best baseline and point are those with the lowest validation metric reached within the
       budget, :math:`(b^*, h^*) = \arg\min_{b, h} \min_{t \le T} \operatorname{err}(w_t)`;
    3. :math:`(b^*, h^*)` is re-run on ``repeats`` fresh seeds (AlgoPerf: 20) and the target is
       the median of their best validation metrics,
       :math:`\text{target} = \operatorname{median}_r \min_{t \le T} \operatorname{err}_r(w_t)`
       (the median rather than the best, so that a lucky seed does not set it).

    AlgoPerf then fixes the target in the workload's definition; so does
    ``benchmarks/benchmark_targets.py`` (:data:`labkit.benchmark.workloads.TARGETS`). AlgoPerf
    also sets a test-set target; there is no test set here."""
    baselines = list(baselines)
    checks.interval("budget_fraction", budget_fraction, 0.0, 1.0, "(]")
    steps = workload.eval_every * max(1, int(budget_fraction * workload.step_budget)
                                      // workload.eval_every)
    workload = replace(workload, step_budget=steps, target=None, held_out=None)
    if not baselines:
        raise ValueError("set_target needs at least one baseline Submission")
    checks.integer("trials", trials, 1)
    checks.integer("repeats", repeats, 1)
    best: tuple[float, str, dict] | None = None
    tuning_best = {}
    for b in baselines:
        results = [run_trial(workload, b, h, seed + j, target=None)
                   for j, h in enumerate(sample_space(b.space, trials, seed))]
        top = min(results, key=lambda t: t.best)
        tuning_best[b.name] = top.best
        if best is None or top.best < best[0]:
            best = (top.best, b.name, top.hparams)
    _, name, hparams = best
    winner = next(b for b in baselines if b.name == name)
    values = [run_trial(workload, winner, hparams, seed + 10_000 + r, target=None).best
              for r in range(repeats)]
    return TargetSetting(workload.name, name, hparams, tuning_best, values,
                         float(np.median(values)))


def algoperf_baselines(names: Iterable[str] | None = None) -> list[Submission]:
    """AlgoPerf's four target-setting algorithms as submissions (the lab), without their
    learning-rate schedules: ``AdamW`` and ``NAdamW`` (``torch.optim.AdamW``, ``NAdam`` with
    decoupled weight decay), ``Nesterov`` and ``HeavyBall`` (``torch.optim.SGD`` with Nesterov
    or plain momentum); ``names`` picks some."""
    adam_space = {"lr": (1e-4, 3e-2, "log"), "weight_decay": (1e-4, 0.3, "log")}
    sgd_space = {"lr": (1e-3, 1.0, "log"), "momentum": (0.8, 0.98, "linear")}
    all_ = [Submission("AdamW", torch.optim.AdamW, adam_space),
            Submission("NAdamW", torch.optim.NAdam, adam_space,
                       {"decoupled_weight_decay": True}),
            Submission("Nesterov", torch.optim.SGD, sgd_space, {"nesterov": True}),
            Submission("HeavyBall", torch.optim.SGD, sgd_space)]
    if names is None:
        return all_
    names = list(names)
    unknown = sorted(set(names) - {s.name for s in all_})
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from "
                         f"{[s.name for s in all_]}")
    return [s for s in all_ if s.name in names]
