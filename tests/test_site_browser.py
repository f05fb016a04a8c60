"""The built website as readers see it, checked in a real browser, offline.

The site in ``_build/html`` is served on 127.0.0.1 and opened in headless Chromium (Debian's
``chromium`` package, driven by Playwright; no browser is downloaded). Every request that leaves
localhost is blocked, so each page must work without internet access. For every page of
``_toc.yml`` (the intro, every chapter, every lab, the back matter):

* it loads with no console error, no uncaught exception and no failed request of the site's own,
  and asks for nothing outside the site;
* every image loads;
* the math is typeset: MathJax output in every math element, no MathJax error, no raw ``$$``
  or ``\\(`` left in the text;
* the repository, issue and download buttons are there; on a notebook page the Colab and Binder
  buttons too; launch buttons open a file of this repository; the download button's file exists;
* every internal link (and its ``#anchor``) resolves.

A screenshot of each page (its first 12,000 pixels) goes to ``_build/screenshots/<page>.png``.
The search page must find each page by a word of its prose. On the pages with interactive
figures (:mod:`labkit.interactive`), every slider is moved and the figure must change, with no
console error, and the page with everything it loads must weigh less than 3 MB. Run alone with
``BOOK_HTML=_build/html`` to reuse a built site.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from sitecheck import (
    ROOT,
    book_config,
    check_internal_link,
    html_file,
    is_notebook,
    launch_target,
    parse,
    site_dir,
    toc_pages,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "_build" / "screenshots"
PAGES = toc_pages()
TIMEOUT_MS = 30_000
SHOT_MAX_PX = 12_000  # screenshots show at most this much of a page (the API page is ~60,000)

pytestmark = pytest.mark.book

# What a page's own text must not show once MathJax has run (outside code).
RAW_MATH = [("$$", "raw $$"), ("\\(", "raw \\("), ("\\[", "raw \\["), ("\\begin{", "raw \\begin{")]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def site(request) -> Path:
    return site_dir(request)


@pytest.fixture(scope="module")
def server(site: Path):
    """The built site served over HTTP on a random port of 127.0.0.1."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's browser with "
                    "`apt-get install -y chromium` (.ci/run does it)", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package playwright is missing: "
                    "python -m pip install -r requirements.txt", pytrace=False)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def screenshots():
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


class Tab:
    """One browser tab whose requests outside the site are blocked and recorded."""

    def __init__(self, browser, base: str):
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 900},
                                           service_workers="block")
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.context.route("**/*", self._route)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda err: self.problems.append(f"uncaught exception: {err}"))
        self.page.on("requestfailed", self._failed)
        self.page.on("response", self._response)

    def _local(self, url: str) -> bool:
        return url.startswith(self.base) or url.startswith(("data:", "blob:", "about:"))

    def _route(self, route):
        url = route.request.url
        if self._local(url):
            route.continue_()
        else:
            self.problems.append(f"asked for {url} outside the site (blocked: it must work "
                                 "offline)")
            route.abort("blockedbyclient")

    def _console(self, msg):
        if msg.type != "error":
            return
        where = (msg.location or {}).get("url", "")
        text = msg.text
        # The browser's own line for a request we blocked is already reported by _route.
        if "ERR_BLOCKED_BY_CLIENT" in text or (where and not self._local(where)):
            return
        self.problems.append(f"console error: {text} ({where})")

    def _failed(self, request):
        failure = request.failure or ""
        # ERR_ABORTED: the next navigation cancelled it (the search page fetches every hit's
        # text to show an excerpt); a file that is really missing answers 404, caught below.
        if self._local(request.url) and not any(
                code in failure for code in ("ERR_BLOCKED_BY_CLIENT", "ERR_ABORTED")):
            self.problems.append(f"request failed: {request.url} ({failure})")

    def _response(self, response):
        if self._local(response.url) and response.status >= 400:
            self.problems.append(f"HTTP {response.status} for {response.url}")

    def close(self):
        self.context.close()


@pytest.fixture(scope="module")
def tab(browser, server):
    t = Tab(browser, server)
    yield t
    t.close()


WAIT_FOR_MATHJAX = """async () => {
  const until = Date.now() + 20000;
  const needsMath = document.querySelector('.math') !== null;
  while (Date.now() < until) {
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) { await mj.startup.promise; return 'typeset'; }
    if (!needsMath && document.readyState === 'complete') return 'no math';
    await new Promise(r => setTimeout(r, 50));
  }
  return 'timeout';
}"""

LOAD_IMAGES = """async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null :
      new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r);
                         setTimeout(r, 10000); })));
  return imgs.filter(i => !(i.complete && i.naturalWidth > 0))
             .map(i => i.getAttribute('src') || '(no src)');
}"""

MATH_STATE = """() => {
  const main = document.querySelector('article.bd-article') || document.body;
  const maths = Array.from(main.querySelectorAll('.math'));
  const untypeset = maths.filter(m => !m.querySelector('mjx-container'))
                         .map(m => m.textContent.trim().slice(0, 60));
  const errors = Array.from(main.querySelectorAll('mjx-merror, [data-mjx-error]'))
                      .map(e => e.getAttribute('data-mjx-error') || e.textContent.slice(0, 60));
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-container, .highlight, .output')
       .forEach(e => e.remove());
  return {count: maths.length, typeset: main.querySelectorAll('mjx-container').length,
          untypeset, errors, text: clone.textContent};
}"""

LINKS = """() => Array.from(document.querySelectorAll('a[href]'))
  .map(a => ({href: a.getAttribute('href'), cls: a.className, text: a.textContent.trim()}))"""


def _visit(tab: Tab, url: str):
    tab.problems.clear()
    response = tab.page.goto(url, wait_until="load", timeout=TIMEOUT_MS)
    return response


@pytest.mark.parametrize("page", PAGES)
def test_page_as_a_reader_sees_it(page: str, site: Path, server: str, tab: Tab, screenshots):
    started = time.perf_counter()
    problems: list[str] = []
    file = html_file(site, page)
    assert file.is_file(), f"{page}: the build wrote no {file.relative_to(site)}"
    response = _visit(tab, f"{server}/{quote(page)}.html")
    if response is None or response.status != 200:
        problems.append(f"loading the page gave {response and response.status}")

    mathjax = tab.page.evaluate(WAIT_FOR_MATHJAX)
    broken_images = tab.page.evaluate(LOAD_IMAGES)
    problems += [f"image did not load: {src}" for src in broken_images]

    math = tab.page.evaluate(MATH_STATE)
    if math["count"] and mathjax != "typeset":
        problems.append(f"MathJax did not run ({mathjax}) on a page with {math['count']} formulas")
    problems += [f"formula not typeset: {t!r}" for t in math["untypeset"][:5]]
    problems += [f"MathJax error: {e!r}" for e in math["errors"][:5]]
    for needle, what in RAW_MATH:
        at = math["text"].find(needle)
        if at >= 0:
            problems.append(f"{what} left in the text: …{math['text'][max(0, at - 40):at + 40]!r}…")

    problems += _check_buttons(page, site, file, tab.page.evaluate(LINKS))
    for href in {link["href"] for link in tab.page.evaluate(LINKS)}:
        reason = check_internal_link(site, file, href)
        if reason:
            problems.append(reason)

    shot = screenshots / f"{page}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    height = tab.page.evaluate("() => document.documentElement.scrollHeight")
    tab.page.screenshot(path=str(shot), full_page=True,
                        clip={"x": 0, "y": 0, "width": 1280, "height": min(height, SHOT_MAX_PX)})
    problems = tab.problems + problems
    took = time.perf_counter() - started
    assert not problems, f"page {page} ({took:.1f} s):\n  - " + "\n  - ".join(
        dict.fromkeys(problems))


def _check_buttons(page: str, site: Path, file: Path, links: list[dict]) -> list[str]:
    problems = []
    repo = book_config()["repository"]["url"].rstrip("/")
    hrefs = [link["href"] for link in links]
    if repo not in hrefs:
        problems.append(f"no repository button linking {repo}")
    if not any(h.startswith(f"{repo}/issues/new") for h in hrefs):
        problems.append("no issue button")
    downloads = [link["href"] for link in links if "btn-download-source-button" in link["cls"]]
    if not downloads:
        problems.append("no download button")
    for href in downloads:
        reason = check_internal_link(site, file, href)
        if reason:
            problems.append(f"download button: {reason}")
    colab = [h for h in hrefs if "colab.research.google.com" in h]
    binder = [h for h in hrefs if "mybinder.org" in h]
    if is_notebook(page):
        if not colab:
            problems.append("notebook page without a Colab button")
        if not binder:
            problems.append("notebook page without a Binder button")
        if not any(h.endswith(".ipynb") for h in downloads):
            problems.append(f"download button does not offer the .ipynb: {downloads}")
    for url in colab + binder:
        target = launch_target(url)
        if target is None:
            problems.append(f"launch button opens no file: {url}")
        elif not (ROOT / target).is_file():
            problems.append(f"launch button opens {target}, which is not a file of the "
                            f"repository: {url}")
    return problems


def _tracked_files() -> set[str] | None:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return set(out.splitlines())


def test_launch_buttons_open_committed_files(site: Path):
    """Colab and Binder open the notebook from the repository on GitHub: it must be committed
    (a student version generated at build time is not, unless it is committed too)."""
    tracked = _tracked_files()
    if tracked is None:
        pytest.skip("not a git checkout")
    missing = []
    for page in PAGES:
        for href in parse(html_file(site, page)).links + _header_links(site, page):
            target = launch_target(href) if ("colab" in href or "mybinder" in href) else None
            if target and target not in tracked:
                missing.append(f"page {page}: launch button opens {target}, not committed to git")
    assert not missing, "\n".join(sorted(set(missing)))


def _header_links(site: Path, page: str) -> list[str]:
    text = html_file(site, page).read_text()
    return re.findall(r'href="(https://(?:colab\.research\.google\.com|mybinder\.org)[^"]*)"', text)


# ----------------------------------------------------------------------------------------------
# Search
# ----------------------------------------------------------------------------------------------

STOPWORDS = set("""about above after again against because before being below between both
during each further having itself other should their theirs themselves there these those through
under until which while would could where every first second""".split())


def search_words(site: Path) -> dict[str, str]:
    """For each page, the word of its prose that the fewest other pages use (7+ letters)."""
    words = {p: {w.lower() for w in parse(html_file(site, p)).words if len(w) >= 7}
             - STOPWORDS for p in PAGES if html_file(site, p).is_file()}
    freq = Counter(w for ws in words.values() for w in ws)
    return {p: min(ws, key=lambda w: (freq[w], w)) for p, ws in words.items() if ws}


def test_search_finds_every_page(site: Path, server: str, tab: Tab):
    words = search_words(site)
    pages_with_prose = [p for p in PAGES if p in words]
    assert len(pages_with_prose) >= len(PAGES) - 2, f"pages without prose: " \
        f"{sorted(set(PAGES) - set(words))}"
    misses = []
    for page in pages_with_prose:
        word = words[page]
        _visit(tab, f"{server}/search.html?q={quote(word)}")
        tab.page.wait_for_function(
            "() => { const s = document.querySelector('.search-summary, #search-progress');"
            " return s && /found|did not match/i.test(s.textContent); }", timeout=TIMEOUT_MS)
        hits = tab.page.evaluate(
            "() => Array.from(document.querySelectorAll('ul.search li a'))"
            ".map(a => new URL(a.href).pathname)")
        paths = {urlsplit(h).path.lstrip("/") for h in hits}
        if f"{page}.html" not in paths:
            misses.append(f"searching {word!r} does not find page {page} (found: "
                          f"{sorted(paths)[:6]})")
        misses += [f"search page: {p}" for p in tab.problems]
    assert not misses, "\n".join(misses)


# ----------------------------------------------------------------------------------------------
# Interactive figures (labkit.interactive, plotly.js served by _ext/offline_plotly.py)
# ----------------------------------------------------------------------------------------------

#: The pages with interactive figures, and how many each has (issue 24).
INTERACTIVE = {
    "chapters/03_gradient_descent/gradient_descent": 1,
    "chapters/04_sgd/momentum": 1,
    "chapters/06_adam/adam": 1,
    "chapters/07_sgd_theory/noise_floor": 1,
    "chapters/07_sgd_theory/schedules": 1,
    "labs/demo_results": 1,
}
PAGE_BUDGET = 3_000_000  # bytes: the page and everything it loads

FIGURES_DRAWN = """async () => {
  const figs = Array.from(document.querySelectorAll('.labkit-interactive'));
  const until = Date.now() + 20000;
  while (Date.now() < until) {
    if (figs.every(f => f.classList.contains('lk-live') && f.querySelector('.lk-plot .main-svg')))
      break;
    await new Promise(r => setTimeout(r, 50));
  }
  return figs.map(f => ({live: f.classList.contains('lk-live'),
                         drawn: !!f.querySelector('.lk-plot .main-svg'),
                         sliders: f.querySelectorAll('input.lk-slider').length,
                         still: (() => { const i = f.querySelector('img.lk-still');
                                         return !!i && i.complete && i.naturalWidth > 0; })()}));
}"""

# What the reader sees of figure i: the curves as drawn (SVG paths and points), the readout and
# the sliders' values.
FIGURE_STATE = """(i) => {
  const f = document.querySelectorAll('.labkit-interactive')[i];
  const svg = Array.from(f.querySelectorAll('.lk-plot .scatterlayer path'))
                   .map(p => (p.getAttribute('d') || '') + (p.getAttribute('transform') || ''));
  return {svg: svg.join('|'), readout: f.querySelector('.lk-readout').textContent,
          values: Array.from(f.querySelectorAll('output')).map(o => o.textContent),
          frame: f.querySelector('.lk-plot').getAttribute('data-frame')};
}"""

LOADED = """() => performance.getEntriesByType('navigation')
  .concat(performance.getEntriesByType('resource'))
  .map(e => [new URL(e.name).pathname, e.decodedBodySize])"""


def page_weight(loaded: list[list]) -> tuple[int, int]:
    """(the page's own bytes, everything loaded): own = the HTML, its images and data, and
    plotly.js; not the theme's assets under _static/ (fonts, icons, MathJax, CSS), which every
    page of the site loads, with or without a figure, and the browser caches."""
    total = sum(size for _, size in loaded)
    shared = sum(size for path, size in loaded
                 if path.startswith("/_static/") and not path.startswith("/_static/plotly/"))
    return total - shared, total


PAGE_WEIGHTS: dict[str, int] = {}


def test_interactive_pages_are_in_the_book():
    missing = sorted(set(INTERACTIVE) - set(PAGES))
    assert not missing, f"pages with interactive figures missing from _toc.yml: {missing}"


@pytest.mark.parametrize("page", sorted(INTERACTIVE))
def test_interactive_figures_move(page: str, site: Path, server: str, tab: Tab, screenshots):
    """Every slider of every figure is moved with the keyboard (End, or Home when it is at the
    end): the figure drawn and the slider's value must change, and moving it back must restore
    the figure; the console must stay clean; the page's own weight (:func:`page_weight`: its
    HTML with the figures' data, its images, plotly.js) stays under 3 MB."""
    if page not in PAGES:
        pytest.skip(f"{page} is not in _toc.yml")
    _visit(tab, f"{server}/{quote(page)}.html")
    tab.page.evaluate(WAIT_FOR_MATHJAX)
    figures = tab.page.evaluate(FIGURES_DRAWN)
    assert len(figures) == INTERACTIVE[page], \
        f"{page}: {len(figures)} interactive figures, expected {INTERACTIVE[page]}"
    problems = []
    for i, fig in enumerate(figures):
        if not (fig["live"] and fig["drawn"]):
            problems.append(f"figure {i}: plotly.js did not draw it ({fig})")
            continue
        if not fig["still"]:
            problems.append(f"figure {i}: its still image (for print and no JavaScript) is broken")
        sliders = tab.page.locator(".labkit-interactive").nth(i).locator("input.lk-slider")
        for j in range(fig["sliders"]):
            slider = sliders.nth(j)
            before = tab.page.evaluate(FIGURE_STATE, i)
            at_end = slider.evaluate("s => s.value === s.max")
            slider.focus()
            tab.page.keyboard.press("Home" if at_end else "End")
            tab.page.wait_for_timeout(300)
            after = tab.page.evaluate(FIGURE_STATE, i)
            name = slider.get_attribute("aria-label")
            if after["frame"] == before["frame"]:
                problems.append(f"figure {i}, slider {name!r}: moving it selected no other frame")
            if after["svg"] == before["svg"]:
                problems.append(f"figure {i}, slider {name!r}: the figure did not change")
            if after["values"] == before["values"]:
                problems.append(f"figure {i}, slider {name!r}: its value shown did not change")
            if j == 0:
                tab.page.locator(".labkit-interactive").nth(i).screenshot(
                    path=str(screenshots / f"{page.replace('/', '_')}-figure{i}-moved.png"))
            slider.evaluate("(s, v) => { s.value = v; s.dispatchEvent(new Event('input')); }",
                            slider.evaluate("s => s.getAttribute('value')"))
            tab.page.wait_for_timeout(200)
            if tab.page.evaluate(FIGURE_STATE, i)["svg"] != before["svg"]:
                problems.append(f"figure {i}, slider {name!r}: back at its default, the figure "
                                "is not the one it first drew")
    own, total = page_weight(tab.page.evaluate(LOADED))
    PAGE_WEIGHTS[page] = own
    print(f"\n{page}: {own / 1e6:.2f} MB of its own (HTML "
          f"{html_file(site, page).stat().st_size / 1e6:.2f} MB, images, plotly.js), "
          f"{total / 1e6:.2f} MB with the theme's assets")
    if own > PAGE_BUDGET:
        problems.append(f"the page weighs {own / 1e6:.2f} MB (budget {PAGE_BUDGET / 1e6:g} MB)")
    problems = tab.problems + problems
    assert not problems, f"page {page}:\n  - " + "\n  - ".join(dict.fromkeys(problems))
