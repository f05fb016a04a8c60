"""The website builds with warnings as errors, every notebook executed, and shows their outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BOOK_REWROTE


@pytest.mark.book
def test_book_builds_with_executed_notebooks(built_book: Path):
    index = built_book / "index.html"
    assert index.exists()
    assert not (built_book / "reports").exists(), "tracebacks must not be published with the site"
    page = built_book / "chapters" / "01_empirical_risk" / "empirical_risk.html"
    html = page.read_text()
    assert "669,706" in html, "chapter 1's executed output is missing from its page"
    assert "<img" in html and "data:image/png" in html or "_images/" in html, \
        "chapter 1's figure is missing from its page"
    assert "Traceback" not in html


@pytest.mark.book
def test_book_build_writes_no_file_of_the_checkout(built_book: Path):
    """Everything the build makes goes under _build/: it writes over no source file (the
    committed handouts in labs/handouts/ are checked, not regenerated)."""
    assert not BOOK_REWROTE, f"the book build wrote over files of the checkout: {BOOK_REWROTE}"
