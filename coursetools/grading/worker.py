"""The worker: runs in the isolated process, grades one notebook, writes ``result.json``.

    python -m coursetools.grading.worker SUBMISSION ARCHIVE RESULT --max-output N \
        [--expected-name NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from coursetools.grading.isolation import bring_up_loopback
from coursetools.notebooks import set_kernelspec


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
        bring_up_loopback()
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
        nbformat.write(set_kernelspec(nb), submission)

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="grade one notebook (run by the supervisor)")
    parser.add_argument("submission", type=Path)
    parser.add_argument("autograder", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("--max-output", type=int, required=True)
    parser.add_argument("--expected-name", default="")
    args = parser.parse_args(argv)
    return worker(args.submission, args.autograder, args.result, args.max_output,
                  args.expected_name or None)


if __name__ == "__main__":
    sys.exit(main())
