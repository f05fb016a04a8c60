"""Set the validation targets of the benchmark's workloads (``labkit.benchmark``), AlgoPerf's way.

Usage: ``.venv/bin/python benchmarks/benchmark_targets.py [--trials 8] [--repeats 5] [--only NAME]``

For every base workload the four target-setting baselines (AdamW, NAdamW, Nesterov, heavy ball;
:func:`labkit.benchmark.runner.algoperf_baselines`) are tuned with ``--trials`` quasi-random
points each, every run on 3/4 of the step budget, and the best one re-run on ``--repeats``
seeds; the target is the median of their
best validation error rates (:func:`labkit.benchmark.runner.set_target`). For a held-out variant
only two baselines are tuned, as AlgoPerf does for its randomised workloads: NAdamW and the best
of the other three on the base workload. Writes ``benchmarks/results/benchmark_targets.json``;
the targets are then copied into ``labkit.benchmark.workloads.TARGETS`` and fixed (a test checks
they agree). One thread, float32; about a minute on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from labkit.benchmark.runner import algoperf_baselines, set_target
from labkit.benchmark.workloads import TARGETS_FILE, workloads

TRIALS, REPEATS, SEED, FRACTION = 8, 5, 0, 0.75


def describe(workload) -> dict:
    """What the target depends on besides the model: a test compares it with the workload."""
    return {"step_budget": workload.step_budget, "eval_every": workload.eval_every,
            "batch_size": workload.batch_size, "n_train": len(workload.train[0]),
            "n_val": len(workload.val[0])}


def setting_record(setting, trials: int, repeats: int, workload) -> dict:
    return {"workload": describe(workload), "target": setting.target, "baseline": setting.baseline,
            "hparams": setting.hparams, "tuning_best": setting.tuning_best,
            "repeats": setting.repeats, "trials": trials, "n_repeats": repeats, "seed": SEED,
            "budget_fraction": FRACTION}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--only", default=None, help="one base workload's name")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = json.loads(TARGETS_FILE.read_text()) if TARGETS_FILE.exists() else {}
    for w in workloads(with_targets=False):
        if args.only and w.name != args.only:
            continue
        start = time.perf_counter()
        base = set_target(w, algoperf_baselines(), args.trials, args.repeats, SEED, FRACTION)
        results[w.name] = setting_record(base, args.trials, args.repeats, w)
        others = {k: v for k, v in base.tuning_best.items() if k != "NAdamW"}
        second = min(others, key=others.get)
        held = set_target(w.held_out, algoperf_baselines(["NAdamW", second]), args.trials,
                          args.repeats, SEED, FRACTION)
        results[w.held_out.name] = setting_record(held, args.trials, args.repeats, w.held_out)
        print(f"{w.name}: target {base.target:.4g} ({base.baseline}); {w.held_out.name}: "
              f"{held.target:.4g} ({held.baseline}); {time.perf_counter() - start:.1f} s",
              flush=True)
    TARGETS_FILE.parent.mkdir(parents=True, exist_ok=True)
    TARGETS_FILE.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
