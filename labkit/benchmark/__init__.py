"""Benchmarking optimisers the way MLCommons' AlgoPerf does (the lab
``labs/optimizer_benchmark.ipynb``): time to a validation target on fixed workloads, under
external tuning or self-tuning, scored with performance profiles.

* :mod:`labkit.benchmark.workloads`, **the workloads**: what is trained, on which data, to which
  validation target, with a held-out variant each.
* :mod:`labkit.benchmark.runner`, **the rules**: trials, external and self-tuning, the held-out
  rule, the target-setting recipe.
* :mod:`labkit.benchmark.scoring`, **the score**: time to target per workload from the trials of
  each study, the held-out rule, performance ratios, performance profiles and the benchmark score
  (the integral of the profile up to :math:`r_{\\max} = 4`), as the official AlgoPerf code
  computes them.
"""

from labkit.benchmark.scoring import (
    benchmark_scores,
    held_out_rule,
    performance_profiles,
    performance_ratios,
    time_to_target_per_workload,
)

__all__ = [
    "benchmark_scores",
    "held_out_rule",
    "performance_profiles",
    "performance_ratios",
    "time_to_target_per_workload",
]
