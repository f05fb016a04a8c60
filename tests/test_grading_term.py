"""A whole term through the grader: the channel, fairness, integrity rules, intake and gradebooks.

The unit tests need no sandbox. The others build the handouts of all six assignments once (the
instructor's command) and grade small folders in process (``grade_one``/``grade_folder``) or
with ``python -m coursetools grade``, in the bubblewrap sandbox.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT
from test_assignments import with_cell, with_definitions, with_edits

from coursetools.grading import intake, integrity, references, reports, supervise, verdicts, worker
from coursetools.grading.archive import Autograder
from coursetools.grading.supervise import Limits

NAME = "01_sgd_loop"
FIXTURES = ROOT / "tests" / "fixtures" / "assignments"


# ----------------------------------------------------------------------------------------------
# Shared: the handouts, built once
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("assign")
    subprocess.run([sys.executable, "-m", "coursetools", "handouts", "--build", str(out),
                    "--no-site"], cwd=ROOT, check=True, capture_output=True, timeout=900)
    return out


def _paths(build: Path, name: str = NAME) -> tuple[Path, Path, Path]:
    """(archive, solution notebook, handout notebook) of assignment ``name``."""
    auto = build / name / "autograder"
    return (auto / f"{name}-autograder.zip", auto / f"{name}.ipynb",
            build / name / "student" / f"{name}.ipynb")


def _grade(build: Path, nb, tmp_path: Path, name: str = NAME, limits: Limits | None = None,
           student: str = "student") -> supervise.Row:
    archive, _, _ = _paths(build, name)
    folder = tmp_path / f"in-{student}"
    folder.mkdir(exist_ok=True)
    path = folder / f"{student}.ipynb"
    nbformat.write(nb, path)
    (tmp_path / "logs").mkdir(exist_ok=True)
    sub = intake.discover(folder)[0][0]
    return supervise.grade_one(sub, Autograder.load(archive), tmp_path,
                               limits=limits or Limits(timeout=120), key=student)


# ----------------------------------------------------------------------------------------------
# 5. The channel between sandbox and grader
# ----------------------------------------------------------------------------------------------

def _frame(doc: dict) -> bytes:
    data = json.dumps(doc).encode()
    return len(data).to_bytes(8, "big") + data


def test_no_frame_is_lost_while_the_supervisor_is_busy():
    """Frames that arrive while the supervisor handles others wait for it (the old list+clear
    lost them: a 50 ms pause between reading and clearing lost most of these)."""
    read_fd, write_fd = os.pipe()
    frames = supervise._Frames(read_fd)
    frames.start()

    def write():
        for i in range(200):
            os.write(write_fd, _frame({"event": "cell", "index": i}))
            time.sleep(0.001)
        os.close(write_fd)

    threading.Thread(target=write, daemon=True).start()
    got = []
    while True:
        batch = frames.take(0.2)
        got += batch
        time.sleep(0.05)  # the supervisor busy with the batch it took
        if not batch and not frames.is_alive():
            got += frames.take(0)
            break
    assert [f["index"] for f in got] == list(range(200))


@pytest.mark.notebooks
def test_an_honest_notebook_survives_a_slow_supervisor(build: Path, tmp_path: Path, monkeypatch):
    """The race of issue 23: with a 50 ms pause after each take, the solution still scores 12."""
    take = supervise._Frames.take

    def slow(self, timeout):
        frames = take(self, timeout)
        time.sleep(0.05)
        return frames

    monkeypatch.setattr(supervise._Frames, "take", slow)
    _, solution, _ = _paths(build)
    row = _grade(build, nbformat.read(solution, as_version=4), tmp_path)
    assert (row.status, row.total) == ("ok", 12), row


EARLY = '''
import json, os, time
VALUES = json.loads({values!r})
def forge():
    for nonce in (None, "0" * 32):
        doc = json.dumps({{"event": "probes", "nonce": nonce, "values": VALUES}}).encode()
        for fd in range(3, 64):
            try:
                os.write(fd, len(doc).to_bytes(8, "big") + doc)
            except OSError:
                pass
forge()
if os.fork() == 0:
    os.setsid()
    for _ in range(600):
        forge()
        time.sleep(0.05)
    os._exit(0)
print("early-frame", "attack ran:", len(VALUES), "answers forged")
'''


@pytest.mark.notebooks
def test_an_answer_written_before_the_probes_is_not_the_answer(build: Path, tmp_path: Path):
    """The untouched handout whose cell (and a background process) writes the solution's own
    answers as frames, before and while the probes are sent: it scores what the handout does."""
    archive, solution, handout = _paths(build)
    autograder = Autograder.load(archive)
    cells = supervise.code_cells(nbformat.read(solution, as_version=4))
    (tmp_path / "logs").mkdir()
    honest = supervise.run_submission(cells, autograder, tmp_path / "logs" / "honest.log",
                                      Limits(timeout=120), sandboxed=True)
    assert honest.status == "ok" and verdicts.score(autograder, honest.values)[1] == 12
    nb = with_cell(handout, EARLY.format(values=json.dumps(honest.values)))
    row = _grade(build, nb, tmp_path, student="forger")
    log = (tmp_path / "logs" / "forger.log").read_text()
    assert f"early-frame attack ran: {len(honest.values)} answers forged" in log, log[-2000:]
    assert (row.status, row.total) == ("ok", 0), row


def test_the_integrity_check_reports_a_changed_file(tmp_path: Path, monkeypatch):
    """Positive control: a file whose bytes change between two fingerprints (its modification
    time set back) is reported, and so is a changed archive."""
    fake = tmp_path / "root"
    (fake / "coursetools").mkdir(parents=True)
    target = fake / "coursetools" / "verdicts.py"
    target.write_text("SAFE = True\n")
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"PK one")
    (fake / "labkit").mkdir()
    monkeypatch.setattr(integrity, "package_dirs",
                        lambda: {"labkit": fake / "labkit", "coursetools": fake / "coursetools"})
    before = integrity.fingerprint(archive)
    assert integrity.compare(before, integrity.fingerprint(archive)) == []
    st = target.stat()
    target.write_text("SAFE = 1==1\n")  # same size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    archive.write_bytes(b"PK two")
    changes = integrity.compare(before, integrity.fingerprint(archive))
    assert f"changed coursetools: {target}" in changes, changes
    assert f"changed archive: {archive}" in changes, changes


# ----------------------------------------------------------------------------------------------
# 2. Fair to the student
# ----------------------------------------------------------------------------------------------

def _insert_after(notebook: Path, needle: str, code: str) -> nbformat.NotebookNode:
    nb = nbformat.read(notebook, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and needle in c.source)
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(code))
    return nb, at + 2  # the inserted cell's number, counting every cell from 1


@pytest.mark.notebooks
def test_a_hung_cell_costs_only_itself_and_the_log_names_it(build: Path, tmp_path: Path):
    _, solution, _ = _paths(build)
    nb, number = _insert_after(solution, "def init_params",
                               "import time\nwhile True:\n    time.sleep(0.5)")
    row = _grade(build, nb, tmp_path, limits=Limits(timeout=120, cell_timeout=5))
    assert (row.status, row.total) == ("ok", 12), row
    assert f"cell {number} ran past the time limit per cell (5 s)" in row.detail, row.detail
    log = (tmp_path / "logs" / "student.log").read_text()
    assert f"[grader] cell {number} (import time) was still running after 5 s" in log, log


@pytest.mark.notebooks
def test_the_whole_run_limit_names_the_running_cell(build: Path, tmp_path: Path):
    _, solution, _ = _paths(build)
    nb, number = _insert_after(solution, "def init_params", "while True:\n    pass")
    row = _grade(build, nb, tmp_path, limits=Limits(timeout=15, cell_timeout=60))
    assert row.status == "timeout", row
    assert f"in cell {number}: while True:" in row.detail, row.detail
    assert f"in cell {number}" in (tmp_path / "logs" / "student.log").read_text()


HANGS_FOR_FIVE = """
def init_params(n_features):
    w = torch.zeros(n_features, requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    while n_features == 5:  # hangs for this input only (a hidden test's)
        pass
    return w, b
"""


@pytest.mark.notebooks
def test_a_hung_probe_fails_only_its_test_and_the_others_still_run(build: Path, tmp_path: Path):
    """``init_params`` hangs for the input of one hidden test only: that test is stopped after the
    time limit per test and fails with a message that says so; every other test passes."""
    _, solution, _ = _paths(build)
    fixture = tmp_path / "hangs_for_five.py"
    fixture.write_text("import torch\n" + HANGS_FOR_FIVE)
    nb = with_definitions(solution, fixture)
    row = _grade(build, nb, tmp_path, limits=Limits(timeout=60, probe_timeout=3))
    assert row.status == "ok", row
    failed = {t["name"]: t["message"] for q in row.questions.values() for t in q["tests"]
              if not t["passed"]}
    assert list(failed) == ["test_init_zero_float32_leaves"], failed
    assert failed["test_init_zero_float32_leaves"].startswith(
        "stopped after 3 s (the time limit per test)"), failed
    assert row.total == Autograder.load(_paths(build)[0]).possible - 1, row
    assert "test test_init_zero_float32_leaves was stopped after 3 s" in row.detail, row.detail
    log = (tmp_path / "logs" / "student.log").read_text()
    assert ("[grader] test test_init_zero_float32_leaves was still running after 3 s (the time "
            "limit per test): stopped; the notebook runs again without it") in log, log[-2000:]


def test_the_time_limit_per_test_is_an_option_with_its_default():
    out = subprocess.run([sys.executable, "-m", "coursetools", "grade", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    text = " ".join(out.stdout.split())
    assert "--probe-timeout PROBE_TIMEOUT" in text and "(default: 30)" in text, out.stdout
    assert Limits().probe_timeout == 30
    message = verdicts.verdict(None, {"stopped": 30})
    assert message == (False, "stopped after 30 s (the time limit per test): your code was still "
                              "running when this test called it")


@pytest.mark.notebooks
def test_a_syntax_error_is_named_in_the_feedback(build: Path, tmp_path: Path):
    _, solution, _ = _paths(build)
    nb = nbformat.read(solution, as_version=4)
    number = next(i for i, c in enumerate(nb.cells, 1)
                  if c.cell_type == "code" and "def init_params(" in c.source)
    nb.cells[number - 1].source = nb.cells[number - 1].source.replace(
        "def init_params(", "def init_params(:")
    row = _grade(build, nb, tmp_path)
    assert row.status == "ok" and row.questions["q1"]["score"] == 0, row
    text = reports.feedback(row, Autograder.load(_paths(build)[0]))
    assert f"`init_params` is not defined: cell {number} raised SyntaxError: invalid syntax" \
        in text, text
    assert "NoneType" not in text


def _row(hidden_message: str) -> tuple[supervise.Row, Autograder]:
    autograder = Autograder(Path("a.zip"), "x", {"q1": 2}, [])
    tests = [{"name": "test_public", "hidden": False, "points": 1, "passed": False,
              "message": "expected 1.5, got 2.5"},
             {"name": "test_hidden", "hidden": True, "points": 1, "passed": False,
              "message": hidden_message}]
    row = supervise.Row("s", "s.ipynb", "ok", questions={"q1": {"score": 0, "tests": tests}})
    return row, autograder


def test_hidden_messages_are_withheld_unless_the_instructor_shows_them():
    row, autograder = _row("for inputs [1, 2] the step should be 0.25")
    student = reports.feedback(row, autograder)
    assert "[FAILED] test_hidden" in student and "expected 1.5, got 2.5" in student
    assert "for inputs [1, 2]" not in student
    shown = reports.feedback(row, autograder, hidden_messages=True)
    assert "for inputs [1, 2] the step should be 0.25" in shown


def test_torch_numpy_and_python_are_seeded_before_each_probe():
    import random

    import numpy
    import torch

    probe = {"name": "t", "params": [], "seed": 0,
             "source": "import random, numpy, torch\ndef probe():\n"
                       "    return [random.random(), float(numpy.random.rand()), torch.rand(2)]\n"}
    first = worker.run_probe(probe, {})
    random.random(), numpy.random.rand(), torch.rand(5)  # the generators move on
    second = worker.run_probe(probe, {})
    assert first == second
    assert worker.run_probe({**probe, "params": ["update"]}, {}) == {"missing": ["update"]}


def test_a_regrade_merges_into_the_sheet_and_keeps_the_feedback(tmp_path: Path):
    autograder = Autograder(Path("a.zip"), "x", {"q1": 2}, [])
    for sub in ("feedback", "results"):
        (tmp_path / sub).mkdir()
    ok = {"q1": {"score": 2, "tests": []}}
    first = [supervise.Row(f"s{i}", f"s{i}.ipynb", "ok", questions=ok, total=2, key=f"s{i}")
             for i in range(19)]
    reports.write_reports(first, autograder, tmp_path)
    again = [supervise.Row("s7", "s7.ipynb", "ok", questions={"q1": {"score": 1, "tests": []}},
                           total=1, key="s7")]
    reports.write_reports(again, autograder, tmp_path)
    with open(tmp_path / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 19
    assert {r["student"]: r["total"] for r in rows}["s7"] == "1"
    assert sum(r["total"] == "2" for r in rows) == 18
    assert len(list((tmp_path / "feedback").glob("*.txt"))) == 19
    reports.write_reports(again, autograder, tmp_path, merge=False)
    with open(tmp_path / "grades.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 1


# ----------------------------------------------------------------------------------------------
# 4. The sheet and the folder
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)",
                                  "\tx", "\rx"])
def test_no_csv_cell_can_be_read_as_a_formula(text: str, tmp_path: Path):
    autograder = Autograder(Path("a.zip"), "x", {"q1": 2}, [])
    for sub in ("feedback", "results"):
        (tmp_path / sub).mkdir()
    row = supervise.Row(text, f"{text}.ipynb", "crashed", detail=text, key="k")
    reports.write_reports([row], autograder, tmp_path)
    with open(tmp_path / "grades.csv", newline="") as f:
        got = list(csv.reader(f))[1]
    for value in got:
        assert not value.startswith(reports.FORMULA_START), got
    assert got[0] == "'" + text
    # and a regrade reads them back as they were
    rows = reports._previous(tmp_path / "grades.csv", ["student", "file", "q1",
                                                       *reports.COLUMNS_AFTER])
    assert rows[0]["student"] == text


def test_links_and_what_is_not_a_notebook_are_skipped(tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    outside = tmp_path / "master.ipynb"
    outside.write_text("{}")
    (folder / "link.ipynb").symlink_to(outside)
    os.link(outside, folder / "hard.ipynb")
    (folder / "dir_link").symlink_to(tmp_path)
    (folder / ".DS_Store").write_bytes(b"\0")
    (folder / "notes.txt").write_text("hi")
    (folder / "José Müller.ipynb").write_text("{}")
    found, skipped = intake.discover(folder)
    assert [s.student for s in found] == ["José Müller"]
    why = dict(skipped)
    assert why["link.ipynb"].startswith("a symbolic link") and "dir_link" in why
    assert "outside the folder" in why["hard.ipynb"]
    assert why[".DS_Store"].startswith("not a notebook") and "notes.txt" in why
    with pytest.raises(OSError):
        supervise.read_notebook(folder / "link.ipynb")


# ----------------------------------------------------------------------------------------------
# 3. Forbidden references
# ----------------------------------------------------------------------------------------------

class _Declared:
    forbidden = ("torch.optim.Adam", "torch.nn.functional")
    provided = frozenset(references.provided_statements(["import torch.nn.functional as F\n"
                                                         "print(F.softmax)"]))


@pytest.mark.parametrize("code,found", [
    ("import torch\nAdam = torch.optim.Adam", "torch.optim.Adam"),
    ("import torch\nclass Adam(torch.optim.Adam):\n    pass", "torch.optim.Adam"),
    ("from torch.optim import Adam as A\nopt = A([])", "torch.optim.Adam"),
    ("import torch.optim as o\nclass B(o.Adam):\n    pass", "torch.optim.Adam"),
    ("import torch\nA = getattr(torch.optim, 'Adam')", "torch.optim.Adam"),
    ("import torch\nA = torch.optim.__dict__['Adam']", "torch.optim.Adam"),
    ("import importlib\nA = importlib.import_module('torch.optim').Adam", "torch.optim.Adam"),
    ("def f():\n    return O.Adam\nimport torch.optim as O", "torch.optim.Adam"),
    ("import torch\no = torch.optim\nA = o.Adam", "torch.optim.Adam"),
    ("from torch.optim import *\nx = Adam", "torch.optim.Adam"),
    ("import torch.nn.functional as F\ny = F.log_softmax", "torch.nn.functional"),
    ("from torch.nn import functional\ny = functional.cross_entropy", "torch.nn.functional"),
    ("import torch\nclass Adam(torch.optim.Optimizer):\n    pass\nopt = Adam([])", None),
    ("import torch.nn.functional as F\nprint(F.softmax)", None),  # the handout's own cell
    ("import torch.nn.functional as F", None),  # importing is not using
])
def test_forbidden_references_are_found_through_any_name(code: str, found: str | None):
    assert references.find([(3, code)], _Declared) == ({found: 0} if found else {})


def test_every_assignment_declares_the_references_its_tests_compare_against(build: Path):
    """All six: the solution and the handout use none; an alias of each is found; at least one
    test compares against each, and that test earns nothing when the alias is there."""
    names = sorted(p.name for p in build.iterdir() if (p / "autograder").is_dir())
    # the leaderboard (8) scores what a submission's optimizer achieves, against no reference:
    # any optimizer may compete; the seven others rebuild a piece of PyTorch and must not call it
    assert not Autograder.load(_paths(build, "08_leaderboard")[0]).forbidden
    names = [n for n in names if n != "08_leaderboard"]
    assert len(names) == 7  # every assignment that rebuilds PyTorch, Muon (7) included
    for name in names:
        archive, solution, handout = _paths(build, name)
        autograder = Autograder.load(archive)
        assert autograder.forbidden, f"{name} declares no forbidden reference"
        cells = supervise.code_cells(nbformat.read(solution, as_version=4))
        assert references.find(cells, autograder) == {}, name
        assert references.find(supervise.code_cells(nbformat.read(handout, as_version=4)),
                               autograder) == {}, name
        for ref in autograder.forbidden:
            module, _, attr = ref.rpartition(".")
            alias = cells + [(99, f"import {module} as _ref\nREFERENCE = _ref.{attr}")]
            used = references.find(alias, autograder)
            assert used == {ref: len(cells)}, (name, ref, used)
            compared = [t for t in autograder.tests
                        if ref in references.compared(t.check, autograder.forbidden)]
            assert compared, f"{name}: no test compares against {ref}"
            context = verdicts.Context(alias, forbidden=used)
            questions, _ = verdicts.score(autograder, {}, context)
            results = {t["name"]: t for q in questions.values() for t in q["tests"]}
            for test in compared:
                assert not results[test.name]["passed"]
                assert results[test.name]["message"].startswith(f"your code uses {ref} (cell 99)")


@pytest.mark.notebooks
@pytest.mark.parametrize("attack", ["Adam = torch.optim.Adam",
                                    "class Adam(torch.optim.Adam):\n    pass"])
def test_adam_through_the_reference_earns_nothing_on_the_tests_that_use_it(
        build: Path, tmp_path: Path, attack: str):
    """Assignment 4: today's 5 or 10 of 10 for an alias or a subclass of torch.optim.Adam."""
    _, solution, _ = _paths(build, "04_adam")
    nb = with_cell(solution, "import torch\n" + attack)
    row = _grade(build, nb, tmp_path, name="04_adam")
    autograder = Autograder.load(_paths(build, "04_adam")[0])
    compared = sum(t.points for t in autograder.tests
                   if "torch.optim.Adam" in references.compared(t.check, autograder.forbidden))
    assert row.status == "ok" and row.flags == "torch.optim.Adam", row
    assert row.total == autograder.possible - compared, row
    text = reports.feedback(row, autograder)
    assert "Integrity: your code uses torch.optim.Adam" in text


# ----------------------------------------------------------------------------------------------
# 1. In from the LMS, out to it
# ----------------------------------------------------------------------------------------------

ROSTER = """Student,ID,SIS User ID,SIS Login ID,Section,Identifier,Full name,Email address
"Müller, José",1001,S1,jmuller,A,Participant 501,José Müller,jose@example.edu
Ann Lee,1002,S2,alee,A,Participant 502,Ann Lee,ann@example.edu
Bo Chen,1003,S3,bchen,B,Participant 503,Bo Chen,bo@example.edu
Dee Ray,1004,S4,dray,B,Participant 504,Dee Ray,dee@example.edu
"""


def _lms_folder(build: Path, folder: Path) -> None:
    """A mixed Canvas-style and Moodle-style download, a Gradescope export, and junk."""
    _, solution, handout = _paths(build)
    folder.mkdir()
    shutil.copy(solution, folder / "mullerjose_1001_90001_01_sgd_loop.ipynb")
    moodle = folder / "Ann Lee_502_assignsubmission_file_"
    moodle.mkdir()
    nbformat.write(with_edits(solution, FIXTURES / NAME / "wrong_sum_loss.py"),
                   moodle / "my notebook (1).ipynb")
    (folder / "Ann Lee_502_assignsubmission_onlinetext_").mkdir()
    (folder / "Ann Lee_502_assignsubmission_onlinetext_" / "onlinetext.html").write_text("hi")
    gs = folder / "submission_777"
    gs.mkdir()
    shutil.copy(handout, gs / "01_sgd_loop.ipynb")
    (folder / "submission_metadata.yml").write_text(
        "submission_777:\n  :submitters:\n  - :name: Bo Chen\n    :sid: S3\n"
        "    :email: bo@example.edu\n")
    shutil.copy(handout, folder / "stranger_2002_90002_01_sgd_loop.ipynb")
    (folder / ".DS_Store").write_bytes(b"\0")
    (folder / "notes.txt").write_text("notes")


def test_lms_names_are_recognised_and_matched_to_the_roster(build: Path, tmp_path: Path):
    _lms_folder(build, tmp_path / "in")
    roster_path = tmp_path / "roster.csv"
    roster_path.write_text(ROSTER)
    roster = intake.read_roster(roster_path)
    found, skipped = intake.discover(tmp_path / "in")
    intake.match(found, roster)
    by_file = {s.file: s for s in found}
    assert by_file["mullerjose_1001_90001_01_sgd_loop.ipynb"].roster["ID"] == "1001"
    assert by_file["Ann Lee_502_assignsubmission_file_/my notebook (1).ipynb"].roster[
        "ID"] == "1002"
    assert by_file["submission_777/01_sgd_loop.ipynb"].roster["ID"] == "1003"
    stranger = by_file["stranger_2002_90002_01_sgd_loop.ipynb"]
    assert stranger.roster is None and stranger.problem == "matches no one on the roster"
    assert {rel for rel, _ in skipped} >= {".DS_Store", "notes.txt",
                                           "Ann Lee_502_assignsubmission_onlinetext_"}
    plain = intake.Submission(Path("x"), "Dee Ray (1).ipynb", "Dee Ray")
    intake.match([plain], roster)
    assert plain.roster["ID"] == "1004"


@pytest.mark.notebooks
def test_a_mixed_download_grades_and_exports_to_both_gradebooks(build: Path, tmp_path: Path):
    _lms_folder(build, tmp_path / "in")
    (tmp_path / "roster.csv").write_text(ROSTER)
    archive, _, _ = _paths(build)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "coursetools", "grade", str(tmp_path / "in"),
                           "--autograder", str(archive), "--out", str(out), "--jobs", "1",
                           "--roster", str(tmp_path / "roster.csv"),
                           "--column", "Assignment 1 (4242)"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "skipped .DS_Store" in proc.stdout and "skipped notes.txt" in proc.stdout
    with open(out / "canvas.csv", newline="", encoding="utf-8") as f:
        canvas = list(csv.DictReader(f))
    assert [(r["Student"], r["ID"], r["Assignment 1 (4242)"]) for r in canvas] == [
        ("Müller, José", "1001", "12"), ("Ann Lee", "1002", "5"), ("Bo Chen", "1003", "0"),
        ("Dee Ray", "1004", "")]
    with open(out / "moodle.csv", newline="", encoding="utf-8") as f:
        moodle = list(csv.DictReader(f))
    assert [(r["Identifier"], r["Grade"], r["Maximum Grade"]) for r in moodle] == [
        ("Participant 501", "12", "12"), ("Participant 502", "5", "12"),
        ("Participant 503", "0", "12"), ("Participant 504", "", "12")]
    assert (out / "report.html").is_file() and (out / "report.svg").is_file()
    # by default a failed hidden test shows its name and verdict, not its message
    lines = next((out / "feedback").glob("Ann Lee*.txt")).read_text().splitlines()
    hidden = [i for i, x in enumerate(lines) if "[FAILED]" in x and ", hidden)" in x]
    assert hidden, lines
    assert all(not (lines + [""])[i + 1].startswith("      ") for i in hidden), lines
    unmatched = (out / "unmatched.txt").read_text()
    assert "stranger_2002_90002_01_sgd_loop.ipynb\tmatches no one on the roster" in unmatched
    # a regrade of one student merges into the sheet and the gradebooks
    proc = subprocess.run([sys.executable, "-m", "coursetools", "grade", str(tmp_path / "in"),
                           "--autograder", str(archive), "--out", str(out), "--jobs", "1",
                           "--roster", str(tmp_path / "roster.csv"), "--only", "Bo Chen"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 4
    with open(out / "canvas.csv", newline="", encoding="utf-8") as f:
        assert [r["01_sgd_loop"] for r in csv.DictReader(f)] == ["12", "5", "0", ""]
