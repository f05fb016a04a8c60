"""Supervision: one sandboxed worker per submission, watched for time, output, memory, processes.

The supervisor runs no code of a submission. For each file it reads the notebook as data, starts
the worker (:mod:`coursetools.grading.worker`) in the sandbox
(:mod:`coursetools.grading.isolation`), sends it the code cells, then (once the cells are done)
the tests' probes, and reads back one answer of plain values, size-limited. It kills the whole
sandbox when the time, output, memory or process limit is passed (a cell or a probe past its own
time limit: the notebook runs again without it), and turns what happened into a
:class:`Row` with one of :data:`STATUSES`; the scores come from the checks that it runs itself
(:mod:`coursetools.grading.verdicts`), never from the sandbox.
"""

from __future__ import annotations

import ast
import json
import os
import queue
import re
import resource
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from coursetools.grading import classreport, integrity, isolation, references, verdicts
from coursetools.grading.archive import Autograder
from coursetools.grading.intake import Submission, discover, match
from coursetools.grading.reports import points, write_reports

MAX_NOTEBOOK = 64 << 20    # bytes of a notebook file
STATUSES = ("ok", "wrong-filename", "not-a-notebook", "wrong-assignment", "timeout",
            "output-flood", "memory", "exited", "crashed")
MAX_ANSWER = 64 << 20      # bytes of JSON the sandbox may send back
TMP_BYTES = 512 << 20      # size of the sandbox's writable /tmp
MAX_FRAMES = 1_000_000     # frames the sandbox may send (one per cell and per probe, two more)
MAX_RERUNS = 5             # cells (and, apart, probes) skipped after running past their limit


@dataclass
class Row:
    student: str
    file: str
    status: str
    detail: str = ""
    questions: dict = field(default_factory=dict)
    total: float = 0
    seconds: float = 0.0
    key: str = ""                   # unique, safe name of its feedback, results and log files
    flags: str = ""                 # forbidden references its code uses
    roster: dict | None = None      # its student's roster row
    problem: str = ""               # why it matched no one on the roster


@dataclass
class Limits:
    timeout: float = 300            # seconds of wall-clock time, all cells and tests
    cell_timeout: float = 120       # seconds one cell may run
    probe_timeout: float = 30       # seconds one test's probe may run
    max_output: int = 2_000_000     # bytes printed
    memory_mb: int = 4096           # resident memory of the whole sandbox
    max_processes: int = 64         # processes in the sandbox at once


def read_notebook(path: Path):
    """The notebook at ``path``, read as data, without following a symbolic link."""
    import nbformat

    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_NOTEBOOK + 1)
    if len(data) > MAX_NOTEBOOK:
        raise ValueError(f"larger than {MAX_NOTEBOOK >> 20} MB")
    return nbformat.reads(data.decode("utf-8"), as_version=4)


def classify(sub: Submission) -> tuple[str | None, str, object]:
    """(status, detail, None) for a file that cannot be graded, or (None, '', notebook)."""
    if sub.problem and not sub.problem.startswith("matches"):
        return "wrong-filename", f"{sub.problem}: {sub.file!r}"[:300], None
    try:
        nb = read_notebook(sub.path)
    except Exception as err:  # not JSON, not UTF-8, not a notebook, a link, unreadable
        return ("not-a-notebook",
                f"could not read it as a notebook: {type(err).__name__}"[:200], None)
    return None, "", nb


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


def code_cells(nb) -> list[tuple[int, str]]:
    """(number, source) of the code cells to run: the number counts every cell from the top."""
    return [(n, c.source) for n, c in enumerate(nb.cells, start=1)
            if c.cell_type == "code" and not _grader_call(c.source)]


def assignment_of(nb) -> str | None:
    otter = nb.metadata.get("otter", {})
    return otter.get("assignment_name") if isinstance(otter, dict) else None


class _Frames(threading.Thread):
    """Reads the worker's frames (size-limited JSON) from a pipe into a queue.

    The supervisor takes them with :meth:`take`, which removes what it returns: a frame that
    arrives while the supervisor handles others waits in the queue (never dropped).
    """

    def __init__(self, fd: int):
        super().__init__(daemon=True)
        self.fd, self.problem, self.count = fd, "", 0
        self.queue: queue.SimpleQueue = queue.SimpleQueue()

    def take(self, timeout: float) -> list[dict]:
        """The frames received so far and not yet taken (waiting up to ``timeout`` for one)."""
        try:
            frames = [self.queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                frames.append(self.queue.get_nowait())
            except queue.Empty:
                return frames

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
                self.count += 1
                if self.count > MAX_FRAMES:
                    self.problem = f"the notebook sent more than {MAX_FRAMES:,} frames"
                    return
                body = self._exactly(size)
                if body is None:
                    return
                frame = json.loads(body.decode())
                if not isinstance(frame, dict):
                    raise ValueError("not an object")
                self.queue.put(frame)
        except (ValueError, RecursionError, UnicodeDecodeError) as err:
            self.problem = f"the notebook's answers could not be read ({type(err).__name__})"
        finally:
            os.close(self.fd)


class _Output(threading.Thread):
    """Copies the sandbox's printed output to the log, up to the limit, and counts it."""

    def __init__(self, stream, log: Path, limit: int, append: bool = False):
        super().__init__(daemon=True)
        self.stream, self.log, self.limit, self.count = stream, log, limit, 0
        self.mode = "ab" if append else "wb"

    def run(self):
        with open(self.log, self.mode) as log:
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


@dataclass
class Outcome:
    """What one sandboxed run of a notebook gave: a status, and for ``ok`` the probe values."""

    status: str
    detail: str = ""
    values: dict | None = None
    failures: dict = field(default_factory=dict)   # cell index -> "SyntaxError: ..."
    skipped: list = field(default_factory=list)    # cells stopped at the time limit per cell
    running: int | None = None                     # the cell running when it was stopped
    stopped: list = field(default_factory=list)    # tests whose probe passed its time limit
    test: str | None = None                        # the test whose probe was stopped


def run_submission(cells: list[tuple[int, str]], autograder: Autograder, log_path: Path,
                   limits: Limits, sandboxed: bool) -> Outcome:
    """The :class:`Outcome` of one notebook, run in a fresh sandbox (again, per hung cell or probe).

    A cell still running after ``limits.cell_timeout`` seconds is stopped with the whole sandbox;
    the notebook then runs again, in a fresh sandbox, without that cell (up to
    :data:`MAX_RERUNS` cells), so that a hung cell costs only what depends on it. A test's probe
    still running after ``limits.probe_timeout`` seconds is stopped the same way: that test fails
    (its answer says after how long it was stopped) and the notebook runs again with the other
    probes (up to :data:`MAX_RERUNS` probes). The log names each such cell and test;
    ``limits.timeout`` bounds all the runs together.
    """
    deadline = time.perf_counter() + limits.timeout
    skipped: list[int] = []
    stopped: list[str] = []
    while True:
        with tempfile.TemporaryDirectory(prefix="grade-") as scratch:  # used without a sandbox
            outcome = _run(cells, autograder, log_path, limits, sandboxed, Path(scratch),
                           skipped, deadline, stopped)
        if outcome.status == "probe-timeout":
            stopped.append(outcome.test)
            note = (f"test {outcome.test} was still running after {limits.probe_timeout:g} s "
                    "(the time limit per test): stopped")
            if len(stopped) > MAX_RERUNS:
                _note(log_path, f"{note}; {len(stopped)} tests hung: not run again")
                return Outcome("timeout", f"{len(stopped)} tests ran past the time limit per "
                               f"test ({limits.probe_timeout:g} s)", skipped=skipped,
                               stopped=stopped)
            _note(log_path, f"{note}; the notebook runs again without it")
            continue
        if outcome.status != "cell-timeout":
            outcome.skipped, outcome.stopped = skipped, stopped
            if outcome.values is not None:  # the grader's own answer for each stopped probe
                for name in stopped:
                    outcome.values[name] = {"stopped": limits.probe_timeout}
            return outcome
        skipped.append(outcome.running)
        note = (f"cell {cells[outcome.running][0]} ({_first_line(cells[outcome.running][1])}) "
                f"was still running after "
                f"{limits.cell_timeout:g} s (the time limit per cell): stopped")
        if len(skipped) > MAX_RERUNS:
            _note(log_path, f"{note}; {len(skipped)} cells hung: not run again")
            return Outcome("timeout", f"{len(skipped)} cells ran past the time limit per cell "
                           f"({limits.cell_timeout:g} s)", skipped=skipped,
                           running=outcome.running)
        _note(log_path, f"{note}; the notebook runs again without it")


def _note(log_path: Path, text: str) -> None:
    with open(log_path, "a") as log:
        log.write(f"\n[grader] {text}\n")


def _first_line(source: str) -> str:
    line = next((x.strip() for x in source.splitlines() if x.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


def _run(cells: list[tuple[int, str]], autograder: Autograder, log_path: Path, limits: Limits,
         sandboxed: bool, scratch: Path, skip: list[int], deadline: float,
         stopped: list[str] = ()) -> Outcome:
    read_fd, write_fd = os.pipe()
    args = [str(write_fd)]
    if sandboxed:
        cmd, env = isolation.sandbox_command(isolation.worker_argv(args), tmp_bytes=TMP_BYTES), None
    else:
        cmd = isolation.unsafe_command(args)
        if isolation.FALLBACK_USER:
            os.chmod(scratch, 0o777)  # the unprivileged user's home and working folder
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(scratch), "TMPDIR": str(scratch),
               "MPLBACKEND": "agg", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "GRADER_SYS_PATH": str(isolation.labkit_dir().parent)}
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, pass_fds=(write_fd,), cwd=scratch, env=env,
                            start_new_session=True,
                            preexec_fn=_limit_resources(limits.memory_mb))
    os.close(write_fd)
    frames = _Frames(read_fd)
    output = _Output(proc.stdout, log_path, limits.max_output, append=bool(skip or stopped))
    frames.start()
    output.start()
    threading.Thread(target=_send, args=(proc.stdin, {"cells": [c for _, c in cells],
                                                       "skip": skip}),
                     daemon=True).start()
    # Only the reply that carries this run's nonce counts as the answer: the nonce exists only in
    # the probes, so no frame written before they were sent (by a background process, say) can.
    nonce = secrets.token_hex(16)
    verdict, probes_sent, answer, failures, errors = None, False, None, {}, 0
    running, cell_start, last_check = None, time.perf_counter(), 0.0
    tests = [t for t in autograder.tests if t.name not in stopped]
    probing, probe_start = None, 0.0  # the test whose probe runs, since when
    try:
        while verdict is None and answer is None:
            # Decided before taking: once the worker and the reader have both ended, every frame
            # is in the queue, and this take drains it (a frame never arrives after the check).
            ended = proc.poll() is not None and not frames.is_alive()
            for frame in frames.take(0 if ended else 0.1):
                event = frame.get("event")
                if event == "memory":
                    verdict = ("memory", f"more than {limits.memory_mb:,} MB of memory, stopped")
                elif event == "cell" and not probes_sent:
                    index = frame.get("index")
                    if type(index) is int and 0 <= index < len(cells):
                        running, cell_start = index, time.perf_counter()
                elif event == "cells" and not probes_sent:
                    probes_sent, running = True, None
                    failures = _failures(frame.get("failures"), len(cells))
                    count = frame.get("errors")
                    errors = min(count, 10_000) if type(count) is int and count > 0 else 0
                    probes = [{"name": t.name, "params": list(t.params), "source": t.probe,
                               "seed": 0} for t in tests]
                    threading.Thread(target=_send, args=(proc.stdin, {"tests": probes,
                                                                      "nonce": nonce}),
                                     daemon=True).start()
                elif event == "probe" and probes_sent:
                    index = frame.get("index")
                    if type(index) is int and 0 <= index < len(tests):
                        probing, probe_start = tests[index].name, time.perf_counter()
                elif event == "probes" and probes_sent and frame.get("nonce") == nonce:
                    answer = frame
                    break
                if verdict:
                    break
            if verdict or answer is not None or ended:
                break
            now = time.perf_counter()
            if frames.problem:
                verdict = ("crashed", frames.problem)
            elif output.count > limits.max_output:
                verdict = ("output-flood", f"more than {limits.max_output:,} bytes of output")
            elif now > deadline:
                where = (f" (in cell {cells[running][0]}: {_first_line(cells[running][1])})"
                         if running is not None else f" (in test {probing})" if probing else
                         " (answering the tests)" if probes_sent else "")
                verdict = ("timeout", f"still running after {limits.timeout:g} s{where}, stopped")
            elif running is not None and now - cell_start > limits.cell_timeout:
                _kill_all(proc)
                output.join(5)
                return Outcome("cell-timeout", running=running)
            elif probing is not None and now - probe_start > limits.probe_timeout:
                _kill_all(proc)
                output.join(5)
                return Outcome("probe-timeout", test=probing)
            elif now - last_check >= 0.1:  # the process tree (every process's /proc): rarely
                last_check = now
                procs = _tree(proc.pid)
                if _rss_mb(procs) > limits.memory_mb:
                    verdict = ("memory", f"more than {limits.memory_mb:,} MB of memory, stopped")
                elif len(procs) > limits.max_processes + 3:  # bwrap, its init and the worker
                    verdict = ("crashed", f"started more than {limits.max_processes} processes, "
                                          "stopped")
    finally:
        _kill_all(proc)
    output.join(5)
    if output.count > limits.max_output and verdict is None and answer is None:
        verdict = ("output-flood", f"more than {limits.max_output:,} bytes of output")
    if verdict:
        if verdict[0] == "timeout":
            _note(log_path, verdict[1])
        return Outcome(verdict[0], verdict[1], failures=failures, running=running)
    if answer is None:
        status, detail = _death(proc.returncode, sandboxed)
        return Outcome(status, detail, failures=failures)
    values = answer.get("values")
    return Outcome("ok", f"{errors} cell(s) raised an error" if errors else "",
                   values if isinstance(values, dict) else {}, failures=failures)


def _failures(reported, count: int) -> dict[int, str]:
    """{cell index: 'SyntaxError: ...'} from the worker's report, kept only where well formed."""
    found: dict[int, str] = {}
    if isinstance(reported, list):
        for item in reported[:200]:
            if isinstance(item, list) and len(item) == 2 and type(item[0]) is int \
                    and 0 <= item[0] < count and isinstance(item[1], str):
                found[item[0]] = item[1][:300]
    return found


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


def grade_one(sub: Submission, autograder: Autograder, out: Path, *, limits: Limits,
              key: str, sandboxed: bool = True, unsafe_note: str = "") -> Row:
    """Grade one file in a fresh sandbox; never raises for a bad submission."""
    row = Row(sub.student, sub.file, "", key=key, roster=sub.roster, problem=sub.problem)
    status, detail, nb = classify(sub)
    if status:
        row.status, row.detail = status, detail
        return row
    name = assignment_of(nb)
    if autograder.name and name not in (None, autograder.name):
        row.status, row.detail = ("wrong-assignment",
                                  f"this notebook is {name!r}, not {autograder.name!r}")
        return row
    start = time.perf_counter()
    cells = code_cells(nb)
    found = references.find(cells, autograder)
    outcome = run_submission(cells, autograder, out / "logs" / f"{key}.log", limits, sandboxed)
    skipped = [f"cell {cells[i][0]} ran past the time limit per cell ({limits.cell_timeout:g} s) "
               "and was skipped" for i in outcome.skipped]
    skipped += [f"test {name} was stopped after {limits.probe_timeout:g} s (the time limit per "
                "test)" for name in outcome.stopped]
    row.detail = "; ".join(x for x in (outcome.detail, *skipped, unsafe_note) if x)
    row.status, row.seconds = outcome.status, time.perf_counter() - start
    if outcome.status != "ok":
        return row
    context = verdicts.Context(cells, outcome.failures, outcome.skipped, found)
    row.questions, row.total = verdicts.score(autograder, outcome.values, context)
    row.flags = "; ".join(sorted(found))
    row.seconds = time.perf_counter() - start
    return row


def safe_key(name: str) -> str:
    """A file name for a student's feedback, results and log: no separator, no leading dot."""
    key = re.sub(r"[\x00-\x1f\x7f/\\]", "_", name).strip().lstrip(".")
    return key[:120] or "_"


def grade_folder(submissions: Path, autograder: Autograder, out: Path, *,
                 limits: Limits | None = None, jobs: int = 2, unsafe: bool = False,
                 hidden_messages: bool = False, roster: list[dict] | None = None,
                 only: list[str] | None = None, merge: bool = True,
                 ) -> tuple[list[Row], list[str]]:
    """Grade every notebook of ``submissions``; write grades.csv, feedback/ and results/ to ``out``.

    ``only`` restricts grading to the students or files named; with ``merge`` the rows join
    those of an existing ``out/grades.csv`` (a regrade replaces its own students' rows only).
    Returns the rows graded now and the changes found in the grading environment or the archive
    (which must be none).
    """
    limits = limits or Limits()
    if not submissions.is_dir():
        raise SystemExit(f"grade: {submissions} is not a folder of submissions")
    for sub in ("feedback", "results", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    found, skipped = discover(submissions)
    if roster is not None:
        match(found, roster)
    if only:
        wanted = set(only)
        found = [s for s in found if s.student in wanted or s.file in wanted
                 or Path(s.file).stem in wanted]
    for rel, why in skipped:
        print(f"grade: skipped {rel}: {why}", flush=True)
    unsafe_note = isolation.require_sandbox(unsafe) or ""
    sandboxed = not unsafe_note
    print(f"grade: {autograder.name}: "
          + ("sandbox bubblewrap (no network, read-only system, own PID namespace, nobody)"
             if sandboxed else unsafe_note), flush=True)
    before = integrity.fingerprint(autograder.path)
    students = [s.student for s in found]
    keys = [safe_key(s.student if students.count(s.student) == 1 else
                     s.file[:-len(".ipynb")].replace("/", "__")) for s in found]
    lock = threading.Lock()

    def one(item: tuple[Submission, str]) -> Row:
        row = grade_one(item[0], autograder, out, limits=limits, key=item[1],
                        sandboxed=sandboxed, unsafe_note=unsafe_note)
        with lock:
            print(f"grade: {row.file:32s} {row.status:16s} {points(row.total):>6s} / "
                  f"{points(autograder.possible)}  ({row.seconds:.1f} s) {row.detail}",
                  flush=True)
        return row

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        rows = list(pool.map(one, zip(found, keys)))
    changes = integrity.compare(before, integrity.fingerprint(autograder.path))
    for row in rows:  # two files of one student: each row says so
        if students.count(row.student) > 1:
            row.detail = "; ".join(x for x in (row.detail, f"{students.count(row.student)} "
                                               "files from this student") if x)
    write_reports(rows, autograder, out, hidden_messages, skipped=skipped, merge=merge)
    classreport.write_report(out, autograder)
    return rows, changes
