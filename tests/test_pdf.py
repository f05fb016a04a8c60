"""The whole book as one PDF (coursetools.pdf): printed by Debian's chromium, joined by pypdf.

Two pages of the site are printed here, which checks the machinery (the cover, the contents and
their page numbers, the bookmarks, the math typeset before printing). The whole PDF, which
``python -m coursetools book`` makes after the site (about 90 s; the session's build makes it),
is checked as the reader gets it: one or more pages per page of the book, every chapter's title
in its text, and the link to it in the download menu of every page. A site built with
``--no-pdf`` skips those. ``BOOK_HTML=_build/html pytest tests/test_pdf.py`` re-runs them.
"""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest
from sitecheck import html_file, site_dir, toc_pages

from coursetools import pdf

pytestmark = pytest.mark.book


@pytest.fixture(scope="module")
def site(request) -> Path:
    return site_dir(request)


def title_of(site: Path, page: str) -> str:
    """The page's title (its h1) as the built HTML writes it."""
    text = html_file(site, page).read_text()
    h1 = re.search(r"<h1[^>]*>(.*?)</h1>", text, re.S).group(1)
    return " ".join(unescape(re.sub(r"<[^>]+>", "", h1)).replace("#", "").split())


def flat(text: str) -> str:
    """Text extracted from a PDF, with line breaks, hyphenation and curly quotes evened out."""
    return " ".join(text.replace("\u2019", "'").split())


def chapters(entries: list[pdf.Entry]) -> list[pdf.Entry]:
    return [e for e in entries if e.part == "Chapters" and e.depth == 0]


def test_the_book_extension_links_the_pdf_that_coursetools_writes():
    """_ext/book_pdf.py imports nothing of coursetools (the public tree has none): the same file
    name and environment variable on both sides."""
    import book_pdf  # _ext/, on pytest's pythonpath (pyproject.toml)

    assert (book_pdf.PDF_NAME, book_pdf.ENV) == (pdf.PDF_NAME, pdf.BOOK_PDF_ENV)


def test_the_book_entries_are_the_toc():
    entries = pdf.book_entries()
    assert [e.page for e in entries] == toc_pages()
    assert len(chapters(entries)) >= 8
    assert all(e.depth == 1 for e in entries if e.page.startswith("labs/handouts/"))


def test_two_pages_printed(site: Path, tmp_path: Path):
    from pypdf import PdfReader

    book = pdf.book_entries()
    built = [e for e in chapters(book) if html_file(site, e.page).is_file()]
    entries = [book[0], built[0]]  # the intro and the first chapter
    out = pdf.build_pdf(site, tmp_path / "two.pdf", entries=entries)
    reader = PdfReader(out)
    pages = len(reader.pages)
    assert entries[0].first_page == 0 and entries[1].first_page == entries[0].pages >= 1
    offset = pages - sum(e.pages for e in entries)  # the cover and the contents
    assert 2 <= offset <= 3, f"{pages} pages for {[e.pages for e in entries]}"
    cover = flat(reader.pages[0].extract_text())
    assert "Optimization for Machine Learning" in cover
    contents = flat(" ".join(reader.pages[i].extract_text() for i in range(offset)))
    for e in entries:  # the contents give the page each one starts on
        assert f"{flat(e.title)} {offset + e.first_page + 1}" in contents
        start = flat(reader.pages[offset + e.first_page].extract_text())
        assert flat(e.title)[:40] in start
    assert [o["/Title"] for o in reader.outline if isinstance(o, dict)][:2] == \
        [entries[0].title, "Chapters"]
    # MathJax ran before printing: no TeX source left in the chapter's text
    chapter_text = flat(" ".join(reader.pages[i].extract_text()
                                 for i in range(offset + entries[1].first_page, pages)))
    assert "$$" not in chapter_text and "\\frac" not in chapter_text


@pytest.fixture(scope="module")
def book_pdf(site: Path) -> Path:
    path = site / pdf.PDF_NAME
    if not path.is_file():
        pytest.skip(f"no {pdf.PDF_NAME} in the site (built with --no-pdf?): `make pdf` makes it")
    return path


def test_whole_book_pdf(site: Path, book_pdf: Path):
    from pypdf import PdfReader

    reader = PdfReader(book_pdf)
    entries = pdf.book_entries()
    pages = len(reader.pages)
    assert len(entries) + 2 <= pages <= 40 * len(entries), f"{pages} pages"
    text = flat(" ".join(p.extract_text() for p in reader.pages))
    missing = [title_of(site, e.page) for e in chapters(entries)
               if flat(title_of(site, e.page)) not in text]
    assert not missing, f"chapter titles not in the PDF: {missing}"
    outline = [o["/Title"] for o in reader.outline if isinstance(o, dict)]
    assert {"Chapters", "Labs"} <= set(outline)
    assert book_pdf.stat().st_size < 60e6


def test_download_menu_links_the_pdf(site: Path, book_pdf: Path):
    for page in toc_pages():
        text = html_file(site, page).read_text()
        link = re.search(r'href="([^"]*' + re.escape(pdf.PDF_NAME) + ')"', text)
        assert link, f"{page}: no link to {pdf.PDF_NAME} in the download menu"
        assert (html_file(site, page).parent / link.group(1)).resolve() == book_pdf.resolve()
