"""Build the course website with every notebook executed, and report what failed.

    python -m coursetools book            # what `make book` runs
    python -m coursetools book --no-pdf   # the website only

First the handouts and autograder archives under ``_build/assign`` (:mod:`coursetools.handouts`),
and a check that the committed handouts the site shows (``labs/handouts/``) are the ones their
masters give; then ``jupyter-book build`` with warnings as errors (``-W -n --keep-going``), which
fails when any notebook failed to execute. The build writes under ``_build/`` only: no tracked
file changes. Jupyter Book writes the tracebacks of failed notebooks under
``_build/html/reports``: :func:`report` prints them and removes them, since they are not part of
the site. Then :mod:`coursetools.pdf` prints the site into ``_build/html/optimization-for-ml.pdf``,
which every page's download menu links (about 90 s on a 2-core machine): by default where
Debian's chromium is installed, always with ``--pdf`` (``make pdf``), never with ``--no-pdf``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from coursetools import handouts
from coursetools.notebooks import ROOT
from coursetools.pdf import BOOK_PDF_ENV


def report(root: Path, code: int) -> int:
    """Print the tracebacks of the notebooks that failed, remove them from the site, and return
    the build's exit status: 1 when a notebook failed, else jupyter-book's ``code``."""
    reports = root / "_build" / "html" / "reports"
    failed = sorted(reports.rglob("*.err.log")) if reports.exists() else []
    for log in failed:
        print(f"\n===== notebook failed: {log.name} =====\n{log.read_text()}", file=sys.stderr)
    shutil.rmtree(reports, ignore_errors=True)
    if failed:
        print(f"book: {len(failed)} notebook(s) failed to execute", file=sys.stderr)
        return 1
    if code:
        print(f"book: jupyter-book exited with {code}", file=sys.stderr)
        return code
    print(f"book: site ready at {root / '_build' / 'html' / 'index.html'}")
    return 0


def build(root: Path = ROOT, builder: str = "html", pdf: bool = False) -> int:
    """The handouts, then the website from ``root``; returns the exit status. With ``pdf``, the
    pages link the book's PDF (the extension ``_ext/book_pdf.py``), which the caller then
    makes."""
    code = handouts.main(["--no-site"])
    if code:
        print(f"book: building the handouts failed (exit {code})", file=sys.stderr)
        return code
    stale = handouts.stale_site_copies()
    if stale:
        print(f"book: the handouts {stale} in {handouts.SITE.relative_to(ROOT)}/ are not what "
              "their masters give: run `make handouts` and commit them", file=sys.stderr)
        return 1
    # A clean Sphinx build every time: an incremental build after a failed one reports success
    # without re-reading the pages that failed. Executed notebooks stay cached by content.
    for stale in ("html", ".doctrees", "jupyter_execute"):
        shutil.rmtree(root / "_build" / stale, ignore_errors=True)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(root), "--builder", builder, "-W", "-n", "--keep-going"]
    print("book:", " ".join(cmd), flush=True)
    start = time.perf_counter()
    env = {**os.environ, BOOK_PDF_ENV: "1" if pdf else "0"}
    code = subprocess.call(cmd, cwd=root, env=env)
    print(f"book: jupyter-book took {time.perf_counter() - start:.0f} s", flush=True)
    return report(root, code)


def main(argv: list[str] | None = None) -> int:
    from coursetools import pdf

    parser = argparse.ArgumentParser(prog="python -m coursetools book",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--builder", default="html", help="Sphinx builder (default: html)")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--pdf", dest="pdf", action="store_const", const=True, default=None,
                        help=f"then print the site into one PDF (the default where {pdf.CHROMIUM} "
                             "exists; an error without it)")
    choice.add_argument("--no-pdf", dest="pdf", action="store_const", const=False,
                        help="the website only (about a minute and a half sooner)")
    args = parser.parse_args(argv)
    make_pdf = args.pdf
    if make_pdf is None:
        make_pdf = args.builder == "html" and pdf.CHROMIUM.exists()
        if not make_pdf and args.builder == "html":
            print(f"book: no PDF: {pdf.CHROMIUM} is missing (apt-get install -y chromium)",
                  file=sys.stderr)
    elif make_pdf and not pdf.CHROMIUM.exists():
        print(f"book: --pdf needs {pdf.CHROMIUM}: apt-get install -y chromium", file=sys.stderr)
        return 1
    code = build(builder=args.builder, pdf=make_pdf)
    if code or not make_pdf:
        return code
    return pdf.main([])
