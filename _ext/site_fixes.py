"""Two fixes for console errors that the pinned theme stack leaves on every page.

* sphinx-thebe registers its inline configuration script (``const THEBE_JS_URL = ...``) with the
  file name ``None``; Sphinx 7.4 adds it again as ``''`` before writing, so every page declares
  the constant twice and the browser reports "Identifier 'THEBE_JS_URL' has already been
  declared". The duplicate is dropped from each page.
* pydata-sphinx-theme logs "Got invalid theme mode" on a reader's first visit when
  ``html_context["default_mode"]`` is empty (Jupyter Book leaves it so). It is set to ``auto``,
  what the theme falls back to anyway: light or dark as the reader's system prefers.

``tests/test_site_browser.py`` fails on any console error, so a regression shows up there.
Enabled in ``_config.yml`` under ``sphinx: local_extensions`` (``_ext/``).
"""

from __future__ import annotations

from sphinx.application import Sphinx


def set_default_mode(app: Sphinx, config) -> None:
    if not config.html_context.get("default_mode"):
        config.html_context["default_mode"] = "auto"


def drop_duplicate_scripts(app: Sphinx, pagename: str, templatename: str, context: dict,
                           doctree) -> None:
    """Keep the first of several identical ``<script>`` entries of a page."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        attributes = getattr(js, "attributes", {})
        key = (getattr(js, "filename", js) or "", tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique  # in place: Sphinx restores the list after each page


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", set_default_mode)
    # After every other handler (MathJax, thebe, ...) has added its scripts to the page.
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
