"""Execute course notebooks in place, so that their stored outputs are fresh and tidy.

    python scripts/execute_notebooks.py chapters/01_empirical_risk/empirical_risk.ipynb [...]

Each notebook runs top to bottom with papermill on the kernel ``python3`` (from its own folder,
as Jupyter would), then gets the standard ``python3`` kernelspec, loses papermill's and jupytext's
bookkeeping metadata, and is written back. The stored outputs are what nbval compares against for
cells tagged ``nbval-check-output``, so run this after changing a notebook. A failing cell stops
with papermill's error and leaves the original file untouched.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def tidy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Standard kernelspec, no papermill/jupytext/execution metadata."""
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    for cell in nb.cells:
        for key in ("papermill", "execution", "ExecuteTime"):
            cell.metadata.pop(key, None)
        tags = [t for t in cell.metadata.get("tags", []) if t != "injected-parameters"]
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
    return nb


def execute_in_place(path: Path, parameters: dict | None = None) -> float:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / path.name
        papermill.execute_notebook(str(path), str(out), parameters=parameters or {},
                                   kernel_name="python3", cwd=str(path.parent), progress_bar=False)
        nb = nbformat.read(out, as_version=4)
    nbformat.write(tidy(nb), path)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args()
    for path in args.notebooks:
        print(f"{path}: executed in {execute_in_place(path):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
