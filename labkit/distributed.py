r"""Data-parallel SGD on :mod:`torch.distributed`: the worker code and its launcher (chapter 9).

Each of :math:`P` workers holds a copy of the weights :math:`w_t` and computes the gradient of its
own shard :math:`B_p` of a global mini-batch :math:`B = B_1 \cup \dots \cup B_P` (:math:`b`
examples each); an **all-reduce** sums the :math:`P` gradients, every worker divides by
:math:`P` and takes the same step:

.. math::

    g_t = \frac1P \sum_{p=1}^P \frac1b \sum_{i\in B_p} \nabla\ell_i(w_t)
        = \frac1{Pb}\sum_{i\in B}\nabla\ell_i(w_t), \qquad w_{t+1} = w_t - \alpha_t\, g_t .

So :math:`P` workers with batch :math:`b` compute exactly the step of one process with batch
:math:`Pb` (up to the rounding of the sum). A ring all-reduce of a message of :math:`n` bytes
makes every worker send (and receive) :math:`2\frac{P-1}{P}\,n` bytes in :math:`2(P-1)` steps, so
with a latency :math:`\alpha` per step and a bandwidth :math:`\beta` it takes

.. math:: T(n) = 2(P-1)\,\alpha + 2\,\frac{P-1}{P}\,\frac{n}{\beta}.

The module has three parts:

* **the launcher**, :func:`launch`: starts :math:`P` processes (``torch.multiprocessing``; or
  ``torchrun`` as a subprocess), each joins a process group (gloo on CPUs, NCCL on CUDA, chosen by
  :func:`choose_backend`) with a timeout on every collective, runs a worker function and saves
  what it returns in a temporary folder; the caller gets the list of results, one per rank. A
  worker that raises surfaces as :class:`WorkerError`, one that hangs as :class:`LaunchTimeout`
  (or as the collective timeout of the others), never as a hang.
* **the workers**: :func:`train_worker` (hand-written all-reduce of the gradients, DDP, DDP with a
  communication hook, local SGD), :func:`allreduce_worker` (all-reduce times and bytes),
  :func:`step_time_worker` (DDP's bucketing and overlap) and :func:`fault_worker` (failures).
  :func:`train_data_parallel` is the training loop itself; it runs alone too (one process, no
  process group), which gives the single-process reference.
* **the cost model**: :func:`ring_allreduce_bytes`, :func:`ring_allreduce_time` and
  :func:`fit_ring_model`.

On a CUDA machine the same workers run under ``torchrun`` with one process per GPU::

    torchrun --nproc-per-node 8 -m labkit.distributed train_worker --config '{"steps": 100}' \
        --out results/
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from labkit.data import digits5k
from labkit.models import MLP
from labkit.seed import seed_everything

__all__ = [
    "LaunchTimeout",
    "WorkerError",
    "allreduce_worker",
    "average_gradients",
    "average_parameters",
    "bytes_written",
    "choose_backend",
    "digits_tensors",
    "fault_worker",
    "fit_ring_model",
    "launch",
    "linear_scaling_lr",
    "main",
    "rank_and_world",
    "ring_allreduce_bytes",
    "ring_allreduce_time",
    "step_time_worker",
    "train_data_parallel",
    "train_worker",
    "worker_device",
]

#: Hooks of :func:`train_worker` (DDP communication hooks from ``torch.distributed.algorithms``).
HOOKS = ("none", "fp16", "bf16", "powersgd")
#: PowerSGD's first steps are plain all-reduces (its error feedback starts from them).
_POWERSGD_START = 2
#: Ways of combining the workers' gradients in :func:`train_data_parallel`.
MODES = ("allreduce", "ddp", "local_sgd")


class WorkerError(RuntimeError):
    """A worker process raised (or died); the message carries its rank and traceback (chapter 9).

    Attributes ``rank`` (the failing worker, or ``-1`` when unknown) and ``worker_traceback``.
    """

    def __init__(self, message: str, rank: int = -1, worker_traceback: str = ""):
        super().__init__(message)
        self.rank = rank
        self.worker_traceback = worker_traceback


class LaunchTimeout(TimeoutError):
    """The workers did not finish within the launch's ``timeout``; they were killed (chapter 9)."""


# ----------------------------------------------------------------------------------------------
# Inside a worker: rank, device, the two averaging steps
# ----------------------------------------------------------------------------------------------

def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` outside a process group (chapter 9)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def worker_device() -> torch.device:
    """The device of this worker: ``cuda:LOCAL_RANK`` under NCCL, else the CPU (chapter 9)."""
    if dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def average_gradients(model: nn.Module) -> int:
    r"""The hand-written data-parallel step: replace each gradient by its mean over the workers.

    .. math:: g \leftarrow \frac1P\sum_{p=1}^P g_p \quad\text{(one all-reduce per parameter)}

    Called between ``backward()`` and ``optimizer.step()`` (chapter 9). Returns the number of
    bytes all-reduced (the message size :math:`n` of :func:`ring_allreduce_bytes`); does nothing
    outside a process group.
    """
    _, world = rank_and_world()
    sent = 0
    for p in model.parameters():
        if p.grad is None:
            continue
        sent += p.grad.numel() * p.grad.element_size()
        if world > 1:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)
    return sent


@torch.no_grad()
def average_parameters(model: nn.Module) -> int:
    r"""Local SGD's synchronisation: replace the weights by their mean over the workers.

    .. math:: w \leftarrow \frac1P\sum_{p=1}^P w_p

    Called every :math:`H` steps of local SGD (chapter 9); returns the bytes all-reduced.
    """
    _, world = rank_and_world()
    sent = 0
    for p in model.parameters():
        sent += p.numel() * p.element_size()
        if world > 1:
            dist.all_reduce(p.data, op=dist.ReduceOp.SUM)
            p.data.div_(world)
    return sent


def bytes_written() -> int | None:
    """Bytes this process has written through system calls so far (``wchar`` of
    ``/proc/self/io``); ``None`` where Linux's ``/proc`` is missing (chapter 9).

    gloo sends its messages with ``write`` calls on sockets, so the difference of two readings
    around an all-reduce measures the bytes the worker sent. NCCL's transfers (NVLink, GPU
    memory) do not go through system calls and are not counted.
    """
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split(":")[1])
    except OSError:
        return None
    return None


# ----------------------------------------------------------------------------------------------
# The cost model
# ----------------------------------------------------------------------------------------------

def ring_allreduce_bytes(nbytes: float, world_size: int) -> float:
    r"""Bytes each worker sends in a ring all-reduce of a message of ``nbytes``:
    :math:`2\frac{P-1}{P}\,n` (chapter 9).

    The ring's reduce-scatter passes :math:`P-1` chunks of :math:`n/P` bytes to the next worker,
    its all-gather another :math:`P-1` (Patarasuk and Yuan, 2009).
    """
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    return 2.0 * (world_size - 1) / world_size * float(nbytes)


def ring_allreduce_time(nbytes: float | np.ndarray, world_size: int, latency: float,
                        bandwidth: float) -> float | np.ndarray:
    r"""The ring model of an all-reduce's time:
    :math:`T(n) = 2(P-1)\,\alpha + 2\frac{P-1}{P}\,n/\beta` (chapter 9).

    ``latency`` is :math:`\alpha` in seconds per step, ``bandwidth`` :math:`\beta` in bytes per
    second.
    """
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be positive (bytes per second), got {bandwidth}")
    return 2 * (world_size - 1) * latency + ring_allreduce_bytes(1.0, world_size) * \
        np.asarray(nbytes, dtype=float) / bandwidth


def fit_ring_model(nbytes: Sequence[float], seconds: Sequence[float],
                   world_size: int) -> tuple[float, float]:
    r"""Fit :math:`\alpha` (s) and :math:`\beta` (bytes/s) of :func:`ring_allreduce_time` to
    measured times, by least squares on the relative error (chapter 9).

    :math:`T = 2(P-1)\alpha + 2\frac{P-1}{P} n \cdot (1/\beta)` is linear in
    :math:`(\alpha, 1/\beta)`; each row is divided by its measured time so that the small
    messages (latency) count as much as the large ones (bandwidth). Returns
    ``(latency, bandwidth)``.
    """
    n = np.asarray(nbytes, dtype=float)
    t = np.asarray(seconds, dtype=float)
    if n.shape != t.shape or n.size < 2:
        raise ValueError("fit_ring_model needs two or more (nbytes, seconds) pairs, paired")
    if world_size < 2:
        raise ValueError(f"world_size must be at least 2 to communicate, got {world_size}")
    A = np.stack([np.full_like(n, 2.0 * (world_size - 1)), ring_allreduce_bytes(1.0, world_size)
                  * n], axis=1) / t[:, None]
    (latency, inv_bandwidth), *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    latency = max(float(latency), 0.0)
    inv_bandwidth = max(float(inv_bandwidth), 1e-30)
    return latency, 1.0 / inv_bandwidth


def linear_scaling_lr(step: int, base_lr: float, world_size: int, warmup_steps: int) -> float:
    r"""The linear scaling rule with gradual warmup (Goyal et al., 2017) (chapter 9).

    With :math:`P` times the batch, use :math:`P` times the rate, reached linearly over the first
    ``warmup_steps`` steps:

    .. math:: \alpha_t = \alpha\,\Big(1 + (P-1)\min\big(1, \tfrac{t}{T_w}\big)\Big).
    """
    if warmup_steps <= 0:
        return base_lr * world_size
    return base_lr * (1 + (world_size - 1) * min(1.0, step / warmup_steps))


# ----------------------------------------------------------------------------------------------
# The training loop (alone, or in a worker)
# ----------------------------------------------------------------------------------------------

def _make_model(name: str, hidden: int, dtype: torch.dtype, device: torch.device) -> nn.Module:
    if name == "mlp":
        model = MLP(hidden=hidden)
    elif name == "linear":
        model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    else:
        raise ValueError(f"model must be 'mlp' or 'linear', got {name!r}")
    return model.to(device=device, dtype=dtype)


def _register_hook(ddp: nn.Module, hook: str, powersgd_rank: int, seed: int) -> None:
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook

    if hook == "fp16":
        ddp.register_comm_hook(None, default_hooks.fp16_compress_hook)
    elif hook == "bf16":
        ddp.register_comm_hook(None, default_hooks.bf16_compress_hook)
    elif hook == "powersgd":
        state = powerSGD_hook.PowerSGDState(
            process_group=None, matrix_approximation_rank=powersgd_rank,
            start_powerSGD_iter=_POWERSGD_START,
            min_compression_rate=2, use_error_feedback=True, warm_start=True, random_seed=seed)
        ddp.register_comm_hook(state, powerSGD_hook.powerSGD_hook)


def digits_tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(X_train, y_train, X_test, y_test)`` of ``digits5k``, images flattened to 784 columns
    (chapter 9 and its lab).

    Load them once in the notebook and pass them to the workers (``data=``): the processes then
    share the tensors' memory instead of each parsing the dataset again.
    """
    train, test = digits5k(train=True), digits5k(train=False)
    return (train.tensors[0].flatten(1), train.tensors[1], test.tensors[0].flatten(1),
            test.tensors[1])


def _load_digits(dtype: torch.dtype, device: torch.device,
                 data: Sequence[torch.Tensor] | None = None) -> tuple[torch.Tensor, ...]:
    X, y, X_test, y_test = digits_tensors() if data is None else data
    return (X.to(device, dtype), y.to(device), X_test.to(device, dtype), y_test.to(device))


@torch.no_grad()
def _evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor,
              chunk: int = 1000) -> tuple[float, float]:
    loss, correct = 0.0, 0
    for i in range(0, len(X), chunk):
        out = model(X[i:i + chunk])
        loss += F.cross_entropy(out, y[i:i + chunk], reduction="sum").item()
        correct += (out.argmax(1) == y[i:i + chunk]).sum().item()
    return loss / len(X), correct / len(X)


def train_data_parallel(
    *,
    mode: str = "allreduce",
    hook: str = "none",
    model: str = "mlp",
    hidden: int = 512,
    dtype: str = "float32",
    batch_per_worker: int = 32,
    world_size: int | None = None,
    epochs: float = 1.0,
    steps: int | None = None,
    lr: float = 0.05,
    scale_lr: bool = False,
    warmup_steps: int = 0,
    local_steps: int = 1,
    powersgd_rank: int = 4,
    seed: int = 0,
    evaluate: bool = True,
    return_weights: bool = False,
    n_train: int | None = None,
    bucket_cap_mb: float | None = None,
    data: Sequence[torch.Tensor] | None = None,
) -> dict[str, Any]:
    r"""Data-parallel mini-batch SGD on the digits, in the current process group (chapter 9).

    Every worker draws the same random order of the :math:`N` training images (seeded by
    ``seed`` and the epoch); step :math:`t` uses the global batch of :math:`Pb` images
    ``order[t·Pb : (t+1)·Pb]`` and worker :math:`p` the :math:`p`-th slice of :math:`b` of them.
    The worker's gradients are combined by ``mode``:

    * ``"allreduce"``: :func:`average_gradients` after ``backward()`` (hand-written);
    * ``"ddp"``: :class:`~torch.nn.parallel.DistributedDataParallel`, optionally with the
      communication ``hook`` ``"fp16"``, ``"bf16"`` or ``"powersgd"`` (rank ``powersgd_rank``)
      (Li et al., 2020; Vogels et al., 2019);
    * ``"local_sgd"``: no gradient exchange; :func:`average_parameters` every ``local_steps``
      steps (Stich, 2019).

    Outside a process group it is the single-process run with batch :math:`Pb`, where :math:`P`
    is ``world_size`` (default 1): the reference of the equality :math:`P` workers = one process
    with batch :math:`Pb`. The learning rate is ``lr``, or :func:`linear_scaling_lr` when
    ``scale_lr`` (then :math:`P` is the product of ``world_size`` and the process group's size).

    Returns plain values: ``losses`` (this worker's mini-batch loss per step), ``samples`` (the
    samples seen by all workers after each step), ``bytes_model`` (the bytes this worker sends by
    the ring model), ``bytes_measured`` (:func:`bytes_written` during training, ``None`` where not
    measurable), ``seconds``, ``train_loss``/``test_accuracy`` of the final weights (if
    ``evaluate``), and ``weights`` (the flat final weights, if ``return_weights``). ``data``:
    the tensors of :func:`digits_tensors` (loaded here when ``None``). ``bucket_cap_mb``: DDP's
    bucket size (its default when ``None``; one bucket for PowerSGD on gloo).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if hook not in HOOKS:
        raise ValueError(f"hook must be one of {HOOKS}, got {hook!r}")
    if hook != "none" and mode != "ddp":
        raise ValueError(f"hook={hook!r} needs mode='ddp' (communication hooks are DDP's)")
    if local_steps < 1:
        raise ValueError(f"local_steps must be at least 1, got {local_steps}")
    rank, group = rank_and_world()
    if mode == "ddp" and group == 1:
        raise ValueError("mode='ddp' needs a process group; start it with launch()")
    if group > 1 and world_size not in (None, group):
        raise ValueError(f"world_size={world_size} but the process group has {group} workers")
    shards = group if group > 1 else (world_size or 1)  # P
    torch_dtype = getattr(torch, dtype)
    device = worker_device()
    X, y, X_test, y_test = _load_digits(torch_dtype, device, data)
    if n_train is not None:
        X, y = X[:n_train], y[:n_train]
    global_batch = shards * batch_per_worker
    local_batch = batch_per_worker if group > 1 else global_batch
    steps_per_epoch = len(X) // global_batch
    if steps_per_epoch == 0:
        raise ValueError(f"the global batch {global_batch} exceeds the {len(X)} training images")
    total_steps = steps if steps is not None else max(1, int(round(epochs * steps_per_epoch)))

    seed_everything(seed)
    net = _make_model(model, hidden, torch_dtype, device)
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        if hook == "powersgd" and device.type == "cpu" and bucket_cap_mb is None:
            # On gloo, PowerSGD's chained collectives of several buckets can reach the workers
            # in different orders (a collective mismatch): keep the gradient in one bucket.
            bucket_cap_mb = sum(p.numel() * p.element_size() for p in net.parameters()) / 2**20 + 1
        net = DDP(net, device_ids=[device.index] if device.type == "cuda" else None,
                  bucket_cap_mb=bucket_cap_mb)
        _register_hook(net, hook, powersgd_rank, seed)
    params = list(net.parameters())
    n_bytes = sum(p.numel() * p.element_size() for p in params)
    optimizer = torch.optim.SGD(params, lr=lr)

    losses: list[float] = []
    sent_model = 0.0
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(X), generator=generator)
    start_bytes = bytes_written()
    start = time.perf_counter()
    for t in range(total_steps):
        s = t % steps_per_epoch
        if s == 0 and t > 0:
            order = torch.randperm(len(X), generator=generator)
        idx = order[s * global_batch:(s + 1) * global_batch]
        if group > 1:
            idx = idx[rank * local_batch:(rank + 1) * local_batch]
        idx = idx.to(device)
        rate = linear_scaling_lr(t, lr, shards, warmup_steps) if scale_lr else lr
        for g in optimizer.param_groups:
            g["lr"] = rate
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(X[idx]), y[idx])
        loss.backward()
        if mode == "allreduce":
            sent_model += ring_allreduce_bytes(average_gradients(net), group)
        elif mode == "ddp":
            sent_model += ring_allreduce_bytes(
                _ddp_message_bytes(net, hook if t >= _POWERSGD_START or hook != "powersgd"
                                   else "none", powersgd_rank), group)
        optimizer.step()
        if mode == "local_sgd" and ((t + 1) % local_steps == 0 or t + 1 == total_steps):
            sent_model += ring_allreduce_bytes(average_parameters(net), group)
        losses.append(loss.item())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    end_bytes = bytes_written()
    measured = None
    if start_bytes is not None and end_bytes is not None and device.type == "cpu":
        measured = end_bytes - start_bytes

    result: dict[str, Any] = {
        "rank": rank, "world_size": shards, "mode": mode, "hook": hook,
        "local_steps": local_steps, "steps": total_steps, "global_batch": global_batch,
        "losses": losses,
        "samples": [(t + 1) * global_batch for t in range(total_steps)],
        "bytes_model": sent_model, "bytes_measured": measured,
        "gradient_bytes": n_bytes, "seconds": seconds,
    }
    inner = net.module if mode == "ddp" else net
    if evaluate:
        inner.eval()
        result["train_loss"], result["train_accuracy"] = _evaluate(inner, X, y)
        result["test_loss"], result["test_accuracy"] = _evaluate(inner, X_test, y_test)
    if return_weights:
        result["weights"] = torch.cat([p.detach().reshape(-1).cpu() for p in inner.parameters()])
    return result


def _ddp_message_bytes(ddp: nn.Module, hook: str, powersgd_rank: int) -> float:
    """The bytes DDP all-reduces for one step, by hook: the gradient, half of it (fp16/bf16), or
    PowerSGD's factors P (n x r) and Q (m x r) per matrix, plus the vectors uncompressed."""
    total = 0.0
    for p in ddp.parameters():
        nbytes = p.numel() * p.element_size()
        if hook in ("fp16", "bf16"):
            total += p.numel() * 2
        elif hook == "powersgd" and p.dim() >= 2:
            n, m = p.shape[0], p[0].numel()
            compressed = (n + m) * powersgd_rank * p.element_size()
            # PowerSGD leaves a matrix uncompressed when compression saves less than 2x.
            total += compressed if compressed * 2 <= nbytes else nbytes
        else:
            total += nbytes
    return total


def train_worker(configs: dict[str, Any] | Sequence[dict[str, Any]],
                 data: Sequence[torch.Tensor] | None = None) -> list[dict[str, Any]]:
    """Run :func:`train_data_parallel` once per config, in this worker (chapter 9 and its lab).

    One launch can run several experiments one after the other, saving the start-up of the
    processes. ``data``: the tensors of :func:`digits_tensors`, shared by every config. Returns
    the list of results.
    """
    if isinstance(configs, dict):
        configs = [configs]
    if data is None:
        data = digits_tensors()
    return [train_data_parallel(**dict(c), data=data) for c in configs]


# ----------------------------------------------------------------------------------------------
# Measuring communication
# ----------------------------------------------------------------------------------------------

def allreduce_worker(sizes: Sequence[int], repeats: int = 5, warmup: int = 1,
                     min_seconds: float = 0.0) -> dict[str, list[float]]:
    r"""Time ``dist.all_reduce`` of float32 messages of ``sizes`` bytes (chapter 9).

    For each size: ``warmup`` untimed calls, then ``repeats`` timed ones (more while their total
    is below ``min_seconds``), each after a barrier; returns the median seconds and the bytes this
    worker wrote per call (:func:`bytes_written`, the measured counterpart of
    :func:`ring_allreduce_bytes`).
    """
    device = worker_device()
    out: dict[str, list[float]] = {"bytes": [], "seconds": [], "sent": []}
    for size in sizes:
        x = torch.ones(max(1, int(size) // 4), dtype=torch.float32, device=device)
        for _ in range(warmup):
            dist.all_reduce(x)
        times: list[float] = []
        sent: list[float] = []
        while len(times) < repeats or sum(times) < min_seconds:
            dist.barrier()
            before = bytes_written()
            t0 = time.perf_counter()
            dist.all_reduce(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
            after = bytes_written()
            if before is not None and after is not None and device.type == "cpu":
                sent.append(after - before)  # NCCL's transfers are not system calls
            if len(times) >= 10 * max(repeats, 1):
                break
        out["bytes"].append(float(x.numel() * 4))
        out["seconds"].append(float(np.median(times)))
        out["sent"].append(float(np.median(sent)) if sent else math.nan)
    return out


def step_time_worker(bucket_caps_mb: Sequence[float] = (0.01, 1.0, 25.0),
                     batch_per_worker: int = 32, hidden: int = 512, steps: int = 20,
                     warmup: int = 3, seed: int = 0,
                     data: Sequence[torch.Tensor] | None = None) -> dict[str, Any]:
    r"""DDP's bucketing and overlap, measured on the MLP (chapter 9).

    Median time per training step of: the computation alone (no communication), the
    hand-written version (``handwritten``: one all-reduce per parameter after ``backward()``;
    ``handwritten_flat``: the gradients copied into one buffer, one all-reduce; no overlap in
    either), the all-reduce of the whole gradient alone, and DDP with each bucket size in
    ``bucket_caps_mb`` (buckets are all-reduced while ``backward()`` still runs). Without overlap
    a step costs compute + communication; with perfect overlap max(compute, communication).
    ``buckets``: the bytes of each bucket, per bucket size.
    """
    from torch.nn.parallel import DistributedDataParallel as DDP

    device = worker_device()
    rank, world = rank_and_world()
    X, y, _, _ = _load_digits(torch.float32, device, data)
    seed_everything(seed)
    x = X[rank * batch_per_worker:(rank + 1) * batch_per_worker]
    t = y[rank * batch_per_worker:(rank + 1) * batch_per_worker]

    def timed(step: Callable[[], None]) -> float:
        for _ in range(warmup):
            step()
        times = []
        for _ in range(steps):
            dist.barrier()
            t0 = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    model = MLP(hidden=hidden).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def compute_only() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), t).backward()
        opt.step()

    def handwritten() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), t).backward()
        average_gradients(model)
        opt.step()

    def handwritten_flat() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), t).backward()
        grads = [p.grad for p in model.parameters()]
        buffer = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(buffer)
        buffer.div_(world)
        offset = 0
        for g in grads:
            g.copy_(buffer[offset:offset + g.numel()].view_as(g))
            offset += g.numel()
        opt.step()

    flat = torch.zeros(sum(p.numel() for p in model.parameters()), device=device)
    result: dict[str, Any] = {
        "compute": timed(compute_only),
        "handwritten": timed(handwritten),
        "handwritten_flat": timed(handwritten_flat),
        "allreduce": timed(lambda: dist.all_reduce(flat)),
        "gradient_bytes": flat.numel() * 4,
        "bucket_caps_mb": list(bucket_caps_mb),
        "ddp": [], "buckets": [],
    }
    for cap in bucket_caps_mb:
        seed_everything(seed)
        net = DDP(MLP(hidden=hidden).to(device), bucket_cap_mb=cap,
                  device_ids=[device.index] if device.type == "cuda" else None)
        ddp_opt = torch.optim.SGD(net.parameters(), lr=1e-3)

        def ddp_step(net: nn.Module = net, ddp_opt: torch.optim.Optimizer = ddp_opt) -> None:
            ddp_opt.zero_grad()
            F.cross_entropy(net(x), t).backward()
            ddp_opt.step()

        result["ddp"].append(timed(ddp_step))
        # DDP rebuilds its buckets after the first step, in the order the gradients came.
        result["buckets"].append(_bucket_sizes(net))
    return result


def _bucket_sizes(ddp: nn.Module) -> list[int]:
    """Bytes of each of DDP's buckets, as rebuilt after the first step (order of all-reduce)."""
    data = ddp._get_ddp_logging_data()
    sizes = data.get("rebuilt_bucket_sizes") or data.get("bucket_sizes") or ""
    return [int(s) for s in str(sizes).split(",") if s.strip()]


def fault_worker(kind: str = "raise", rank: int = 1, seconds: float = 3600.0) -> str:
    """A worker that goes wrong on purpose, to show what the launcher does (chapter 9).

    ``kind="raise"``: worker ``rank`` raises a ``RuntimeError``; ``"hang"``: it sleeps
    ``seconds`` instead of joining the all-reduce the others wait in (a stuck worker), so they
    hit the collective timeout; ``"sleep"``: every worker sleeps (the launch timeout fires).
    """
    me, _ = rank_and_world()
    if kind == "sleep":
        time.sleep(seconds)
    dist.barrier()  # every worker is connected before one of them fails
    if me == rank:
        if kind == "raise":
            raise RuntimeError(f"worker {rank} failed on purpose")
        if kind == "hang":
            time.sleep(seconds)
    dist.all_reduce(torch.ones(1, device=worker_device()))
    return "ok"


# ----------------------------------------------------------------------------------------------
# The launcher
# ----------------------------------------------------------------------------------------------

def choose_backend(world_size: int, backend: str = "auto") -> str:
    """``"nccl"`` when CUDA has a GPU for each of the ``world_size`` workers, else ``"gloo"``
    (chapter 9). An explicit ``backend`` is returned as it is, after a check."""
    if backend not in ("auto", "gloo", "nccl"):
        raise ValueError(f"backend must be 'auto', 'gloo' or 'nccl', got {backend!r}")
    if backend != "auto":
        if backend == "nccl" and torch.cuda.device_count() < world_size:
            raise ValueError(f"backend='nccl' needs one GPU per worker: {world_size} workers, "
                             f"{torch.cuda.device_count()} GPUs; use backend='gloo'")
        return backend
    if torch.cuda.is_available() and dist.is_nccl_available() and \
            torch.cuda.device_count() >= world_size:
        return "nccl"
    return "gloo"


def _init_group(backend: str, rank: int, world_size: int, init_method: str,
                collective_timeout: float) -> None:
    timeout = datetime.timedelta(seconds=collective_timeout)
    if backend == "nccl":
        local = int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count()
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", init_method=init_method, rank=rank,
                                world_size=world_size, timeout=timeout,
                                device_id=torch.device("cuda", local))
    else:
        dist.init_process_group("gloo", init_method=init_method, rank=rank,
                                world_size=world_size, timeout=timeout)


def _hide_gpus_from_gloo(backend: str) -> None:
    """A gloo worker trains on the CPU: show it no GPU, before anything asks CUDA."""
    if backend == "gloo":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def _entry(rank: int, worker: Callable[..., Any], args: tuple, kwargs: dict, world_size: int,
           backend: str, init_method: str, out_dir: str, threads: int,
           collective_timeout: float) -> None:
    """What each spawned process runs: join the group, run ``worker``, save its result.

    A gloo worker trains on the CPU, so it is shown no GPU (``CUDA_VISIBLE_DEVICES=""``, set
    before anything asks CUDA): on a machine with fewer GPUs than workers, torch's PowerSGD hook
    would otherwise call ``torch.cuda.synchronize`` on the CPU bucket and fail (seen on an H200
    with torch 2.11, P = 2 on gloo).
    """
    _hide_gpus_from_gloo(backend)
    torch.set_num_threads(threads)
    os.environ.setdefault("LOCAL_RANK", str(rank))
    _init_group(backend, rank, world_size, init_method, collective_timeout)
    try:
        result = worker(*args, **kwargs)
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    except BaseException:
        (Path(out_dir) / f"rank{rank}.error").write_text(traceback.format_exc())
        raise
    finally:
        dist.destroy_process_group()


#: Errors that a worker gets because a peer failed, not because of its own code.
_PEER_ERROR = re.compile(r"connection (reset|closed) by peer|remote worker|broken pipe|"
                         r"timed out|communicator was aborted", re.IGNORECASE)


def _root_cause(out_dir: str, world_size: int, fallback: int, fallback_text: str,
                ) -> tuple[int, str]:
    """The failing worker to report: the first whose error is its own (not a peer's failure)."""
    errors = {}
    for rank in range(world_size):
        path = Path(out_dir) / f"rank{rank}.error"
        if path.is_file():
            errors[rank] = path.read_text()
    if not errors:
        return fallback, fallback_text
    own = [r for r, text in errors.items() if not _PEER_ERROR.search(text.strip().splitlines()[-1])]
    rank = own[0] if own else min(errors)
    return rank, errors[rank]


def _start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def launch(
    worker: Callable[..., Any],
    world_size: int,
    *args: Any,
    backend: str = "auto",
    timeout: float = 300.0,
    collective_timeout: float = 60.0,
    threads: int = 1,
    launcher: str = "multiprocessing",
    **kwargs: Any,
) -> list[Any]:
    """Run ``worker(*args, **kwargs)`` in ``world_size`` new processes, one process group, and
    return what each returned, by rank (chapter 9 and its lab).

    ``worker`` must be a module-level function (the processes import it); inside it,
    :func:`rank_and_world` and :func:`worker_device` say who and where it is. Each process uses
    ``threads`` torch threads and joins the group (``backend``: ``"auto"`` picks NCCL with one
    GPU per process, gloo otherwise) with ``collective_timeout`` seconds on every collective.
    ``launcher="multiprocessing"`` starts them with ``torch.multiprocessing`` (forkserver where
    available: torch is imported once, later launches start in a fraction of a second), and
    ``"torchrun"`` runs ``torchrun --nproc-per-node world_size -m labkit.distributed`` as a
    subprocess (``worker`` is passed by name, the arguments as JSON).

    Raises:
        WorkerError: a worker raised or died (the message has its rank and traceback); the
            others are stopped.
        LaunchTimeout: the workers had not all finished after ``timeout`` seconds; they are
            killed.
    """
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    if timeout <= 0 or collective_timeout <= 0:
        raise ValueError(f"timeout and collective_timeout must be positive, got {timeout} and "
                         f"{collective_timeout}")
    backend = choose_backend(world_size, backend)
    out_dir = tempfile.mkdtemp(prefix="labkit-dist-")
    try:
        if launcher == "torchrun":
            _run_torchrun(worker, world_size, args, kwargs, backend, out_dir, threads, timeout,
                          collective_timeout)
        elif launcher == "multiprocessing":
            _run_multiprocessing(worker, world_size, args, kwargs, backend, out_dir, threads,
                                 timeout, collective_timeout)
        else:
            raise ValueError(f"launcher must be 'multiprocessing' or 'torchrun', got {launcher!r}")
        results = []
        for rank in range(world_size):
            path = Path(out_dir) / f"rank{rank}.pt"
            if not path.is_file():
                raise WorkerError(f"worker {rank} of {world_size} finished without a result",
                                  rank=rank)
            results.append(torch.load(path, weights_only=True))
        return results
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def _run_multiprocessing(worker: Callable[..., Any], world_size: int, args: tuple, kwargs: dict,
                         backend: str, out_dir: str, threads: int, timeout: float,
                         collective_timeout: float) -> None:
    import torch.multiprocessing as mp
    from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

    method = _start_method()
    if method == "forkserver":
        # The fork server imports torch and labkit once; each launch then forks from it.
        multiprocessing.set_forkserver_preload(["torch", "torch.distributed", __name__])
    init_method = "file://" + str(Path(out_dir) / "rendezvous")
    context = mp.start_processes(
        _entry, nprocs=world_size, join=False, start_method=method,
        args=(worker, tuple(args), dict(kwargs), world_size, backend, init_method, out_dir,
              threads, collective_timeout))
    deadline = time.monotonic() + timeout
    # torch logs each process it terminates; the exception below already says what happened.
    spawn_logger = logging.getLogger("torch.multiprocessing.spawn")
    level = spawn_logger.level
    spawn_logger.setLevel(logging.ERROR)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LaunchTimeout(
                    f"{worker.__name__} on {world_size} workers did not finish within "
                    f"{timeout:g} s (launch timeout); the workers were killed")
            try:
                # On a failure, the others get 1 s to stop by themselves (and say why).
                if context.join(timeout=min(left, 0.5), grace_period=1.0):
                    return
            except ProcessRaisedException as err:
                rank, text = _root_cause(out_dir, world_size, err.error_index, str(err))
                last = text.strip().splitlines()[-1] if text.strip() else ""
                raise WorkerError(
                    f"worker {rank} of {world_size} ({worker.__name__}) raised: {last}\n{text}",
                    rank=rank, worker_traceback=text) from None
            except ProcessExitedException as err:
                rank, text = _root_cause(out_dir, world_size, err.error_index, "")
                if text:
                    last = text.strip().splitlines()[-1]
                    raise WorkerError(
                        f"worker {rank} of {world_size} ({worker.__name__}) raised: {last}\n"
                        f"{text}", rank=rank, worker_traceback=text) from None
                raise WorkerError(
                    f"worker {err.error_index} of {world_size} ({worker.__name__}) died with "
                    f"exit code {err.exit_code}", rank=err.error_index) from None
    finally:
        spawn_logger.setLevel(level)
        for process in context.processes:
            if process.is_alive():
                process.terminate()
        for process in context.processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)


def _run_torchrun(worker: Callable[..., Any], world_size: int, args: tuple, kwargs: dict,
                  backend: str, out_dir: str, threads: int, timeout: float,
                  collective_timeout: float) -> None:
    spec = f"{worker.__module__}:{worker.__qualname__}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={world_size}", "-m", "labkit.distributed", spec,
           "--args", json.dumps(list(args)), "--kwargs", json.dumps(kwargs), "--out", out_dir,
           "--backend", backend, "--threads", str(threads),
           "--collective-timeout", str(collective_timeout)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as err:
        raise LaunchTimeout(f"torchrun with {world_size} workers did not finish within "
                            f"{timeout:g} s (launch timeout); it was killed") from err
    if proc.returncode != 0:
        rank, text = _root_cause(out_dir, world_size, -1, proc.stderr[-4000:])
        last = text.strip().splitlines()[-1] if text.strip() else ""
        raise WorkerError(f"worker {rank} of {world_size} under torchrun (exit {proc.returncode}) "
                          f"raised: {last}\n{text}", rank=rank, worker_traceback=text)


def _resolve(spec: str) -> Callable[..., Any]:
    import importlib

    module, _, name = spec.rpartition(":")
    if not module:
        module, name = __name__, spec
    return getattr(importlib.import_module(module), name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of one worker under ``torchrun`` (chapter 9)::

        torchrun --nproc-per-node 8 -m labkit.distributed train_worker \\
            --kwargs '{"configs": [{"mode": "ddp", "epochs": 5}]}' --out results/

    Joins the process group from torchrun's environment (``env://``), runs the worker named by
    its function (``module:function``, or a function of this module) with the JSON ``--args``
    and ``--kwargs``, and saves its result as ``OUT/rank{RANK}.pt``.
    """
    parser = argparse.ArgumentParser(prog="python -m labkit.distributed",
                                     description="One data-parallel worker (run by torchrun).")
    parser.add_argument("worker", help="module:function, or a function of labkit.distributed")
    parser.add_argument("--args", default="[]", help="JSON list of positional arguments")
    parser.add_argument("--kwargs", default="{}", help="JSON object of keyword arguments")
    parser.add_argument("--out", default=".", help="folder for rank{RANK}.pt")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--collective-timeout", type=float, default=60.0)
    ns = parser.parse_args(argv)
    _hide_gpus_from_gloo(ns.backend)
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(ns.threads)
    backend = ns.backend
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
    _init_group(backend, rank, world_size, "env://", ns.collective_timeout)
    try:
        result = _resolve(ns.worker)(*json.loads(ns.args), **json.loads(ns.kwargs))
        Path(ns.out).mkdir(parents=True, exist_ok=True)
        torch.save(result, Path(ns.out) / f"rank{rank}.pt")
    except Exception:
        traceback.print_exc()
        Path(ns.out).mkdir(parents=True, exist_ok=True)
        (Path(ns.out) / f"rank{rank}.error").write_text(traceback.format_exc())
        raise
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
