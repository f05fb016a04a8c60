"""Binder's configuration (binder/, read by repo2docker), checked statically: it parses, it pins
what requirements.txt pins, it takes PyTorch's CPU wheels only, it has what labkit and the
notebooks import, and nothing of the book build, the tests or the grading."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from coursetools import setup_cell

BINDER = ROOT / "binder"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
#: The course's tooling: the book build, the tests, the browser test, grading.
NOT_ON_BINDER = {"jupyter-book", "sphinxcontrib-bibtex", "django-static-mathjax", "jupytext",
                 "papermill", "nbval", "pytest", "pytest-xdist", "playwright", "ruff",
                 "otter-grader", "psutil", "nbclient", "nbformat"}


def parse(path: Path) -> tuple[dict[str, Requirement], list[str]]:
    """The requirements of a pip requirements file, by canonical name, and its option lines."""
    requirements, options = {}, []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            options.append(line)
            continue
        req = Requirement(line)              # raises InvalidRequirement on a bad line
        assert canonicalize_name(req.name) not in requirements, f"{path}:{number}: twice"
        requirements[canonicalize_name(req.name)] = req
    return requirements, options


def pinned(req: Requirement) -> Version:
    (spec,) = req.specifier
    assert spec.operator == "==", f"{req} is not pinned with =="
    return Version(spec.version)


BINDER_REQS, BINDER_OPTIONS = parse(BINDER / "requirements.txt")
COURSE_REQS, _ = parse(ROOT / "requirements.txt")


def test_every_binder_requirement_is_pinned_as_in_requirements_txt():
    for name, req in BINDER_REQS.items():
        assert name in COURSE_REQS, f"binder pins {name}, which requirements.txt does not"
        ours, course = pinned(req), pinned(COURSE_REQS[name])
        assert ours.public == course.public, f"{name}: binder {ours}, requirements.txt {course}"


def test_pytorch_comes_as_cpu_wheels_only():
    for name in ("torch", "torchvision"):
        assert pinned(BINDER_REQS[name]).local == "cpu", f"{name} is not a +cpu wheel"
    text = (BINDER / "requirements.txt").read_text()
    assert not re.search(r"\+cu\d|nvidia|cuda", text, re.I), "a CUDA wheel in binder/"
    indexes = [o.split(maxsplit=1)[1] for o in BINDER_OPTIONS]
    assert all(o.split()[0] in ("--extra-index-url", "--index-url") for o in BINDER_OPTIONS)
    assert indexes == [CPU_INDEX]


def test_nothing_of_the_book_tests_or_grading():
    assert not NOT_ON_BINDER & set(BINDER_REQS), sorted(NOT_ON_BINDER & set(BINDER_REQS))


def _imported(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module.split(".")[0])
    return modules


def test_it_has_what_labkit_and_the_notebooks_import():
    modules = set()
    for path in (ROOT / "labkit").rglob("*.py"):
        modules |= _imported(path.read_text())
    for path in setup_cell.notebooks(ROOT):
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        modules |= _imported("\n".join(ln for ln in code.splitlines()
                                       if not ln.lstrip().startswith(("%", "!"))))
    modules -= set(sys.stdlib_module_names) | {"labkit", "__future__"}
    provides = importlib.metadata.packages_distributions()
    needed = {canonicalize_name(provides[m][0]) for m in modules}
    needed |= {canonicalize_name(Requirement(r).name)
               for r in importlib.metadata.requires("labkit") or []}
    assert "mlxtend" in needed and "torch" in needed
    missing = needed - set(BINDER_REQS)
    assert not missing, f"binder/requirements.txt lacks {sorted(missing)}"


def test_runtime_and_post_build():
    assert re.fullmatch(r"python-3\.1[0-2]\n?", (BINDER / "runtime.txt").read_text())
    post = BINDER / "postBuild"
    assert post.stat().st_mode & 0o111, "binder/postBuild must be executable"
    assert subprocess.run(["bash", "-n", str(post)]).returncode == 0
    assert re.search(r"pip install --no-deps .* \.$", post.read_text(), re.M), \
        "postBuild must install labkit from the repository, without changing the pins"


@pytest.mark.parametrize("name", ["environment.yml", "apt.txt", "Dockerfile", "setup.py"])
def test_no_other_repo2docker_file_overrides_it(name: str):
    """repo2docker would take an environment.yml or Dockerfile over requirements.txt."""
    assert not (BINDER / name).exists()
