"""``python -m coursetools COMMAND [...]``: the course's command line (book, pdf, execute,
handouts, grade, leaderboard, gradescope, release, setup-cell, labs-gpu).

It only delegates: each command is the ``main(argv)`` of the module that does that one job, and
``python -m coursetools COMMAND --help`` shows that module's own options.
"""

from __future__ import annotations

import importlib
import os
import sys

from coursetools import RootNotFound

COMMANDS = {
    "book": ("coursetools.book", "build the website with every notebook executed"),
    "pdf": ("coursetools.pdf", "the built website printed into one PDF (no TeX)"),
    "execute": ("coursetools.execute", "execute notebooks in place, storing fresh outputs"),
    "handouts": ("coursetools.handouts", "student notebooks and autograder archives"),
    "grade": ("coursetools.grading", "grade a folder of submissions into a CSV and feedback"),
    "leaderboard": ("coursetools.grading.leaderboard",
                    "train each submission's optimizer, rank the class (AlgoPerf score)"),
    "gradescope": ("coursetools.grading.gradescope", "the autograder zip for Gradescope"),
    "release": ("coursetools.release", "the public tree for students, without solutions"),
    "setup-cell": ("coursetools.setup_cell", "insert or refresh every notebook's Colab setup cell"),
    "labs-gpu": ("coursetools.labs_gpu", "every lab at full size on a GPU, with timings"),
}


def usage() -> str:
    lines = ["usage: python -m coursetools COMMAND [options]", "", "commands:"]
    width = max(map(len, COMMANDS))
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"coursetools: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        from coursetools.notebooks import find_root

        find_root()
        module = importlib.import_module(COMMANDS[command][0])
    except RootNotFound as error:  # run away from the repository: say where to run it
        print(f"coursetools: {error}", file=sys.stderr)
        return 2
    return int(module.main(rest) or 0)


def run(argv: list[str] | None = None) -> int:
    """:func:`main`, where a reader that closed the pipe early (``... | head``) is no error."""
    try:
        return main(argv)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second BrokenPipeError at interpreter exit
        return 0


if __name__ == "__main__":
    sys.exit(run())
