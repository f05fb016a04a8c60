"""Workers that measure communication, and one that fails on purpose (chapter 9)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from labkit.distributed.collectives import (
    average_gradients,
    bytes_written,
    rank_and_world,
    worker_device,
)
from labkit.distributed.training import _load_digits
from labkit.models import MLP
from labkit.seed import seed_everything


def allreduce_worker(sizes: Sequence[int], repeats: int = 5, warmup: int = 1,
                     min_seconds: float = 0.0) -> dict[str, list[float]]:
    r"""Time ``dist.all_reduce`` of float32 messages of ``sizes`` bytes (chapter 9).

    For each size: ``warmup`` untimed calls, then ``repeats`` timed ones (more while their total
    is below ``min_seconds``), each after a barrier; returns the median seconds and the bytes this
    worker wrote per call (:func:`~.bytes_written`, the measured counterpart of
    :func:`~.ring_allreduce_bytes`).
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
