"""Build the course website with every notebook executed, and report what failed.

    python -m coursetools book            # what `make book` runs
    python -m coursetools book --pdf      # and the whole book as one PDF (`make pdf`)

First the handouts and autograder archives under ``_build/assign`` (:mod:`coursetools.handouts`),
and a check that the committed handouts the site shows (``labs/handouts/``) are the ones their
masters give; then ``jupyter-book build`` with warnings as errors (``-W -n --keep-going``), which
fails when any notebook failed to execute. The build writes under ``_build/`` only: no tracked
file changes. Jupyter Book writes the tracebacks of failed notebooks under
``_build/html/reports``: :func:`report` prints them and removes them, since they are not part of
the site. With ``--pdf``, :mod:`coursetools.pdf` then prints the site into
``_build/html/optimization-for-ml.pdf``, which every page's download menu links.
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
from coursetools.sphinxext import book_pdf


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
    pages link the book's PDF (:mod:`coursetools.sphinxext.book_pdf`), which the caller then
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
    env = {**os.environ, book_pdf.ENV: "1" if pdf else "0"}
    code = subprocess.call(cmd, cwd=root, env=env)
    print(f"book: jupyter-book took {time.perf_counter() - start:.0f} s", flush=True)
    return report(root, code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursetools book",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--builder", default="html", help="Sphinx builder (default: html)")
    parser.add_argument("--pdf", action="store_true",
                        help="then print the site into one PDF (coursetools.pdf)")
    args = parser.parse_args(argv)
    code = build(builder=args.builder, pdf=args.pdf)
    if code or not args.pdf:
        return code
    from coursetools import pdf

    return pdf.main([])
