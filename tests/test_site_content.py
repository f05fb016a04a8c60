"""What the built website links and serves, read from its HTML (no browser).

* MathJax comes from the site itself (``_static/mathjax``), never from a CDN;
* every chapter cites the literature, and each citation links an entry of the bibliography page;
* every chapter links the labkit functions its notebooks use (on the API page) and the labs that
  practise it; every lab links the chapter it practises;
* the API page has a section for every labkit module;
* the labs that can use a GPU say so (``GPU_NOTE``).

Pages come from ``_toc.yml`` (see ``sitecheck.py``), so new chapters and labs are checked as
they are added. Run alone with ``BOOK_HTML=_build/html`` to reuse a built site.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
from sitecheck import (
    ROOT,
    chapter_of,
    html_file,
    is_lab,
    labkit_names_used,
    notebook_code,
    parse,
    resolve_link,
    site_dir,
    source_of,
    toc_pages,
)

pytestmark = pytest.mark.book

PAGES = toc_pages()
CHAPTERS = sorted({c for p in PAGES if (c := chapter_of(p))})
LABS = [p for p in PAGES if is_lab(p)]

#: The note a lab that can use a GPU carries, as a markdown cell (MyST renders it as a box).
GPU_NOTE = """```{admonition} Runs on a GPU, works without one
:class: tip
This lab picks its device itself (`device = "auto"`): a CUDA GPU when there is one (on Colab:
*Runtime → Change runtime type → GPU*), Apple's MPS on a recent Mac, the CPU otherwise. The
defaults finish in a minute or two on a laptop CPU; a GPU makes the larger settings fast. Force a
device with the `device` parameter or the environment variable `LABKIT_DEVICE`.
```"""
GPU_NOTE_TITLE = "Runs on a GPU, works without one"
USES_A_DEVICE = re.compile(r"get_device\(|^\s*device\s*=", re.MULTILINE)


@pytest.fixture(scope="module")
def site(request) -> Path:
    return site_dir(request)


def _pages_of(chapter: str) -> list[str]:
    return [p for p in PAGES if chapter_of(p) == chapter]


def _targets(site: Path, page: str) -> set[str]:
    """Pages (docnames) and ``page#anchor`` targets that the article of ``page`` links."""
    file = html_file(site, page)
    if not file.is_file():
        pytest.fail(f"page {page} of _toc.yml was not built ({file} is missing)", pytrace=False)
    found = set()
    for href in parse(file).links:
        resolved = resolve_link(site, file, href)
        if resolved is None or resolved[0].suffix != ".html":
            continue
        target, fragment = resolved
        try:
            name = str(target.relative_to(site.resolve()).with_suffix(""))
        except ValueError:
            continue
        found.add(name)
        if fragment:
            found.add(f"{name}#{fragment}")
    return found


def test_mathjax_is_served_by_the_site(site: Path):
    assert (site / "_static" / "mathjax" / "tex-mml-chtml.js").is_file(), \
        "MathJax is missing from _static/mathjax (the offline_mathjax extension did not run)"
    fonts = list((site / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))
    assert fonts, "MathJax's fonts are missing from _static/mathjax"
    cdn = []
    for page in sorted(site.rglob("*.html")):
        for src in re.findall(r'<script[^>]*src="([^"]*)"', page.read_text(errors="replace")):
            if "mathjax" in src.lower() and ("://" in src or src.startswith("//")):
                cdn.append(f"{page.relative_to(site)}: {src}")
    assert not cdn, "MathJax loaded from the network:\n" + "\n".join(cdn[:20])


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_cites_the_bibliography(chapter: str, site: Path):
    bib = site / "references.html"
    assert bib.is_file(), "the bibliography page references.html is missing"
    entries = set(re.findall(r'<div class="citation" id="([^"]+)" role="doc-biblioentry"',
                             bib.read_text()))
    assert entries, "the bibliography page lists no entry"
    cited = {t.split("#", 1)[1] for p in _pages_of(chapter) for t in _targets(site, p)
             if t.startswith("references#")}
    assert cited, f"{chapter}: no citation ({{cite:t}}`key` or {{cite:p}}`key`) on its pages"
    assert cited <= entries, f"{chapter}: citations link no bibliography entry: {cited - entries}"


def _labkit_uses(chapter: str) -> set[str]:
    used = set()
    for page in _pages_of(chapter):
        source = source_of(page)
        if source is not None and source.suffix == ".ipynb":
            used |= labkit_names_used(notebook_code(source))
    return used


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_links_the_labkit_functions_it_uses(chapter: str, site: Path):
    used = _labkit_uses(chapter)
    linked = {t.split("#", 1)[1] for p in _pages_of(chapter) for t in _targets(site, p)
              if t.startswith("api#")}
    missing = sorted(used - linked)
    assert not missing, (
        f"{chapter}: its notebooks use labkit functions that its pages do not link to the API "
        f"page; cite them in the prose, e.g. {{py:func}}`{missing[0]}`:\n  " + "\n  ".join(missing))


def _chapters_linked_by_labs(site: Path) -> dict[str, set[str]]:
    practised = defaultdict(set)  # chapter -> labs that link one of its pages
    for lab in LABS:
        for target in _targets(site, lab):
            chapter = chapter_of(target.split("#", 1)[0])
            if chapter:
                practised[chapter].add(lab)
    return practised


@pytest.mark.parametrize("lab", LABS)
def test_lab_links_the_chapter_it_practises(lab: str, site: Path):
    chapters = {c for t in _targets(site, lab) if (c := chapter_of(t.split("#", 1)[0]))}
    assert chapters, (f"lab {lab} links no chapter: say which chapter it practises with a link, "
                      "e.g. {doc}`/chapters/04_sgd/index`")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_links_the_labs_that_practise_it(chapter: str, site: Path):
    labs = _chapters_linked_by_labs(site).get(chapter, set())
    linked = {t.split("#", 1)[0] for p in _pages_of(chapter) for t in _targets(site, p)}
    missing = sorted(labs - linked)
    assert not missing, (f"{chapter}: these labs practise it (they link it) but its pages do not "
                         f"link them back: {missing}")


def test_api_page_documents_every_module(site: Path):
    from test_api_page import public_modules

    ids = parse(site / "api.html").ids
    missing = [m for m in public_modules() if f"module-{m}" not in ids]
    assert not missing, f"api.html has no section for {missing}"


def test_gpu_capable_labs_say_so(site: Path):
    """A lab that chooses a device (``get_device``, a ``device`` parameter) carries GPU_NOTE."""
    silent = []
    for lab in LABS:
        source = source_of(lab)
        if source is None or source.suffix != ".ipynb":
            continue
        if USES_A_DEVICE.search(notebook_code(source)) and \
                GPU_NOTE_TITLE not in html_file(site, lab).read_text():
            silent.append(lab)
    assert not silent, (
        f"these labs choose a device but do not say that they run on a GPU and without one: "
        f"{silent}; add this markdown cell near the top of each:\n\n{GPU_NOTE}\n")


def test_every_toc_page_was_built(site: Path):
    missing = [p for p in PAGES if not html_file(site, p).is_file()]
    assert not missing, f"pages of _toc.yml with no built HTML: {missing}"
    assert ROOT.joinpath("_toc.yml").is_file()
