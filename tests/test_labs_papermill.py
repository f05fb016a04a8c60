"""The labs run with other parameters, as papermill passes them (``-p name value``).

The notebooks' defaults are executed by ``tests/test_notebooks.py``; here they run with the
settings a student or the GPU command would pass, and with a dataset that is not there, which must
stop with the clear ``DatasetNotAvailableError`` and not hang on a download.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest
from conftest import NOTEBOOK_TIMES, ROOT

LABS = ROOT / "labs"

pytestmark = pytest.mark.notebooks


def _run(name: str, tmp_path: Path, **parameters) -> str:
    """Execute ``labs/<name>.ipynb`` with ``parameters``; return all its text output."""
    import time

    out = tmp_path / f"{name}.ipynb"
    start = time.perf_counter()
    try:
        papermill.execute_notebook(str(LABS / f"{name}.ipynb"), str(out), parameters=parameters,
                                   kernel_name="python3", cwd=str(LABS), progress_bar=False)
    finally:
        NOTEBOOK_TIMES[f"labs/{name}.ipynb (papermill {sorted(parameters)})"] = (
            time.perf_counter() - start)
    nb = nbformat.read(out, as_version=4)
    return "".join("".join(o.get("text", "")) for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))


def test_first_training_with_adam_and_large_batches(tmp_path):
    text = _run("first_training", tmp_path, optimizer_name="Adam", learning_rate=0.001,
                momentum=0.0, epochs=1, batch_size=256, figure_dir=str(tmp_path / "figures"))
    assert "Optimizer-Adam lr-0.001 mt-0 bs-256" in text
    assert "16 mini-batches of 256 per epoch" in text
    assert "Accuracy:" in text and "Avg loss:" in text
    assert "diverged: False" in text
    assert "same weights after one epoch: True" in text
    assert (tmp_path / "figures" / "Optimizer-Adam lr-0.001 mt-0 bs-256.png").stat().st_size > 0


def test_first_training_in_the_lectures_setting_without_shuffling(tmp_path):
    """The lecture's setting (lr 1e-3, momentum 0.5, batches of 16, no shuffling; one epoch of
    digits5k here): the first mini-batch is the first 16 images, and labkit.fast, given the stored
    order too, still reproduces the DataLoader loop bit for bit."""
    import torch
    import torch.nn.functional as F

    from labkit.data import image_dataset, preload
    from labkit.models import MLP
    from labkit.seed import seed_everything

    text = _run("first_training", tmp_path, shuffle=False, learning_rate=0.001, momentum=0.5,
                batch_size=16, epochs=1, figure_dir=str(tmp_path / "figures"))
    assert "250 mini-batches of 16 per epoch, in the stored order (no shuffling)" in text
    assert "Optimizer-SGD lr-0.001 mt-0.5 bs-16" in text
    assert "batch order: the stored order" in text
    assert "same 250 mini-batch losses: True" in text
    assert "same weights after one epoch: True" in text
    # the first printed loss is the seed-0 network's loss on images 0 to 15, in the stored order
    seed_everything(0)
    model = MLP()
    X, y = preload(image_dataset("digits5k", train=True))
    with torch.no_grad():
        first = F.cross_entropy(model(X[:16]), y[:16]).item()
    assert f"loss: {first:>7f}  [   16/ 4000]" in text


def test_first_training_shows_a_diverging_run_without_crashing(tmp_path):
    text = _run("first_training", tmp_path, learning_rate=1e4, epochs=2, batch_size=256,
                figure_dir=str(tmp_path / "figures"))
    assert "diverged: True" in text
    assert "the run diverged and was stopped" in text


def test_missing_fashion_mnist_stops_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA_ROOT", str(tmp_path / "data"))
    with pytest.raises(papermill.PapermillExecutionError) as info:
        _run("first_training", tmp_path, dataset="fashion-mnist", download=False,
             figure_dir=str(tmp_path / "figures"))
    message = str(info.value)
    assert "DatasetNotAvailableError" in message
    assert str(tmp_path / "data" / "FashionMNIST" / "raw") in message
    assert "LABKIT_DATA_ROOT" in message


def test_demo_results_vectorised_in_bf16_and_small(tmp_path):
    """The grid as a GPU runs it (batched sweeps), in bf16, on fewer settings: every figure is
    still saved, the run at lr 10 is still shown diverging, and the batch-size views and the
    momentum runs' effective learning rates still come out."""
    figures = tmp_path / "figures"
    text = _run("demo_results", tmp_path, epochs=1, vectorize=True, precision="bf16",
                batch_sizes=[64, 256], adam_lrs=[0.01, 0.0001], compare_bf16=False,
                verdict_seeds=[1], figure_dir=str(figures))
    assert "vectorised sweeps: True" in text
    assert "lr 10 diverges" in text
    assert "whole grid" in text
    assert "SGD at lr 10 diverges" in text and "of 2 seeds" in text  # seed 0 and fresh seed 1
    assert "Given the same 63 steps" in text  # one epoch of batches of 64
    assert "effective learning rate lr/(1 - mt): 0.01 (mt 0), 0.02 (mt 0.5), 0.1 (mt 0.9)" in text
    # the five sweeps, and the equal-steps/scaled-lr figure of each batch-size sweep
    assert len(list(figures.glob("*.png"))) == 7


def test_optimizer_benchmark_on_one_workload_with_five_trials(tmp_path):
    """The benchmark lab on the logistic workload alone, with AlgoPerf's 5 trials per study and
    the budgets 1, 3, 5: every table, score and held-out line still comes out."""
    text = _run("optimizer_benchmark", tmp_path, only=["logistic"], trials=5, studies=1,
                budgets=[1, 3, 5])
    assert "external tuning, steps to target" in text and "self tuning, steps to" in text
    assert "k=1, k=3, k=5" in text
    assert "base results lost to the held-out rule" in text
