"""The public release (coursetools/release.py, ``make release``): the students' tree, no solution
in it, buttons pointing at the public repository, and a book that builds from it alone.

The book build here uses the notebooks' stored outputs (``execute_notebooks: off`` in the copy's
``_config.yml``): executing them is what tests/test_notebooks.py and the main book build do, and
the release changes no notebook. It runs offline, with warnings as errors, and with the release
first on ``PYTHONPATH``, so that Sphinx imports labkit from the release (and the book's extensions
from its ``_ext/``, a local extension folder).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import NOTEBOOK_TIMES, ROOT

from coursetools import leaks, release
from coursetools.setup_cell import public_repository

MASTERS = sorted((ROOT / "labs" / "assignments").glob("*.ipynb"))
STUDENT_FILES = ("README.md", "_config.yml", "_toc.yml", "intro.md", "api.md", "references.bib",
                 "requirements.txt", "pyproject.toml", "labkit/__init__.py",
                 "labs/first_training.ipynb", "labs/demo_results.ipynb",
                 "labs/assignments_guide.md", "binder/requirements.txt",
                 "chapters/01_empirical_risk/index.md", "_ext/labkit_links.py",
                 "_ext/static/plotly-basic-4.1.1.min.js",
                 *(f"labs/handouts/{m.name}" for m in MASTERS))
PRIVATE = ("labs/assignments", "tests", "scripts", "benchmarks", "coursetools", "CONTRIBUTING.md",
           "labs/README.md", "labs/instructors_guide.md", ".venv", "_build", ".git")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return release.build_release(tmp_path_factory.mktemp("release") / "public")


def test_the_release_holds_the_students_tree_and_nothing_private(tree: Path):
    missing = [f for f in STUDENT_FILES if not (tree / f).is_file()]
    assert not missing, f"the release lacks {missing}"
    assert sorted(p.name for p in (tree / "chapters").glob("*/*.ipynb")) == \
        sorted(p.name for p in (ROOT / "chapters").glob("*/*.ipynb"))
    present = [p for p in PRIVATE if (tree / p).exists()]
    assert not present, f"the release holds private {present}"
    names = {m.name for m in MASTERS}
    strays = [p for p in tree.rglob("*.ipynb") if p.name in names and p.parent.name != "handouts"]
    assert not strays, f"master notebooks in the release: {strays}"
    assert not list(tree.rglob("__pycache__"))


def test_its_buttons_point_at_the_public_repository(tree: Path):
    config = yaml.safe_load((tree / "_config.yml").read_text())
    assert config["repository"]["url"] == public_repository()
    private = ("# the buttons\nrepository:\n  # private\n  url: https://example.org/private  # x\n"
               "  branch: main\nhtml: {}\n")
    rewritten = release.public_config(private, "https://example.org/public")
    assert yaml.safe_load(rewritten)["repository"] == {"url": "https://example.org/public",
                                                       "branch": "main"}
    assert rewritten.startswith("# the buttons\nrepository:\n  # private\n")
    with pytest.raises(release.ReleaseError, match="repository"):
        release.public_config("title: x\n", "https://example.org/public")


def test_its_readme_and_requirements_are_for_students(tree: Path):
    readme = (tree / "README.md").read_text()
    assert public_repository() in readme and "$" not in readme.replace("$version", "")
    assert "make grade" not in readme and "assignments/" not in readme
    requirements = (tree / "requirements.txt").read_text()
    for private in ("pytest", "playwright", "nbval", "ruff", "psutil"):
        assert f"\n{private}==" not in requirements, private
    for public in ("torch==", "mlxtend==", "jupyter-book==", "otter-grader=="):
        assert public in requirements


def test_no_solution_and_no_hidden_test_anywhere(tree: Path):
    assert release.leaks_in(tree, MASTERS) == []


def test_the_leak_check_catches_each_kind_of_leak(tmp_path: Path):
    """A master, a pasted solution, one solution line in a handout: all found."""
    master = ROOT / "labs" / "assignments" / "04_adam.ipynb"
    shutil.copy(master, tmp_path / "copy_of_master.ipynb")
    solution = leaks.secrets(master)["solution"]
    assert len(solution) >= 3
    (tmp_path / "pasted.py").write_text("x = 1\n" + "\n\n".join(solution) + "\n")
    (tmp_path / "one_line.py").write_text(solution[0] + "\n")
    handouts = tmp_path / "labs" / "handouts"
    handouts.mkdir(parents=True)
    handout = json.loads((ROOT / "labs" / "handouts" / "04_adam.ipynb").read_text())
    handout["cells"][-1]["source"] = f"x = 1\n{solution[-1]}\n"
    (handouts / "04_adam.ipynb").write_text(json.dumps(handout))
    found = release.leaks_in(tmp_path, MASTERS)
    assert any(f.startswith("copy_of_master.ipynb: hidden test") for f in found)
    assert any(f.startswith("copy_of_master.ipynb: Otter marker") for f in found)
    assert any(f.startswith("pasted.py: solution or hidden test, ") for f in found)
    assert not any(f.startswith("one_line.py") for f in found)
    assert any(f.startswith("labs/handouts/04_adam.ipynb: solution") for f in found), found


def test_a_bad_output_folder_is_refused(tmp_path: Path, tree: Path):
    with pytest.raises(release.ReleaseError, match="overwrite the repository"):
        release.build_release(ROOT)
    with pytest.raises(release.ReleaseError, match="overwrite the repository"):
        release.build_release(ROOT / "labkit")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(release.ReleaseError, match="not an earlier release"):
        release.build_release(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert release.main(["--out", str(tmp_path)]) == 1


def test_the_extensions_travel_as_a_folder_and_never_from_coursetools():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert release.extension_files(config) == ["_ext"]
    with pytest.raises(release.ReleaseError, match="put the extension in _ext/"):
        release.extension_files({"sphinx": {"extra_extensions": ["coursetools.anything"]}})
    with pytest.raises(release.ReleaseError, match="not found"):
        release.extension_files({"sphinx": {"local_extensions": {"x": "no_such_folder"}}})


@pytest.mark.book
def test_the_book_builds_from_the_release_alone(tree: Path):
    config = yaml.safe_load((tree / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"       # stored outputs (see the docstring)
    (tree / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(tree)}
    probe = subprocess.run(
        [sys.executable, "-c", "import labkit; print(labkit.__file__)"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert all(line.startswith(str(tree)) for line in probe.stdout.split()), probe.stdout
    jb = Path(sys.executable).with_name("jupyter-book")
    start = time.perf_counter()
    result = subprocess.run([str(jb), "build", str(tree), "--builder", "html", "-W", "-n",
                             "--keep-going"], cwd=tree, env=env, capture_output=True, text=True,
                            timeout=900)
    NOTEBOOK_TIMES["(book build of the release, stored outputs)"] = time.perf_counter() - start
    assert result.returncode == 0, f"{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    html = tree / "_build" / "html"
    assert (html / "labs" / "handouts" / "04_adam.html").is_file()
    assert public_repository() in (html / "intro.html").read_text()
    page = (html / "chapters" / "01_empirical_risk" / "empirical_risk.html").read_text()
    hidden = page.split('class="cell tag_hide-input', 1)[-1].split('<div class="cell ', 1)[0]
    assert "Show code cell source" in hidden and "LABKIT_INSTALL" in hidden, \
        "the setup cell is not shown collapsed"
    assert release.leaks_in(html, MASTERS) == []


def test_a_setup_cell_installing_from_elsewhere_stops_the_release(tmp_path: Path):
    """Changing ``public_repository`` (or the version) without refreshing the setup cells: the
    release names every stale notebook and is not written."""
    root = tmp_path / "repo"
    for name in ("_config.yml", "pyproject.toml", "requirements.txt"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, root / name)
    chapter = sorted((ROOT / "chapters").glob("*/*.ipynb"))[0]
    (root / "chapters" / chapter.parent.name).mkdir(parents=True)
    shutil.copy(chapter, root / "chapters" / chapter.parent.name / chapter.name)
    assert release.stale_setup_cells(root) == []
    config = (root / "_config.yml").read_text()
    assert public_repository() in config
    (root / "_config.yml").write_text(config.replace(public_repository(),
                                                     "https://github.com/someone/next-term"))
    stale = release.stale_setup_cells(root)
    assert len(stale) == 1 and chapter.name in stale[0]
    with pytest.raises(release.ReleaseError, match="would not install labkit"):
        release.build_release(tmp_path / "out", root=root)
    assert not (tmp_path / "out").exists()
    assert release.stale_setup_cells(ROOT) == [], "the repository's own setup cells are stale"
