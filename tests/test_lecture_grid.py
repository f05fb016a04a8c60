"""Smoke test of benchmarks/lecture_grid.py: the synthetic IDX files go through torchvision's
FashionMNIST unchanged, the grid is the notebook's, and a tiny run reports every run."""

from __future__ import annotations

import json
import math

import torch

from benchmarks import lecture_grid as grid
from labkit.data import write_synthetic_images


def test_synthetic_fashion_mnist_loads_through_the_labs_path(tmp_path):
    written = write_synthetic_images("fashion-mnist", tmp_path, n_train=600, n_test=100)
    (Xtr, _), (Xte, yte) = grid.load_fashion_mnist(tmp_path, torch.device("cpu"), written)
    assert Xtr.shape == (600, 1, 28, 28) and Xte.shape == (100, 1, 28, 28) and len(yte) == 100
    written["test_labels"][0] = (written["test_labels"][0] + 1) % 10  # what was read is checked
    try:
        grid.load_fashion_mnist(tmp_path, torch.device("cpu"), written)
    except RuntimeError as err:
        assert "did not round-trip" in str(err)
    else:
        raise AssertionError("a changed label went unnoticed")


def test_the_grid_is_the_notebooks():
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


def test_cuda_graph_lever_checks_itself_first(tmp_path, capsys):
    """--cuda-graph: every run through sweep_mlp(cuda_graph=True), after a check against the
    eager sweep (on a CPU the captured steps run eagerly, so the check must find no difference)."""
    threads = torch.get_num_threads()
    try:
        report = grid.main(["--device", "cpu", "--train-size", "300", "--test-size", "50",
                            "--epochs", "1", "--subset", "1,5", "--cuda-graph",
                            "--accuracy-epochs", "0", "--threads", "1", "--no-warmup"])
    finally:
        torch.set_num_threads(threads)
    assert report["config"]["cuda_graph"] is True
    for check in report["graph_check"].values():
        assert check["max_loss_difference"] == 0.0 and check["weights_equal"]
        assert check["losses"] == 2 * 2 * 5  # 2 runs x 2 epochs x 5 batches of 64 in 300
    assert [r["number"] for r in report["runs"]] == [1, 5]
    assert all(r["samples"] == 300 and not r["diverged"] for r in report["runs"])
    assert "CUDA graph vs eager (SGD stack" in capsys.readouterr().out
