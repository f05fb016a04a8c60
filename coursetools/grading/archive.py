"""The autograder archive: finding the one ``make handouts`` built, and reading its questions."""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from coursetools.notebooks import ROOT

BUILD = ROOT / "_build" / "assign"


@dataclass
class Autograder:
    """An Otter autograder archive: its path, assignment name and questions with their points."""

    path: Path
    name: str | None
    questions: dict[str, float]

    @classmethod
    def load(cls, path: Path) -> Autograder:
        from otter.test_files import ExceptionTestFile

        if not path.is_file():
            raise SystemExit(f"grade: no autograder archive at {path}; build it with "
                             "`python -m coursetools handouts` (make handouts)")
        questions: dict[str, float] = {}
        with zipfile.ZipFile(path) as zf, tempfile.TemporaryDirectory() as tmp:
            config = json.loads(zf.read("otter_config.json")) if "otter_config.json" in \
                zf.namelist() else {}
            for member in zf.namelist():
                if member.startswith("tests/") and member.endswith(".py"):
                    target = Path(tmp) / Path(member).name
                    target.write_bytes(zf.read(member))
                    test = ExceptionTestFile.from_file(str(target))
                    questions[test.name] = test.possible
        order = sorted(questions, key=lambda q: [int(t) if t.isdigit() else t
                                                 for t in re.split(r"(\d+)", q)])
        return cls(path, config.get("assignment_name"), {q: questions[q] for q in order})

    @property
    def possible(self) -> float:
        return sum(self.questions.values())


def find_autograder(assignment: str, build: Path = BUILD) -> Path:
    folder = build / assignment / "autograder"
    archives = sorted(folder.glob("*-autograder*.zip"))
    if not archives:
        raise SystemExit(f"grade: no autograder archive for {assignment!r} in {folder}; build it "
                         f"with `python -m coursetools handouts {assignment}`")
    return archives[-1]
