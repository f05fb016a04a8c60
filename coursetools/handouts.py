"""Build the assignments' student handouts and autograder archives with Otter Assign.

    python -m coursetools handouts               # every master in labs/assignments/ (make handouts)
    python -m coursetools handouts 01_sgd_loop   # only this one
    python -m coursetools handouts --run-tests   # also let Otter check that each solution passes
    python -m coursetools handouts --force       # rebuild even when nothing changed

Each master notebook ``labs/assignments/NAME.ipynb`` (solutions, public and hidden tests, in
Otter's notebook format) becomes, under ``_build/assign/NAME/`` (not committed):

* ``student/NAME.ipynb``: the handout, with ``...`` where the solutions were and only the public
  tests, and ``student/tests/`` with those public tests;
* ``autograder/NAME.ipynb``: the same notebook with the solutions, ``autograder/tests/`` with all
  tests, and ``autograder/NAME-autograder.zip``, the archive that ``python -m coursetools grade``
  (or ``otter run``) grades submissions with (:func:`autograder_archive`).

Three things are added to what Otter writes. Every test case is named after its test function
(``test_train_matches_torch_sgd`` rather than ``q4 - 2``), so that feedback says which check
failed. Otter's first cell is replaced by a setup cell that carries the public tests inside the
notebook and installs otter-grader where it is missing (Google Colab), so that
``grader.check("q1")`` works in a downloaded notebook, in Jupyter or in Colab, with no other
file. And the handout is copied to ``labs/handouts/NAME.ipynb``, the page the website shows; it is
committed, so that the site's Colab and Binder buttons open it from the repository
(``tests/test_handouts_committed.py`` checks that they match their masters). Before anything
is written, the handout is checked for leaks (:mod:`coursetools.leaks`): no line of a solution
and no hidden test may appear in it.

A master whose build is up to date (same master, same code of this package, same Otter) is
skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from coursetools import leaks, notebooks
from coursetools.notebooks import ROOT, clear_outputs, notebook_text, tidy

MASTERS = ROOT / "labs" / "assignments"
BUILD = ROOT / "_build" / "assign"
SITE = ROOT / "labs" / "handouts"
OTTER_PIN = "otter-grader==7.0.0"

_TEST_CASE = re.compile(r"@test_case\((points=[^\n]*?)\)\ndef (\w+)\(")


# ----------------------------------------------------------------------------------------------
# What is added to Otter's output
# ----------------------------------------------------------------------------------------------

def name_test_cases(source: str) -> str:
    """Give every ``@test_case`` of an exception-based Otter test file its function's name."""
    return _TEST_CASE.sub(lambda m: f"@test_case(name={m.group(2)!r}, {m.group(1)})\n"
                                    f"def {m.group(2)}(", source)


def _literal(text: str) -> str:
    """A readable Python literal for ``text``: raw triple quotes when safe, else repr."""
    if "'''" not in text and not text.endswith("\\"):
        return "r'''" + text + "'''"
    return repr(text)


def setup_cells(name: str, public_tests: dict[str, str]) -> list[nbformat.NotebookNode]:
    """A Markdown note and the setup cell that replaces Otter's init cell."""
    tests = ",\n".join(f"    {q!r}: {_literal(src)}" for q, src in sorted(public_tests.items()))
    code = f"""\
# @title Setup: run this cell first
# Installs otter-grader if it is missing (Google Colab), writes this assignment's public tests
# to .tests/{name}/ next to the notebook and creates `grader`: grader.check("q1") runs them.
import pathlib
import subprocess
import sys

try:
    import otter
except ModuleNotFoundError:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{OTTER_PIN}"], check=True)
    import otter

PUBLIC_TESTS = {{
{tests},
}}
tests_dir = pathlib.Path(".tests") / "{name}"
tests_dir.mkdir(parents=True, exist_ok=True)
for question, source in PUBLIC_TESTS.items():
    (tests_dir / f"{{question}}.py").write_text(source)
grader = otter.Notebook(tests_dir=str(tests_dir))
"""
    note = nbformat.v4.new_markdown_cell(
        "**Before you start.** Run the setup cell below once per session. It works in Jupyter "
        "(with the course's environment, or any Python with PyTorch) and in Google Colab (download "
        "this notebook, then *File → Upload notebook*); where otter-grader is missing it installs "
        f"`{OTTER_PIN}` first. Each question ends with `grader.check(\"qN\")`, which runs that "
        "question's public tests and tells you what was expected and what your code gave. "
        "Hand in this `.ipynb` file itself, with your answers in the cells marked `...`."
    )
    cell = nbformat.v4.new_code_cell(code)
    cell.metadata = {"tags": ["hide-input"], "jupyter": {"source_hidden": True},
                     "cellView": "form", "editable": False, "deletable": False}
    return [note, cell]


def _finish(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """Tidy, no outputs, Otter's assignment name and deterministic cell ids."""
    nb.metadata = {"language_info": {"name": "python"}, "otter": {"assignment_name": name}}
    for i, cell in enumerate(nb.cells):
        # Deterministic cell ids: the handouts are committed (Colab and Binder open them from
        # the repository), so rebuilding an unchanged master must not change them.
        cell.id = f"{name[:50]}-{i:03d}"
    return clear_outputs(tidy(nb))


def replace_init_cell(path: Path, name: str, public_tests: dict[str, str]) -> None:
    """Swap Otter's init cell for the setup cells, placed after the notebook's title cell."""
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells
             if not (c.cell_type == "code" and c.source.startswith("# Initialize Otter"))]
    first_md = next((i for i, c in enumerate(cells) if c.cell_type == "markdown"), -1)
    nb.cells = cells[: first_md + 1] + setup_cells(name, public_tests) + cells[first_md + 1:]
    nbformat.write(_finish(nb, name), path)


# ----------------------------------------------------------------------------------------------
# The autograder archive (what grading takes)
# ----------------------------------------------------------------------------------------------

def autograder_archive(autograder: Path, name: str) -> Path:
    """``autograder/NAME-autograder.zip``: Otter's time-stamped archive rewritten under a fixed
    name, with the test files renamed by :func:`name_test_cases` (read from ``autograder/tests``).
    """
    stamped = [z for z in autograder.glob("*.zip") if z.name != f"{name}-autograder.zip"]
    if len(stamped) != 1:
        raise RuntimeError(f"expected one autograder zip from otter assign in {autograder}, "
                           f"found {[z.name for z in stamped]}")
    target = autograder / f"{name}-autograder.zip"
    with zipfile.ZipFile(stamped[0]) as src, zipfile.ZipFile(target, "w",
                                                             zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.startswith("tests/") and info.filename.endswith(".py"):
                data = (autograder / info.filename).read_bytes()
            dst.writestr(info, data)
    stamped[0].unlink()
    return target


# ----------------------------------------------------------------------------------------------
# Building one assignment
# ----------------------------------------------------------------------------------------------

def _fingerprint(master: Path, run_tests: bool) -> str:
    import otter

    code = [Path(m.__file__).read_bytes() for m in (sys.modules[__name__], leaks, notebooks)]
    h = hashlib.sha256()
    for part in (master.read_bytes(), *code, otter.__version__.encode(), str(run_tests).encode()):
        h.update(part)
    return h.hexdigest()


def build_one(master: Path, build: Path = BUILD, site: Path | None = SITE,
              run_tests: bool = False, force: bool = False) -> tuple[str, float]:
    """Run ``otter assign`` on ``master`` and finish its output; returns (status, seconds)."""
    start = time.perf_counter()
    name = master.stem
    out = build / name
    stamp = out / ".fingerprint"
    fingerprint = _fingerprint(master, run_tests)
    up_to_date = (stamp.exists() and stamp.read_text() == fingerprint
                  and (out / "autograder" / f"{name}-autograder.zip").exists()
                  and (site is None or (site / f"{name}.ipynb").exists()))
    if up_to_date and not force:
        return "up to date", time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    otter_cli = Path(sys.executable).with_name("otter")
    cmd = [str(otter_cli), "assign", str(master), str(out)]
    if not run_tests:
        cmd.append("--no-run-tests")
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=master.parent)
    if result.returncode != 0:
        raise RuntimeError(f"otter assign failed for {master.name} (exit {result.returncode}):\n"
                           f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    public = {}
    for folder in (out / "student" / "tests", out / "autograder" / "tests"):
        for test in sorted(folder.glob("*.py")):
            test.write_text(name_test_cases(test.read_text()))
            if folder.parent.name == "student":
                public[test.stem] = test.read_text()
    autograder_archive(out / "autograder", name)
    for nb in (out / "student" / f"{name}.ipynb", out / "autograder" / f"{name}.ipynb"):
        replace_init_cell(nb, name, public)
    student = out / "student" / f"{name}.ipynb"
    found = leaks.leaks(master, notebook_text(student))
    if found:
        raise RuntimeError(f"the handout {student} gives away:\n  " + "\n  ".join(found))
    if site is not None:
        site.mkdir(parents=True, exist_ok=True)
        shutil.copy(student, site / f"{name}.ipynb")
    stamp.write_text(fingerprint)
    return "built", time.perf_counter() - start


def stale_site_copies(build: Path = BUILD, site: Path = SITE,
                      folder: Path = MASTERS) -> list[str]:
    """The handouts of ``site`` that are missing, differ from the ones built in ``build``, or
    have no master in ``folder`` (the book build checks them; it writes nothing there)."""
    names = {m.stem for m in masters(folder=folder)}
    stale = [p.name for p in site.glob("*.ipynb") if p.stem not in names]
    for name in names:
        built, copy = build / name / "student" / f"{name}.ipynb", site / f"{name}.ipynb"
        if not copy.is_file() or copy.read_bytes() != built.read_bytes():
            stale.append(copy.name)
    return sorted(stale)


def masters(names: list[str] | None = None, folder: Path = MASTERS) -> list[Path]:
    """The master notebooks of ``folder`` (all, or those of ``names``), sorted."""
    found = sorted(folder.glob("*.ipynb"))
    if names:
        by_name = {m.stem: m for m in found}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise SystemExit(f"handouts: no master notebook {missing} in {folder}; "
                             f"there are {sorted(by_name)}")
        found = [by_name[n] for n in names]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursetools handouts",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="assignments to build (default: all)")
    parser.add_argument("--run-tests", action="store_true",
                        help="let otter assign check that every solution passes its tests")
    parser.add_argument("--force", action="store_true", help="rebuild up-to-date assignments")
    parser.add_argument("--jobs", type=int, default=2, help="assignments built at once")
    parser.add_argument("--build", type=Path, default=BUILD, help="output folder")
    parser.add_argument("--no-site", action="store_true",
                        help=f"do not copy the handouts to {SITE.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    todo = masters(args.names)
    if not todo:
        print(f"handouts: no master notebook in {MASTERS}")
        return 0
    start = time.perf_counter()
    site = None if args.no_site else SITE
    if site is not None and not args.names:
        # Handouts of masters that no longer exist must not stay on the website.
        for stale in site.glob("*.ipynb"):
            if not (MASTERS / stale.name).exists():
                stale.unlink()
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = {m.stem: pool.submit(build_one, m, args.build, site, args.run_tests, args.force)
                   for m in todo}
        failed = 0
        for name, future in futures.items():
            try:
                status, seconds = future.result()
                print(f"handouts: {name}: {status} ({seconds:.1f} s)", flush=True)
            except Exception as err:  # report every assignment, then fail
                failed += 1
                print(f"handouts: {name}: FAILED\n{err}", file=sys.stderr, flush=True)
    print(f"handouts: {len(todo)} assignment(s) in {time.perf_counter() - start:.1f} s -> "
          f"{args.build}" + ("" if site is None else f" and {site}"), flush=True)
    return 1 if failed else 0

