"""What the website tests share: the pages of the table of contents and the built HTML.

The pages are read from ``_toc.yml``, so a chapter or lab added there is checked without any
change to the tests. ``site_dir`` returns the built site: the session's fresh build
(``built_book`` in conftest.py), or, to re-run the checks quickly while working on the site, an
already built one named by the environment variable ``BOOK_HTML`` (e.g. ``BOOK_HTML=_build/html``).
"""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

# the book's own analysis: _ext/ is on pytest's pythonpath (pyproject.toml), as Sphinx's local
# extensions are on the book build's
from labkit_links import labkit_names_used, notebook_code, source_page  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent

SOURCE_SUFFIXES = (".md", ".ipynb", ".rst")


def site_dir(request: pytest.FixtureRequest) -> Path:
    """The built site: ``$BOOK_HTML`` when set (no rebuild), else the session's build."""
    given = os.environ.get("BOOK_HTML")
    if given:
        path = Path(given).resolve()
        if not (path / "index.html").is_file():
            pytest.fail(f"BOOK_HTML={given} holds no built site (no index.html)", pytrace=False)
        return path
    return request.getfixturevalue("built_book")


def toc_pages(toc: Path = ROOT / "_toc.yml") -> list[str]:
    """Every page of the book, as Sphinx docnames (``chapters/01_x/index``), in reading order."""
    data = yaml.safe_load(toc.read_text())
    pages = [str(data["root"])]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(str(Path(entry["file"]).with_suffix("")) if
                             str(entry["file"]).endswith(SOURCE_SUFFIXES) else str(entry["file"]))
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key))

    walk(data.get("parts"))
    walk(data.get("chapters"))
    walk(data.get("sections"))
    return pages


def source_of(page: str) -> Path | None:
    """The file in the checkout that a page is built from."""
    for suffix in SOURCE_SUFFIXES:
        if (ROOT / f"{page}{suffix}").is_file():
            return ROOT / f"{page}{suffix}"
    return None


def is_notebook(page: str) -> bool:
    source = source_of(page)
    return source is not None and source.suffix == ".ipynb"


def html_file(site: Path, page: str) -> Path:
    return site / f"{page}.html"


def chapter_of(page: str) -> str | None:
    """``chapters/03_gd`` for every page of chapter 3's folder, ``None`` for other pages."""
    parts = Path(page).parts
    return "/".join(parts[:2]) if len(parts) >= 3 and parts[0] == "chapters" else None


def is_lab(page: str) -> bool:
    return Path(page).parts[0] == "labs"


# ----------------------------------------------------------------------------------------------
# Reading built HTML without a browser
# ----------------------------------------------------------------------------------------------

class _PageParser(HTMLParser):
    """Collects the ids, the links and the prose words of the article of one built page."""

    _SKIP = {"pre", "code", "script", "style", "nav", "mjx-container"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.words: list[str] = []
        self._in_article = 0
        self._in_p = 0
        self._skip = 0
        self._stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key):
                self.ids.add(a[key])
        if tag in ("br", "img", "hr", "meta", "link", "input", "source", "wbr"):
            return
        classes = (a.get("class") or "").split()
        self._stack.append(tag)
        if tag == "article" and "bd-article" in classes:
            self._in_article = len(self._stack)
        if tag == "a" and a.get("href") is not None and self._in_article:
            self.links.append(a["href"])
        if tag == "p" and self._in_article:
            self._in_p += 1
        if tag in self._SKIP or "math" in classes:
            self._skip += 1
            self._stack[-1] = tag + "!"

    def handle_endtag(self, tag):
        if tag not in self._stack and tag + "!" not in self._stack:
            return
        while self._stack:
            top = self._stack.pop()
            if top.endswith("!"):
                self._skip -= 1
            if top.rstrip("!") == "p" and self._in_article:
                self._in_p = max(0, self._in_p - 1)
            if self._in_article and len(self._stack) < self._in_article:
                self._in_article = 0
            if top.rstrip("!") == tag:
                break

    def handle_data(self, data):
        if self._in_article and self._in_p and not self._skip:
            self.words.extend(re.findall(r"[A-Za-z]+", data))


_PARSED: dict[Path, _PageParser] = {}


def parse(path: Path) -> _PageParser:
    """The ids, article links and article prose words of a built HTML file (cached)."""
    path = path.resolve()
    if path not in _PARSED:
        parser = _PageParser()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        _PARSED[path] = parser
    return _PARSED[path]


def resolve_link(site: Path, page_file: Path, href: str) -> tuple[Path, str] | None:
    """The file and fragment an internal link of ``page_file`` points at; None if external."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or href.startswith(("javascript:", "mailto:")):
        return None
    if not parts.path:
        return page_file, unquote(parts.fragment)
    target = (page_file.parent / unquote(parts.path)).resolve()
    if target.is_dir():
        target = target / "index.html"
    return target, unquote(parts.fragment)


def check_internal_link(site: Path, page_file: Path, href: str) -> str | None:
    """Why an internal link is broken (missing file, missing anchor), or None when it resolves."""
    resolved = resolve_link(site, page_file, href)
    if resolved is None:
        return None
    target, fragment = resolved
    if not target.is_relative_to(site.resolve()):
        return f"link {href!r} leaves the site"
    if not target.is_file():
        return f"link {href!r}: {target.relative_to(site.resolve())} does not exist"
    if fragment and target.suffix == ".html" and fragment not in parse(target).ids:
        return f"link {href!r}: no element with id {fragment!r} in {target.name}"
    return None


# ----------------------------------------------------------------------------------------------
# Launch and repository buttons
# ----------------------------------------------------------------------------------------------

def book_config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def launch_target(url: str) -> str | None:
    """The repository path a Colab (``/blob/<branch>/PATH``) or Binder (``urlpath=.../tree/PATH``)
    launch URL opens."""
    branch = book_config().get("repository", {}).get("branch", "main")
    m = re.search(rf"/blob/{re.escape(branch)}/(.+?)(?:[?#]|$)", url)
    if m:
        return unquote(m.group(1))
    m = re.search(r"[?&](?:urlpath=(?:lab/)?tree/|filepath=)([^&#]+)", url)
    if m:
        return unquote(m.group(1))
    return None
