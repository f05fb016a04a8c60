"""The course's notebooks: where they are, reading their code and text, and tidying them.

Every notebook the course stores (chapters, labs, assignment masters, handouts) and every one the
grader runs carries the one kernelspec :data:`KERNELSPEC`, and none keeps the bookkeeping that
papermill, jupytext or Jupyter's execution timing leave behind: :func:`tidy` does both.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

#: The course repository (this package lives in it, installed editable).
ROOT = Path(__file__).resolve().parent.parent

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


def notebook_code(path: Path) -> str:
    """The code cells of a notebook, IPython magics and shell lines removed."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    lines = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        lines.extend(ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!")))
    return "\n".join(lines)


def notebook_text(path: Path) -> str:
    """Every cell's source and every stored output of a notebook, plus its metadata."""
    nb = nbformat.read(path, as_version=4)
    parts = [json.dumps(nb.metadata)]
    for cell in nb.cells:
        parts.append(cell.source)
        for out in cell.get("outputs", []):
            parts.append(json.dumps(out))
    return "\n".join(parts)
