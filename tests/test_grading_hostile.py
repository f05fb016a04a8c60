"""Hostile submissions: each scores only what its honest work earns and changes nothing else.

Every file ``tests/fixtures/hostile/NAME.py`` is one attack, appended as a last cell to a base
notebook of assignment ``01_sgd_loop`` (its docstring names the base, ``solution``,
``untouched`` or a wrong answer of ``tests/fixtures/assignments/01_sgd_loop``, and the status and
total it must get; optionally ``expect-flags:``, ``repeat: N`` (the cell N times),
``nested-cell: N`` (a cell nested N parentheses deep before it), ``file-name:``, and ``file:
symlink`` or ``file: invalid-utf8`` for a crafted file). Each attack prints a marker once it has
run (``attack-ran: NAME``, or the docstring's ``marker:``), which its test finds in the log: an
attack that died early (at ``import labkit``, say) fails its test instead of passing unseen. One
batch grades them all with ``--jobs 2``, followed by two honest submissions (the solution and the
untouched handout), which must get exactly their own scores: nothing a hostile notebook did may
reach them, the grading environment, the archive or the repository.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from conftest import NOTEBOOK_TIMES, ROOT
from test_assignments import with_edits

from coursetools.grading import integrity, isolation, supervise, verdicts, worker
from coursetools.grading.archive import Autograder

NAME = "01_sgd_loop"
HOSTILE = sorted((ROOT / "tests" / "fixtures" / "hostile").glob("*.py"))
WRONG = ROOT / "tests" / "fixtures" / "assignments" / NAME
HONEST = {"zz_honest_solution": ("solution", "ok", 12),
          "zz_honest_untouched": ("untouched", "ok", 0)}
MEMORY_MB = 2048


def fields(fixture: Path) -> dict[str, str]:
    """The ``key: value`` lines of a fixture's docstring (base, expect-status, ...)."""
    doc = fixture.read_text().split('"""')[1]
    return {k: v.strip() for k, v in re.findall(r"^([\w-]+):\s*(.+)$", doc, flags=re.M)}


def expectations(fixture: Path) -> tuple[str, str, float]:
    """(base, status, total) from the ``base:``, ``expect-status:``, ``expect-total:`` lines."""
    field = fields(fixture)
    return field["base"], field["expect-status"], float(field["expect-total"])


def file_name(fixture: Path) -> str:
    return fields(fixture).get("file-name", f"{fixture.stem}.ipynb")


def marker(fixture: Path) -> str | None:
    """What the attack prints once it has run (``attack-ran: NAME`` unless the file says)."""
    text = fields(fixture).get("marker", f"attack-ran: {fixture.stem}")
    return None if text == "none" else text


def _write(fixture: Path, nb: nbformat.NotebookNode, folder: Path, build: Path) -> None:
    """The hostile submission: the base with the attack's cell(s), or a crafted file."""
    field, path = fields(fixture), folder / file_name(fixture)
    if field.get("file") == "symlink":
        path.symlink_to(build / NAME / "autograder" / f"{NAME}.ipynb")
        return
    code = fixture.read_text()
    if "nested-cell" in field:
        depth = int(field["nested-cell"])
        nb.cells.append(nbformat.v4.new_code_cell("deep = " + "(" * depth + "0" + ")" * depth))
    nb.cells += [nbformat.v4.new_code_cell(code) for _ in range(int(field.get("repeat", 1)))]
    if field.get("file") == "invalid-utf8":
        nb.cells[-1].source = "x = 'MARK'"
        path.write_bytes(nbformat.writes(nb).encode().replace(b"MARK", b"\xff\xfe"))
        return
    nbformat.write(nb, path)


def _base(build: Path, base: str) -> nbformat.NotebookNode:
    if base == "solution":
        return nbformat.read(build / NAME / "autograder" / f"{NAME}.ipynb", as_version=4)
    if base == "untouched":
        return nbformat.read(build / NAME / "student" / f"{NAME}.ipynb", as_version=4)
    return with_edits(build / NAME / "autograder" / f"{NAME}.ipynb", WRONG / f"{base}.py")


def _hostile_processes() -> list[int]:
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            text = " ".join(proc.info["cmdline"] or []) + str(proc.info.get("environ") or "")
        except psutil.Error:
            continue
        if any(m in text for m in ("987654", "987653", "987652", "hostile-daemon-marker")):
            found.append(proc.pid)
    return found


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict:
    """Build the autograder of 01_sgd_loop, grade every hostile notebook and two honest ones."""
    base = tmp_path_factory.mktemp("hostile")
    build = base / "assign"
    subprocess.run([sys.executable, "-m", "coursetools", "handouts", NAME, "--build", str(build),
                    "--no-site"], cwd=ROOT, check=True, capture_output=True, timeout=600)
    folder = base / "submissions"
    folder.mkdir()
    for fixture in HOSTILE:
        _write(fixture, _base(build, expectations(fixture)[0]), folder, build)
    for student, (kind, _, _) in HONEST.items():
        nbformat.write(_base(build, kind), folder / f"{student}.ipynb")
    archive = build / NAME / "autograder" / f"{NAME}-autograder.zip"
    archive_hash = hashlib.sha256(archive.read_bytes()).hexdigest()
    before = integrity.fingerprint(archive)
    out = base / "out"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "coursetools", "grade", str(folder),
                           "--autograder", str(archive), "--out", str(out), "--jobs", "2",
                           "--timeout", "120", "--memory", str(MEMORY_MB)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    NOTEBOOK_TIMES["(grading: hostile submissions, --jobs 2)"] = time.perf_counter() - start
    with open(out / "grades.csv", newline="") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    return {"proc": proc, "rows": rows, "out": out, "folder": folder, "archive": archive,
            "archive_hash": archive_hash, "before": before, "after": integrity.fingerprint(archive),
            "autograder": Autograder.load(archive)}


@pytest.mark.notebooks
@pytest.mark.parametrize("fixture", HOSTILE, ids=[f.stem for f in HOSTILE])
def test_hostile_submission_scores_only_its_honest_work(hostile: dict, fixture: Path):
    """Each attack ran (its marker is in the log) and scored only what its honest work earns."""
    _, status, total = expectations(fixture)
    name = file_name(fixture)
    csv_name = "'" + name if name.startswith(("=", "+", "-", "@")) else name
    if status == "skipped":
        assert csv_name not in hostile["rows"] and name not in hostile["rows"]
        assert f"{name}\ta symbolic link: not followed" in (hostile["out"] / "skipped.txt"
                                                            ).read_text()
        assert (hostile["folder"] / name).is_symlink()
        return
    row = hostile["rows"][csv_name]
    assert row["status"] == status, row
    assert float(row["total"]) == total, row
    assert row["flags"] == fields(fixture).get("expect-flags", ""), row
    expected = marker(fixture)
    if expected:
        key = supervise.safe_key(name[:-len(".ipynb")])
        log = (hostile["out"] / "logs" / f"{key}.log").read_text(errors="replace")
        assert expected in log, f"the attack did not run: {expected!r} not in its log"


@pytest.mark.notebooks
def test_honest_submissions_after_them_are_graded_right(hostile: dict):
    for student, (_, status, total) in HONEST.items():
        row = hostile["rows"][f"{student}.ipynb"]
        assert (row["status"], float(row["total"])) == (status, total), row


@pytest.mark.notebooks
def test_nothing_else_changed(hostile: dict):
    proc = hostile["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "changed during the batch" not in proc.stderr
    assert integrity.compare(hostile["before"], hostile["after"]) == []
    assert hashlib.sha256(hostile["archive"].read_bytes()).hexdigest() == hostile["archive_hash"]
    assert not (ROOT / "HACKED_BY_A_STUDENT").exists()
    assert not list(ROOT.glob("tests/q*.py")) and not (ROOT / "results.json").exists()
    assert _hostile_processes() == [], "a process a submission started is still running"


@pytest.mark.notebooks
def test_memory_exhaustion_is_named(hostile: dict):
    row = hostile["rows"]["exhausts_memory.ipynb"]
    assert row["detail"] == f"more than {MEMORY_MB:,} MB of memory, stopped", row
    feedback = (hostile["out"] / "feedback" / "exhausts_memory.txt").read_text()
    assert "more memory than grading allows" in feedback


@pytest.mark.notebooks
def test_hidden_tests_stay_hidden(hostile: dict):
    """Nothing a submission printed holds a hidden test; no feedback quotes a hidden probe value."""
    hidden = [t for t in hostile["autograder"].tests if t.hidden]
    log = (hostile["out"] / "logs" / "reads_hidden_tests.log").read_text()
    assert "searched; found 0 files" in log, log[-2000:]
    for test in hidden:
        assert test.name not in log
    for path in (hostile["out"] / "feedback").glob("*.txt"):
        assert "def " not in path.read_text()


def test_hidden_messages_quote_no_value_from_the_sandbox(tmp_path: Path):
    """Every hidden check, given planted values, fails without quoting any of them."""
    build = tmp_path / "assign"
    subprocess.run([sys.executable, "-m", "coursetools", "handouts", "--build", str(build),
                    "--no-site"], cwd=ROOT, check=True, capture_output=True, timeout=900)
    plants = ["987654.125", "-31337.5", "PLANTED"]
    import torch

    values = [None, 987654.125, "PLANTED", (987654.125, -31337.5), [987654.125] * 3,
              torch.full((3,), 987654.125), (torch.full((3,), 987654.125), -31337.5, [987654.125]),
              {"pair": False, "repr": "PLANTED"}, verdicts.Opaque("PLANTED", "PLANTED")]
    checked = 0
    for archive in build.glob("*/autograder/*-autograder.zip"):
        for test in Autograder.load(archive).tests:
            if not test.hidden:
                continue
            for value in values:
                passed, message = verdicts.verdict(test, {"value": worker.encode(value)})
                if passed:
                    continue
                assert not any(p in message for p in plants), (test.name, value, message)
                checked += 1
    assert checked > 100


def test_answers_are_plain_values():
    """The grader rebuilds tensors and containers from JSON and runs nothing that came back."""
    import base64

    import torch

    t = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    raw = base64.b64encode(t.numpy().tobytes()).decode()
    got = verdicts.decode({"tuple": [{"tensor": {"dtype": "float64", "shape": [2, 3],
                                                 "data": raw}}, 1.5, {"list": ["a", None]}]})
    assert torch.equal(got[0], t) and got[1:] == (1.5, ["a", None])
    for bad in ({"__reduce__": "os.system"}, {"tensor": {"dtype": "object", "shape": [1],
                                                        "data": ""}},
                {"tensor": {"dtype": "float64", "shape": [10**9], "data": raw}}, [1, 2],
                {"repr": "x", "type": "y", "extra": 1}):
        with pytest.raises(verdicts.BadValue):
            verdicts.decode(bad)
    opaque = verdicts.decode({"repr": "array([1, 2])", "type": "ndarray"})
    assert repr(opaque) == "array([1, 2])" and not isinstance(opaque, torch.Tensor)


def test_without_a_sandbox_the_grader_stops_with_one_line(monkeypatch):
    monkeypatch.setattr(isolation.shutil, "which", lambda name: None)
    assert isolation.sandbox_problem() == ("no sandbox: bubblewrap is not installed "
                                           "(apt-get install -y bubblewrap)")
    with pytest.raises(SystemExit) as stop:
        isolation.require_sandbox(unsafe=False)
    assert "apt-get install -y bubblewrap" in str(stop.value) and "\n" not in str(stop.value)
    assert isolation.require_sandbox(unsafe=True).startswith("UNSAFE: graded without a sandbox")


@pytest.mark.notebooks
def test_the_unsafe_flag_is_recorded_in_the_csv(hostile: dict, tmp_path: Path):
    """Where bubblewrap is missing: one line without the flag; with it, every row says UNSAFE."""
    import os

    folder = tmp_path / "submissions"
    folder.mkdir()
    build = hostile["archive"].parents[2]
    shutil.copy(build / NAME / "student" / f"{NAME}.ipynb", folder / "untouched.ipynb")
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))  # no bwrap on this PATH
    cmd = [sys.executable, "-m", "coursetools", "grade", str(folder), "--autograder",
           str(hostile["archive"]), "--out", str(tmp_path / "out")]
    stopped = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert stopped.returncode != 0
    assert stopped.stderr.strip().splitlines()[-1].startswith("grade: no sandbox: bubblewrap")
    unsafe = subprocess.run(cmd + ["--unsafe-no-sandbox"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert unsafe.returncode == 0, unsafe.stdout + unsafe.stderr
    with open(tmp_path / "out" / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["status"], r["total"]) for r in rows] == [("ok", "0")]
    assert "UNSAFE: graded without a sandbox" in rows[0]["detail"]
