"""The command line: ``python -m coursetools grade SUBMISSIONS --out OUT [...]``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from coursetools.grading import gradebook
from coursetools.grading.archive import Autograder, find_autograder
from coursetools.grading.intake import read_roster
from coursetools.grading.supervise import STATUSES, Limits, grade_folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coursetools grade",
        description="Grade a folder of submissions with an assignment's autograder.")
    parser.add_argument("submissions", type=Path)
    parser.add_argument("--assignment", help="name of an assignment built by make handouts")
    parser.add_argument("--autograder", type=Path, help="an autograder archive (.zip)")
    parser.add_argument("--out", type=Path, required=True, help="folder for grades.csv etc.")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds per submission, all cells and tests together")
    parser.add_argument("--cell-timeout", type=float, default=120,
                        help="seconds one cell may run; a cell past it is skipped (the notebook "
                             "runs again without it) and the log names it")
    parser.add_argument("--probe-timeout", type=float, default=30,
                        help="seconds one test may run the notebook's functions (default: "
                             "%(default)g); a test past it fails, stopped, and the other tests "
                             "still run (the notebook runs again without it)")
    parser.add_argument("--max-output", type=int, default=2_000_000,
                        help="bytes of output a submission may print")
    parser.add_argument("--memory", type=int, default=4096,
                        help="megabytes of memory a submission may use")
    parser.add_argument("--max-processes", type=int, default=64,
                        help="processes a submission may run at once")
    parser.add_argument("--jobs", type=int, default=2, help="submissions graded at once")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="grade even where no sandbox can be made (recorded in the CSV)")
    parser.add_argument("--show-hidden-messages", action="store_true",
                        help="feedback quotes the messages of failed hidden tests (after the "
                             "deadline); by default it gives their name and verdict only")
    parser.add_argument("--no-hidden-messages", action="store_true",
                        help=argparse.SUPPRESS)  # the default now; kept for old scripts
    parser.add_argument("--roster", type=Path,
                        help="CSV of the class (Canvas or Moodle gradebook export): match each "
                             "file to a student, and write canvas.csv and moodle.csv")
    parser.add_argument("--only", nargs="+", metavar="STUDENT",
                        help="regrade only these students (or files); merged into OUT")
    parser.add_argument("--fresh", action="store_true",
                        help="start a new grades.csv instead of merging into the existing one")
    parser.add_argument("--column", help="the gradebook column's name (default: the assignment)")
    args = parser.parse_args(argv)
    if args.autograder:
        archive = args.autograder
    else:
        archive = find_autograder(args.assignment or args.submissions.resolve().name)
    autograder = Autograder.load(archive)
    start = time.perf_counter()
    limits = Limits(timeout=args.timeout, cell_timeout=args.cell_timeout,
                    probe_timeout=args.probe_timeout,
                    max_output=args.max_output, memory_mb=args.memory,
                    max_processes=args.max_processes)
    roster = read_roster(args.roster) if args.roster else None
    rows, changes = grade_folder(args.submissions, autograder, args.out, limits=limits,
                                 jobs=args.jobs, unsafe=args.unsafe_no_sandbox,
                                 hidden_messages=args.show_hidden_messages, roster=roster,
                                 only=args.only, merge=not args.fresh)
    if roster is not None:
        for line in gradebook.export(args.out, autograder, roster, args.column):
            print(f"grade: {line}", flush=True)
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES if any(r.status == s
                                                                            for r in rows)}
    seconds = time.perf_counter() - start
    print(f"grade: {len(rows)} file(s) in {seconds:.0f} s: "
          + ", ".join(f"{n} {s}" for s, n in counts.items())
          + f" -> {args.out / 'grades.csv'}", flush=True)
    if changes:
        print("grade: ERROR: the grading environment or the archive changed during the batch; "
              "grades may be wrong:\n  " + "\n  ".join(changes[:50]), file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
