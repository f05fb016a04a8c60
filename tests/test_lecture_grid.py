"""Smoke test of benchmarks/lecture_grid.py: the synthetic IDX files go through torchvision's
FashionMNIST unchanged, the grid is the notebook's, and a tiny run reports every run."""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import torch

from labkit.data import expected_files, image_dataset, preload

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "lecture_grid.py"


def _module():
    """The script as a module (registered in sys.modules: its dataclasses need that)."""
    if "lecture_grid" not in sys.modules:
        spec = importlib.util.spec_from_file_location("lecture_grid", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["lecture_grid"] = module
        spec.loader.exec_module(module)
    return sys.modules["lecture_grid"]


def test_synthetic_idx_round_trips_through_torchvision(tmp_path):
    grid = _module()
    written = grid.write_synthetic_fashion_mnist(tmp_path, n_train=600, n_test=100, seed=0)
    assert written["train_images"].shape == (600, 28, 28)
    assert written["test_images"].shape == (100, 28, 28)
    assert written["train_images"].dtype == np.uint8
    assert sorted(np.unique(written["train_labels"]).tolist()) == list(range(10))
    # IDX headers: magic 0x00000803 / 0x00000801, then the dimensions
    images_file, labels_file = expected_files("fashion-mnist", tmp_path)[:2]
    assert struct.unpack(">HBBIII", images_file.read_bytes()[:16]) == (0, 8, 3, 600, 28, 28)
    assert struct.unpack(">HBBI", labels_file.read_bytes()[:8]) == (0, 8, 1, 600)
    # deterministic, and the classes differ (something to learn)
    again = grid.synthetic_images(600, seed=0, stream=0)
    assert np.array_equal(again[0], written["train_images"])
    means = [written["train_images"][written["train_labels"] == c].mean(0) for c in range(10)]
    assert np.abs(means[0] - means[1]).mean() > 5
    # the labs' loading path: torchvision's FashionMNIST + preload
    dataset = image_dataset("fashion-mnist", train=True, root=tmp_path, download=False)
    assert type(dataset).__name__ == "FashionMNIST" and len(dataset) == 600
    X, y = preload(dataset)
    assert X.shape == (600, 1, 28, 28) and X.dtype == torch.float32
    assert torch.equal(X[:, 0], torch.from_numpy(written["train_images"]).float() / 255)
    assert torch.equal(y, torch.from_numpy(written["train_labels"]).long())
    (Xtr, _), (Xte, yte) = grid.load_fashion_mnist(tmp_path, torch.device("cpu"), written)
    assert Xtr.shape == (600, 1, 28, 28) and Xte.shape == (100, 1, 28, 28) and len(yte) == 100


def test_the_grid_is_the_notebooks():
    grid = _module()
    runs = grid.lecture_runs()
    assert len(runs) == 16
    titles = [r.title for r in runs]
    assert titles[0] == "Optimizer-SGD lr-0.1 mt-0 bs-16"
    assert titles[3] == "Optimizer-SGD lr-10 mt-0 bs-64"
    assert titles[8] == "Optimizer-SGD lr-0.01 mt-0.9 bs-64"
    assert titles[-1] == "Optimizer-Adam lr-0.0001 mt-0 bs-64"
    notebook = grid.plan_groups(runs, vectorize=True)
    assert [g.stacked for g in notebook] == [False, True, True, False, True]
    merged = grid.plan_groups(runs, vectorize=True, grouping="merged")
    assert len(merged) == 6 and sorted(len(g.runs) for g in merged) == [1, 1, 1, 1, 5, 7]
    assert all(not g.stacked for g in grid.plan_groups(runs, vectorize=False))


def test_tiny_grid_reports_every_run(tmp_path, capsys):
    grid = _module()
    threads = torch.get_num_threads()
    out = tmp_path / "report.json"
    try:
        report = grid.main([
            "--device", "cpu", "--train-size", "600", "--test-size", "100", "--epochs", "1",
            "--subset", "3,5,6", "--vectorize", "on", "--accuracy-epochs", "1",
            "--accuracy-train-size", "400", "--threads", "1",
            "--data-root", str(tmp_path / "data"), "--out", str(out),
        ])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert [r["number"] for r in report["runs"]] == [3, 5, 6]
    assert [r["k"] for r in report["runs"]] == [1, 2, 2]
    assert report["data"]["train_shape"] == [600, 1, 28, 28]
    for run in report["runs"]:
        assert run["title"] in printed
        assert run["samples"] == 600 and not run["diverged"]
        for key in ("seconds", "samples_per_s", "test_accuracy", "final_loss"):
            assert math.isfinite(run[key]) and run[key] >= 0, (run["title"], key)
    assert [r["number"] for r in report["digits5k"]["runs"]] == [3, 5, 6]
    assert all(math.isfinite(r["test_accuracy"]) for r in report["digits5k"]["runs"])
    assert math.isfinite(report["totals"]["grid_s"]) and report["totals"]["grid_s"] > 0
    assert report["flops"]["training"] == 3 * 1_337_344 * 600 * 3
    assert "whole grid" in printed and "compute limit at 989 TFLOP/s" in printed
    assert "CPU" in printed
    assert json.loads(out.read_text())["runs"][0]["title"] == report["runs"][0]["title"]
    assert len(list((tmp_path / "data" / "FashionMNIST" / "raw").iterdir())) == 4
