"""``python -m coursetools labs-gpu``: every lab with papermill at a chosen size, timings kept.

On this CPU machine it runs a small case of the same path: the first lab, one epoch, on a
synthetic FashionMNIST (3,000 training images of 28x28) read through torchvision's loader."""

from __future__ import annotations

import json

import nbformat
import pytest

from coursetools import labs_gpu


def test_each_lab_gets_only_the_parameters_it_has():
    settings = {"device": "cuda", "dataset": "fashion-mnist", "epochs": 10, "precision": "bf16"}
    first = labs_gpu.lab_parameters("first_training", settings, {})
    assert first == {"device": "cuda", "dataset": "fashion-mnist", "epochs": 10}
    demo = labs_gpu.lab_parameters("demo_results", settings, {"demo_results": {"epochs": 2}})
    assert demo["epochs"] == 2 and demo["precision"] == "bf16" and demo["vectorize"] is True
    dp = labs_gpu.lab_parameters("data_parallel", settings, {})
    assert "device" not in dp and "dataset" not in dp and dp["epochs"] == 10
    with pytest.raises(ValueError, match="has no such parameter"):
        labs_gpu.lab_parameters("first_training", settings, {"first_training": {"epoch": 1}})


def test_overrides_are_parsed_or_refused_clearly():
    assert labs_gpu.parse_override("demo_results.epochs=2") == ("demo_results", "epochs", 2)
    assert labs_gpu.parse_override("data_parallel.workers_list=[1]")[2] == [1]
    for bad in ("epochs=2", "nolab.epochs=2"):
        with pytest.raises(Exception, match="lab"):
            labs_gpu.parse_override(bad)


def test_first_lab_on_synthetic_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    status = labs_gpu.main(["--out", str(tmp_path), "--device", "cpu", "--epochs", "1",
                            "--synthetic", "--synthetic-sizes", "3000", "500",
                            "--labs", "first_training"])
    assert status == 0, capsys.readouterr().out
    report = json.loads((tmp_path / "timings.json").read_text())
    entry = report["labs"]["first_training"]
    assert entry["status"] == "ok" and entry["seconds"] > 0
    assert entry["parameters"]["dataset"] == "fashion-mnist" and report["synthetic_data"]
    assert "no CUDA device" in report["device"]
    text = (tmp_path / "timings.txt").read_text()
    assert "synthetic: 3,000 + 500 images" in text and "first_training" in text
    nb = nbformat.read(tmp_path / "first_training.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert " 3000/ 3000]" in printed or "/ 3000]" in printed  # the lecture's progress line
    assert any((tmp_path / "figures").iterdir())
