"""Shared fixtures of the test suite, and a summary of how long each notebook took."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_TIMES: dict[str, float] = {}
#: Files of the checkout that the session's book build wrote over (it must write under _build/).
BOOK_REWROTE: list[str] = []
_GENERATED = {"_build", ".venv", ".git", "__pycache__", ".ipynb_checkpoints", ".pytest_cache",
              ".ruff_cache"}


def course_notebooks() -> list[Path]:
    """Every notebook of the course under chapters/ and labs/ (not generated ones)."""
    skip = {"_build", ".ipynb_checkpoints", "handouts", "dist"}
    found = []
    for folder in ("chapters", "labs"):
        for nb in sorted((ROOT / folder).rglob("*.ipynb")):
            if not skip.intersection(nb.relative_to(ROOT).parts):
                found.append(nb)
    return found


def run_nbval(notebook: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Execute ``notebook`` with nbval (lax mode, sanitised, current environment's kernel)."""
    cmd = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "--nbval-lax", "--nbval-current-env",
        "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
        "--nbval-cell-timeout", str(timeout),
        "--rootdir", str(notebook.parent), str(notebook),
    ]
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=notebook.parent, capture_output=True, text=True,
                            timeout=timeout + 60)
    NOTEBOOK_TIMES[str(notebook.relative_to(ROOT)) if notebook.is_relative_to(ROOT)
                   else notebook.name] = time.perf_counter() - start
    return result


def _checkout_files() -> dict[str, int]:
    """The files of the checkout, outside build outputs, with their modification times."""
    found = {}
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in _GENERATED and not d.endswith(".egg-info")]
        for name in files:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, ROOT)] = os.stat(path).st_mtime_ns
    return found


@pytest.fixture(scope="session")
def built_book() -> Path:
    """Build the website once per session (every notebook executed); returns ``_build/html``.
    What the build wrote over outside ``_build/`` is left in :data:`BOOK_REWROTE`."""
    start = time.perf_counter()
    before = _checkout_files()
    result = subprocess.run([sys.executable, "-m", "coursetools", "book"], cwd=ROOT,
                            capture_output=True, text=True, timeout=1800)
    after = _checkout_files()
    BOOK_REWROTE[:] = sorted(f for f, mtime in before.items() if after.get(f) != mtime)
    NOTEBOOK_TIMES["(book build, all notebooks)"] = time.perf_counter() - start
    if result.returncode != 0:
        pytest.fail(f"the book build failed (exit {result.returncode}):\n"
                    f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}", pytrace=False)
    return ROOT / "_build" / "html"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if NOTEBOOK_TIMES:
        terminalreporter.section("time per notebook")
        for name, seconds in sorted(NOTEBOOK_TIMES.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{seconds:7.1f} s  {name}")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module of small matrices: two threads on a busy 2-core CPU
    can be 10-40x slower than one (each parallel region waits for a descheduled thread).
    Restored afterwards. Use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
