"""The student handouts in labs/handouts/ are committed, and match their master notebooks.

The website's Colab and Binder buttons open a handout from the repository, so the generated
student versions are committed. This test regenerates them from the masters into a scratch folder
and compares them byte for byte with the committed files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from coursetools.handouts import stale_site_copies

MASTERS = sorted((ROOT / "labs" / "assignments").glob("*.ipynb"))
HANDOUTS = ROOT / "labs" / "handouts"


def _committed(path: Path) -> bytes | None:
    """The file's content in git's HEAD, or None outside a git checkout."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return None
    rel = path.relative_to(ROOT).as_posix()
    result = subprocess.run(["git", "show", f"HEAD:{rel}"], cwd=ROOT, capture_output=True)
    if result.returncode != 0:
        pytest.fail(f"{rel} is not committed: run `make handouts` and commit labs/handouts/",
                    pytrace=False)
    return result.stdout


def test_every_master_has_a_committed_up_to_date_handout(tmp_path: Path):
    assert MASTERS, "no master notebook in labs/assignments/"
    result = subprocess.run([sys.executable, "-m", "coursetools", "handouts", "--no-site",
                             "--force", "--build", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    stale = []
    for master in MASTERS:
        fresh = (tmp_path / master.stem / "student" / master.name).read_bytes()
        committed = _committed(HANDOUTS / master.name)
        if committed is None:
            committed = (HANDOUTS / master.name).read_bytes()
        if committed != fresh:
            stale.append(master.name)
    assert not stale, (f"the committed handouts {stale} differ from what their masters give: "
                       "run `make handouts` and commit labs/handouts/")
    extra = sorted({p.name for p in HANDOUTS.glob("*.ipynb")} - {m.name for m in MASTERS})
    assert not extra, f"handouts without a master: {extra}; delete them"


def test_the_book_build_finds_stale_handouts(tmp_path: Path):
    """``make book`` writes no tracked file: it checks the committed handouts instead, and names
    those that are missing, differ from what their masters give, or have no master."""
    masters, build, site = tmp_path / "masters", tmp_path / "build", tmp_path / "site"
    for folder in (masters, site):
        folder.mkdir()
    for name in ("a", "b", "c"):
        (masters / f"{name}.ipynb").write_text("master")
        (build / name / "student").mkdir(parents=True)
        (build / name / "student" / f"{name}.ipynb").write_text(f"handout {name}")
    (site / "a.ipynb").write_text("handout a")
    (site / "b.ipynb").write_text("an older handout b")
    (site / "gone.ipynb").write_text("handout of a deleted master")
    assert stale_site_copies(build, site, masters) == ["b.ipynb", "c.ipynb", "gone.ipynb"]
    (site / "b.ipynb").write_text("handout b")
    (site / "c.ipynb").write_text("handout c")
    (site / "gone.ipynb").unlink()
    assert stale_site_copies(build, site, masters) == []
