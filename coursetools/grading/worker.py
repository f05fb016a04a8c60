"""The worker: what runs inside the sandbox for one submission. It computes no score.

    python -I worker.py RESULTS_FD     # inside the sandbox (see coursetools.grading.isolation)
    python -I worker.py --self-test

This file is run on its own, by path, inside the sandbox: it imports nothing from the course's
packages, and nothing it does is trusted. It reads one frame from standard input, the notebook's
code cells, and runs them one by one in an IPython shell (magics work; a cell that raises does
not stop the others, as in Otter). To the file descriptor RESULTS_FD it writes a frame before
each cell (its index, so that the grader can name a cell that hangs) and one when the cells are
done (with the errors they raised). Then it reads a second frame, the *probes* (one small
function per test, which calls the student's functions and returns what they gave), runs each
with Python's, NumPy's and torch's generators seeded (writing a frame with its index before it,
so that the grader can stop a probe that hangs), and writes their values as one last
frame, which carries the probes' one-time ``nonce``: plain JSON, with tensors as dtype, shape
and raw bytes (:func:`encode`). The verdicts are computed outside, by the tests' *checks*
(:mod:`coursetools.grading.verdicts`).

A frame is 8 bytes of length (big-endian) and that many bytes of UTF-8 JSON.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys

MAX_ELEMENTS = 10_000_000  # elements of one tensor sent back (as the grader reads them)
MEMORY_ERRORS = ("can't allocate memory", "not enough memory", "out of memory",
                 "cannot allocate memory")


def read_frame(fd: int) -> dict:
    head = _read_exactly(fd, 8)
    return json.loads(_read_exactly(fd, int.from_bytes(head, "big")).decode())


def _read_exactly(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the grader closed the pipe")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def write_frame(fd: int, doc: dict) -> None:
    data = json.dumps(doc).encode()
    data = len(data).to_bytes(8, "big") + data
    while data:
        data = data[os.write(fd, data):]


def encode(value, depth: int = 0):
    """``value`` as plain JSON: scalars as they are, containers tagged, tensors as raw bytes."""
    if depth > 32:
        return {"repr": "<nested too deeply>", "type": type(value).__name__}
    if value is None or type(value) is bool:
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if type(value) in (list, tuple):
        return {"list" if type(value) is list else "tuple":
                [encode(v, depth + 1) for v in value]}
    if type(value) is dict:
        return {"dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    torch = sys.modules.get("torch")
    if torch is not None and type(value) is torch.Tensor:
        if value.numel() > MAX_ELEMENTS:  # this test fails; the answer stays small
            return {"repr": f"<a tensor of {value.numel():,} elements: too large to send>",
                    "type": "Tensor"}
        t = value.detach().cpu().contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        return {"tensor": {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                           "data": base64.b64encode(raw).decode()}}
    try:
        text = repr(value)[:2000]
    except Exception as err:  # a repr that raises
        text = f"<unprintable {type(value).__name__}: {type(err).__name__}>"
    return {"repr": text, "type": type(value).__name__}


def _is_memory_error(err: BaseException | None) -> bool:
    if err is None:
        return False
    return isinstance(err, MemoryError) or any(m in str(err).lower() for m in MEMORY_ERRORS)


def seed(value: int = 0) -> None:
    """Seed Python's, NumPy's and torch's generators (those imported), as before every probe."""
    import random

    random.seed(value)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(value)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(value)


def run_probe(test: dict, user_ns: dict) -> dict:
    """One probe's answer: ``{"value": ...}``, ``{"error": ...}`` or ``{"missing": [names]}``."""
    missing = [name for name in test["params"] if name not in user_ns]
    if missing:  # the cell that defines it raised, was stopped, or never existed
        return {"missing": missing[:20]}
    namespace: dict = {"__name__": "probe"}
    seed(int(test.get("seed", 0)))
    exec(compile(test["source"], f"<probe {test['name']}>", "exec"), namespace)
    args = [user_ns[name] for name in test["params"]]
    return {"value": encode(namespace["probe"](*args))}


def run_harness(job: dict, user_ns: dict, results: int) -> None:
    """One leaderboard training run (:mod:`coursetools.grading.leaderboard`).

    ``job`` carries the grader's harness as source (:mod:`coursetools.grading.harness`), the
    workload and a one-time nonce. The harness trains with the notebook's optimizer and sends
    checkpoints through ``emit`` (frames ``{"event": "checkpoint", "nonce": ..., ...}``, tensors
    as raw bytes); a last frame ``{"event": "done"}`` says it ended, and why if it raised. The
    grader times the frames itself and judges only the weights, outside.
    """
    nonce = job.get("nonce")

    def emit(kind: str, **fields) -> None:
        write_frame(results, {"event": kind, "nonce": nonce,
                              **{k: encode(v) for k, v in fields.items()}})

    error = ""
    try:
        namespace: dict = {"__name__": "harness"}
        exec(compile(job["harness"], "<harness>", "exec"), namespace)
        namespace["train"](job["workload"], user_ns, emit)
    except BaseException as err:  # the optimizer raised (or stopped the run): reported
        if _is_memory_error(err):
            write_frame(results, {"event": "memory", "error": f"{type(err).__name__}"[:300]})
            os._exit(0)
        error = f"{type(err).__name__}: {err}"[:300]
    sys.stdout.flush()
    sys.stderr.flush()
    write_frame(results, {"event": "done", "nonce": nonce, "error": error})


def run(results: int, control: int = 0) -> int:
    if os.environ.get("GRADER_SYS_PATH"):  # where the grader's own labkit is (read-only)
        sys.path.insert(0, os.environ["GRADER_SYS_PATH"])
    job = read_frame(control)
    devnull = os.open(os.devnull, os.O_RDONLY)
    moved = os.dup(control)  # the probes come later on this pipe; the notebook reads /dev/null
    os.dup2(devnull, 0)
    control = moved

    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance(colors="nocolor")
    shell.ask_exit = lambda: os._exit(0)  # exit() / quit(): the kernel exits, as in Jupyter
    errors, failures, skip = 0, [], set(job.get("skip", []))
    for index, source in enumerate(job["cells"]):
        if index in skip:  # it ran past the time limit per cell in an earlier attempt
            continue
        write_frame(results, {"event": "cell", "index": index})
        outcome = shell.run_cell(source, store_history=True)
        sys.stdout.flush()
        sys.stderr.flush()
        error = outcome.error_in_exec or outcome.error_before_exec
        if error is not None:
            errors += 1
            if len(failures) < 200:
                text = f"{type(error).__name__}: {error}"
                text = re.sub(r" \(<ipython-input-[^>]*>, ", " (", text)
                failures.append([index, text[:300]])
            if _is_memory_error(error):
                write_frame(results, {"event": "memory", "cell": index,
                                      "error": f"{type(error).__name__}: {error}"[:300]})
                os._exit(0)
    write_frame(results, {"event": "cells", "errors": errors, "failures": failures})
    probes = read_frame(control)
    while "harness" in probes:  # the leaderboard: one training run per frame, then the next
        run_harness(probes, shell.user_ns, results)
        probes = read_frame(control)
    values = {}
    user_ns = shell.user_ns
    for index, test in enumerate(probes["tests"]):
        write_frame(results, {"event": "probe", "index": index})  # names a probe that hangs
        try:
            values[test["name"]] = run_probe(test, user_ns)
        except BaseException as err:  # the student's code raised: the check will say so
            if _is_memory_error(err):
                write_frame(results, {"event": "memory", "test": test["name"],
                                      "error": f"{type(err).__name__}: {err}"[:300]})
                os._exit(0)
            values[test["name"]] = {"error": f"{type(err).__name__}: {err}"[:2000]}
        sys.stdout.flush()
        sys.stderr.flush()
    # The reply names the probes it answers: the grader accepts no other frame as the answer.
    write_frame(results, {"event": "probes", "nonce": probes.get("nonce"), "values": values})
    os._exit(0)


def self_test() -> int:
    """Print 'isolated' when this process has no network, is nobody and cannot write /usr."""
    import socket

    try:
        socket.create_connection(("1.1.1.1", 80), timeout=2)
        return 1
    except OSError:
        pass
    try:
        open("/usr/.grader-probe", "w").close()
        return 1
    except OSError:
        pass
    if os.getuid() != 65534:
        return 1
    print("isolated")
    return 0


if __name__ == "__main__":
    sys.exit(self_test() if "--self-test" in sys.argv[1:] else run(int(sys.argv[1])))
