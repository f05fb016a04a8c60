"""Supervision: one sandboxed worker per submission, watched for time, output, memory, processes.

The supervisor runs no code of a submission. For each file it reads the notebook as data, starts
the worker (:mod:`coursetools.grading.worker`) in the sandbox
(:mod:`coursetools.grading.isolation`), sends it the code cells, then (once the cells are done)
the tests' probes, and reads back one answer of plain values, size-limited. It kills the whole
sandbox when the time, output, memory or process limit is passed, and turns what happened into a
:class:`Row` with one of :data:`STATUSES`; the scores come from the checks that it runs itself
(:mod:`coursetools.grading.verdicts`), never from the sandbox.
"""

from __future__ import annotations

import ast
import json
import os
import re
import resource
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from coursetools.grading import integrity, isolation, verdicts
from coursetools.grading.archive import Autograder
from coursetools.grading.reports import points, write_reports

STUDENT_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*\.ipynb$")
STATUSES = ("ok", "wrong-filename", "not-a-notebook", "wrong-assignment", "timeout",
            "output-flood", "memory", "exited", "crashed")
MAX_ANSWER = 64 << 20      # bytes of JSON the sandbox may send back
TMP_BYTES = 512 << 20      # size of the sandbox's writable /tmp


@dataclass
class Row:
    student: str
    file: str
    status: str
    detail: str = ""
    questions: dict = field(default_factory=dict)
    total: float = 0
    seconds: float = 0.0


@dataclass
class Limits:
    timeout: float = 300            # seconds of wall-clock time
    max_output: int = 2_000_000     # bytes printed
    memory_mb: int = 4096           # resident memory of the whole sandbox
    max_processes: int = 64         # processes in the sandbox at once


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


def _grader_call(source: str) -> bool:
    """A cell that only calls ``grader.check(...)`` (or ``check_all``, ``export``): not run."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return bool(tree.body) and all(
        isinstance(s, ast.Expr) and isinstance(s.value, ast.Call)
        and isinstance(s.value.func, ast.Attribute)
        and getattr(s.value.func.value, "id", "") == "grader" for s in tree.body)


def code_cells(path: Path) -> list[str]:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code" and not _grader_call(c.source)]


def assignment_of(path: Path) -> str | None:
    import nbformat

    return nbformat.read(path, as_version=4).metadata.get("otter", {}).get("assignment_name")


class _Frames(threading.Thread):
    """Reads the worker's frames (size-limited JSON) from a pipe into a list."""

    def __init__(self, fd: int):
        super().__init__(daemon=True)
        self.fd, self.frames, self.problem = fd, [], ""
        self.event = threading.Event()

    def _exactly(self, n: int) -> bytes | None:
        chunks, got = [], 0
        while got < n:
            chunk = os.read(self.fd, min(n - got, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def run(self):
        try:
            while True:
                head = self._exactly(8)
                if head is None:
                    return
                size = int.from_bytes(head, "big")
                if size > MAX_ANSWER:
                    self.problem = f"the notebook's answers were larger than {MAX_ANSWER >> 20} MB"
                    return
                body = self._exactly(size)
                if body is None:
                    return
                frame = json.loads(body.decode())
                if not isinstance(frame, dict):
                    raise ValueError("not an object")
                self.frames.append(frame)
                self.event.set()
        except (ValueError, RecursionError, UnicodeDecodeError) as err:
            self.problem = f"the notebook's answers could not be read ({type(err).__name__})"
        finally:
            os.close(self.fd)
            self.event.set()


class _Output(threading.Thread):
    """Copies the sandbox's printed output to the log, up to the limit, and counts it."""

    def __init__(self, stream, log: Path, limit: int):
        super().__init__(daemon=True)
        self.stream, self.log, self.limit, self.count = stream, log, limit, 0

    def run(self):
        with open(self.log, "wb") as log:
            while True:
                chunk = self.stream.read1(1 << 16)
                if not chunk:
                    return
                if self.count < self.limit:
                    log.write(chunk[: self.limit - self.count])
                self.count += len(chunk)


def _send(stream, doc: dict) -> None:
    data = json.dumps(doc).encode()
    try:
        stream.write(len(data).to_bytes(8, "big") + data)
        stream.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass  # the worker is gone; what it did is judged from its exit


def _tree(pid: int) -> list:
    import psutil

    try:
        return [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _rss_mb(procs) -> float:
    import psutil

    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def _limit_resources(memory_mb: int):
    def apply():
        data = memory_mb << 20
        resource.setrlimit(resource.RLIMIT_DATA, (data, data))
        resource.setrlimit(resource.RLIMIT_AS, (data + (8 << 30), data + (8 << 30)))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def _death(code: int, sandboxed: bool) -> tuple[str, str]:
    """('exited', why) or ('crashed', why) for a worker that ended without an answer."""
    signum = -code if code < 0 else (code - 128 if sandboxed and code > 128 else 0)
    if signum:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return "crashed", f"the kernel was killed by {name}"
    return "exited", f"the kernel exited with code {code} before grading finished"


def run_submission(path: Path, autograder: Autograder, log_path: Path, limits: Limits,
                   sandboxed: bool) -> tuple[str, str, dict | None]:
    """(status, detail, probe values or None) for one notebook, run in a fresh sandbox.

    For ``ok`` the detail counts the cells that raised an error (as the worker reports it).
    """
    with tempfile.TemporaryDirectory(prefix="grade-") as scratch:  # used without a sandbox
        return _run(path, autograder, log_path, limits, sandboxed, Path(scratch))


def _run(path: Path, autograder: Autograder, log_path: Path, limits: Limits, sandboxed: bool,
         scratch: Path) -> tuple[str, str, dict | None]:
    read_fd, write_fd = os.pipe()
    args = [str(write_fd)]
    if sandboxed:
        cmd, env = isolation.sandbox_command(isolation.worker_argv(args), tmp_bytes=TMP_BYTES), None
    else:
        cmd = isolation.unsafe_command(args)
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(scratch), "TMPDIR": str(scratch),
               "MPLBACKEND": "agg", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, pass_fds=(write_fd,), cwd=scratch, env=env,
                            start_new_session=True,
                            preexec_fn=_limit_resources(limits.memory_mb))
    os.close(write_fd)
    frames, output = _Frames(read_fd), _Output(proc.stdout, log_path, limits.max_output)
    frames.start()
    output.start()
    threading.Thread(target=_send, args=(proc.stdin, {"cells": code_cells(path)}),
                     daemon=True).start()
    start, verdict, probes_sent, answer, errors = time.perf_counter(), None, False, None, 0
    try:
        while True:
            frames.event.wait(0.1)
            frames.event.clear()
            for frame in frames.frames:
                if frame.get("event") == "memory":
                    verdict = ("memory", f"more than {limits.memory_mb:,} MB of memory, stopped")
                elif frame.get("event") == "cells" and not probes_sent:
                    probes_sent = True
                    count = frame.get("errors")
                    errors = min(count, 10_000) if type(count) is int and count > 0 else 0
                    probes = [{"name": t.name, "params": list(t.params), "source": t.probe}
                              for t in autograder.tests]
                    threading.Thread(target=_send, args=(proc.stdin, {"tests": probes}),
                                     daemon=True).start()
                elif frame.get("event") == "probes" and probes_sent:
                    answer = frame
            frames.frames.clear()
            if verdict or answer is not None:
                break
            if frames.problem:
                verdict = ("crashed", frames.problem)
                break
            if output.count > limits.max_output:
                verdict = ("output-flood", f"more than {limits.max_output:,} bytes of output")
                break
            if time.perf_counter() - start > limits.timeout:
                verdict = ("timeout", f"still running after {limits.timeout:g} s, stopped")
                break
            procs = _tree(proc.pid)
            if _rss_mb(procs) > limits.memory_mb:
                verdict = ("memory", f"more than {limits.memory_mb:,} MB of memory, stopped")
                break
            if len(procs) > limits.max_processes + 3:  # bwrap, its init and the worker
                verdict = ("crashed", f"started more than {limits.max_processes} processes, "
                                      "stopped")
                break
            if proc.poll() is not None and not frames.is_alive():
                break
    finally:
        _kill_all(proc)
    output.join(5)
    if output.count > limits.max_output and verdict is None and answer is None:
        verdict = ("output-flood", f"more than {limits.max_output:,} bytes of output")
    if verdict:
        return verdict[0], verdict[1], None
    if answer is None:
        status, detail = _death(proc.returncode, sandboxed)
        return status, detail, None
    values = answer.get("values")
    return ("ok", f"{errors} cell(s) raised an error" if errors else "",
            values if isinstance(values, dict) else {})


def _kill_all(proc: subprocess.Popen) -> None:
    """End the sandbox: its PID namespace dies with it, and with it everything it started."""
    import psutil

    procs = _tree(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        pass
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()
        except OSError:
            pass


def grade_one(path: Path, autograder: Autograder, out: Path, *, limits: Limits,
              sandboxed: bool = True, unsafe_note: str = "") -> Row:
    """Grade one file in a fresh sandbox; never raises for a bad submission."""
    student = path.name.split(".")[0] or path.name
    status, detail = classify(path)
    if status:
        return Row(student, path.name, status, detail)
    name = assignment_of(path)
    if autograder.name and name not in (None, autograder.name):
        return Row(student, path.name, "wrong-assignment",
                   f"this notebook is {name!r}, not {autograder.name!r}")
    start = time.perf_counter()
    log_path = out / "logs" / f"{student}.log"
    status, detail, values = run_submission(path, autograder, log_path, limits, sandboxed)
    note = "; ".join(x for x in (detail, unsafe_note) if x)
    if status != "ok":
        return Row(student, path.name, status, note, seconds=time.perf_counter() - start)
    questions, total = verdicts.score(autograder, values)
    return Row(student, path.name, "ok", note, questions, total, time.perf_counter() - start)


def grade_folder(submissions: Path, autograder: Autograder, out: Path, *,
                 limits: Limits | None = None, jobs: int = 2, unsafe: bool = False,
                 hidden_messages: bool = True) -> tuple[list[Row], list[str]]:
    """Grade every entry of ``submissions``; write grades.csv, feedback/ and results/ to ``out``.

    Returns the rows and the changes found in the grading environment or the archive (which
    must be none).
    """
    limits = limits or Limits()
    if not submissions.is_dir():
        raise SystemExit(f"grade: {submissions} is not a folder of submissions")
    for sub in ("feedback", "results", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    unsafe_note = isolation.require_sandbox(unsafe) or ""
    sandboxed = not unsafe_note
    print(f"grade: {autograder.name}: "
          + ("sandbox bubblewrap (no network, read-only system, own PID namespace, nobody)"
             if sandboxed else unsafe_note), flush=True)
    before = integrity.fingerprint(autograder.path)
    entries = sorted(submissions.iterdir(), key=lambda p: p.name)
    lock = threading.Lock()

    def one(path: Path) -> Row:
        row = grade_one(path, autograder, out, limits=limits, sandboxed=sandboxed,
                        unsafe_note=unsafe_note)
        with lock:
            print(f"grade: {row.file:32s} {row.status:16s} {points(row.total):>6s} / "
                  f"{points(autograder.possible)}  ({row.seconds:.1f} s) {row.detail}",
                  flush=True)
        return row

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        rows = list(pool.map(one, entries))
    changes = integrity.compare(before, integrity.fingerprint(autograder.path))
    students = [r.student for r in rows]
    for r in rows:  # two files of one student must not overwrite each other's feedback
        if students.count(r.student) > 1:
            r.student = r.file
    write_reports(rows, autograder, out, hidden_messages)
    return rows, changes
