"""The class leaderboard (assignment ``08_leaderboard``): one class graded in one call, attacks too.

Every file ``tests/fixtures/leaderboard/NAME.py`` is one submission's code, put into a notebook of
its own (one cell), and the master notebook itself joins them as ``master_solution``. One call of
the instructor's command, ``python -m coursetools leaderboard``, grades the folder with a budget
of :data:`BUDGET` seconds per workload and ``--jobs 2`` (times are then noisy: the tests compare
submissions that reach the targets with those that never do, never two honest ones). Each
fixture's docstring names the status it must get (``expect-status:``), whether its times must
be finite (and its score positive) or infinite (score 0) (``expect-times:``), and the marker its
attack prints once it has run (``marker:``), which its test finds in the log.
"""

from __future__ import annotations

import csv
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import NOTEBOOK_TIMES, ROOT

from coursetools.grading import isolation, leaderboard

FIXTURES = sorted((ROOT / "tests" / "fixtures" / "leaderboard").glob("*.py"))
MASTER = ROOT / "labs" / "assignments" / "08_leaderboard.ipynb"
BUDGET = 4.0
ROUTES = ("labkit", "mlxtend", "sklearn", "file", "grader")
READS = ROOT / "tests" / "fixtures" / "leaderboard" / "hostile_reads_validation.py"


def fields(fixture: Path) -> dict[str, str]:
    """The ``key: value`` lines of a fixture's docstring."""
    doc = fixture.read_text().split('"""')[1]
    return {k: v.strip() for k, v in re.findall(r"^([\w-]+):\s*(.+)$", doc, flags=re.M)}


def as_notebook(code: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"otter": {"assignment_name": leaderboard.ASSIGNMENT}}
    nb.cells = [nbformat.v4.new_code_cell(code)]
    return nb


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> dict:
    """The class graded with ``python -m coursetools leaderboard``: its CSV rows by student."""
    assert isolation.sandbox_problem() is None, isolation.sandbox_problem()
    base = tmp_path_factory.mktemp("leaderboard")
    folder, out = base / "submissions", base / "out"
    folder.mkdir()
    for fixture in FIXTURES:
        nbformat.write(as_notebook(fixture.read_text()), folder / f"{fixture.stem}.ipynb")
    (folder / "master_solution.ipynb").write_bytes(MASTER.read_bytes())
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "coursetools", "leaderboard", str(folder),
                             "--out", str(out), "--budget", str(BUDGET), "--jobs", "2"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    NOTEBOOK_TIMES["(leaderboard: the class)"] = seconds
    assert result.returncode == 0, result.stdout + result.stderr
    with open(out / "leaderboard.csv", newline="", encoding="utf-8") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    return {"rows": rows, "out": out, "seconds": seconds, "stdout": result.stdout}


def _times(row: dict) -> list[float]:
    return [float(row[f"{w.name}_time_s"]) for w in leaderboard.WORKLOADS]


def _log(board: dict, name: str) -> str:
    return (board["out"] / "logs" / f"{name}.log").read_text(errors="replace")


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_each_submission_gets_its_status_and_times(board: dict, fixture: Path):
    row, want = board["rows"][fixture.stem], fields(fixture)
    assert row["status"] == want["expect-status"], row
    times, score = _times(row), float(row["score"])
    if want["expect-times"] == "finite":
        assert all(math.isfinite(t) and 0 < t <= BUDGET for t in times), row
        assert score > 0, row
    else:
        assert all(math.isinf(t) for t in times), row
        assert score == 0, row
    if "marker" in want:
        assert want["marker"] in _log(board, fixture.stem), f"{fixture.stem}: the attack never ran"


def test_the_master_solution_reaches_both_targets(board: dict):
    """Its score may be 0: Adam at lr 1e-3 can be more than r_max = 4 times slower than the
    fastest (AlgoPerf's rule), so only its times are checked."""
    row = board["rows"]["master_solution"]
    assert row["status"] == "ok", row
    assert all(math.isfinite(t) for t in _times(row)), row


def test_every_scoring_submission_ranks_above_every_one_that_reaches_nothing(board: dict):
    rows = board["rows"].values()
    scoring = [r for r in rows if float(r["score"]) > 0]
    nothing = [r for r in rows if all(math.isinf(t) for t in _times(r))]
    assert len(scoring) >= 3 and len(nothing) >= 7, board["rows"]
    assert max(int(r["rank"]) for r in scoring) < min(int(r["rank"]) for r in nothing)
    assert {float(r["score"]) for r in nothing} == {0.0}
    best = min(rows, key=lambda r: int(r["rank"]))
    assert int(best["rank"]) == 1 and float(best["score"]) > 0


def test_no_route_to_the_validation_data_works_in_the_sandbox(board: dict):
    log = _log(board, "hostile_reads_validation")
    for route in ROUTES:
        assert re.search(rf"^route {route}: blocked", log, flags=re.M), (route, log[-2000:])
    assert "leaked" not in log, log[-2000:]


def test_every_route_works_outside_the_sandbox():
    """Positive control: the same attack, run as a plain script, reaches every route."""
    out = subprocess.run([sys.executable, str(READS)], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    for route in ROUTES:
        assert f"route {route}: leaked" in out.stdout, out.stdout + out.stderr


def test_the_data_routes_work_in_a_sandbox_without_the_masks():
    """Positive control: the sandbox without :func:`leaderboard.hidden_data` leaks the data
    (the grader's files are never mounted); with it, nothing does."""
    code = READS.read_text()
    inside = [sys.executable, "-c", f"import sys; sys.path.insert(0, '{isolation.INSIDE_LIB}')\n"
              + code]
    for hide, leaked in (((), ROUTES[:4]), (leaderboard.hidden_data(), ())):
        out = subprocess.run(isolation.sandbox_command(inside, hide=hide), capture_output=True,
                             text=True, timeout=300, stdin=subprocess.DEVNULL)
        for route in ROUTES:
            state = "leaked" if route in leaked else "blocked"
            assert f"route {route}: {state}" in out.stdout, (hide, out.stdout + out.stderr)


def test_weights_of_another_architecture_are_named_in_the_detail(board: dict):
    row = board["rows"]["hostile_swaps_architecture"]
    assert "another architecture" in row["detail"], row
    feedback = (board["out"] / "feedback" / "hostile_swaps_architecture.txt").read_text()
    assert "another architecture" in feedback


def test_forged_frames_arrive_but_earn_nothing(board: dict):
    """The forger's frames carry the nonce, so they are counted (more than the harness sends),
    and scored: random weights reach no target."""
    row = board["rows"]["hostile_forges_checkpoints"]
    most = max(w.steps // w.every for w in leaderboard.WORKLOADS) + 1  # the harness's
    for w in leaderboard.WORKLOADS:
        assert int(row[f"{w.name}_checkpoints"]) > most, row
        assert float(row[f"{w.name}_final_error"]) > 0.5, row


def test_the_budget_is_enforced_from_outside(board: dict):
    row = board["rows"]["hostile_runs_past_budget"]
    assert "budget" in row["detail"] and float(row["score"]) == 0, row
    assert "NaN" in board["rows"]["wrong_nan"]["detail"], board["rows"]["wrong_nan"]


def test_the_page_and_the_csv(board: dict):
    page = (board["out"] / "leaderboard.html").read_text()
    for name in board["rows"]:
        assert f"<td>{name}</td>" in page
    assert (board["out"] / "feedback" / "honest_momentum.txt").read_text().startswith(
        "Leaderboard 08_leaderboard: honest_momentum.ipynb")
    print(f"leaderboard class: {board['seconds']:.1f} s")


# ----------------------------------------------------------------------------------------------
# The rules, on made-up checkpoints (no sandbox)
# ----------------------------------------------------------------------------------------------

def _weights(workload, fill=None):
    import torch

    from coursetools.grading import harness
    from coursetools.grading.worker import encode

    torch.manual_seed(0)
    model = harness.build_model(list(workload.layers))
    ws = [p.detach().clone() for p in model.parameters()]
    if fill is not None:
        ws[0].fill_(fill)
    return encode(ws)


def test_evaluate_applies_the_rules():
    import torch

    w = leaderboard.Workload("t", (784, 10), target=1.0)  # any finite weights reach it
    xv, yv = torch.rand(50, 1, 28, 28), torch.randint(10, (50,))
    good = _weights(w)
    r = leaderboard.evaluate([(0.5, good), (1.0, good)], w, 4.0, xv, yv)
    assert r.time == 0.5 and r.checkpoints == 2 and not r.note
    late = leaderboard.evaluate([(5.0, good)], w, 4.0, xv, yv)
    assert math.isinf(late.time) and late.checkpoints == 0
    nan = leaderboard.evaluate([(0.5, _weights(w, float("nan")))], w, 4.0, xv, yv)
    assert math.isinf(nan.time) and "not finite" in nan.note
    other = leaderboard.Workload("o", (784, 32, 10), target=0.95)
    swapped = leaderboard.evaluate([(0.5, _weights(other)), (1.0, good)], w, 4.0, xv, yv)
    assert math.isinf(swapped.time) and "another architecture" in swapped.note
    raised = leaderboard.evaluate([(0.5, good)], w, 4.0, xv, yv, error="RuntimeError: boom")
    assert math.isinf(raised.time) and "raised" in raised.note
    junk = leaderboard.evaluate([(0.5, {"repr": "x", "type": "str"})], w, 4.0, xv, yv)
    assert math.isinf(junk.time) and junk.note


def test_csv_cells_and_the_page_are_neutralised(tmp_path: Path):
    evil = "=HYPERLINK(\"http://x\")<script>alert(1)</script>"
    entry = leaderboard.Entry(evil, f"{evil}.ipynb", "k", "ok",
                              results={w.name: leaderboard.Result() for w in leaderboard.WORKLOADS})
    leaderboard.rank([entry])
    from coursetools.grading.reports import write_csv

    write_csv(tmp_path / "b.csv", leaderboard.HEADER, leaderboard.table([entry]))
    with open(tmp_path / "b.csv", newline="") as f:
        row = list(csv.DictReader(f))[0]
    assert row["student"].startswith("'=") and row["score"] == "0.0000"
    page = leaderboard.write_html(tmp_path / "b.html", [entry], 4.0).read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
