"""The course's own tooling: building the book, executing notebooks, handouts, grading, release.

One command line, ``python -m coursetools COMMAND``, delegates to one module per job (see
:mod:`coursetools.__main__`). Nothing here is imported by the notebooks: students need ``labkit``
alone: they are two distributions (``pyproject.toml`` for labkit, ``coursetools/pyproject.toml``
for this one). It works on the course repository it is run from (or ``$COURSE_ROOT``).
"""


class RootNotFound(RuntimeError):
    """coursetools was run away from the course repository (:func:`coursetools.notebooks.find_root`
    says where it looked and what to do)."""
