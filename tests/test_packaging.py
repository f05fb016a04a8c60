"""Two distributions: labkit for students (the repository's pyproject.toml, what the notebooks'
setup cell installs) and coursetools for instructors (coursetools/pyproject.toml).

The labkit wheel is built from a copy of its sources and installed into a fresh virtual
environment (no system site-packages, no PYTHONPATH) whose only other packages are labkit's
declared dependencies and what they require in turn, taken from this environment
(tests/linked_env.py: linked, not downloaded; no network, and installing torch anew takes
minutes). There every labkit module must
import and train, and nothing of the instructors' tooling may be importable.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest
from linked_env import dependency_closure, link_distributions

from coursetools import notebooks

ROOT = Path(__file__).resolve().parent.parent
#: What students need: labkit's own imports (scipy: labkit.compare).
STUDENT_DEPENDENCIES = {"torch", "numpy", "matplotlib", "tqdm", "scipy"}
#: The instructors' tooling, which a student's environment must not need.
INSTRUCTOR_MODULES = ("coursetools", "nbformat", "otter", "papermill", "jupyter_book", "sphinx",
                      "pypdf", "playwright", "psutil", "yaml")


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower()


def _wheel(source: Path, out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(out), str(source)], check=True, timeout=300)
    return next(out.glob("*.whl"))


def _metadata(wheel: Path) -> tuple[list[str], set[str]]:
    """The wheel's Requires-Dist lines and the top-level folders it installs."""
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [ln.split(":", 1)[1].strip() for ln in meta.splitlines()
                if ln.startswith("Requires-Dist:")]
    return requires, {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}


@pytest.fixture(scope="module")
def labkit_wheel(tmp_path_factory) -> Path:
    """labkit's wheel, built from a copy of what its pyproject.toml packs (no build/ left here)."""
    src = tmp_path_factory.mktemp("labkit-src")
    shutil.copytree(ROOT / "labkit", src / "labkit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    return _wheel(src, tmp_path_factory.mktemp("wheels"))


def test_the_labkit_wheel_holds_labkit_alone_with_the_students_dependencies(labkit_wheel):
    requires, tops = _metadata(labkit_wheel)
    assert tops == {"labkit"}
    assert {_name(r) for r in requires} == STUDENT_DEPENDENCIES
    with zipfile.ZipFile(labkit_wheel) as z:
        packed = {n for n in z.namelist() if n.endswith(".py")}
    ours = {p.relative_to(ROOT).as_posix() for p in (ROOT / "labkit").rglob("*.py")
            if "__pycache__" not in p.parts}
    assert packed == ours


def test_the_coursetools_wheel_holds_coursetools_with_its_own_dependencies(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "coursetools", src,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info"))
    requires, tops = _metadata(_wheel(src, tmp_path / "wheels"))
    assert tops == {"coursetools"}
    names = {_name(r) for r in requires}
    assert {"labkit", "nbformat", "otter-grader", "papermill", "jupyter-book", "pyyaml"} <= names
    with zipfile.ZipFile(next((tmp_path / "wheels").glob("*.whl"))) as z:
        packed = set(z.namelist())
    packages = {p.parent.relative_to(ROOT).as_posix()
                for p in (ROOT / "coursetools").rglob("__init__.py")}
    assert {f"{p}/__init__.py" for p in packages} <= packed, "a subpackage is not packed: list "\
        "it in coursetools/pyproject.toml"
    assert "coursetools/release_README.md" in packed


def _clean_env() -> dict[str, str]:
    """This environment without PYTHONPATH (which puts the checkout's labkit first)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


@pytest.fixture(scope="module")
def student_venv(labkit_wheel, tmp_path_factory) -> Path:
    """A fresh venv with the labkit wheel and only its dependencies' closure (linked from here)."""
    base = tmp_path_factory.mktemp("student")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    deps = base / "deps"
    requires, _ = _metadata(labkit_wheel)
    link_distributions(dependency_closure(tuple(_name(r) for r in requires)).values(),
                       Path(sysconfig.get_paths()["purelib"]), deps)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "labkit_dependencies.pth").write_text(f"{deps}\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--no-index", str(labkit_wheel)], check=True, timeout=300,
                   env=_clean_env())  # with the checkout on PYTHONPATH pip sees labkit installed
    return venv


def test_labkit_works_alone_in_a_fresh_venv_without_the_instructors_tooling(student_venv,
                                                                             tmp_path):
    script = textwrap.dedent(f"""
        import importlib, importlib.util, pkgutil, sys
        import torch
        import labkit
        assert labkit.__file__.startswith({str(student_venv)!r}), labkit.__file__
        for info in pkgutil.walk_packages(labkit.__path__, prefix="labkit."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
        from labkit.models import MLP
        from labkit.sweep import SweepConfig, sweep_mlp
        X, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
        result = sweep_mlp(MLP(), [SweepConfig("Adam", 1e-3), SweepConfig("Adam", 1e-2)], X, y,
                           batch_size=16)
        assert all(len(h.loss) == 4 for h in result.histories)
        present = [m for m in {INSTRUCTOR_MODULES!r} if importlib.util.find_spec(m)]
        print("instructors' modules importable:", present)
        assert not present
        print("ok", len(list(pkgutil.walk_packages(labkit.__path__))), "modules")
    """)
    run = subprocess.run([str(student_venv / "bin" / "python"), "-c", script], cwd=tmp_path,
                         env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ok" in run.stdout


def test_the_students_closure_is_not_everything_here():
    """The check above means something: this environment does have the instructors' tooling,
    and labkit's dependencies do not pull it in."""
    names = set(dependency_closure(tuple(STUDENT_DEPENDENCIES)))
    assert "torch" in names
    assert not names & {"nbformat", "otter-grader", "papermill", "jupyter-book", "pyyaml"}
    assert all(metadata.distribution(n) for n in ("nbformat", "otter-grader", "papermill"))


def test_coursetools_finds_the_repository_without_an_editable_install(tmp_path, monkeypatch):
    monkeypatch.delenv(notebooks.ROOT_ENV, raising=False)
    assert notebooks.find_root() == ROOT  # from this checkout
    monkeypatch.setattr(notebooks, "__file__", str(tmp_path / "site" / "coursetools" / "x.py"))
    monkeypatch.chdir(ROOT / "chapters")
    assert notebooks.find_root() == ROOT  # installed elsewhere: found from the working directory
    monkeypatch.chdir(tmp_path)
    with pytest.raises(notebooks.RootNotFound, match="COURSE_ROOT=/path/to/the/repository"):
        notebooks.find_root()
    monkeypatch.setenv(notebooks.ROOT_ENV, str(ROOT))
    assert notebooks.find_root() == ROOT
    monkeypatch.setenv(notebooks.ROOT_ENV, str(tmp_path))
    with pytest.raises(notebooks.RootNotFound, match="not the course repository"):
        notebooks.find_root()


def test_the_command_line_says_where_to_run_it(tmp_path):
    env = {**os.environ, notebooks.ROOT_ENV: str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "coursetools", "setup-cell", "--check"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "not the course repository" in run.stderr and "Traceback" not in run.stderr
