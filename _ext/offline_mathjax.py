"""Serve MathJax from the site itself, so the math renders without internet access.

Sphinx loads MathJax from a CDN by default, which leaves a classroom server or a laptop offline
with raw ``$$`` on every page. This extension copies MathJax 3 from the Python package
``django-static-mathjax`` (pinned in requirements.txt; nothing is downloaded at build time) into
the site's ``_static/mathjax/`` and points Sphinx's ``mathjax_path`` at it. MyST's settings for
MathJax (``mathjax3_config``) keep working: they configure whichever copy is loaded.

Enabled in ``_config.yml`` under ``sphinx: local_extensions`` (``_ext/``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

#: The MathJax component the pages load (TeX and MathML input, CommonHTML output), as on the CDN.
COMPONENT = "tex-mml-chtml.js"
#: Where it lands in the built site, relative to ``_static/``.
TARGET = "mathjax"
# The other prebuilt combined components are never loaded by the pages: leave them out (~14 MB).
_UNUSED = ("tex-chtml*.js", "tex-svg*.js", "mml-*.js", "tex-mml-svg.js", "node-main.js")


def mathjax_source() -> Path:
    """The folder of MathJax's browser build (``es5``) inside the installed package."""
    try:
        import mathjax  # the package django-static-mathjax
    except ImportError as err:
        raise ExtensionError(
            "offline_mathjax: the package django-static-mathjax is not installed; "
            "run: python -m pip install -r requirements.txt"
        ) from err
    folder = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (folder / COMPONENT).is_file():
        raise ExtensionError(f"offline_mathjax: {folder / COMPONENT} is missing")
    return folder


def use_local_mathjax(app: Sphinx, config) -> None:
    """Point ``mathjax_path`` at the local copy unless the book set a local path itself."""
    if "://" in str(config.mathjax_path):
        config.mathjax_path = f"{TARGET}/{COMPONENT}"


def copy_mathjax(app: Sphinx) -> None:
    """Copy MathJax into ``_static/mathjax`` of an HTML build, before the pages are written."""
    if app.builder.format != "html":
        return
    source = mathjax_source()

    def unused(folder: str, names: list[str]) -> list[str]:
        if Path(folder) != source:
            return []
        return [n for n in names if n != COMPONENT and any(Path(n).match(p) for p in _UNUSED)]

    shutil.copytree(source, Path(app.outdir) / "_static" / TARGET, dirs_exist_ok=True,
                    ignore=unused)


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", use_local_mathjax)
    app.connect("builder-inited", copy_mathjax)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
