"""The autograder archive: finding the one ``make handouts`` built, and reading its tests.

Every test in the archive (Otter's ``tests/qN.py``, one ``@test_case`` function per test) is
written in two halves::

    def test_name(student_function):
        def probe(student_function):   # runs in the sandbox: calls the student's code,
            ...                        # returns what it gave (tensors, numbers, flags)
        def check(got):                # runs in the grader: raises AssertionError when
            ...                        # ``got`` is wrong, computing what is right itself
        check(probe(student_function))

so that Otter's ``grader.check("q1")`` runs the whole test in the student's notebook, and the
grader runs the probe in the sandbox and the check outside (:class:`Test`). Other statements
at the top of the test function (imports, helpers that build the test's inputs) go to both.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

from coursetools.notebooks import ROOT

BUILD = ROOT / "_build" / "assign"
EXTRA = "coursetools.json"  # in a Gradescope archive: the declarations, the handout's code


@dataclass(frozen=True)
class Test:
    """One test: where it counts, and its two halves as source code."""

    name: str
    question: str
    points: float
    hidden: bool
    params: tuple[str, ...]
    probe: str   # sent into the sandbox
    check: str   # run by the grader only


def _literal_keywords(call: ast.Call) -> dict:
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}


def _split(func: ast.FunctionDef, source: str, where: str) -> tuple[str, str, tuple[str, ...]]:
    """(probe source, check source, parameters) of a test function in probe/check form."""
    body = list(func.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # a docstring
    defs = {n.name: n for n in body if isinstance(n, ast.FunctionDef)}
    last = body[-1] if body else None
    if "probe" not in defs or "check" not in defs or not (
            isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
            and getattr(last.value.func, "id", "") == "check"):
        raise SystemExit(f"grade: {where}: test {func.name} is not written as a probe and a "
                         "check (see labs/instructors_guide.md); rebuild the handouts")
    lines = source.splitlines()

    def text(node: ast.stmt) -> str:  # whole lines, so that indentation stays consistent
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        return "\n".join(lines[first - 1:node.end_lineno])

    shared = [text(n) for n in body[:-1] if n is not defs["probe"] and n is not defs["check"]]
    probe = textwrap.dedent("\n".join(shared + [text(defs["probe"])]))
    check = textwrap.dedent("\n".join(shared + [text(defs["check"])]))
    params = tuple(a.arg for a in defs["probe"].args.args)
    return probe, check, params


def read_tests(source: str, where: str) -> tuple[str, float | None, list[Test]]:
    """(question, its points or None, its tests) of one Otter test file."""
    tree = ast.parse(source)
    question, points, tests = Path(where).stem, None, []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Constant):
            if node.targets[0].id == "name":
                question = str(node.value.value)
            elif node.targets[0].id == "points":
                points = node.value.value
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        calls = [d for d in node.decorator_list if isinstance(d, ast.Call)
                 and getattr(d.func, "id", "") == "test_case"]
        if not calls:
            continue
        meta = _literal_keywords(calls[0])
        probe, check, params = _split(node, source, where)
        tests.append(Test(meta.get("name", node.name), question, float(meta.get("points", 1)),
                          bool(meta.get("hidden", False)), params, probe, check))
    return question, points, tests


def _natural(q: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", q)]


@dataclass
class Autograder:
    """An autograder archive: its path, assignment name, questions with points, and tests."""

    path: Path
    name: str | None
    questions: dict[str, float]
    tests: list[Test]
    forbidden: tuple[str, ...] = ()   # references the answers may not use (the master declares)
    provided: frozenset = frozenset()  # the handout's own statements (not the student's code)

    @classmethod
    def load(cls, path: Path) -> Autograder:
        if not path.is_file():
            raise SystemExit(f"grade: no autograder archive at {path}; build it with "
                             "`python -m coursetools handouts` (make handouts)")
        questions: dict[str, float] = {}
        tests: list[Test] = []
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            config = json.loads(zf.read("otter_config.json")) if "otter_config.json" in \
                names else {}
            for member in names:
                if member.startswith("tests/") and member.endswith(".py"):
                    q, points, found = read_tests(zf.read(member).decode(), member)
                    questions[q] = points if points is not None else sum(t.points for t in found)
                    tests += found
            extra = json.loads(zf.read(EXTRA)) if EXTRA in names else None
        order = sorted(questions, key=_natural)
        tests.sort(key=lambda t: order.index(t.question))  # keeps each file's order of tests
        name = config.get("assignment_name")
        if extra is None:
            extra = declarations(name, path)
        from coursetools.grading.references import provided_statements

        return cls(path, name, {q: questions[q] for q in order}, tests,
                   tuple(extra.get("forbidden", ())),
                   frozenset(provided_statements(extra.get("handout_cells", []))))

    @property
    def possible(self) -> float:
        return sum(self.questions.values())


def declarations(name: str | None, archive: Path) -> dict:
    """What the master declares for grading (``forbidden``) and the handout's code cells.

    Read from the master ``labs/assignments/NAME.ipynb`` (its metadata ``coursetools``) and the
    handout built beside the archive (else the committed ``labs/handouts/NAME.ipynb``); an
    archive made by ``python -m coursetools gradescope`` carries both in ``coursetools.json``.
    """
    import nbformat

    if not name:
        return {}
    found: dict = {}
    master = ROOT / "labs" / "assignments" / f"{name}.ipynb"
    if master.is_file():
        meta = nbformat.read(master, as_version=4).metadata.get("coursetools", {})
        found["forbidden"] = list(meta.get("forbidden", []))
    for handout in (archive.parent.parent / "student" / f"{name}.ipynb",
                    ROOT / "labs" / "handouts" / f"{name}.ipynb"):
        if handout.is_file():
            nb = nbformat.read(handout, as_version=4)
            found["handout_cells"] = [c.source for c in nb.cells if c.cell_type == "code"]
            break
    return found


def find_autograder(assignment: str, build: Path = BUILD) -> Path:
    folder = build / assignment / "autograder"
    archives = sorted(folder.glob("*-autograder*.zip"))
    if not archives:
        raise SystemExit(f"grade: no autograder archive for {assignment!r} in {folder}; build it "
                         f"with `python -m coursetools handouts {assignment}`")
    return archives[-1]
