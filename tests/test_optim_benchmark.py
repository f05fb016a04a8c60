"""Smoke test of benchmarks/optim_parity.py: it runs, and its parity figures are tiny."""

from __future__ import annotations

import torch

from benchmarks import optim_parity as module


def test_parity_script_runs(capsys):
    threads = torch.get_num_threads()
    try:
        worst = module.parity_table(steps=3)
        ratios = module.step_times(repeats=2, hidden=16)
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "LBFGS" in out and "Adam" in out and "labkit / torch for-loop" in out
    assert all(name in out for name in ("Lion", "Adafactor", "Muon", "SGDScheduleFree",
                                        "AdamWScheduleFree"))
    assert worst["float64"] <= 1e-12 and worst["round trip"] <= 1e-12
    assert worst["float32"] <= 1e-5
    assert set(ratios) == {"SGD(momentum=0.9)", "Adam"}


def test_step_time_script_times_every_implementation(capsys):
    from benchmarks import optim_step_time

    threads = torch.get_num_threads()
    try:
        report = optim_step_time.main(["--device", "cpu", "--hidden", "16", "--steps", "2",
                                       "--rounds", "1", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    rows = report["tables"][0]["rows"]
    assert set(rows) == {"SGD(momentum=0.9)", "Adam", "AdamW(weight_decay=0.01)", "Adagrad",
                         "RMSprop"}
    for row in rows.values():
        assert "labkit" in row["ms_per_step"] and row["ms_per_step"]["labkit"] > 0
        assert set(row["labkit_over"]) | set(row["refused"]) | {"labkit"} >= {"torch for-loop"}
    assert "labkit/this" in capsys.readouterr().out
