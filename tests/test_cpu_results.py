"""labs/README.md's CPU figures are the committed results of the runs they cite.

Each ``benchmarks/train_speed.py --json`` result committed under ``benchmarks/results/*-cpu-*/``
must appear in the section ``### CPU`` as :func:`benchmarks.train_speed.markdown` writes it
(heading with the file's name, the table, the range of each ratio); a result file or a figure
edited alone makes this fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.train_speed import markdown

ROOT = Path(__file__).resolve().parent.parent
RESULTS = sorted((ROOT / "benchmarks" / "results").glob("*-cpu-*/train-speed-*.json"))


@pytest.fixture(scope="module")
def section() -> str:
    text = (ROOT / "labs" / "README.md").read_text()
    start = text.index("### CPU")
    return text[start:text.index("### GPU", start)]


def test_there_are_committed_cpu_results():
    assert len(RESULTS) >= 2, "expected at least the SGD and the Adam run of train_speed.py"
    for path in RESULTS:
        run = json.loads(path.read_text())
        assert run["device"] == "cpu" and run["cpu_count"] == 2, f"{path}: not the 2-core CPU"


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_the_readme_shows_the_result_as_measured(section, path):
    block = markdown(json.loads(path.read_text()), f"{path.parent.name}/{path.name}")
    assert block in section, f"labs/README.md does not show {path.name} as measured:\n{block}"


def test_a_changed_figure_is_caught():
    """The check itself: one speed changed by one sample per second changes the block."""
    run = {"optimizer": "SGD", "threads": 2, "load_average_at_start": [0.1, 0.1, 0.1],
           "rows": [{"batch_size": 16, "samples_per_s": dict.fromkeys(
               ["seed", "DL+tensors", "labkit", "labkit bf16", "sweep x3", "3 runs"], 100.0),
               "labkit/seed": 1.0, "tensors/seed": 1.0, "bf16/fp32": 1.0, "sweep/runs": 1.0}]}
    before = markdown(run, "x/y.json")
    run["rows"][0]["samples_per_s"]["labkit"] = 101.0
    assert markdown(run, "x/y.json") != before and "| 16 | 100 | 100 | 101 |" in markdown(
        run, "x/y.json")
