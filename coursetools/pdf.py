"""The whole book as one PDF, printed from the built website by Chromium: no TeX, no network.

    python -m coursetools book             # the website, then the PDF (`make book`, `make pdf`)
    python -m coursetools pdf              # the PDF again, from the built _build/html

Every page of ``_toc.yml``, in reading order, is served from 127.0.0.1 and opened in headless
Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright as in
``tests/test_site_browser.py``; no browser is ever downloaded) with every request outside the
site blocked. Once MathJax has typeset the page and its images have loaded, Chromium prints it
with the site's print style sheet: no sidebars or buttons, code cells as on the page, and each
interactive figure (:mod:`labkit.interactive`) as its still image. `pypdf` then joins the pages
behind a title page with the table of contents (with page numbers) and adds bookmarks: parts,
then pages. Links between pages are dropped (they would point at the local server); links to
the web stay. The PDF lands in the site, ``_build/html/optimization-for-ml.pdf``, where the
download menu of every page links it (the book's extension ``_ext/book_pdf.py``). The site's 36
pages (433 A4 pages in December 2026) printed in 88 s and 124 s on a busy 2-core machine, so
``python -m coursetools book`` makes the PDF by default (and ``make test``'s build with it);
``--no-pdf`` skips it.

Why not Jupyter Book's ``pdfhtml`` builder: it drives Chromium through pyppeteer, which
downloads its own Chromium unless told otherwise, and prints a single-page build that would
execute and render the book a second time; printing the pages of the HTML build needs neither.
"""

from __future__ import annotations

import argparse
import functools
import html
import http.server
import io
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import yaml

from coursetools.notebooks import ROOT

#: The PDF's file name, in the site's root folder (the download menu links it; the book's
#: extension ``_ext/book_pdf.py`` has the same, a test checks it).
PDF_NAME = "optimization-for-ml.pdf"
#: The environment variable that tells the extension ``_ext/book_pdf.py`` to link the PDF.
BOOK_PDF_ENV = "COURSETOOLS_BOOK_PDF"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000
MARGIN = {"top": "14mm", "bottom": "14mm", "left": "12mm", "right": "12mm"}
_SOURCE_SUFFIXES = (".md", ".ipynb", ".rst")


@dataclass
class Entry:
    """One page of the book: its Sphinx docname, the part it belongs to, and its depth (0 for
    a chapter or a lab, 1 for a section of a chapter)."""

    page: str
    part: str
    depth: int
    title: str = ""
    first_page: int = 0  # index of its first page in the PDF
    pages: int = 0


def book_entries(toc: Path = ROOT / "_toc.yml") -> list[Entry]:
    """Every page of ``_toc.yml`` in reading order, the root (the intro) first."""
    data = yaml.safe_load(toc.read_text())
    entries = [Entry(str(data["root"]), "", 0)]

    def docname(file: str) -> str:
        return str(Path(file).with_suffix("")) if file.endswith(_SOURCE_SUFFIXES) else file

    def walk(items, part: str, depth: int):
        for item in items or []:
            if "file" in item:
                entries.append(Entry(docname(str(item["file"])), part, depth))
            for key in ("chapters", "sections"):
                walk(item.get(key), part, depth + (key == "sections"))

    for part in data.get("parts") or []:
        walk(part.get("chapters"), part.get("caption", ""), 0)
    walk(data.get("chapters"), "", 0)
    return entries


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


# Before printing: MathJax done, every image loaded (lazy ones too), links between pages made
# plain text (in the PDF they would point at the local server). Returns the page's title.
_PREPARE = """async () => {
  const until = Date.now() + 30000;
  while (Date.now() < until) {
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) { await mj.startup.promise; break; }
    if (!document.querySelector('.math') && document.readyState === 'complete') break;
    await new Promise(r => setTimeout(r, 50));
  }
  if (window.MathJax && MathJax.typesetPromise) { await MathJax.typesetPromise(); }
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener('load', r); i.addEventListener('error', r); setTimeout(r, 10000); })));
  document.querySelectorAll('a[href]').forEach(a => {
    if (a.href.startsWith(location.origin)) { a.removeAttribute('href'); }
  });
  document.querySelectorAll('.headerlink').forEach(a => a.remove());
  const h1 = document.querySelector('article h1');
  return h1 ? h1.textContent.trim() : document.title;
}"""

# The print style of the theme keeps a few things a book does not need.
_PRINT_CSS = """
@media print {
  .bd-header-article, .prev-next-area, .bd-footer, .bd-footer-content, .bd-sidebar-primary,
  .bd-sidebar-secondary, .header-article-items, .toggle-details__summary,
  .skip-link, .search-button { display: none !important; }
  .bd-main, .bd-content, .bd-article-container { max-width: 100% !important; }
  div.cell_output, div.highlight, pre { break-inside: auto; }
  pre { white-space: pre-wrap !important; overflow-wrap: anywhere; }
  img { break-inside: avoid; }
  h1, h2, h3 { break-after: avoid; }
}
"""


def _cover_html(title: str, author: str, entries: list[Entry], offset: int) -> str:
    rows, part = [], None
    for e in entries:
        if e.part != part and e.part:
            rows.append(f'<tr class="part"><td colspan="2">{html.escape(e.part)}</td></tr>')
            part = e.part
        rows.append(f'<tr class="d{e.depth}"><td>{html.escape(e.title)}</td>'
                    f"<td>{e.first_page + offset + 1}</td></tr>")
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ font-family: sans-serif; margin: 0; }}
.cover {{ height: 240mm; display: flex; flex-direction: column; justify-content: center;
          text-align: center; break-after: page; }}
.cover h1 {{ font-size: 30pt; margin-bottom: 6mm; }} .cover p {{ font-size: 13pt; color: #444; }}
h2 {{ font-size: 18pt; }} table {{ width: 100%; border-collapse: collapse; font-size: 11pt; }}
td {{ padding: 1.2mm 0; }} td:last-child {{ text-align: right; width: 15mm; }}
tr.part td {{ font-weight: bold; padding-top: 5mm; }} tr.d1 td:first-child {{ padding-left: 8mm; }}
</style></head><body><div class="cover"><h1>{html.escape(title)}</h1>
<p>{html.escape(author)}</p><p>{time.strftime('%Y-%m-%d')}</p>
<p style="font-size:10pt">Printed from the course website. The interactive figures appear as
still images at their default settings.</p></div>
<h2>Contents</h2><table>{''.join(rows)}</table></body></html>"""


def build_pdf(site: Path = ROOT / "_build" / "html", out: Path | None = None,
              entries: list[Entry] | None = None, chromium: Path = CHROMIUM) -> Path:
    """Print every page of the built ``site`` and join them into ``out`` (default: the site's
    :data:`PDF_NAME`); returns the PDF's path."""
    from playwright.sync_api import sync_playwright
    from pypdf import PdfReader, PdfWriter

    site = Path(site).resolve()
    out = Path(out) if out is not None else site / PDF_NAME
    entries = entries if entries is not None else book_entries()
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site} holds no built site: run `python -m coursetools book`")
    if not chromium.exists():
        raise FileNotFoundError(f"{chromium} is missing: apt-get install -y chromium")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    printed: list[bytes] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS,
                                         headless=True)
            context = browser.new_context(viewport={"width": 1100, "height": 1400})
            context.route("**/*", lambda route: route.continue_()
                          if route.request.url.startswith((base, "data:", "blob:", "about:"))
                          else route.abort("blockedbyclient"))
            tab = context.new_page()
            for entry in entries:
                file = site / f"{entry.page}.html"
                if not file.is_file():
                    raise FileNotFoundError(f"the site has no page {entry.page}.html")
                tab.goto(f"{base}/{quote(entry.page)}.html", wait_until="load",
                         timeout=TIMEOUT_MS)
                tab.add_style_tag(content=_PRINT_CSS)
                entry.title = tab.evaluate(_PREPARE)
                printed.append(tab.pdf(format="A4", margin=MARGIN, print_background=True,
                                       outline=False))
            counts = [len(PdfReader(io.BytesIO(p)).pages) for p in printed]
            position = 0
            for entry, count in zip(entries, counts):
                entry.first_page, entry.pages = position, count
                position += count
            # The cover and contents need their own page count first: print them twice.
            cover, offset = b"", 0
            for _ in range(3):
                tab.set_content(_cover_html(config.get("title", "The book"),
                                            config.get("author", ""), entries, offset))
                cover = tab.pdf(format="A4", margin=MARGIN)
                pages = len(PdfReader(io.BytesIO(cover)).pages)
                if pages == offset:
                    break
                offset = pages
            browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(cover)))
    for data in printed:
        writer.append(PdfReader(io.BytesIO(data)))
    parts: dict[str, object] = {}
    chapter = None
    for entry in entries:
        page = offset + entry.first_page
        parent = None
        if entry.part:
            if entry.part not in parts:
                parts[entry.part] = writer.add_outline_item(title=entry.part, page_number=page)
            parent = parts[entry.part]
        if entry.depth == 0:
            chapter = writer.add_outline_item(title=entry.title, page_number=page, parent=parent)
        else:
            writer.add_outline_item(title=entry.title, page_number=page,
                                   parent=chapter or parent)
    writer.add_metadata({"/Title": config.get("title", ""), "/Author": config.get("author", "")})
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as fh:
        writer.write(fh)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursetools pdf",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=ROOT / "_build" / "html",
                        help="the built website (default: _build/html)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"the PDF (default: SITE/{PDF_NAME})")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        out = build_pdf(args.site, args.out)
    except FileNotFoundError as err:
        print(f"pdf: {err}", file=sys.stderr)
        return 1
    from pypdf import PdfReader

    pages = len(PdfReader(out).pages)
    print(f"pdf: {out} ({pages} pages, {out.stat().st_size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - start:.0f} s")
    return 0
