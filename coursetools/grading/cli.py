"""The command line: ``python -m coursetools grade SUBMISSIONS --out OUT [...]``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from coursetools.grading.archive import Autograder, find_autograder
from coursetools.grading.supervise import STATUSES, grade_folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coursetools grade",
        description="Grade a folder of submissions with an assignment's autograder.")
    parser.add_argument("submissions", type=Path)
    parser.add_argument("--assignment", help="name of an assignment built by make handouts")
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


if __name__ == "__main__":
    sys.exit(main())
