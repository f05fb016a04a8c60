"""Chapter numbers agree everywhere: folder ``chapters/NN_name/``, page title ``# NN. Title``,
position among the numbered chapters of ``_toc.yml``, and the API page's ``## Chapter NN:``
headings. The appendix lives in ``chapters/appendix_*`` under its own caption, after the chapters.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"


def toc_parts() -> dict[str, list[str]]:
    """Caption -> the top-level files of that part, in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return {part["caption"]: [c["file"] for c in part["chapters"]] for part in toc["parts"]}


def title(folder: Path) -> str:
    for line in (folder / "index.md").read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    raise AssertionError(f"{folder}/index.md has no '# ' title")


def numbered_folders() -> list[Path]:
    return sorted(p for p in CHAPTERS.iterdir() if p.is_dir() and re.match(r"\d\d_", p.name))


def test_every_chapter_folder_is_numbered_or_an_appendix():
    for p in CHAPTERS.iterdir():
        if p.is_dir() and not p.name.startswith((".", "_")):
            assert re.match(r"(\d\d|appendix)_[a-z0-9_]+$", p.name), (
                f"chapters/{p.name}: name a chapter folder NN_name or appendix_name")


def test_folder_title_and_toc_position_agree():
    folders = numbered_folders()
    numbers = [int(p.name[:2]) for p in folders]
    assert numbers == list(range(1, len(folders) + 1)), (
        f"chapter folders must be numbered 1..n without gaps, got {numbers}")
    chapters = toc_parts()["Chapters"]
    assert chapters == [f"chapters/{p.name}/index" for p in folders], (
        "_toc.yml's 'Chapters' part must list chapters/NN_*/index in folder order")
    for n, folder in enumerate(folders, start=1):
        assert title(folder).startswith(f"{n}. "), (
            f"chapters/{folder.name}/index.md: the title {title(folder)!r} must start with '{n}. '")


def test_appendix_has_its_own_caption_after_the_chapters():
    parts = toc_parts()
    captions = list(parts)
    assert "Appendix" in captions and captions.index("Appendix") == captions.index("Chapters") + 1
    appendices = sorted(p for p in CHAPTERS.iterdir() if p.name.startswith("appendix_"))
    assert parts["Appendix"] == [f"chapters/{p.name}/index" for p in appendices]
    for letter, folder in zip("ABCDEFGH", appendices):
        assert title(folder).startswith(f"Appendix {letter}: "), title(folder)


def test_api_page_headings_follow_the_chapters():
    api = (ROOT / "api.md").read_text()
    headings = [(int(n), name) for n, name in re.findall(r"^## Chapter (\d+): (.+)$", api, re.M)]
    assert [n for n, _ in headings] == sorted(n for n, _ in headings), "api.md: chapters in order"
    by_number = {int(p.name[:2]): title(p).split(". ", 1)[1] for p in numbered_folders()}
    for n, _ in headings:
        assert n in by_number, f"api.md has '## Chapter {n}:' but there is no chapter {n}"


@pytest.mark.parametrize("pattern", [r"\(chapters? (\d+)\)", r"\bchapter (\d+)\b"])
def test_chapter_references_in_labkit_name_existing_chapters(pattern):
    """labkit's docstrings say which chapter explains them: that chapter must exist."""
    last = len(numbered_folders())
    for path in (ROOT / "labkit").rglob("*.py"):
        for m in re.finditer(pattern, path.read_text(), re.I):
            assert 1 <= int(m.group(1)) <= last, (
                f"{path.relative_to(ROOT)}: 'chapter {m.group(1)}' names no chapter (1..{last})")
