"""Gradescope: the autograder archive in Gradescope's format, and what runs inside it.

    python -m coursetools gradescope 04_adam [--autograder ZIP] [--out DIR]

writes ``DIR/04_adam-gradescope.zip`` (default ``_build/gradescope/``), to upload as a
Gradescope *Programming Assignment*'s autograder. It holds Gradescope's two scripts:

* ``setup.sh``: installs bubblewrap and Python's packages (the course's pins, labkit from the
  public repository's tag) when Gradescope builds the image;
* ``run_autograder``: grades ``/autograder/submission/*.ipynb`` with this course's grader and
  writes ``/autograder/results/results.json`` per Gradescope's specification (``score``,
  ``output``, and per test ``name``, ``score``, ``max_score``, ``output``, ``visibility``:
  public tests ``visible``, hidden ones ``after_published``, with their name and verdict only);

and the grader itself (``coursetools/``), the tests (the Otter archive, with the master's
forbidden references and the handout's code in ``coursetools.json``).

Inside Gradescope's container the same split holds as on the instructor's machine: the
submission runs unprivileged, in the bubblewrap sandbox where the container allows it, otherwise
as user ``nobody`` (``setpriv``) with the results folder left writable by root only, as
PrairieLearn does; every verdict is computed by the grader's own process, never by the
submission's. Where neither can be made (not root, no bubblewrap), ``results.json`` says so and
the score is 0. ``AUTOGRADER_NO_BUBBLEWRAP=1`` in the environment forces the fallback (for its
test, ``tests/test_gradescope.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import tempfile
import zipfile
from pathlib import Path

from coursetools.grading import isolation, supervise
from coursetools.grading.archive import EXTRA, Autograder, declarations, find_autograder
from coursetools.grading.intake import discover
from coursetools.grading.reports import EXPLAIN, points
from coursetools.notebooks import ROOT

OUT = ROOT / "_build" / "gradescope"
#: The grader's own files that go into the archive (and nothing else of the repository).
GRADER_FILES = ("coursetools/__init__.py", "coursetools/notebooks.py")

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for each submission (as root, in the image setup.sh built).
set -u
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PYTHON="${AUTOGRADER_PYTHON:-python3}"
cd "$ROOT/source" || exit 1
PYTHONPATH="$ROOT/source" exec "$PYTHON" -m coursetools.grading.gradescope run --root "$ROOT"
"""

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder's image (Ubuntu, as root).
set -eu
apt-get update -qq
apt-get install -y -qq bubblewrap python3 python3-pip python3-venv util-linux
python3 -m pip install --quiet --break-system-packages -r /autograder/source/requirements.txt \\
  || python3 -m pip install --quiet -r /autograder/source/requirements.txt
"""

#: Packages the grader and the notebooks need inside Gradescope (their pins come from
#: requirements.txt).
PACKAGES = ("torch", "numpy", "ipython", "nbformat", "psutil", "pyyaml", "matplotlib", "mlxtend",
            "otter-grader")


def _requirements(root: Path) -> str:
    from coursetools.setup_cell import release_requirement

    lines = []
    for line in (root / "requirements.txt").read_text(encoding="utf-8").splitlines():
        name = line.split("#", 1)[0].split("==", 1)[0].strip().lower()
        if name in PACKAGES:
            lines.append(line.split("#", 1)[0].strip())
    lines.append(release_requirement(root))
    return "\n".join(lines) + "\n"


def build(archive: Path, out: Path, root: Path = ROOT) -> Path:
    """Write ``out/NAME-gradescope.zip`` for the Otter archive ``archive``; return its path."""
    autograder = Autograder.load(archive)
    name = autograder.name or archive.stem.replace("-autograder", "")
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}-gradescope.zip"
    with tempfile.TemporaryDirectory() as tmp:
        tests = Path(tmp) / "tests.zip"
        with zipfile.ZipFile(archive) as src, zipfile.ZipFile(tests, "w") as dst:
            for member in src.namelist():
                if member != EXTRA:
                    dst.writestr(member, src.read(member))
            dst.writestr(EXTRA, json.dumps(declarations(autograder.name, archive)))
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            for script, text in (("run_autograder", RUN_AUTOGRADER), ("setup.sh", SETUP)):
                info = zipfile.ZipInfo(script)
                info.external_attr = (stat.S_IFREG | 0o755) << 16
                zf.writestr(info, text)
            zf.writestr("requirements.txt", _requirements(root))
            zf.write(tests, f"{name}-autograder.zip")
            for rel in GRADER_FILES:
                zf.write(root / rel, rel)
            for path in sorted((root / "coursetools" / "grading").glob("*.py")):
                zf.write(path, path.relative_to(root).as_posix())
    return target


def results_json(row: supervise.Row, autograder: Autograder) -> dict:
    """Gradescope's results.json for one graded row (hidden tests: name and verdict only)."""
    if row.status != "ok":
        return {"score": 0, "output": f"{row.status}: {row.detail}\n{EXPLAIN.get(row.status, '')}",
                "stdout_visibility": "hidden", "tests": []}
    tests = []
    for q, info in row.questions.items():
        for t in info["tests"]:
            shown = not t["hidden"] or t["message"].startswith(("your code uses ", "`"))
            tests.append({"name": f"{q}: {t['name']}", "score": t["points"] if t["passed"] else 0,
                          "max_score": t["points"],
                          "output": t["message"] if shown and not t["passed"] else "",
                          "visibility": "after_published" if t["hidden"] else "visible"})
    output = f"Score {points(row.total)} / {points(autograder.possible)}"
    if row.flags:
        output += (f". Integrity: your code uses {row.flags}, which this assignment does not "
                   "allow; the tests that compare against it earn nothing.")
    if row.detail:
        output += f" ({row.detail})"
    return {"score": row.total, "output": output, "stdout_visibility": "hidden", "tests": tests}


#: Set to 1, the grader acts as if bubblewrap could make no sandbox here (as in a container
#: without user namespaces), so that the fallback to user ``nobody`` can be tested where it can.
NO_BUBBLEWRAP = "AUTOGRADER_NO_BUBBLEWRAP"


def _mode() -> tuple[bool, str]:
    """(sandboxed, note): bubblewrap if it works here (and :data:`NO_BUBBLEWRAP` is not 1), else
    user nobody (when root), else none."""
    if os.environ.get(NO_BUBBLEWRAP) != "1" and isolation.sandbox_problem() is None:
        return True, ""
    if os.geteuid() == 0 and shutil.which("setpriv"):
        isolation.FALLBACK_USER = isolation.NOBODY
        return False, ""
    return False, "no sandbox and no unprivileged user can be made here"


def run(root: Path) -> dict:
    """Grade the one notebook of ``root/submission`` and write ``root/results/results.json``."""
    archive = next((root / "source").glob("*-autograder.zip"))
    os.chmod(archive, 0o600)  # the hidden tests: readable by the grader (root) alone
    autograder = Autograder.load(archive)
    results = root / "results"
    results.mkdir(parents=True, exist_ok=True)
    os.chmod(results, 0o755)  # the submission's user cannot write here
    found, skipped = discover(root / "submission")
    sandboxed, problem = _mode()
    if problem or not found:
        why = problem or ("no notebook (.ipynb) in the submission: "
                          + (", ".join(rel for rel, _ in skipped) or "it is empty"))
        doc = {"score": 0, "output": why, "tests": []}
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            (out / "logs").mkdir()
            if not sandboxed:
                os.chmod(out, 0o711)
            row = supervise.grade_one(found[0], autograder, out, limits=supervise.Limits(),
                                      key="submission", sandboxed=sandboxed)
            doc = results_json(row, autograder)
            log = (out / "logs" / "submission.log")
            if log.is_file():
                print(log.read_text(errors="replace")[-20000:])
    (results / "results.json").write_text(json.dumps(doc, indent=1))
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursetools gradescope",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    inside = sub.add_parser("run", help="(inside Gradescope) grade /autograder/submission")
    inside.add_argument("--root", type=Path, default=Path("/autograder"))
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:
        args = parser.parse_args(argv)
        doc = run(args.root)
        print(f"gradescope: score {doc['score']}", flush=True)
        return 0
    build_parser = argparse.ArgumentParser(prog="python -m coursetools gradescope",
                                           description=__doc__.splitlines()[0])
    build_parser.add_argument("assignment", help="name of an assignment built by make handouts")
    build_parser.add_argument("--autograder", type=Path, help="an Otter autograder archive")
    build_parser.add_argument("--out", type=Path, default=OUT, help="folder for the zip")
    args = build_parser.parse_args(argv)
    archive = args.autograder or find_autograder(args.assignment)
    target = build(archive, args.out)
    print(f"gradescope: {target} (upload it as the autograder of a Programming Assignment)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
