r"""The benchmark's workloads: what is trained, on which data, to which validation target (the lab
``labs/optimizer_benchmark.ipynb``).

A :class:`Workload` fixes everything but the optimiser, as an AlgoPerf workload does (Dahl et al.,
2023): the model (built from a seed), the training and validation tensors, the loss, the
validation metric (an error rate or a loss, lower is better), the batch size, how often the
metric is evaluated, the step budget and the validation ``target``. A trial's score is its *time to
target*: the first evaluated step :math:`t` (a multiple of ``eval_every``) at which

.. math:: \operatorname{err}_{\text{val}}(w_t) \le \text{target}, \qquad t \le \text{step\_budget},

and :math:`\infty` when no evaluation within the budget reaches it.

Four workloads, each a few hundred milliseconds per trial on one CPU core, and each with one
held-out variant (AlgoPerf's randomised workloads: the same task with a changed width, depth or
data size, its own target, the same budget):

- ``mlp``: the lecture's MLP (:class:`labkit.models.MLP`, hidden width 32) on ``digits5k``
  pooled to 14x14; held out: width 64;
- ``cnn``: :class:`labkit.models.SmallCNN` on the same digits pooled to 14x14; held out: one more
  convolution;
- ``logistic``: logistic regression on ``breast_cancer`` (scikit-learn's, standardised), its
  metric the validation cross-entropy; held out: half of the training rows;
- ``transformer``: chapter 8's :class:`labkit.models.TinyTransformer` (width 16) on modular
  addition mod 23; held out: mod 19 (fewer pairs, other tokens).

The targets in :data:`TARGETS` were set once by ``benchmarks/benchmark_targets.py`` with
:func:`labkit.benchmark.runner.set_target` (AlgoPerf's recipe, see there) and are fixed here;
``tests/test_benchmark_runner.py`` checks that they are what the recipe gives.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from labkit import _checks as checks
from labkit.data import digits5k, modular_addition, tabular
from labkit.models import MLP, SmallCNN, TinyTransformer

#: Where ``benchmarks/benchmark_targets.py`` writes the targets it sets (and the test reads them).
TARGETS_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / \
    "benchmark_targets.json"


def classification_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r"""The training loss of every workload of the benchmark lab, the mean cross-entropy
    :math:`-\frac{1}{b}\sum_i \log \operatorname{softmax}(z_i)_{y_i}` of a batch
    (``torch.nn.functional.cross_entropy``)."""
    return F.cross_entropy(logits, targets)


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    r"""The validation cross-entropy :math:`-\frac{1}{n}\sum_i \log p_{y_i}(x_i)`, the metric of
    the benchmark lab's logistic workload (as of AlgoPerf's Criteo workload): on 142 tumours an
    error rate moves in steps of 1/142, too coarse for a target."""
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))


def error_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    r"""The validation metric of the lab's classification workloads: the fraction misclassified,
    :math:`\frac{1}{n}\sum_i [\arg\max_k f_k(x_i) \ne y_i]` (lower is better, as AlgoPerf's
    error rates)."""
    with torch.no_grad():
        return float((model(x).argmax(dim=1) != y).float().mean())


@dataclass
class Workload:
    """One benchmark workload (the lab ``labs/optimizer_benchmark.ipynb``): ``build_model(seed)``
    returns a fresh model, ``train``/``val`` are ``(inputs, targets)`` tensors, ``loss(logits,
    targets)`` is minimised, ``metric(model, x, y)`` (lower is better) is evaluated on ``val``
    every ``eval_every`` steps of ``batch_size`` examples (``None``: the full training set), for
    at most ``step_budget`` steps; ``target`` is the validation metric to reach (``None`` until
    it is set) and ``held_out`` the variant whose target must be reached too."""

    name: str
    build_model: Callable[[int], nn.Module]
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    step_budget: int
    eval_every: int
    batch_size: int | None = None
    target: float | None = None
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = classification_loss
    metric: Callable[[nn.Module, torch.Tensor, torch.Tensor], float] = error_rate
    held_out: Workload | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Workload.name must be a non-empty string; got {self.name!r}")
        checks.integer("step_budget", self.step_budget, 1)
        checks.integer("eval_every", self.eval_every, 1)
        if self.eval_every > self.step_budget:
            raise ValueError(f"eval_every={self.eval_every} exceeds step_budget="
                             f"{self.step_budget}: the metric would never be evaluated")
        if self.batch_size is not None:
            checks.integer("batch_size", self.batch_size, 1)
        if self.target is not None:
            checks.finite("target", self.target)
        if len(self.train[0]) != len(self.train[1]) or len(self.val[0]) != len(self.val[1]):
            raise ValueError(f"workload {self.name!r}: inputs and targets differ in length")

    def with_target(self, target: float | None) -> Workload:
        """A copy with another ``target`` (the held-out variant kept)."""
        return replace(self, target=target)

    @property
    def variants(self) -> list[Workload]:
        """This workload and its held-out variant, if any."""
        return [self] + ([self.held_out] if self.held_out is not None else [])


def _seeded(build: Callable[[], nn.Module]) -> Callable[[int], nn.Module]:
    """``build`` as a ``build_model(seed)``: the initial weights depend on ``seed`` only."""
    def build_model(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return build()
    return build_model


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, ...]:
    train, test = digits5k(train=True), digits5k(train=False)
    return (*train.tensors, *test.tensors)


@functools.lru_cache(maxsize=1)
def _digits14() -> tuple[torch.Tensor, ...]:
    x, y, xv, yv = _digits()
    return F.avg_pool2d(x, 2), y, F.avg_pool2d(xv[:500], 2), yv[:500]


@functools.lru_cache(maxsize=1)
def _breast_cancer() -> tuple[torch.Tensor, ...]:
    split = tabular("breast_cancer", dtype=torch.float32)
    return split.X_train, split.y_train, split.X_test, split.y_test


@functools.lru_cache(maxsize=2)
def _modular(p: int) -> tuple[torch.Tensor, ...]:
    return modular_addition(p, train_fraction=0.8, split_seed=0)


def mlp_workload(hidden: int = 32, target: float | None = None) -> Workload:
    """The benchmark lab's first workload: the lecture's MLP (Flatten, then 196 -> hidden ->
    hidden -> 10 with ReLU) on ``digits5k`` pooled to 14x14: batches of 64, the error rate on 500
    of the test digits every 10 steps, 100 steps."""
    x, y, xv, yv = _digits14()
    return Workload(f"mlp{'' if hidden == 32 else f'-h{hidden}'}",
                    _seeded(lambda: MLP(in_features=14 * 14, hidden=hidden)), (x, y), (xv, yv),
                    step_budget=100, eval_every=10, batch_size=64, target=target)


def cnn_workload(depth: int = 2, target: float | None = None) -> Workload:
    """The benchmark lab's CNN workload: :class:`labkit.models.SmallCNN` (8 channels) on
    ``digits5k`` pooled to 14x14: batches of 64, the error rate on 500 test digits every 10
    steps, 100 steps."""
    x, y, xv, yv = _digits14()
    return Workload(f"cnn{'' if depth == 2 else f'-d{depth}'}",
                    _seeded(lambda: SmallCNN(depth=depth)), (x, y), (xv, yv), step_budget=100,
                    eval_every=10, batch_size=64, target=target)


def logistic_workload(fraction: float = 1.0, target: float | None = None) -> Workload:
    """The benchmark lab's logistic regression (one linear layer, two classes, cross-entropy) on
    ``breast_cancer`` (427 training and 142 validation tumours, standardised), on the first
    ``fraction`` of the training rows: batches of 32, the validation cross-entropy every 5
    steps, 60 steps."""
    x, y, xv, yv = _breast_cancer()
    n = int(round(fraction * len(x)))
    return Workload(f"logistic{'' if fraction == 1 else f'-{fraction:g}'}",
                    _seeded(lambda: nn.Linear(x.shape[1], 2)), (x[:n], y[:n]), (xv, yv),
                    step_budget=60, eval_every=5, batch_size=32, target=target,
                    metric=cross_entropy)


def transformer_workload(d: int = 16, p: int = 23, target: float | None = None) -> Workload:
    """Chapter 8's :class:`labkit.models.TinyTransformer` (width ``d``) on modular addition mod
    ``p``: full-batch steps on 80% of the :math:`p^2` pairs, the error rate on the other 20%
    every 10 steps, 60 steps."""
    x, y, xv, yv = _modular(p)
    name = "transformer" + ("" if d == 16 else f"-d{d}") + ("" if p == 23 else f"-p{p}")
    return Workload(name, _seeded(lambda: TinyTransformer(p, d)), (x, y), (xv, yv),
                    step_budget=60, eval_every=10, batch_size=None, target=target)


def load_targets(path: Path = TARGETS_FILE) -> dict[str, float]:
    """The targets ``benchmarks/benchmark_targets.py`` stored for the lab, by workload name
    (``{}`` when the file does not exist)."""
    if not path.exists():
        return {}
    return {name: float(entry["target"]) for name, entry in json.loads(path.read_text()).items()}


#: The fixed validation targets (error rates, the logistic one a cross-entropy) by workload
#: name, as set by ``benchmarks/benchmark_targets.py``; a test checks them against its output.
TARGETS: dict[str, float] = {
    "mlp": 0.15199999511241913,  # AdamW
    "mlp-h64": 0.12200000137090683,  # AdamW
    "cnn": 0.12999999523162842,  # NAdamW
    "cnn-d3": 0.15199999511241913,  # NAdamW
    "logistic": 0.03367285057902336,  # HeavyBall
    "logistic-0.5": 0.031234046444296837,  # HeavyBall
    "transformer": 0.7358490824699402,  # AdamW
    "transformer-p19": 0.7534246444702148,  # AdamW
}


def workloads(with_targets: bool = True) -> list[Workload]:
    """The four workloads, each with its held-out variant (the lab): with their fixed
    :data:`TARGETS` (``with_targets=False``: no target, for setting them)."""
    def t(name: str) -> float | None:
        return TARGETS.get(name) if with_targets else None

    pairs = [(mlp_workload(), mlp_workload(hidden=64)),
             (cnn_workload(), cnn_workload(depth=3)),
             (logistic_workload(), logistic_workload(fraction=0.5)),
             (transformer_workload(), transformer_workload(p=19))]
    out = []
    for base, held in pairs:
        held = held.with_target(t(held.name))
        out.append(replace(base, target=t(base.name), held_out=held))
    return out
