"""The course's own tooling: building the book, executing notebooks, handouts, grading, release.

One command line, ``python -m coursetools COMMAND``, delegates to one module per job (see
:mod:`coursetools.__main__`). Nothing here is imported by the notebooks: students need ``labkit``
alone.
"""
