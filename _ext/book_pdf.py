"""The whole book's PDF in the download menu of every page.

``python -m coursetools pdf`` (:mod:`coursetools.pdf`) prints the built site into
``optimization-for-ml.pdf`` at the site's root; this extension adds a link to it ("book .pdf")
to the download menu that sphinx-book-theme puts on every page, after the page's own
``.ipynb``, ``.md`` and print buttons. ``python -m coursetools book`` sets the environment
variable :data:`ENV` for the HTML build when it then makes the PDF (by default, where Debian's
chromium is installed; not with ``--no-pdf``), and the link is added only then, so it never
dangles on a site built without the PDF. Enabled in ``_config.yml`` under
``sphinx: local_extensions`` (``_ext/``).
"""

from __future__ import annotations

import os

from sphinx.application import Sphinx

#: The PDF's file name at the site's root (``coursetools.pdf.PDF_NAME``, a test checks they agree).
PDF_NAME = "optimization-for-ml.pdf"
#: Set to 1 by ``python -m coursetools book`` when the build goes on to write the PDF
#: (``coursetools.pdf.BOOK_PDF_ENV``).
ENV = "COURSETOOLS_BOOK_PDF"


def add_download_link(app: Sphinx, pagename: str, templatename: str, context: dict,
                      doctree) -> None:
    """Append the book's PDF to the theme's download menu of this page (when the PDF is made)."""
    if os.environ.get(ENV) != "1":
        return
    for button in context.get("header_buttons") or []:
        if button.get("label") == "download-buttons":
            button["buttons"].append({
                "type": "link",
                "url": context["pathto"](PDF_NAME, 1),
                "text": "book .pdf",
                "tooltip": "Download the whole book as one PDF",
                "icon": "fas fa-book",
                "label": "download-book-pdf-button",
            })


def setup(app: Sphinx) -> dict:
    # After sphinx-book-theme builds the menu (its handler runs at priority 501).
    app.connect("html-page-context", add_download_link, priority=600)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
