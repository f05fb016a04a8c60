"""``python -m coursetools gradescope``: the zip Gradescope's autograder format expects, run in a
fake ``/autograder`` layout on honest, wrong and hostile submissions, gives ``make grade``'s
scores and a ``results.json`` per Gradescope's specification."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT
from test_grading_hostile import _base, _write

from coursetools.grading import isolation

NAME = "01_sgd_loop"
HOSTILE = ROOT / "tests" / "fixtures" / "hostile"
#: submission -> how it is made: a base notebook, or a hostile fixture on its base
CASES = {"solution": "solution", "untouched": "untouched", "wrong_sum_loss": "wrong_sum_loss",
         "patched_comparisons": HOSTILE / "patched_comparisons.py",
         "outlives_the_kernel": HOSTILE / "outlives_the_kernel.py",
         "reference_alias": HOSTILE / "reference_alias.py"}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    """The handouts of ``NAME`` (``build``) and its Gradescope zip (``package``)."""
    base = tmp_path_factory.mktemp("gradescope")
    build = base / "assign"
    subprocess.run([sys.executable, "-m", "coursetools", "handouts", NAME, "--build", str(build),
                    "--no-site"], cwd=ROOT, check=True, capture_output=True, timeout=600)
    archive = build / NAME / "autograder" / f"{NAME}-autograder.zip"
    made = subprocess.run([sys.executable, "-m", "coursetools", "gradescope", NAME,
                           "--autograder", str(archive), "--out", str(base / "zip")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    return {"base": base, "build": build, "archive": archive,
            "package": base / "zip" / f"{NAME}-gradescope.zip"}


@pytest.fixture(scope="module")
def graded(made: dict) -> dict:
    """The zip, a folder of the cases graded by ``coursetools grade``, and each case run through
    the zip's ``run_autograder`` in its own fake ``/autograder``."""
    base, build, archive, package = made["base"], made["build"], made["archive"], made["package"]
    folder = base / "submissions"
    folder.mkdir()
    for case, how in CASES.items():
        if isinstance(how, Path):
            _write(how, _base(build, how.read_text().split("base:")[1].split()[0]), folder, build)
            (folder / f"{how.stem}.ipynb").rename(folder / f"{case}.ipynb")
        else:
            nbformat.write(_base(build, how), folder / f"{case}.ipynb")
    proc = subprocess.run([sys.executable, "-m", "coursetools", "grade", str(folder),
                           "--autograder", str(archive), "--out", str(base / "out"),
                           "--jobs", "1"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(base / "out" / "grades.csv", newline="") as f:
        sheet = {r["student"]: r for r in csv.DictReader(f)}
    results = {}
    for case in CASES:
        root = base / "fake" / case / "autograder"
        (root / "submission").mkdir(parents=True)
        with zipfile.ZipFile(package) as zf:
            zf.extractall(root / "source")
        shutil.copy(folder / f"{case}.ipynb", root / "submission" / "notebook.ipynb")
        run = subprocess.run(["bash", str(root / "source" / "run_autograder")],
                             env={"AUTOGRADER_ROOT": str(root), "PATH": "/usr/bin:/bin",
                                  "AUTOGRADER_PYTHON": sys.executable, "OMP_NUM_THREADS": "1"},
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        results[case] = json.loads((root / "results" / "results.json").read_text())
    return {"package": package, "sheet": sheet, "results": results}


@pytest.mark.notebooks
def test_the_zip_holds_what_gradescope_runs(graded: dict):
    with zipfile.ZipFile(graded["package"]) as zf:
        names = set(zf.namelist())
        mode = zf.getinfo("run_autograder").external_attr >> 16
    assert {"setup.sh", "run_autograder", "requirements.txt", f"{NAME}-autograder.zip",
            "coursetools/grading/supervise.py", "coursetools/grading/worker.py"} <= names
    assert mode & 0o111, "run_autograder must be executable"
    assert not any(n.startswith(("labs/", "tests/")) or n.endswith(".ipynb") for n in names)


@pytest.mark.notebooks
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_submission_scores_what_make_grade_gives(graded: dict, case: str):
    doc, row = graded["results"][case], graded["sheet"][case]
    assert row["status"] == "ok", row
    assert doc["score"] == float(row["total"]), (doc, row)
    tests = doc["tests"]
    assert tests and sum(t["score"] for t in tests) == doc["score"]
    for t in tests:
        assert set(t) == {"name", "score", "max_score", "output", "visibility"}, t
        assert t["visibility"] in ("visible", "after_published")
        assert 0 <= t["score"] <= t["max_score"]
    hidden = [t for t in tests if t["visibility"] == "after_published"]
    assert hidden, "the hidden tests must be after_published"
    for t in hidden:  # name and verdict only (or the integrity rule)
        assert t["output"] == "" or t["output"].startswith("your code uses "), t


@pytest.mark.notebooks
def test_expected_scores(graded: dict):
    got = {case: doc["score"] for case, doc in graded["results"].items()}
    assert got == {"solution": 12, "untouched": 0, "wrong_sum_loss": 5,
                   "patched_comparisons": 5, "outlives_the_kernel": 0, "reference_alias": 10}


def test_without_bubblewrap_the_submission_runs_as_nobody(monkeypatch):
    """The fallback inside a container with no user namespaces: setpriv to nobody, every
    capability and group dropped."""
    monkeypatch.setattr(isolation, "FALLBACK_USER", isolation.NOBODY)
    cmd = isolation.unsafe_command(["7"])
    assert cmd[0].endswith("setpriv") and cmd[1:3] == ["--reuid", "65534"]
    assert "--clear-groups" in cmd and "--inh-caps=-all" in cmd
    assert cmd[cmd.index("--") + 1:] == [sys.executable, "-I", str(isolation.WORKER), "7"]


#: A cell appended to the solution: who it runs as, and whether it can write Gradescope's results
#: or read the hidden tests (ROOT is the fake /autograder).
SNOOP = """import os
print('uid', os.getuid(), 'gid', os.getgid())
for what, path, mode in (('results', 'ROOT/results/results.json', 'w'),
                         ('archive', 'ROOT/source/NAME-autograder.zip', 'rb')):
    try:
        with open(path, mode) as f:
            if mode == 'w':
                f.write('{"score": 100, "output": "", "tests": []}')
        print(what, 'opened')
    except OSError as err:
        print(what, type(err).__name__)
"""


@pytest.mark.notebooks
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="the fallback runs the submission as nobody: it needs root and setpriv")
def test_without_bubblewrap_the_submission_runs_as_nobody_for_real(made: dict):
    """Gradescope runs ``run_autograder`` as root; where bubblewrap can make no sandbox (forced
    here with AUTOGRADER_NO_BUBBLEWRAP=1), the submission runs as ``nobody`` (setpriv): it sees the
    real file system, and can write neither the results nor read the hidden tests."""
    top = Path(tempfile.mkdtemp(prefix="gradescope-nobody-", dir="/tmp"))
    try:  # not under pytest's tmp folder (mode 700): nobody must reach the worker's file
        os.chmod(top, 0o755)
        root = top / "autograder"
        (root / "submission").mkdir(parents=True)
        with zipfile.ZipFile(made["package"]) as zf:
            zf.extractall(root / "source")
        nb = _base(made["build"], "solution")
        nb.cells.append(nbformat.v4.new_code_cell(
            SNOOP.replace("ROOT", str(root)).replace("NAME", NAME)))
        nbformat.write(nb, root / "submission" / "notebook.ipynb")
        run = subprocess.run(["bash", str(root / "source" / "run_autograder")],
                             env={"AUTOGRADER_ROOT": str(root), "PATH": "/usr/bin:/bin",
                                  "AUTOGRADER_PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
                                  "AUTOGRADER_NO_BUBBLEWRAP": "1"},
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        doc = json.loads((root / "results" / "results.json").read_text())
    finally:
        shutil.rmtree(top)
    printed = run.stdout  # run_autograder prints the submission's log
    assert "uid 65534 gid 65534" in printed, printed[-3000:]
    # PermissionError, not FileNotFoundError: it sees the real folders (no sandbox), as nobody.
    assert "results PermissionError" in printed and "archive PermissionError" in printed, \
        printed[-3000:]
    assert doc["score"] == 12 and doc["output"] == "Score 12 / 12", doc
