"""Every GPU measurement of the course in one run with a deadline (a GPU session's one command).

Usage::

    python benchmarks/gpu_suite.py --out DIR [--budget 450] [--python python3] [--quick]

A GPU is lent for minutes, so this runs the course's GPU measurements in order of value, each as
its own process with a time limit, and skips (and records as skipped) what no longer fits in
``--budget`` seconds. Each step's output goes to ``DIR/NAME.log`` (and its JSON, if it writes
one, to ``DIR/NAME.json``); ``DIR/suite.json`` records every step's command, status and seconds
as soon as it ends, so a run that is killed still leaves what it measured. The steps:

1. ``env``: the GPU (``nvidia-smi``), torch and its CUDA;
2. ``graph-tests``: ``tests/test_graphs.py`` on CUDA (a replayed CUDA graph equals the eager sweep);
3. ``grid-bf16-merged-graph``, ``grid-fp32-merged-graph``: the lecture's grid at full size
   (16 runs x 10 epochs on a synthetic FashionMNIST of the real shape) with every lever:
   ``benchmarks/lecture_grid.py --grouping merged --cuda-graph``, in bf16 and fp32;
4. ``optim-step-time``: ``benchmarks/optim_step_time.py`` (labkit against torch's fused optimizers);
5. ``grid-*-eager-1epoch``: the grid as the notebook trains it (no graph; fp32, bf16, bf16 merged),
   one epoch each: the time per epoch of the students' path;
6. ``labs``: ``python -m coursetools labs-gpu --synthetic`` (Demo & Results and the data-parallel
   lab with fewer epochs, see ``LAB_OVERRIDES``);
7. ``data-parallel-nccl``: ``benchmarks/data_parallel.py`` on NCCL with one process;
8. ``grid-bf16-compiled-1epoch``: ``--compile`` (torch.compile, CUDA graphs of the model only).

Two more steps run only when named with ``--only``: ``grid-fp32-eager`` (the grid as the
notebook trains it, at full size) and ``lab-data-parallel`` (that lab alone).

``--quick`` shrinks every step (small data, one epoch) to try the whole suite on a CPU first.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Demo & Results at 1 epoch (10 epochs of its 16 runs are the grid steps' job) and the
#: data-parallel lab at 1 epoch: what fits a short lease.
LAB_OVERRIDES = ["-p", "demo_results.epochs=1", "-p", "data_parallel.epochs=1"]


def steps(py: str, out: Path, quick: bool) -> list[dict]:
    """The suite: name, command, seconds it is expected to take, its time limit."""
    grid = [py, "benchmarks/lecture_grid.py", "--device", "cuda"]
    if quick:
        grid = [py, "benchmarks/lecture_grid.py", "--device", "auto", "--train-size", "1200",
                "--test-size", "200", "--accuracy-epochs", "0", "--threads", "1"]
    full = [] if quick else ["--epochs", "10"]

    def grid_step(name, *extra, expect, limit):
        return {"name": name, "cmd": [*grid, *extra, "--out", str(out / f"{name}.json")],
                "expect": expect, "limit": limit}

    labs = [py, "-m", "coursetools", "labs-gpu", "--out", str(out / "labs"), "--synthetic",
            *LAB_OVERRIDES]
    if quick:
        labs = [py, "-m", "coursetools", "labs-gpu", "--out", str(out / "labs"), "--synthetic",
                "--synthetic-sizes", "2000", "300", "--device", "cpu", "--epochs", "1",
                "--labs", "first_training"]
    return [
        {"name": "env", "cmd": [py, "-c", ENV_SCRIPT], "expect": 10, "limit": 60},
        {"name": "graph-tests", "cmd": [py, "-m", "pytest", "-q", "-rA", "tests/test_graphs.py"],
         "expect": 30, "limit": 120},
        grid_step("grid-bf16-merged-graph", "--precision", "bf16", "--grouping", "merged",
                  "--cuda-graph", *full, expect=70, limit=200),
        {"name": "optim-step-time",
         "cmd": [py, "benchmarks/optim_step_time.py", "--device", "auto",
                 *(["--hidden", "64", "--steps", "3", "--rounds", "1"] if quick else []),
                 "--out", str(out / "optim-step-time.json")], "expect": 40, "limit": 120},
        grid_step("grid-fp32-merged-graph", "--precision", "fp32", "--grouping", "merged",
                  "--cuda-graph", *full, expect=80, limit=200),
        grid_step("grid-fp32-eager-1epoch", "--precision", "fp32", "--epochs", "1",
                  "--accuracy-epochs", "0", expect=40, limit=120),
        grid_step("grid-bf16-eager-1epoch", "--precision", "bf16", "--epochs", "1",
                  "--accuracy-epochs", "0", expect=40, limit=120),
        grid_step("grid-bf16-merged-eager-1epoch", "--precision", "bf16", "--grouping", "merged",
                  "--epochs", "1", "--accuracy-epochs", "0", expect=35, limit=120),
        {"name": "labs", "cmd": labs, "expect": 120, "limit": 240},
        {"name": "data-parallel-nccl",
         "cmd": [py, "benchmarks/data_parallel.py", "--workers", "1", "--bandwidth-workers", "1",
                 "--backend", "gloo" if quick else "nccl", "--steps", "20" if quick else "60"],
         "expect": 30, "limit": 90},
        grid_step("grid-bf16-compiled-1epoch", "--precision", "bf16", "--compile", "--epochs", "1",
                  "--vectorize", "off", "--accuracy-epochs", "0", expect=90, limit=200),
        # not in the default run (--only NAME): the students' path at full size, one lab alone
        dict(grid_step("grid-fp32-eager", "--precision", "fp32", *full, "--accuracy-epochs", "0",
                       expect=180, limit=240), default=False),
        {"name": "lab-data-parallel", "default": False,
         "cmd": [*labs, "--labs", "data_parallel"], "expect": 40, "limit": 120},
    ]


ENV_SCRIPT = """
import json, subprocess, torch
info = {"torch": torch.__version__, "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(device=p.name, memory_gib=round(p.total_memory / 2**30, 1),
                multiprocessors=p.multi_processor_count, capability=f"{p.major}.{p.minor}")
try:
    info["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,"
        "memory.total,clocks.max.sm", "--format=csv,noheader"], capture_output=True, text=True,
        timeout=20).stdout.strip()
except (OSError, subprocess.SubprocessError) as err:
    info["nvidia_smi"] = f"unavailable: {err}"
print(json.dumps(info, indent=1))
"""


def run_suite(out: Path, budget: float, py: str, quick: bool, only: list[str] | None = None
              ) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    record = {"budget_s": budget, "quick": quick, "steps": []}
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    every = {s["name"]: s for s in steps(py, out, quick)}
    chosen = ([every[name] for name in only] if only else
              [s for s in every.values() if s.get("default", True)])
    for step in chosen:
        left = budget - (time.monotonic() - start)
        entry = {"name": step["name"], "cmd": shlex.join(step["cmd"])}
        if left < step["expect"]:
            entry.update(status="skipped", why=f"{left:.0f} s left, about {step['expect']} s "
                                               "needed")
        else:
            limit = min(step["limit"], left)
            t0 = time.monotonic()
            with open(out / f"{step['name']}.log", "w") as log:
                # its own process group: a timeout also ends its kernels and workers
                proc = subprocess.Popen(step["cmd"], cwd=ROOT, stdout=log,
                                        stderr=subprocess.STDOUT, env=env, start_new_session=True)
                try:
                    code = proc.wait(timeout=limit)
                    entry["status"] = "ok" if code == 0 else f"exit {code}"
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    entry["status"] = f"timed out after {limit:.0f} s"
            entry["seconds"] = round(time.monotonic() - t0, 1)
        record["steps"].append(entry)
        print(f"{entry['name']:<32} {entry['status']:<24} {entry.get('seconds', '')}", flush=True)
        (out / "suite.json").write_text(json.dumps(record, indent=1) + "\n")
    record["total_s"] = round(time.monotonic() - start, 1)
    (out / "suite.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=450, help="seconds for the whole suite")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to try it on a CPU")
    parser.add_argument("--only", default=None,
                        help="comma-separated step names, run in that order (e.g. a rerun)")
    args = parser.parse_args(argv)
    names = [s["name"] for s in steps(args.python, args.out, args.quick)]
    only = args.only.split(",") if args.only else None
    if only and set(only) - set(names):
        parser.error(f"--only: no step {sorted(set(only) - set(names))}; the steps are "
                     f"{', '.join(names)}")
    record = run_suite(args.out, args.budget, args.python, args.quick, only)
    return int(any(s["status"] not in ("ok", "skipped") for s in record["steps"]))


if __name__ == "__main__":
    sys.exit(main())
