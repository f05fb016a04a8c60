"""Data-parallel SGD (chapter 9): scaling efficiency and all-reduce bandwidth against the model.

Usage: ``.venv/bin/python benchmarks/data_parallel.py [--workers 1 2 4] [--batch-per-worker 32]
[--steps 60] [--hidden 512] [--sizes-mb 0.001 0.1 1 16 100] [--repeats 5] [--backend auto]``

Two measurements, each in freshly launched processes (``labkit.distributed.launch``; gloo on a
CPU, NCCL when there is a GPU per process):

* **Scaling efficiency.** ``train_data_parallel`` on the labs' MLP (784-512-512-10), the
  hand-written all-reduce (one per parameter, after backward) and DDP (buckets, overlap), with
  ``--batch-per-worker`` examples per worker and ``--steps`` steps, for each P of ``--workers``.
  Samples per second = steps x P x b / time of the slowest worker; the efficiency is that rate
  divided by P times the rate of one process (1 for perfect scaling). On a CPU with fewer cores
  than processes it cannot exceed cores / P.
* **All-reduce bandwidth.** ``allreduce_worker`` times ``dist.all_reduce`` of float32 messages of
  ``--sizes-mb`` on the largest P of ``--workers`` (at least 2); ``fit_ring_model`` fits the
  ring model T(n) = 2(P-1) alpha + 2 (P-1)/P n / beta; printed per size: the measured time, the
  model's, the bandwidth seen by each worker (2 (P-1)/P n / T) and, on gloo, the bytes each
  worker wrote divided by the model's 2 (P-1)/P n.

Each process uses one torch thread.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from labkit.distributed import (
    allreduce_worker,
    choose_backend,
    digits_tensors,
    fit_ring_model,
    launch,
    ring_allreduce_bytes,
    ring_allreduce_time,
    train_worker,
)


def scaling(workers: list[int], batch_per_worker: int, steps: int, hidden: int, backend: str,
            timeout: float) -> None:
    data = digits_tensors()
    config = dict(mode="allreduce", batch_per_worker=batch_per_worker, steps=steps, hidden=hidden,
                  lr=0.05, evaluate=False)
    print(f"scaling: MLP hidden {hidden}, b = {batch_per_worker} per worker, {steps} steps, "
          f"{os.cpu_count()} CPU cores, backend {choose_backend(max(workers), backend)}")
    print("   P  mode          samples/s  efficiency")
    base_rate = None
    for P in workers:
        configs = [dict(config, mode="allreduce")] + ([dict(config, mode="ddp")] if P > 1 else [])
        results = launch(train_worker, P, configs, data=data, backend=backend, timeout=timeout)
        for i, cfg in enumerate(configs):
            seconds = max(r[i]["seconds"] for r in results)
            rate = steps * P * batch_per_worker / seconds
            if base_rate is None:
                base_rate = rate
            name = {"allreduce": "hand-written", "ddp": "DDP"}[cfg["mode"]] if P > 1 else "alone"
            print(f"{P:4d}  {name:12s} {rate:10,.0f}  {rate / (P * base_rate):10.2f}")


def bandwidth(world: int, sizes_mb: list[float], repeats: int, backend: str,
              timeout: float) -> None:
    sizes = [max(4, int(mb * 2**20) // 4 * 4) for mb in sizes_mb]
    results = launch(allreduce_worker, world, sizes, repeats=repeats, backend=backend,
                     timeout=timeout)
    seconds = np.max([r["seconds"] for r in results], axis=0)
    if world == 1:  # nothing moves between processes: what is left is the call's fixed cost
        print(f"\nall-reduce on P = 1 ({choose_backend(world, backend)}): no bytes leave the "
              "process; the time is the collective's fixed cost (the alpha of the model)")
        print("      bytes   measured ms")
        for n, t in zip(sizes, seconds):
            print(f"{n:11d}  {1e3 * t:12.4f}")
        return
    latency, beta = fit_ring_model(sizes, seconds, world)
    model = ring_allreduce_time(np.array(sizes, dtype=float), world, latency, beta)
    print(f"\nall-reduce on P = {world} ({choose_backend(world, backend)}): fitted alpha = "
          f"{1e6 * latency:.1f} us per step, beta = {beta / 1e9:.3f} GB/s")
    print("      bytes   measured ms   model ms   GB/s per worker   bytes sent / model")
    for n, t, m, sent in zip(sizes, seconds, model, results[0]["sent"]):
        ratio = sent / ring_allreduce_bytes(n, world) if np.isfinite(sent) else float("nan")
        print(f"{n:11d}  {1e3 * t:12.3f}  {1e3 * m:9.3f}  "
              f"{ring_allreduce_bytes(n, world) / t / 1e9:16.3f}  {ratio:18.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch-per-worker", type=int, default=32)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[0.001, 0.1, 1, 16, 100])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--bandwidth-workers", type=int, default=None,
                        help="P of the all-reduce timing (default: the largest of --workers, "
                             "at least 2; 1 on a machine with one GPU and NCCL)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    workers = sorted(set(args.workers))
    if workers[0] != 1:
        workers = [1] + workers  # the efficiency is relative to one process
    scaling(workers, args.batch_per_worker, args.steps, args.hidden, args.backend, args.timeout)
    world = args.bandwidth_workers or max(2, workers[-1])
    bandwidth(world, args.sizes_mb, args.repeats, args.backend, args.timeout)


if __name__ == "__main__":
    main()
