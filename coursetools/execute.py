"""Execute course notebooks in place, so that their stored outputs are fresh and tidy.

    python -m coursetools execute chapters/01_empirical_risk/empirical_risk.ipynb [...]

Each notebook runs top to bottom with papermill on the kernel ``python3`` (from its own folder,
as Jupyter would), is tidied (:func:`coursetools.notebooks.tidy`: the course's kernelspec, no
papermill or jupytext bookkeeping) and is written back. The stored outputs are what nbval
compares against for cells tagged ``nbval-check-output``, so run this after changing a notebook.
A failing cell stops with papermill's error and leaves the original file untouched.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nbformat

from coursetools.notebooks import KERNELSPEC, tidy


def execute_in_place(path: Path, parameters: dict | None = None) -> float:
    """Run ``path`` with papermill and store the tidied result over it; returns seconds."""
    import papermill

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / path.name
        papermill.execute_notebook(str(path), str(out), parameters=parameters or {},
                                   kernel_name=KERNELSPEC["name"], cwd=str(path.parent),
                                   progress_bar=False)
        nb = nbformat.read(out, as_version=4)
    nbformat.write(tidy(nb), path)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursetools execute",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for path in args.notebooks:
        print(f"{path}: executed in {execute_in_place(path):.1f} s", flush=True)
    return 0
