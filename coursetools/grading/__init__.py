"""Grade a folder of submissions with an assignment's autograder: one CSV row per file.

    python -m coursetools grade SUBMISSIONS --assignment 01_sgd_loop --out grades/01_sgd_loop
    python -m coursetools grade SUBMISSIONS --autograder path/NAME-autograder.zip --out OUT
    make grade SUBMISSIONS=dir OUT=dir [ASSIGNMENT=name]

``--assignment NAME`` takes the archive that ``python -m coursetools handouts`` built,
``_build/assign/NAME/autograder/NAME-autograder.zip``; without it or ``--autograder``, the name
of the SUBMISSIONS folder is taken as the assignment's name. A submission is a notebook named
``STUDENT.ipynb`` (letters, digits, ``.``, ``_``, ``-``, ``@``), directly in SUBMISSIONS.

Scores are computed where no submission's code runs. Every submission runs in a fresh
bubblewrap sandbox (:mod:`~coursetools.grading.isolation`: read-only system and Python, a private
``/tmp``, no network, its own PID namespace, user ``nobody``; the archive, the reference values
and the other submissions are not there), with limits on time, printed output, memory and
processes. There a worker runs the notebook's cells and then each test's *probe*, which returns
plain values (JSON; tensors as dtype, shape and bytes); the grader runs each test's *check* on
them, outside (:mod:`~coursetools.grading.verdicts`). Where no sandbox can be made the grader stops
with one line naming what to install, unless ``--unsafe-no-sandbox`` is given, which every row's
``detail`` then records. The grading environment (site-packages, ``labkit``, ``coursetools``) and
the archive are hashed before and after the batch; any change is reported as an error (exit 1).
One row per file goes to ``OUT/grades.csv``::

    student, file, q1, ..., qN, total, possible, status, detail

with ``status`` one of

* ``ok``: graded (whatever the score; ``detail`` counts cells that raised an error);
* ``wrong-filename``: not ``STUDENT.ipynb``, so not graded;
* ``not-a-notebook``: named ``.ipynb`` but not a readable notebook;
* ``wrong-assignment``: a notebook of another assignment (its Otter metadata says so);
* ``timeout``: still running after ``--timeout`` seconds, stopped;
* ``output-flood``: printed more than ``--max-output`` bytes, stopped;
* ``memory``: used more than ``--memory`` megabytes, stopped;
* ``exited``: its kernel exited (``exit()``, ``os._exit``) before grading finished;
* ``crashed``: its kernel died from a signal (a segfault), started more than
  ``--max-processes`` processes, or sent back answers that could not be read.

A row that is not ``ok`` has empty question columns and a total of 0. Each student also gets
``OUT/feedback/STUDENT.txt`` (every test, passed or failed, with the failure messages; the code
of tests is never shown, and a hidden test's message never quotes a value from the sandbox) and
``OUT/results/STUDENT.json`` (everything, for scripts); what each sandbox printed is kept in
``OUT/logs/``.

One module per job: :mod:`~coursetools.grading.archive` (the autograder archive),
:mod:`~coursetools.grading.isolation` (the sandbox), :mod:`~coursetools.grading.worker` (what
runs in it per submission), :mod:`~coursetools.grading.supervise` (process tree, limits,
statuses), :mod:`~coursetools.grading.verdicts` (plain values in, verdicts out),
:mod:`~coursetools.grading.integrity` (hashes before and after a batch),
:mod:`~coursetools.grading.reports` (CSV, feedback, results) and
:mod:`~coursetools.grading.cli` (the command line).
"""


def main(argv: list[str] | None = None) -> int:
    """``python -m coursetools grade ...`` (see :mod:`coursetools.grading.cli`)."""
    from coursetools.grading.cli import main as cli_main

    return cli_main(argv)
