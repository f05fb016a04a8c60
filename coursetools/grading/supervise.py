"""Supervision: one isolated worker process per submission, watched for time and output.

The supervisor never runs a submission's code itself. It starts the worker
(:mod:`coursetools.grading.worker`) in a fresh process with its own scratch folder, kills the
whole process tree when the time or output limit is passed, and turns what happened into a
:class:`Row` with one of :data:`STATUSES`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from coursetools.grading.archive import Autograder
from coursetools.grading.isolation import BLACKHOLE_PROXY, network_isolation
from coursetools.grading.reports import points, write_reports

STUDENT_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*\.ipynb$")
STATUSES = ("ok", "wrong-filename", "not-a-notebook", "wrong-assignment", "timeout",
            "output-flood", "exited", "crashed")


@dataclass
class Row:
    student: str
    file: str
    status: str
    detail: str = ""
    questions: dict = field(default_factory=dict)
    total: float = 0
    seconds: float = 0.0


def classify(path: Path) -> tuple[str | None, str]:
    """(status, detail) for a file that cannot be graded, or (None, '') for a notebook."""
    if not path.is_file():
        return "wrong-filename", "a folder or special file, not a notebook file"
    if not STUDENT_FILE.match(path.name):
        return "wrong-filename", ("expected STUDENT.ipynb (letters, digits, '.', '_', '-', '@'), "
                                  f"got {path.name!r}")
    import nbformat

    try:
        nbformat.read(path, as_version=4)
    except Exception as err:  # not JSON, not a notebook, unreadable
        return "not-a-notebook", f"could not read it as a notebook: {type(err).__name__}"[:200]
    return None, ""


def _descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _kill(processes) -> None:
    import psutil

    for proc in processes:
        try:
            proc.kill()
        except psutil.Error:
            pass


def _tail_copy(src: Path, dst: Path, keep: int = 20_000) -> None:
    with open(src, "rb") as f:
        f.seek(max(0, src.stat().st_size - keep))
        dst.write_bytes(b"[... output cut ...]\n" + f.read())


def grade_one(path: Path, autograder: Autograder, out: Path, *, timeout: float, max_output: int,
              isolation: list[str], keep_scratch: bool = False) -> Row:
    """Grade one file in a fresh, isolated process; never raises for a bad submission."""
    import psutil

    student = path.name.split(".")[0] or path.name
    status, detail = classify(path)
    if status:
        return Row(student, path.name, status, detail)
    start = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix=f"grade-{student}-"))
    try:
        for sub in ("home", "tmp", "submission"):
            (scratch / sub).mkdir()
        submission = scratch / "submission" / path.name
        shutil.copy(path, submission)
        result_path, log_path = scratch / "result.json", scratch / "log.txt"
        env = {k: v for k, v in os.environ.items()
               if k in ("PATH", "LANG", "LC_ALL", "VIRTUAL_ENV", "JUPYTER_PATH")}
        env.update(HOME=str(scratch / "home"), TMPDIR=str(scratch / "tmp"),
                   JUPYTER_RUNTIME_DIR=str(scratch / "tmp"),
                   IPYTHONDIR=str(scratch / "home" / ".ipython"),
                   MPLCONFIGDIR=str(scratch / "home" / ".matplotlib"), MPLBACKEND="agg",
                   OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0",
                   PYTHONDONTWRITEBYTECODE="1", PIP_NO_INDEX="1", no_proxy="", NO_PROXY="",
                   GRADE_NETNS="1" if isolation else "0")
        for var in ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy"):
            env[var] = env[var.upper()] = BLACKHOLE_PROXY
        cmd = isolation + [sys.executable, "-m", "coursetools.grading.worker",
                           str(submission), str(autograder.path), str(result_path),
                           "--max-output", str(max_output),
                           "--expected-name", autograder.name or ""]
        seen: dict[int, psutil.Process] = {}
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=scratch, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            verdict = None
            while proc.poll() is None:
                for child in _descendants(proc.pid):
                    seen.setdefault(child.pid, child)
                if time.perf_counter() - start > timeout:
                    verdict = ("timeout", f"still running after {timeout:g} s, stopped")
                elif log_path.stat().st_size > max_output:
                    verdict = ("output-flood", f"more than {max_output:,} bytes of output")
                if verdict:
                    _kill([psutil.Process(proc.pid)] + _descendants(proc.pid))
                    break
                time.sleep(0.2)
            proc.wait()
            _kill(p for p in seen.values() if p.is_running())  # a kernel outliving its worker
        shutil.copy(log_path, out / "logs" / f"{student}.log") if log_path.stat().st_size < \
            max_output else _tail_copy(log_path, out / "logs" / f"{student}.log")
        if verdict:
            return Row(student, path.name, verdict[0], verdict[1],
                       seconds=time.perf_counter() - start)
        if not result_path.exists():
            return Row(student, path.name, "crashed",
                       f"the grading process died (exit {proc.returncode}) without a result",
                       seconds=time.perf_counter() - start)
        result = json.loads(result_path.read_text())
        return Row(student, path.name, result["status"], result.get("detail", ""),
                   result.get("questions", {}), result.get("total", 0),
                   time.perf_counter() - start)
    finally:
        if not keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def grade_folder(submissions: Path, autograder: Autograder, out: Path, *, timeout: float = 300,
                 max_output: int = 2_000_000, jobs: int = 2, isolate: bool = True,
                 hidden_messages: bool = True, keep_scratch: bool = False) -> list[Row]:
    """Grade every entry of ``submissions``; write grades.csv, feedback/ and results/ to ``out``."""
    if not submissions.is_dir():
        raise SystemExit(f"grade: {submissions} is not a folder of submissions")
    for sub in ("feedback", "results", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    isolation = network_isolation() if isolate else []
    print(f"grade: {autograder.name}: network "
          + ("off (" + " ".join([Path(isolation[0]).name] + isolation[1:]) + ")"
             if isolation else "not isolated (proxy variables point nowhere)"), flush=True)
    entries = sorted(submissions.iterdir(), key=lambda p: p.name)
    lock = threading.Lock()

    def one(path: Path) -> Row:
        row = grade_one(path, autograder, out, timeout=timeout, max_output=max_output,
                        isolation=isolation, keep_scratch=keep_scratch)
        with lock:
            print(f"grade: {row.file:32s} {row.status:16s} {points(row.total):>6s} / "
                  f"{points(autograder.possible)}  ({row.seconds:.1f} s) {row.detail}",
                  flush=True)
        return row

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        rows = list(pool.map(one, entries))
    students = [r.student for r in rows]
    for r in rows:  # two files of one student must not overwrite each other's feedback
        if students.count(r.student) > 1:
            r.student = r.file
    write_reports(rows, autograder, out, hidden_messages)
    return rows
