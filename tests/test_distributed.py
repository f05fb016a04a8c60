"""labkit.distributed: data-parallel SGD on torch.distributed (chapter 9).

Two processes on gloo (CPU): P workers with batch b equal one process with batch P*b in float64,
DDP equals the hand-written all-reduce, gloo sends the bytes of the ring model, and a worker that
raises or hangs surfaces as an exception in the caller within the timeouts.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from labkit.distributed import (
    LaunchTimeout,
    WorkerError,
    allreduce_worker,
    bytes_written,
    choose_backend,
    digits_tensors,
    fault_worker,
    fit_ring_model,
    launch,
    linear_scaling_lr,
    ring_allreduce_bytes,
    ring_allreduce_time,
    train_data_parallel,
    train_worker,
)

CONFIG = dict(dtype="float64", model="mlp", hidden=32, batch_per_worker=8, steps=12, lr=0.2,
              evaluate=False, return_weights=True, seed=3)


@pytest.fixture(scope="module")
def data():
    X, y, X_test, y_test = digits_tensors()
    return X[:512], y[:512], X_test[:64], y_test[:64]


@pytest.fixture(scope="module")
def two_workers(data):
    """One launch of two workers: the hand-written all-reduce, DDP, and local SGD averaging the
    weights after every step (H = 1), same data and seed."""
    configs = [dict(CONFIG, mode="allreduce"), dict(CONFIG, mode="ddp"),
               dict(CONFIG, mode="local_sgd", local_steps=1)]
    return launch(train_worker, 2, configs, data=data, timeout=120, collective_timeout=30)


def test_two_workers_equal_one_process_with_twice_the_batch(data, two_workers):
    reference = train_data_parallel(world_size=2, data=data, **CONFIG)
    assert reference["global_batch"] == 16
    for rank, (handwritten, *_) in enumerate(two_workers):
        assert handwritten["rank"] == rank and handwritten["global_batch"] == 16
        assert handwritten["weights"].dtype == torch.float64
        diff = (handwritten["weights"] - reference["weights"]).abs().max().item()
        assert diff < 1e-12, f"rank {rank}: max |w_P - w_1| = {diff:.3g}"
    # Each worker saw its own half of each global batch, so its losses differ from the other's.
    assert two_workers[0][0]["losses"] != two_workers[1][0]["losses"]
    mean_first = (two_workers[0][0]["losses"][0] + two_workers[1][0]["losses"][0]) / 2
    assert mean_first == pytest.approx(reference["losses"][0], abs=1e-12)


def test_local_sgd_averages_the_weights(two_workers):
    """With plain SGD, averaging the weights after every step is averaging the gradients:
    (w - a g_1 + w - a g_2) / 2 = w - a (g_1 + g_2) / 2. A sum instead of a mean fails this."""
    for handwritten, _, local in two_workers:
        assert local["mode"] == "local_sgd" and local["local_steps"] == 1
        diff = (local["weights"] - handwritten["weights"]).abs().max().item()
        assert diff < 1e-12, f"max |w_local - w_allreduce| = {diff:.3g}"


def test_ddp_equals_the_handwritten_all_reduce(two_workers):
    for handwritten, ddp, _ in two_workers:
        assert ddp["mode"] == "ddp"
        diff = (ddp["weights"] - handwritten["weights"]).abs().max().item()
        assert diff < 1e-12, f"max |w_DDP - w_hand| = {diff:.3g}"
        assert ddp["bytes_model"] == pytest.approx(handwritten["bytes_model"])


def test_a_worker_that_raises_surfaces_in_the_caller():
    start = time.monotonic()
    with pytest.raises(WorkerError, match="failed on purpose") as info:
        launch(fault_worker, 2, "raise", timeout=60, collective_timeout=20)
    assert info.value.rank == 1
    assert "worker 1 of 2" in str(info.value)
    assert time.monotonic() - start < 60


def test_a_stuck_worker_hits_the_collective_timeout():
    """Worker 1 sleeps instead of joining the all-reduce: worker 0 times out after 2 s."""
    start = time.monotonic()
    with pytest.raises(WorkerError, match="(?i)timed out"):
        launch(fault_worker, 2, "hang", seconds=120, timeout=60, collective_timeout=2)
    assert time.monotonic() - start < 60


def test_workers_stuck_outside_collectives_hit_the_launch_timeout():
    start = time.monotonic()
    with pytest.raises(LaunchTimeout, match="did not finish within 3 s"):
        launch(fault_worker, 2, "sleep", seconds=120, timeout=3, collective_timeout=30)
    assert time.monotonic() - start < 20


@pytest.mark.skipif(bytes_written() is None, reason="needs Linux's /proc/self/io")
def test_gloo_sends_the_bytes_of_the_ring_model():
    sizes = [4096, 1 << 20]
    results = launch(allreduce_worker, 2, sizes, repeats=2, timeout=60)
    for result in results:
        assert result["bytes"] == [float(s) for s in sizes]
        assert all(t > 0 for t in result["seconds"])
        # 2 (P-1)/P n = n for P = 2, plus gloo's headers
        assert result["sent"][1] == pytest.approx(ring_allreduce_bytes(1 << 20, 2), rel=0.01)


def test_ring_model():
    assert ring_allreduce_bytes(1000, 1) == 0
    assert ring_allreduce_bytes(1000, 2) == 1000
    assert ring_allreduce_bytes(1000, 8) == pytest.approx(1750)
    n = np.logspace(3, 8, 12)
    t = ring_allreduce_time(n, 4, latency=2e-5, bandwidth=3e9)
    assert t[0] == pytest.approx(6 * 2e-5 + 1.5 * 1e3 / 3e9)
    latency, bandwidth = fit_ring_model(n, t, 4)
    assert latency == pytest.approx(2e-5, rel=1e-6)
    assert bandwidth == pytest.approx(3e9, rel=1e-6)
    with pytest.raises(ValueError, match="world_size"):
        ring_allreduce_bytes(10, 0)
    with pytest.raises(ValueError, match="bandwidth"):
        ring_allreduce_time(10, 2, 1e-5, 0)


def test_linear_scaling_rule_with_warmup():
    assert linear_scaling_lr(0, 0.1, 4, 10) == pytest.approx(0.1)
    assert linear_scaling_lr(5, 0.1, 4, 10) == pytest.approx(0.25)
    assert linear_scaling_lr(50, 0.1, 4, 10) == pytest.approx(0.4)
    assert linear_scaling_lr(0, 0.1, 4, 0) == pytest.approx(0.4)


def test_backend_choice_and_bad_arguments(data):
    expected = "nccl" if torch.cuda.device_count() >= 2 else "gloo"
    assert choose_backend(2) == expected
    assert choose_backend(1, "gloo") == "gloo"
    with pytest.raises(ValueError, match="backend"):
        choose_backend(2, "mpi")
    with pytest.raises(ValueError, match="world_size"):
        launch(fault_worker, 0)
    with pytest.raises(ValueError, match="mode"):
        train_data_parallel(mode="ring", data=data)
    with pytest.raises(ValueError, match="needs mode='ddp'"):
        train_data_parallel(hook="fp16", data=data)
    with pytest.raises(ValueError, match="process group"):
        train_data_parallel(mode="ddp", data=data)


def test_torchrun_as_a_subprocess_gives_the_same_results():
    results = launch(allreduce_worker, 2, [4096], repeats=1, launcher="torchrun", timeout=180)
    assert [r["bytes"] for r in results] == [[4096.0], [4096.0]]


def test_gloo_workers_see_no_gpu():
    """A gloo worker trains on the CPU and is shown no GPU (on a machine with one GPU, torch's
    PowerSGD hook otherwise calls torch.cuda.synchronize on a CPU bucket and fails)."""
    seen = launch(os.getenv, 2, "CUDA_VISIBLE_DEVICES", backend="gloo", timeout=60,
                  collective_timeout=20)
    assert seen == ["", ""]
