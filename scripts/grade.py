"""Grade a folder of submissions with an assignment's autograder: one CSV row per file.

    python scripts/grade.py SUBMISSIONS --assignment 01_sgd_loop --out grades/01_sgd_loop
    python scripts/grade.py SUBMISSIONS --autograder path/NAME-autograder.zip --out OUT
    make grade SUBMISSIONS=dir OUT=dir [ASSIGNMENT=name]

``--assignment NAME`` takes the archive that ``scripts/handouts.py`` built,
``_build/assign/NAME/autograder/NAME-autograder.zip``; without it or ``--autograder``, the name
of the SUBMISSIONS folder is taken as the assignment's name. A submission is a notebook named
``STUDENT.ipynb`` (letters, digits, ``.``, ``_``, ``-``, ``@``), directly in SUBMISSIONS.

Every submission is graded by Otter (``otter.api.grade_submission``, no Docker) in its own
process, with its own scratch folder (its own ``HOME`` and ``TMPDIR`` too), a wall-clock limit,
a limit on the output it may print, and no network: the process runs in network and PID
namespaces of its own (``unshare``) where the machine allows it, and otherwise with proxy
variables that point nowhere. The file system is not sandboxed. Scores are read from Otter's
results object, never from an exit code. One row per file goes to ``OUT/grades.csv``::

    student, file, q1, ..., qN, total, possible, status, detail

with ``status`` one of

* ``ok``: graded (whatever the score; ``detail`` counts cells that raised an error);
* ``wrong-filename``: not ``STUDENT.ipynb``, so not graded;
* ``not-a-notebook``: named ``.ipynb`` but not a readable notebook;
* ``wrong-assignment``: a notebook of another assignment (its Otter metadata says so);
* ``timeout``: still running after ``--timeout`` seconds, stopped;
* ``output-flood``: printed more than ``--max-output`` bytes, stopped;
* ``exited``: its kernel exited (``exit()``, ``os._exit``) before grading finished;
* ``crashed``: its kernel died from a signal (a segfault, out of memory) or grading failed.

A row that is not ``ok`` has empty question columns and a total of 0. Each student also gets
``OUT/feedback/STUDENT.txt`` (every test, passed or failed, with the failure messages; the code
of hidden tests is never shown) and ``OUT/results/STUDENT.json`` (everything, for scripts); the
log of each grading process is kept in ``OUT/logs/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "_build" / "assign"
STUDENT_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*\.ipynb$")
STATUSES = ("ok", "wrong-filename", "not-a-notebook", "wrong-assignment", "timeout",
            "output-flood", "exited", "crashed")
BLACKHOLE_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens there


# ----------------------------------------------------------------------------------------------
# The autograder archive
# ----------------------------------------------------------------------------------------------

@dataclass
class Autograder:
    """An Otter autograder archive: its path, assignment name and questions with their points."""

    path: Path
    name: str | None
    questions: dict[str, float]

    @classmethod
    def load(cls, path: Path) -> Autograder:
        from otter.test_files import ExceptionTestFile

        if not path.is_file():
            raise SystemExit(f"grade: no autograder archive at {path}; build it with "
                             "`python scripts/handouts.py` (make handouts)")
        questions: dict[str, float] = {}
        with zipfile.ZipFile(path) as zf, tempfile.TemporaryDirectory() as tmp:
            config = json.loads(zf.read("otter_config.json")) if "otter_config.json" in \
                zf.namelist() else {}
            for member in zf.namelist():
                if member.startswith("tests/") and member.endswith(".py"):
                    target = Path(tmp) / Path(member).name
                    target.write_bytes(zf.read(member))
                    test = ExceptionTestFile.from_file(str(target))
                    questions[test.name] = test.possible
        order = sorted(questions, key=lambda q: [int(t) if t.isdigit() else t
                                                 for t in re.split(r"(\d+)", q)])
        return cls(path, config.get("assignment_name"), {q: questions[q] for q in order})

    @property
    def possible(self) -> float:
        return sum(self.questions.values())


def find_autograder(assignment: str, build: Path = BUILD) -> Path:
    folder = build / assignment / "autograder"
    archives = sorted(folder.glob("*-autograder*.zip"))
    if not archives:
        raise SystemExit(f"grade: no autograder archive for {assignment!r} in {folder}; build it "
                         f"with `python scripts/handouts.py {assignment}`")
    return archives[-1]


# ----------------------------------------------------------------------------------------------
# Isolation: no network where the machine allows it
# ----------------------------------------------------------------------------------------------

def _bring_up_loopback() -> None:
    """Switch on ``lo`` in a fresh network namespace (the kernel talks to Otter over 127.0.0.1)."""
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, ifreq)[:18])[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up))


_PROBE = """
import socket, sys
sys.path.insert(0, {here!r})
from grade import _bring_up_loopback
_bring_up_loopback()
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
client = socket.create_connection(server.getsockname(), timeout=2)
try:
    socket.create_connection(("1.1.1.1", 80), timeout=2)
except OSError:
    print("isolated")
"""


def network_isolation() -> list[str]:
    """The command prefix that gives a process its own, empty network namespace ([] if none).

    The namespace has only a loopback interface, which the worker switches on (the kernel and
    Otter talk over 127.0.0.1): nothing outside the machine can be reached.
    """
    unshare = shutil.which("unshare")
    if not unshare or not sys.platform.startswith("linux"):
        return []
    # A PID namespace too, where possible: when the worker dies, everything it started dies.
    sandboxes = [["--net", "--pid", "--kill-child"], ["--net"]]
    candidates = [[unshare, *s] for s in sandboxes] if os.geteuid() == 0 else []
    candidates += [[unshare, "--user", "--map-root-user", *s] for s in sandboxes]
    probe = _PROBE.format(here=str(Path(__file__).resolve().parent))
    for prefix in candidates:
        try:
            out = subprocess.run(prefix + [sys.executable, "-c", probe], capture_output=True,
                                 text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and out.stdout.strip() == "isolated":
            return prefix
    return []


# ----------------------------------------------------------------------------------------------
# The worker: runs inside the isolated process, grades one notebook, writes result.json
# ----------------------------------------------------------------------------------------------

def _kill_kernels(kernels: list) -> None:
    for process in kernels:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the kernel leads its own session
            except OSError:
                process.kill()


def _install_guards(max_output: int, kernels: list, on_flood) -> None:
    """Remember kernel processes; call ``on_flood()`` once the kernel printed ``max_output`` bytes.

    Output arrives in a task of nbclient that is only awaited once the cell finishes, which a
    flooding cell never does: so ``on_flood`` must end the grading itself.
    """
    import nbclient.client
    from jupyter_client.provisioning import local_provisioner

    launch = local_provisioner.launch_kernel

    def launch_and_remember(*args, **kwargs):
        process = launch(*args, **kwargs)
        kernels.append(process)
        return process

    local_provisioner.launch_kernel = launch_and_remember
    process_message = nbclient.client.NotebookClient.process_message
    counted = {"bytes": 0}

    def counting(self, msg, cell, cell_index):
        if msg.get("msg_type") in ("stream", "display_data", "execute_result", "error",
                                   "update_display_data"):
            content = msg.get("content", {})
            counted["bytes"] += sum(len(str(v)) for v in content.values())
            if counted["bytes"] > max_output:
                on_flood()
        return process_message(self, msg, cell, cell_index)

    nbclient.client.NotebookClient.process_message = counting


def _kernel_death(kernels: list) -> tuple[str, str]:
    """('exited', why) or ('crashed', why) for a kernel that died on its own."""
    for process in kernels:
        for _ in range(20):
            if process.poll() is not None:
                break
            time.sleep(0.1)
        code = process.poll()
        if code is None:
            continue
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return "crashed", f"the kernel was killed by {name}"
        return "exited", f"the kernel exited with code {code} before grading finished"
    return "crashed", "the kernel died"


def _exception_text(message: str) -> str:
    """The exception line(s) of an Otter test-case message, without the test's source line."""
    lines = (message or "").strip().splitlines()
    if len(lines) >= 4 and lines[1].startswith("Error at line"):
        return "\n".join(lines[3:])
    return "\n".join(lines[1:]) if lines and lines[0].startswith("❌") else "\n".join(lines)


def _results_dict(results) -> dict:
    questions = {}
    for name, test_file in results.results.items():
        questions[name] = {
            "score": test_file.score,
            "possible": test_file.possible,
            "tests": [{"name": r.test_case.name, "hidden": bool(r.test_case.hidden),
                       "points": r.test_case.points, "passed": bool(r.passed),
                       "message": _exception_text(r.message) if not r.passed else ""}
                      for r in test_file.test_case_results],
        }
    return questions


def worker(submission: Path, autograder: Path, result_path: Path, max_output: int,
           expected_name: str | None) -> int:
    """Grade ``submission`` in this process; write ``result_path``. Exit code carries nothing."""
    import nbformat
    from nbclient.exceptions import DeadKernelError

    if os.environ.get("GRADE_NETNS") == "1":
        _bring_up_loopback()
    kernels: list = []
    result: dict = {"status": "crashed", "detail": "", "questions": {}}

    def write(**update):
        result.update(update)
        result_path.write_text(json.dumps(result, indent=1, default=str))

    def on_flood():
        write(status="output-flood", detail=f"more than {max_output:,} bytes of output")
        _kill_kernels(kernels)
        os._exit(0)

    _install_guards(max_output, kernels, on_flood)

    try:
        nb = nbformat.read(submission, as_version=4)
        meta = nb.metadata.setdefault("otter", {})
        if expected_name and meta.get("assignment_name") not in (None, expected_name):
            write(status="wrong-assignment",
                  detail=f"this notebook is {meta.get('assignment_name')!r}, not {expected_name!r}")
            return 0
        meta["assignment_name"] = expected_name  # Colab may drop it; the file name decided
        nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)",
                                     "language": "python", "name": "python3"}
        nbformat.write(nb, submission)

        from otter.api import grade_submission

        results = grade_submission(str(submission), str(autograder), quiet=True)
        if results.catastrophic_error is not None:
            write(status="crashed", detail=f"grading failed: {results.catastrophic_error}"[:500])
            return 0
        executed = results.notebook
        errors = sum(1 for cell in (executed.cells if executed is not None else [])
                     for out in cell.get("outputs", []) if out.get("output_type") == "error")
        write(status="ok", detail=f"{errors} cell(s) raised an error" if errors else "",
              questions=_results_dict(results), total=results.total, possible=results.possible)
    except DeadKernelError:
        status, detail = _kernel_death(kernels)
        write(status=status, detail=detail)
    except Exception as err:  # Otter could not grade the notebook
        write(status="crashed", detail=f"grading failed: {type(err).__name__}: {err}"[:500])
    finally:
        _kill_kernels(kernels)  # never leave a kernel behind
    return 0


# ----------------------------------------------------------------------------------------------
# The parent: one isolated worker per submission, watched for time and output
# ----------------------------------------------------------------------------------------------

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
        cmd = isolation + [sys.executable, str(Path(__file__).resolve()), "--worker",
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


def _tail_copy(src: Path, dst: Path, keep: int = 20_000) -> None:
    with open(src, "rb") as f:
        f.seek(max(0, src.stat().st_size - keep))
        dst.write_bytes(b"[... output cut ...]\n" + f.read())


# ----------------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------------

def _points(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.3f}".rstrip("0")


EXPLAIN = {
    "wrong-filename": "The file was not graded: hand in your notebook as STUDENT.ipynb.",
    "not-a-notebook": "The file was not graded: it is not a Jupyter notebook (.ipynb) that "
                      "could be read. Hand in the .ipynb file itself, saved from Jupyter or Colab.",
    "wrong-assignment": "The file was not graded: it is the notebook of another assignment.",
    "timeout": "Your notebook did not finish running within the time limit, so it was not "
               "graded. Look for a loop that never ends or a computation that is far too large.",
    "output-flood": "Your notebook printed far too much output, so it was stopped and not "
                    "graded. Remove the prints inside long loops.",
    "exited": "Your notebook stopped its own Python process (exit(), quit() or os._exit()), so "
              "grading could not finish. Remove that call.",
    "crashed": "Your notebook's Python process crashed while it was graded, so it was not "
               "graded. Run it top to bottom (Restart & Run All) to find the cell that crashes.",
}


def feedback(row: Row, autograder: Autograder, hidden_messages: bool = True) -> str:
    lines = [f"Assignment {autograder.name or autograder.path.stem}: {row.file}",
             f"Status: {row.status}" + (f" ({row.detail})" if row.detail else ""),
             f"Score: {_points(row.total)} / {_points(autograder.possible)}", ""]
    if row.status != "ok":
        lines.append(EXPLAIN.get(row.status, ""))
        return "\n".join(lines) + "\n"
    for q, possible in autograder.questions.items():
        info = row.questions.get(q, {"score": 0, "tests": []})
        lines.append(f"{q}: {_points(info['score'])} / {_points(possible)}")
        for t in info["tests"]:
            mark = "passed" if t["passed"] else "FAILED"
            kind = ", hidden" if t["hidden"] else ""
            lines.append(f"  [{mark}] {t['name']} ({_points(t['points'])} pt{kind})")
            if not t["passed"] and (hidden_messages or not t["hidden"]):
                lines += ["      " + m for m in t["message"].splitlines()]
        lines.append("")
    return "\n".join(lines)


def write_reports(rows: list[Row], autograder: Autograder, out: Path,
                  hidden_messages: bool = True) -> Path:
    header = ["student", "file", *autograder.questions, "total", "possible", "status", "detail"]
    csv_path = out / "grades.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            ok = row.status == "ok"
            scores = [_points(row.questions.get(q, {}).get("score", 0)) if ok else ""
                      for q in autograder.questions]
            writer.writerow([row.student, row.file, *scores, _points(row.total if ok else 0),
                             _points(autograder.possible), row.status, row.detail])
    for row in rows:
        (out / "feedback" / f"{row.student}.txt").write_text(feedback(row, autograder,
                                                                      hidden_messages))
        (out / "results" / f"{row.student}.json").write_text(json.dumps(
            {"student": row.student, "file": row.file, "status": row.status,
             "detail": row.detail, "total": row.total if row.status == "ok" else 0,
             "possible": autograder.possible, "questions": row.questions,
             "seconds": round(row.seconds, 2)}, indent=1))
    return csv_path


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
            print(f"grade: {row.file:32s} {row.status:16s} {_points(row.total):>6s} / "
                  f"{_points(autograder.possible)}  ({row.seconds:.1f} s) {row.detail}",
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path)
    parser.add_argument("--assignment", help="name of an assignment built by scripts/handouts.py")
    parser.add_argument("--autograder", type=Path, help="an Otter autograder archive (.zip)")
    parser.add_argument("--out", type=Path, required=True, help="folder for grades.csv etc.")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per submission")
    parser.add_argument("--max-output", type=int, default=2_000_000,
                        help="bytes of output a submission may print")
    parser.add_argument("--jobs", type=int, default=2, help="submissions graded at once")
    parser.add_argument("--no-isolation", action="store_true",
                        help="do not put the graders in a network namespace of their own")
    parser.add_argument("--no-hidden-messages", action="store_true",
                        help="feedback names failed hidden tests but does not quote their message")
    parser.add_argument("--keep-scratch", action="store_true",
                        help="keep each submission's scratch folder (for debugging)")
    args = parser.parse_args(argv)
    if args.autograder:
        archive = args.autograder
    else:
        archive = find_autograder(args.assignment or args.submissions.resolve().name)
    autograder = Autograder.load(archive)
    start = time.perf_counter()
    rows = grade_folder(args.submissions, autograder, args.out, timeout=args.timeout,
                        max_output=args.max_output, jobs=args.jobs,
                        isolate=not args.no_isolation,
                        hidden_messages=not args.no_hidden_messages,
                        keep_scratch=args.keep_scratch)
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES if any(r.status == s
                                                                            for r in rows)}
    print(f"grade: {len(rows)} file(s) in {time.perf_counter() - start:.0f} s: "
          + ", ".join(f"{n} {s}" for s, n in counts.items())
          + f" -> {args.out / 'grades.csv'}", flush=True)
    return 0


def _worker_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs=3, type=Path)
    parser.add_argument("--max-output", type=int, required=True)
    parser.add_argument("--expected-name", default="")
    args = parser.parse_args(argv)
    submission, autograder, result = args.worker
    return worker(submission, autograder, result, args.max_output, args.expected_name or None)


if __name__ == "__main__":
    if "--worker" in sys.argv[1:]:
        sys.exit(_worker_main(sys.argv[1:]))
    sys.exit(main())
