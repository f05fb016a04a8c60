"""The autograded assignments: handouts, autograders, grading of a class folder, and the site.

One session fixture builds the handouts with the instructor's command (``coursetools handouts``),
another grades, with the instructor's other command (``coursetools grade``), one folder per
assignment: the solution, the untouched handout, and every plausible wrong answer kept in
``tests/fixtures/assignments/NAME/wrong_*.py`` as a small edit of the solution (``EDITS``). For
``01_sgd_loop`` that folder is a whole class,
with submissions that crash, hang, exit, flood their output, are misnamed, are not notebooks or
belong to another assignment; its grade sheet must equal ``class_expected.csv``.
"""

from __future__ import annotations

import ast
import csv
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import NOTEBOOK_TIMES, ROOT

from coursetools import leaks
from coursetools.grading import isolation
from coursetools.handouts import masters

FIXTURES = ROOT / "tests" / "fixtures" / "assignments"
CLASS_ASSIGNMENT = "01_sgd_loop"
CLASS_TIMEOUT = 120  # seconds per submission in the class folder
CELL_TIMEOUT = 20    # seconds per cell (the hanging cell uses it, then the notebook runs again)


MASTERS = masters()
NAMES = [m.stem for m in MASTERS]
WRONG = sorted(FIXTURES.glob("*/wrong_*.py"))


def expected_failures(fixture: Path) -> list[str]:
    """The test names on the ``expect-fail:`` lines of a fixture's docstring."""
    doc = ast.get_docstring(ast.parse(fixture.read_text())) or ""
    return re.findall(r"^expect-fail:\s*(\w+)\s*$", doc, flags=re.M)


def with_definitions(notebook: Path, fixture: Path) -> nbformat.NotebookNode:
    """``notebook`` with the functions and classes of ``fixture`` replacing those of that name."""
    nb = nbformat.read(notebook, as_version=4)
    fixture_source = fixture.read_text()
    replacements = {}
    for node in ast.parse(fixture_source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            replacements[node.name] = ast.get_source_segment(fixture_source, node)
    done = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        lines = cell.source.splitlines()
        for node in reversed(tree.body):  # bottom up, so line numbers stay valid
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in replacements:
                first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
                lines[first:node.end_lineno] = replacements[node.name].splitlines()
                done.add(node.name)
        cell.source = "\n".join(lines)
    missing = set(replacements) - done
    assert not missing, f"{fixture.name}: no cell of {notebook.name} defines {sorted(missing)}"
    return nb


def edits_of(fixture: Path) -> list[tuple[str, str]]:
    """The fixture's ``EDITS``: pairs (a passage of the solution's code, the wrong answer's)."""
    for node in ast.parse(fixture.read_text()).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets
                                             if isinstance(t, ast.Name)] == ["EDITS"]:
            return [tuple(pair) for pair in ast.literal_eval(node.value)]
    raise AssertionError(f"{fixture}: no EDITS = [(old, new), ...]")


def with_edits(notebook: Path, fixture: Path) -> nbformat.NotebookNode:
    """``notebook`` (the solution) with the fixture's small edits: each old passage must occur
    exactly once among its code cells, so a fixture that no longer fits the master fails here."""
    nb = nbformat.read(notebook, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    for old, new in edits_of(fixture):
        where = [c for c in cells for _ in range(c.source.count(old))]
        assert len(where) == 1, (f"{fixture.name}: {old!r} occurs {len(where)} times in "
                                 f"{notebook.name}'s code, not once: update the fixture")
        where[0].source = where[0].source.replace(old, new)
    return nb


def with_cell(notebook: Path, code: str) -> nbformat.NotebookNode:
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(code))
    return nb


@pytest.fixture(scope="session")
def assign_build(tmp_path_factory) -> Path:
    """The handouts and autograders, built once by the instructor's command, in a folder of ours."""
    import time

    build = tmp_path_factory.mktemp("assign")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "coursetools", "handouts",
                             "--build", str(build), "--no-site"],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    NOTEBOOK_TIMES["(assignments: handouts, all)"] = time.perf_counter() - start
    assert result.returncode == 0, f"coursetools handouts failed:\n{result.stdout}\n{result.stderr}"
    return build


def _submissions(name: str, build: Path, folder: Path) -> None:
    """The folder of submissions graded for assignment ``name`` (a whole class for one of them)."""
    folder.mkdir(parents=True)
    solution = build / name / "autograder" / f"{name}.ipynb"
    shutil.copy(solution, folder / "solution.ipynb")
    shutil.copy(build / name / "student" / f"{name}.ipynb", folder / "untouched.ipynb")
    for fixture in sorted((FIXTURES / name).glob("wrong_*.py")):
        nbformat.write(with_edits(solution, fixture), folder / f"{fixture.stem}.ipynb")
    if name != CLASS_ASSIGNMENT:
        return
    nbformat.write(with_cell(solution, "import ctypes\nctypes.string_at(0)"),
                   folder / "crashes.ipynb")
    nbformat.write(with_cell(solution, "import time\nwhile True:\n    time.sleep(1)"),
                   folder / "hangs.ipynb")
    nbformat.write(with_cell(solution, "import os\nos._exit(3)"), folder / "exits.ipynb")
    nbformat.write(with_cell(solution, "while True:\n    print('x' * 10_000)"),
                   folder / "floods.ipynb")
    shutil.copy(solution, folder / "misnamed (1).ipynb")
    shutil.copy(solution, folder / "zipped.py")
    (folder / "not_a_notebook.ipynb").write_text("%PDF-1.4 not a notebook\n")
    other = next(n for n in NAMES if n != name)
    shutil.copy(build / other / "student" / f"{other}.ipynb", folder / "other_assignment.ipynb")


@pytest.fixture(scope="session")
def graded(assign_build: Path, tmp_path_factory) -> dict[str, dict]:
    """Grade one folder per assignment with coursetools grade, all at once; {name: results}."""
    import time

    base = tmp_path_factory.mktemp("grading")
    running = {}
    start = time.perf_counter()
    for name in sorted(NAMES, key=lambda n: n != CLASS_ASSIGNMENT):  # the slow class first
        folder = base / "submissions" / name
        _submissions(name, assign_build, folder)
        cmd = [sys.executable, "-m", "coursetools", "grade", str(folder),
               "--autograder", str(assign_build / name / "autograder" / f"{name}-autograder.zip"),
               "--out", str(base / "out" / name), "--timeout", str(CLASS_TIMEOUT),
               "--cell-timeout", str(CELL_TIMEOUT),
               "--jobs", "2" if name == CLASS_ASSIGNMENT else "1"]
        running[name] = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True)
    out: dict[str, dict] = {}
    for name, proc in running.items():
        log, _ = proc.communicate(timeout=1200)
        assert proc.returncode == 0, f"coursetools grade failed for {name}:\n{log}"
        results = {p.stem: json.loads(p.read_text())
                   for p in (base / "out" / name / "results").glob("*.json")}
        out[name] = {"results": results, "out": base / "out" / name, "log": log}
    NOTEBOOK_TIMES["(assignments: grading every fixture)"] = time.perf_counter() - start
    return out


# ----------------------------------------------------------------------------------------------
# The handouts
# ----------------------------------------------------------------------------------------------

def test_there_are_five_assignments():
    assert len(NAMES) >= 5, f"expected at least five master notebooks, found {NAMES}"
    for name in NAMES:
        assert list((FIXTURES / name).glob("wrong_*.py")), f"{name}: no wrong-answer fixture"
        assert len(list((FIXTURES / name).glob("wrong_*.py"))) >= 2, \
            f"{name}: needs at least two plausible wrong answers"


@pytest.mark.notebooks
@pytest.mark.parametrize("name", NAMES)
def test_handout_has_no_solution_and_no_hidden_test(assign_build: Path, name: str):
    master = ROOT / "labs" / "assignments" / f"{name}.ipynb"
    student = assign_build / name / "student" / f"{name}.ipynb"
    secrets = leaks.secrets(master)
    assert secrets["solution"] and secrets["hidden_names"], "the leak check would check nothing"
    assert leaks.leaks(master, leaks.notebook_text(student)) == []
    site_copy = ROOT / "labs" / "handouts" / f"{name}.ipynb"
    if site_copy.exists():  # committed, the page the site shows: it must be as clean
        assert leaks.leaks(master, leaks.notebook_text(site_copy)) == []
    for test_file in (assign_build / name / "student" / "tests").glob("*.py"):
        assert "hidden=True" not in test_file.read_text()
    # The check itself must see a leak where there is one: the solution notebook has them all.
    solution = assign_build / name / "autograder"
    text = leaks.notebook_text(solution / f"{name}.ipynb") + "".join(
        t.read_text() for t in (solution / "tests").glob("*.py"))
    found = leaks.leaks(master, text)
    for kind in ("solution", "hidden_names"):
        assert len([f for f in found if f.startswith(kind)]) == len(secrets[kind]), kind
    assert any(f.startswith("hidden_lines") for f in found)


@pytest.mark.notebooks
def test_grader_check_works_in_the_handout(assign_build: Path, tmp_path: Path):
    """Run like a student would, in a folder of their own: grader.check gives public feedback."""
    from nbclient import NotebookClient

    name = CLASS_ASSIGNMENT
    expect = "init_params(3) should return a pair (w, b), got None"
    for kind in ("autograder", "student"):
        work = tmp_path / kind
        work.mkdir()
        path = work / f"{name} (1).ipynb"  # a browser's renamed download must still work
        shutil.copy(assign_build / name / kind / f"{name}.ipynb", path)
        shutil.copy(path, work / "another_notebook.ipynb")
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=300,
                       resources={"metadata": {"path": str(work)}}).execute()
        checks = [c for c in nb.cells if c.cell_type == "code"
                  and c.source.startswith("grader.check(")]
        assert len(checks) == 4, "expected one grader.check cell per question"
        shown = [json.dumps(c.outputs).replace("\\n", "\n") for c in checks]
        if kind == "autograder":
            for q, text in enumerate(shown, start=1):
                assert f"q{q} results: All test cases passed!" in text, text[:2000]
        else:
            assert expect in shown[0], shown[0][:2000]
            assert "test_init_zero_float32_leaves" not in "".join(shown), \
                "a hidden test ran in the handout"


# ----------------------------------------------------------------------------------------------
# Grading
# ----------------------------------------------------------------------------------------------

def _failed(result: dict) -> dict[str, str]:
    return {t["name"]: t["message"] for q in result["questions"].values() for t in q["tests"]
            if not t["passed"]}


@pytest.mark.notebooks
@pytest.mark.parametrize("name", NAMES)
def test_solution_scores_full_marks(graded: dict, name: str):
    result = graded[name]["results"]["solution"]
    assert result["status"] == "ok", result
    assert result["total"] == result["possible"] > 0, _failed(result)


@pytest.mark.notebooks
@pytest.mark.parametrize("name", NAMES)
def test_untouched_handout_scores_zero(graded: dict, name: str):
    result = graded[name]["results"]["untouched"]
    assert result["status"] == "ok", result
    assert result["total"] == 0, {q: v["score"] for q, v in result["questions"].items()}


@pytest.mark.notebooks
@pytest.mark.parametrize("fixture", WRONG, ids=[f"{f.parent.name}/{f.stem}" for f in WRONG])
def test_wrong_answer_loses_points_on_the_named_test(graded: dict, fixture: Path):
    result = graded[fixture.parent.name]["results"][fixture.stem]
    assert result["status"] == "ok", result
    assert result["total"] < result["possible"], f"{fixture.name} scored full marks"
    expected = expected_failures(fixture)
    assert expected, f"{fixture.name} names no test it must fail (expect-fail: ...)"
    failed = _failed(result)
    missing = [t for t in expected if t not in failed]
    assert not missing, f"{fixture.name}: expected {missing} to fail; failed: {sorted(failed)}"
    for test in expected:
        assert failed[test].strip(), f"{test} failed without a message"
    feedback = (graded[fixture.parent.name]["out"] / "feedback" / f"{fixture.stem}.txt").read_text()
    assert f"[FAILED] {expected[0]}" in feedback
    assert "def test_" not in feedback, "feedback must not show the code of the tests"


#: (assignment, test) pairs that no wrong-answer fixture has to fail, each with its reason.
NEVER_FAILED_ALLOWED: dict[tuple[str, str], str] = {}


@pytest.mark.notebooks
def test_every_check_is_failed_by_a_wrong_answer(graded: dict):
    """Each test of each assignment is named on an ``expect-fail:`` line of some wrong-answer
    fixture and failed there (in the gradings above, not graded again): a check that no plausible
    mistake fails could be wrong, or check nothing, and no run would say so."""
    total, never = 0, set()
    for name in NAMES:
        results = graded[name]["results"]
        tests = [t["name"] for q in results["solution"]["questions"].values() for t in q["tests"]]
        failed = set()
        for fixture in sorted((FIXTURES / name).glob("wrong_*.py")):
            failed |= set(expected_failures(fixture)) & set(_failed(results[fixture.stem]))
        total += len(tests)
        never |= {(name, t) for t in tests if t not in failed}
    unexpected = sorted(never - set(NEVER_FAILED_ALLOWED))
    assert not unexpected, (f"{len(unexpected)} of {total} checks are failed by no wrong-answer "
                            "fixture (add one, tests/fixtures/assignments/README.md):\n  "
                            + "\n  ".join(f"{a}: {t}" for a, t in unexpected))
    assert not set(NEVER_FAILED_ALLOWED) - never, "an allowed entry is now covered: remove it"


@pytest.mark.notebooks
def test_class_folder_gives_the_expected_grade_sheet(graded: dict):
    out = graded[CLASS_ASSIGNMENT]["out"]
    with open(out / "grades.csv", newline="") as f:
        got = list(csv.DictReader(f))
    with open(FIXTURES / "class_expected.csv", newline="") as f:
        want = list(csv.DictReader(f))
    assert [r["file"] for r in got] == [r["file"] for r in want]
    for g, w in zip(got, want):
        assert g == w, f"row of {w['file']}:\n got {g}\nwant {w}"
    for row in got:
        assert (out / "feedback" / f"{row['student']}.txt").exists()
    log = graded[CLASS_ASSIGNMENT]["log"]
    assert "sandbox bubblewrap" in log
    assert "grade: skipped zipped.py: not a notebook (.ipynb)" in log
    assert "zipped.py\tnot a notebook (.ipynb)" in (out / "skipped.txt").read_text()
    hung = (out / "logs" / "hangs.log").read_text()
    assert "[grader] cell 22 (import time) was still running after 20 s" in hung, hung[-2000:]


@pytest.mark.notebooks
def test_graders_have_no_network(tmp_path: Path):
    """The sandbox a submission runs in cannot open a connection outside."""
    assert isolation.sandbox_problem() is None, isolation.sandbox_problem()
    code = ("import socket\ntry:\n    socket.create_connection(('pypi.org', 443), timeout=3)\n"
            "    print('online')\nexcept OSError as e:\n    print('offline')\n")
    out = subprocess.run(isolation.sandbox_command([sys.executable, "-c", code]),
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "offline", out


# ----------------------------------------------------------------------------------------------
# The site
# ----------------------------------------------------------------------------------------------

def _page_text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(errors="replace")))


@pytest.mark.book
def test_site_shows_handouts_without_solutions_or_hidden_tests(built_book: Path):
    pages = sorted(built_book.rglob("*.html"))
    assert pages
    hidden_names = {n for m in MASTERS for n in leaks.secrets(m)["hidden_names"]}
    markers = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN TESTS", "BEGIN QUESTION",
               "BEGIN TEST CONFIG", "ASSIGNMENT CONFIG")
    for page in pages:
        text = _page_text(page)
        for name in hidden_names:
            assert name not in text, f"{page.relative_to(built_book)} shows hidden test {name}"
        for marker in markers:
            assert marker not in text, f"{page.relative_to(built_book)} shows '{marker}'"
    served = [f for f in built_book.rglob("*") if f.is_file()
              and f.suffix in (".ipynb", ".txt", ".md", ".js", ".json", ".py")]
    for f in served:  # the downloads (_sources/), the search index, ...
        text = f.read_text(errors="replace")
        for name in hidden_names:
            assert name not in text, f"{f.relative_to(built_book)} holds hidden test {name}"
    assert not list(built_book.rglob("assignments/0*")), "a master notebook was published"
    for master in MASTERS:
        download = built_book / "_sources" / "labs" / "handouts" / f"{master.stem}.ipynb"
        assert download.exists(), f"no downloadable handout {download.name}"
        assert leaks.leaks(master, leaks.notebook_text(download)) == [], download
    for master in MASTERS:
        page = built_book / "labs" / "handouts" / f"{master.stem}.html"
        assert page.exists(), f"the site has no page for the handout {master.stem}"
        assert leaks.leaks(master, _page_text(page)) == [], page
        raw = page.read_text()
        assert "grader.check" in _page_text(page) and "PUBLIC_TESTS" in _page_text(page)
        assert "Traceback" not in raw
        assert ".ipynb" in raw, "the handout page has no download button"
