"""Grade a folder of submissions with an assignment's autograder: one CSV row per file.

    python -m coursetools grade SUBMISSIONS --assignment 01_sgd_loop --out grades/01_sgd_loop
    python -m coursetools grade SUBMISSIONS --autograder path/NAME-autograder.zip --out OUT
    make grade SUBMISSIONS=dir OUT=dir [ASSIGNMENT=name]

``--assignment NAME`` takes the archive that ``python -m coursetools handouts`` built,
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

One module per job: :mod:`~coursetools.grading.archive` (the autograder archive),
:mod:`~coursetools.grading.isolation` (namespaces), :mod:`~coursetools.grading.worker` (what runs
per submission), :mod:`~coursetools.grading.supervise` (process tree, limits, statuses),
:mod:`~coursetools.grading.reports` (CSV, feedback, results) and
:mod:`~coursetools.grading.cli` (the command line).
"""

from coursetools.grading.cli import main

__all__ = ["main"]
