"""Build the course website with every notebook executed.

    python scripts/build_book.py            # what `make book` runs

Runs ``jupyter-book build`` with warnings as errors (``-W -n --keep-going``) and fails when any
notebook failed to execute. Jupyter Book writes the tracebacks of failed notebooks under
``_build/html/reports``; they are printed here and then removed, since they are not part of the
site. Before the build, ``scripts/handouts.py`` (when present) generates the student versions of
the assignments that the site shows.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(root: Path = ROOT, builder: str = "html") -> int:
    handouts = root / "scripts" / "handouts.py"
    if handouts.exists():
        code = subprocess.call([sys.executable, str(handouts)], cwd=root)
        if code:
            print(f"build_book: building the handouts failed (exit {code})", file=sys.stderr)
            return code
    # A clean Sphinx build every time: an incremental build after a failed one reports success
    # without re-reading the pages that failed. Executed notebooks stay cached by content.
    for stale in ("html", ".doctrees", "jupyter_execute"):
        shutil.rmtree(root / "_build" / stale, ignore_errors=True)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(root), "--builder", builder, "-W", "-n", "--keep-going"]
    print("build_book:", " ".join(cmd), flush=True)
    start = time.perf_counter()
    code = subprocess.call(cmd, cwd=root)
    print(f"build_book: jupyter-book took {time.perf_counter() - start:.0f} s", flush=True)
    reports = root / "_build" / "html" / "reports"
    failed = sorted(reports.rglob("*.err.log")) if reports.exists() else []
    for log in failed:
        print(f"\n===== notebook failed: {log.name} =====\n{log.read_text()}", file=sys.stderr)
    if reports.exists():
        shutil.rmtree(reports)
    if failed:
        print(f"build_book: {len(failed)} notebook(s) failed to execute", file=sys.stderr)
        return 1
    if code:
        print(f"build_book: jupyter-book exited with {code}", file=sys.stderr)
        return code
    print(f"build_book: site ready at {root / '_build' / 'html' / 'index.html'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builder", default="html")
    return build(builder=parser.parse_args().builder)


if __name__ == "__main__":
    sys.exit(main())
