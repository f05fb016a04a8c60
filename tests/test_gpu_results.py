"""labs/README.md's GPU figures are the committed results of the GPU run they cite.

Every figure of the section ``### GPU`` is recomputed here from
``benchmarks/results/2026-12-04-nvidia-h200/`` and must appear in the section as written; a result
file or a sentence edited alone makes this fail."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "2026-12-04-nvidia-h200"
GRIDS = [("grid-fp32-eager-1epoch", "the notebook's stacks, eager", "fp32"),
         ("grid-bf16-eager-1epoch", "the notebook's stacks, eager", "bf16"),
         ("grid-bf16-merged-eager-1epoch", "merged stacks, eager", "bf16"),
         ("grid-fp32-merged-graph", "merged stacks, CUDA graph", "fp32"),
         ("grid-bf16-merged-graph", "merged stacks, CUDA graph", "bf16")]


@pytest.fixture(scope="module")
def section() -> str:
    text = (ROOT / "labs" / "README.md").read_text()
    start = text.index("### GPU\n")
    return " ".join(text[start:text.index("\n## ", start)].split())  # sentences span lines


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def test_the_results_are_from_the_gpu_named(section):
    env = load("env.json")
    assert env["device"] == "NVIDIA H200" and env["cuda_available"]
    assert f"One {env['device']}" in section and f"torch {env['torch']}" in section
    for name, _, _ in GRIDS:
        assert load(f"{name}.json")["device_name"] == env["device"]
    steps = {s["name"]: s["status"] for s in load("suite.json")["steps"]}
    assert steps["graph-tests"] == "ok" and steps["grid-bf16-compiled-1epoch"] == "skipped"
    assert steps["labs"] != "ok" and "data-parallel lab, which failed" in section


def test_grid_table_rows_are_the_results(section):
    for name, how, precision in GRIDS:
        r = load(f"{name}.json")
        t, epochs = r["totals"], r["config"]["epochs"]
        assert r["config"]["precision"] == precision
        assert r["config"]["cuda_graph"] == ("graph" in name)
        assert r["config"]["train_size"] == 60_000 and r["config"]["test_size"] == 10_000
        row = (f"| {how} | {precision} | {epochs} | {t['grid_s']:.2f} s | "
               f"{t['grid_s'] / epochs:.2f} s | {t['samples_per_s']:,.0f} |")
        assert row in section, row


def test_grid_sentences_are_the_results(section):
    graph = load("grid-bf16-merged-graph.json")
    fp32_graph = load("grid-fp32-merged-graph.json")
    eager = load("grid-fp32-eager-1epoch.json")["totals"]["grid_s"]
    merged_eager = load("grid-bf16-merged-eager-1epoch.json")["totals"]["grid_s"]
    groups = {g["name"]: g["seconds"] for g in fp32_graph["groups"]}
    bs16 = groups["SGD bs 16"] + groups["Adam bs 16"]
    assert f"alone need {bs16:.2f} s" in section
    for opt in ("SGD", "Adam"):  # 37,500 steps an epoch at batch 16, 10 epochs
        seconds = groups[f"{opt} bs 16"]
        assert f"{opt} {seconds:.2f} s, {seconds / 375_000 * 1e6:.0f} µs" in section
    assert f"about {10 * eager:.0f} s" in section
    per_epoch = graph["totals"]["grid_s"] / 10
    assert f"{merged_eager / per_epoch:.1f}× faster" in section
    assert f"{eager / (fp32_graph['totals']['grid_s'] / 10):.1f}× faster" in section
    assert f"{graph['limits'][0]['ratio']:.0f}× the compute limit" in section
    assert f"({graph['totals']['achieved_tflops']:.2f} TFLOP/s achieved)" in section
    for check in graph["graph_check"].values():
        assert check["max_loss_difference"] == 0.0 and check["weights_equal"]
        assert f"over {check['losses']} losses" in section


def test_step_time_rows_are_the_results(section):
    for table in load("optim-step-time.json")["tables"]:
        assert f"({table['parameters']:,} parameters)" in section
        block = section[section.index(f"({table['parameters']:,} parameters)"):]
        block = block.split("| MLP ", 1)[0].split(" labkit's step", 1)[0]  # this table alone
        for name, row in table["rows"].items():
            ms = row["ms_per_step"]
            cells = [ms.get(k) for k in ("labkit", "labkit foreach", "torch for-loop",
                                         "torch foreach", "torch fused")]
            text = " | ".join("–" if v is None else f"{v * 1000:.0f}" for v in cells)
            assert f"| {name} | {text} |" in block, (name, text)


def test_lab_and_nccl_figures_are_the_results(section):
    labs = load("labs-timings.json")["labs"]
    assert f"`first_training` {labs['first_training']['seconds']:.1f} s" in section
    assert f"`demo_results` {labs['demo_results']['seconds']:.1f} s" in section
    assert labs["data_parallel"]["status"] == "failed"
    grid = re.search(r"whole grid\s+([\d.]+) s", labs["demo_results"]["grid"][0]).group(1)
    assert f"its grid {grid} s" in section
    nccl = (RESULTS / "data-parallel-nccl.txt").read_text()
    times = [float(line.split()[1]) for line in nccl.splitlines()
             if re.match(r"\s+\d+\s+[\d.]+$", line)]
    assert len(times) == 5 and f"{min(times):.3f}–{max(times):.3f} ms" in section
