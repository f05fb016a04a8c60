"""The launcher: start P workers, join them to a process group, collect what they return or
say which failed and why (chapter 9)."""

from __future__ import annotations

import argparse
import datetime
import json
import logging
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

import torch
import torch.distributed as dist


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
    :func:`~.rank_and_world` and :func:`~.worker_device` say who and where it is. Each process uses
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
    if not module:  # a function of the package: labkit.distributed's public names
        module, name = "labkit.distributed", spec
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
