"""Smoke test of benchmarks/optim_parity.py: it runs, and its parity figures are tiny."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "optim_parity.py"


def test_parity_script_runs(capsys):
    spec = importlib.util.spec_from_file_location("optim_parity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
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
