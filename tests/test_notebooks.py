"""Every notebook of the course executes top to bottom, and its checked outputs still hold.

Each notebook runs in its own nbval process (lax mode: only cells marked
tagged ``nbval-check-output`` are compared with their stored outputs, after the replacements in
``nbval_sanitize.cfg``), with the kernel of the current environment. A failing cell anywhere, or a
checked output that changed, fails the test with nbval's report.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import NOTEBOOK_TIMES, ROOT, course_notebooks, run_nbval

from coursetools import setup_cell

NOTEBOOKS = course_notebooks()
IDS = [str(nb.relative_to(ROOT)) for nb in NOTEBOOKS]
#: Every chapter and lab notebook carries the setup cell; the assignments bootstrap themselves.
WITH_SETUP_CELL = setup_cell.notebooks(ROOT)


def test_the_course_has_notebooks():
    assert any("chapters" in i for i in IDS), "no notebook found under chapters/"


def test_every_chapter_and_lab_notebook_gets_the_setup_cell():
    """Only the assignments' masters go without it (their handouts have Otter's setup)."""
    without = [i for nb, i in zip(NOTEBOOKS, IDS)
               if nb not in WITH_SETUP_CELL and not i.startswith("labs/assignments/")]
    assert not without, f"{without} would get no setup cell: see coursetools/setup_cell.py"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_notebook_conventions(notebook: Path):
    """One 'parameters' cell, first; no stored error outputs; kernel python3; seeded; in every
    chapter and lab notebook, the current setup cell right after the parameters cell."""
    nb = json.loads(notebook.read_text())
    tagged = [i for i, c in enumerate(nb["cells"])
              if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, \
        f"{notebook.name}: expected one cell tagged 'parameters', found {len(tagged)}"
    assert nb["cells"][tagged[0]]["cell_type"] == "code"
    code_before = [c for c in nb["cells"][: tagged[0]] if c["cell_type"] == "code"]
    assert not code_before, f"{notebook.name}: the parameters cell must be the first code cell"
    errors = [o for c in nb["cells"] for o in c.get("outputs", [])
              if o.get("output_type") == "error"
              and "raises-exception" not in c.get("metadata", {}).get("tags", [])]
    assert not errors, f"{notebook.name}: has stored error outputs; re-execute it"
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3"
    comments = [i for i, c in enumerate(nb["cells"]) if "# NBVAL_" in "".join(c["source"])]
    assert not comments, (f"{notebook.name}: cells {comments} carry nbval markers as comments, "
                          "which the site shows; use cell tags such as 'nbval-check-output'")
    assert any("seed" in "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"), \
        f"{notebook.name}: never seeds its random generators"
    if notebook in WITH_SETUP_CELL:
        problem = setup_cell.problem(notebook, ROOT)
        assert problem is None, f"{problem}: run `python -m coursetools setup-cell`"


@pytest.mark.notebooks
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_notebook_executes(notebook: Path):
    result = run_nbval(notebook)
    assert result.returncode == 0, (
        f"{notebook.relative_to(ROOT)} failed under nbval:\n{result.stdout[-8000:]}\n"
        f"{result.stderr[-3000:]}"
    )


def _copy_with(tmp_path: Path, edit) -> Path:
    """A copy of chapter 1's notebook, changed by ``edit(cells)``, next to its original."""
    source = ROOT / "chapters" / "01_empirical_risk" / "empirical_risk.ipynb"
    nb = json.loads(source.read_text())
    edit(nb["cells"])
    target = tmp_path / "chapters" / "01_empirical_risk" / "broken.ipynb"
    target.parent.mkdir(parents=True)
    shutil.copy(source.parent / "index.md", target.parent / "index.md")
    target.write_text(json.dumps(nb))
    return target


@pytest.mark.notebooks
def test_a_failing_cell_fails_the_harness(tmp_path: Path):
    """Breaking one cell must make the notebook test fail (what CI relies on)."""

    def break_last_code_cell(cells):
        last = [c for c in cells if c["cell_type"] == "code"][-1]
        last["source"] = "raise RuntimeError('a deliberately broken cell')\n"

    result = run_nbval(_copy_with(tmp_path, break_last_code_cell))
    NOTEBOOK_TIMES.pop("broken.ipynb", None)
    assert result.returncode != 0
    assert "deliberately broken cell" in result.stdout


@pytest.mark.notebooks
def test_a_changed_checked_output_fails_the_harness(tmp_path: Path):
    """A cell tagged nbval-check-output whose stored output no longer matches must fail."""

    def tamper_checked_output(cells):
        checked = [c for c in cells if c["cell_type"] == "code"
                   and "nbval-check-output" in c["metadata"].get("tags", [])]
        assert checked, "chapter 1 has no checked cell"
        checked[0]["outputs"] = [{"output_type": "stream", "name": "stdout",
                                  "text": ["a number the prose no longer matches\n"]}]

    result = run_nbval(_copy_with(tmp_path, tamper_checked_output))
    NOTEBOOK_TIMES.pop("broken.ipynb", None)
    assert result.returncode != 0
