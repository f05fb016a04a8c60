"""Serve plotly.js from the site itself, for the interactive figures of :mod:`labkit.interactive`.

The interactive figures (sliders over results the notebook computed) are drawn in the reader's
browser by plotly.js; like MathJax (``offline_mathjax``, beside it) it is served
by the site, so they work offline. Which build, and why:

* plotly.js, not Bokeh or Vega: a well-kept MIT library whose ``Plotly.react`` redraws a figure
  from plain JSON (lines, markers, log axes, several panels), so the page needs only the data
  and ~30 lines of script; no Python package is needed at view time.
* the *basic* partial bundle (scatter, bar and pie traces: the figures use scatter only),
  1.2 MB, not the full bundle that the Python package ``plotly`` ships (4.8 MB: alone more than
  the 3 MB a page may weigh). No Python package ships a partial bundle, so the file is
  committed here: ``static/plotly-basic-4.1.1.min.js``, byte for byte the ``plotly-basic.min.js``
  of the npm package ``plotly.js-basic-dist-min@4.1.1`` (its tarball's sha512 is npm's
  ``dist.integrity``; the file's sha256 is :data:`SHA256`, checked at build time), with its
  MIT licence beside it. To upgrade: ``npm pack plotly.js-basic-dist-min@VERSION``, copy the
  file, update :data:`FILE` and :data:`SHA256`.

The file is copied to ``_static/plotly/`` and loaded only by the pages that hold an interactive
figure (``class="labkit-interactive"``). Enabled in ``_config.yml`` under ``sphinx:
local_extensions`` (``_ext/``).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

#: The vendored bundle, next to this module.
FILE = Path(__file__).parent / "static" / "plotly-basic-4.1.1.min.js"
LICENSE = Path(__file__).parent / "static" / "plotly-LICENSE.txt"
#: sha256 of :data:`FILE` as published on npm (plotly.js-basic-dist-min 4.1.1).
SHA256 = "99784e3abfb07b142a15e521a439e6d9addceadb3f79553fd24c72774f0649ba"
#: Where it lands in the built site, relative to ``_static/``.
TARGET = "plotly"
#: The marker of a page with an interactive figure (written by labkit.interactive).
MARKER = 'class="labkit-interactive"'


def plotly_source() -> Path:
    """The vendored plotly.js, after checking that it is the published file."""
    if not FILE.is_file():
        raise ExtensionError(f"offline_plotly: {FILE} is missing")
    digest = hashlib.sha256(FILE.read_bytes()).hexdigest()
    if digest != SHA256:
        raise ExtensionError(f"offline_plotly: {FILE.name} has sha256 {digest}, not the "
                             f"published {SHA256}: restore it from npm (see this module)")
    return FILE


def copy_plotly(app: Sphinx) -> None:
    """Copy plotly.js and its licence into ``_static/plotly`` of an HTML build."""
    if app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / TARGET
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plotly_source(), target / FILE.name)
    shutil.copyfile(LICENSE, target / LICENSE.name)


def load_on_figure_pages(app: Sphinx, pagename: str, templatename: str, context: dict,
                         doctree) -> None:
    """Add plotly.js to the pages that hold an interactive figure (and to no other)."""
    if MARKER in (context.get("body") or ""):
        app.add_js_file(f"{TARGET}/{FILE.name}", priority=400)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", copy_plotly)
    app.connect("html-page-context", load_on_figure_pages)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
