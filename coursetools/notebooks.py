"""The course's notebooks: where they are, reading their code and text, and tidying them.

Every notebook the course stores (chapters, labs, assignment masters, handouts) and every one the
grader runs carries the one kernelspec :data:`KERNELSPEC`, and none keeps the bookkeeping that
papermill, jupytext or Jupyter's execution timing leave behind: :func:`tidy` does both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat

from coursetools import RootNotFound

#: The environment variable that names the course repository explicitly.
ROOT_ENV = "COURSE_ROOT"
#: The files that mark a folder as the course repository.
ROOT_MARKERS = ("_config.yml", "_toc.yml", "labkit")


def _is_root(path: Path) -> bool:
    return all((path / marker).exists() for marker in ROOT_MARKERS)


def find_root(cwd: Path | None = None) -> Path:
    """The course repository: ``$COURSE_ROOT`` when it is set, else the folder above this package
    when it is the repository (run from a checkout, installed editable or not), else the current
    directory or the first of its parents that holds ``_config.yml``, ``_toc.yml`` and
    ``labkit/``. Raises :class:`RootNotFound`, saying what to do, when there is none."""
    explicit = os.environ.get(ROOT_ENV)
    if explicit:
        path = Path(explicit).expanduser().resolve()
        if not _is_root(path):
            raise RootNotFound(f"{ROOT_ENV}={explicit}: not the course repository (it lacks one "
                               f"of {', '.join(ROOT_MARKERS)})")
        return path
    here = Path(__file__).resolve().parent.parent
    if _is_root(here):
        return here
    start = Path(cwd or Path.cwd()).resolve()
    for path in (start, *start.parents):
        if _is_root(path):
            return path
    raise RootNotFound(f"coursetools works on the course repository, and neither {here} nor "
                       f"{start} or a folder above it is one (none holds "
                       f"{', '.join(ROOT_MARKERS)}): run it from the repository, or set "
                       f"{ROOT_ENV}=/path/to/the/repository")


def _root_or_cwd() -> Path:
    """:func:`find_root`, or the current directory where there is no repository: the grader that
    runs inside Gradescope's ``/autograder`` needs none, and ``python -m coursetools`` checks with
    :func:`find_root` before any command, so an instructor still gets its message."""
    try:
        return find_root()
    except RootNotFound:
        return Path.cwd()


#: The course repository (:func:`find_root`), found when coursetools is imported.
ROOT = _root_or_cwd()

#: The kernel every notebook of the course runs on.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}

#: Cell metadata that only records how a notebook was last run or converted.
BOOKKEEPING = ("papermill", "execution", "ExecuteTime", "lines_to_next_cell")


def set_kernelspec(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Give ``nb`` the course's kernelspec (:data:`KERNELSPEC`)."""
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return nb


def tidy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The course's kernelspec, and no papermill, jupytext or execution bookkeeping."""
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("jupytext", None)
    set_kernelspec(nb)
    for cell in nb.cells:
        for key in BOOKKEEPING:
            cell.metadata.pop(key, None)
        tags = [t for t in cell.metadata.get("tags", []) if t != "injected-parameters"]
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
    return nb


def clear_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """No stored output and no execution count in any code cell."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def notebook_text(path: Path) -> str:
    """Every cell's source and every stored output of a notebook, plus its metadata."""
    nb = nbformat.read(path, as_version=4)
    parts = [json.dumps(nb.metadata)]
    for cell in nb.cells:
        parts.append(cell.source)
        for out in cell.get("outputs", []):
            parts.append(json.dumps(out))
    return "\n".join(parts)
