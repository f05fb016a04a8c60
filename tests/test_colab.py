"""The notebooks as Colab runs them: a fresh Python that has PyTorch and the usual science stack
but neither labkit nor mlxtend, where only the setup cell can bring them in.

The environment is a new virtual environment whose site-packages holds one ``.pth`` file naming a
folder of symbolic links: to exactly the distributions of :data:`COLAB` (what Colab has that the
course uses) and their dependency closure, taken from this environment's site-packages. So
``import torch`` and ``importlib.metadata`` (hence pip) see them as installed, at no copying cost,
and nothing else is there. pip runs offline (``--no-index``): ``LABKIT_INSTALL`` points at a wheel
built from this checkout, and the rest (mlxtend, tqdm) comes from the wheelhouse that
``make install`` downloads into ``.venv/wheelhouse/``.

Every chapter and lab notebook then runs its parameters, setup and import cells in a kernel of that
environment (one kernel for all of them, its namespace reset between notebooks), and both labs run
to the end with small parameters, each in a kernel of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import nbformat
import papermill
import pytest
from conftest import NOTEBOOK_TIMES, ROOT
from linked_env import dependency_closure, link_distributions
from nbclient import NotebookClient

from coursetools import setup_cell

pytestmark = pytest.mark.notebooks

#: What Colab already has that the course's notebooks use (pip itself included).
COLAB = ("torch", "torchvision", "numpy", "scipy", "matplotlib", "pandas", "scikit-learn",
         "ipykernel", "pip")
#: What only the setup cell may bring.
ABSENT = ("labkit", "mlxtend")
WHEELHOUSE = ROOT / ".venv" / "wheelhouse"
KERNEL = "colab-test"
#: Small parameters for the labs that run to the end.
LABS = {
    "first_training": {"epochs": 1, "batch_size": 256},
    "demo_results": {"epochs": 1, "batch_sizes": [256], "base_batch_size": 256,
                     "sgd_lrs": [10.0, 0.1], "momenta": [0.9], "adam_lrs": [0.01],
                     "vectorize": False, "compare_bf16": False, "verdict_seeds": []},
}
#: The notebooks that run their parameters, setup and import cells: every other one.
FIRST_CELLS = [nb for nb in setup_cell.notebooks(ROOT)
               if not (nb.parent == ROOT / "labs" and nb.stem in LABS)]


def build_wheel(out: Path) -> Path:
    """A wheel of labkit from this checkout (built offline, outside the working tree)."""
    src = out / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "labkit", src / "labkit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--wheel-dir", str(out), str(src)],
                   check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = out.glob("labkit-*.whl")
    return wheel


@pytest.fixture(scope="module")
def colab(tmp_path_factory) -> dict:
    """The Colab-like environment, its kernelspec, and the environment the kernel runs with."""
    if not sorted(WHEELHOUSE.glob("mlxtend-*.whl")):
        pytest.fail(f"no mlxtend wheel in {WHEELHOUSE}: run `make install`, which downloads the "
                    "wheelhouse of this test", pytrace=False)
    start = time.perf_counter()
    tmp = tmp_path_factory.mktemp("colab")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    venv_site = Path(subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    link_distributions(dependency_closure(COLAB).values(),
                       Path(sysconfig.get_paths()["purelib"]), tmp / "colab-packages")
    (venv_site / "colab.pth").write_text(f"{tmp / 'colab-packages'}\n")
    env = {
        setup_cell.MARKER: str(build_wheel(tmp / "dist")),
        "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELHOUSE), "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1", "PYTHONNOUSERSITE": "1",
        "PYTHONPATH": "", "IPYTHONDIR": str(tmp / "ipython"), "MPLCONFIGDIR": str(tmp / "mpl"),
    }
    spec = tmp / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab (test)", "language": "python", "env": env}))
    NOTEBOOK_TIMES["(colab environment and labkit wheel)"] = time.perf_counter() - start
    return {"python": python, "site": venv_site, "env": env, "jupyter": tmp / "jupyter",
            "work": tmp / "work"}


def _python(colab: dict, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in the environment, away from the checkout (whose labkit/ would import)."""
    env = {**os.environ, **colab["env"]}
    return subprocess.run([colab["python"], "-c", code], env=env, cwd=colab["python"].parent,
                          capture_output=True, text=True, timeout=300)


def _execute(colab: dict, notebook: Path, monkeypatch, **parameters) -> nbformat.NotebookNode:
    """Run ``notebook`` with papermill in a kernel of the environment, in a scratch folder holding
    nothing but the notebook; return the executed notebook."""
    nb = nbformat.read(notebook, as_version=4)
    work = colab["work"] / "__".join(notebook.relative_to(ROOT).with_suffix("").parts)
    work.mkdir(parents=True)
    nbformat.write(nb, work / notebook.name)
    monkeypatch.setenv("JUPYTER_PATH", str(colab["jupyter"]))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(str(work / notebook.name), str(work / "out.ipynb"),
                                   parameters=parameters, kernel_name=KERNEL, cwd=str(work),
                                   progress_bar=False)
    finally:
        NOTEBOOK_TIMES[f"{notebook.relative_to(ROOT)} (colab)"] = time.perf_counter() - start
    return nbformat.read(work / "out.ipynb", as_version=4)


#: Run before each notebook's cells in the shared kernel: its own folder, PyTorch's global
#: settings as a new kernel has them, and an empty namespace.
ENTER = """\
import os, sys
os.chdir({folder!r})
if "torch" in sys.modules:
    sys.modules["torch"].set_default_dtype(sys.modules["torch"].float32)
    sys.modules["torch"].set_grad_enabled(True)
%reset -f
"""


@pytest.fixture(scope="module")
def first_cells(colab) -> dict[Path, list[nbformat.NotebookNode]]:
    """The parameters, setup and import cells of every notebook of :data:`FIRST_CELLS`, executed
    in turn in one kernel of the environment, each after :data:`ENTER` (an empty namespace, a
    scratch folder of its own): a kernel per notebook would cost a PyTorch import each. Returns
    each notebook's executed cells; an error stays in its cell's outputs."""
    combined = nbformat.v4.new_notebook()
    combined.metadata["kernelspec"] = {"name": KERNEL, "display_name": KERNEL,
                                       "language": "python"}
    groups = {}
    for k, path in enumerate(FIRST_CELLS):
        work = colab["work"] / "__".join(path.relative_to(ROOT).with_suffix("").parts)
        work.mkdir(parents=True)
        enter = nbformat.v4.new_code_cell(ENTER.format(folder=str(work)))
        code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"][:3]
        for j, cell in enumerate([enter, *code]):
            cell.id = f"nb{k}-{j}"
        groups[path] = code
        combined.cells += [enter, *code]
    start = time.perf_counter()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(colab["jupyter"]))
        mp.delenv("PYTHONPATH", raising=False)
        mp.delenv("MPLBACKEND", raising=False)
        NotebookClient(combined, kernel_name=KERNEL, allow_errors=True, timeout=600,
                       resources={"metadata": {"path": str(colab["work"])}}).execute()
    NOTEBOOK_TIMES[f"(first cells of {len(groups)} notebooks, one kernel, colab)"] = \
        time.perf_counter() - start
    return groups


def _check(cells: list[nbformat.NotebookNode]) -> str:
    """The setup cell's printed text; fails with the traceback of the first error."""
    for cell in cells:
        for out in cell.outputs:
            if out.output_type == "error":
                pytest.fail(f"cell {cell.source[:200]!r}... raised {out.ename}: {out.evalue}\n"
                            + "\n".join(out.traceback)[-3000:], pytrace=False)
    setup = [c for c in cells if setup_cell.MARKER in c.source]
    assert len(setup) == 1 and cells.index(setup[0]) == 1, \
        "no setup cell after the parameters cell: run `python -m coursetools setup-cell`"
    return "".join(o.get("text", "") for o in setup[0].outputs)


def test_the_environment_has_colab_s_packages_and_not_the_course_s(colab):
    probe = ("import importlib.metadata as m, importlib.util as u\n"
             f"print([n for n in {COLAB!r} if not m.version(n)])\n"
             f"print([n for n in {ABSENT!r} if u.find_spec(n)])\n"
             "print(u.find_spec('torch').origin)")
    result = _python(colab, probe)
    assert result.returncode == 0, result.stderr
    missing, present, torch = result.stdout.splitlines()
    assert (missing, present) == ("[]", "[]"), result.stdout
    assert "colab-packages" in torch


def test_the_setup_cell_installs_labkit_offline_then_the_imports_work(colab, first_cells):
    """The first notebook's setup cell installs labkit (the wheel) and mlxtend (the wheelhouse)
    with pip offline; its import cell, in the same kernel, imports them at once."""
    printed = _check(first_cells[FIRST_CELLS[0]])
    assert f"installing {colab['env'][setup_cell.MARKER]} {setup_cell.pin('mlxtend')}" in printed
    where = _python(colab, "import labkit, mlxtend, tqdm; print(labkit.__file__)")
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(colab["site"])), where.stdout


@pytest.mark.parametrize("notebook", FIRST_CELLS[1:],
                         ids=[str(nb.relative_to(ROOT)) for nb in FIRST_CELLS[1:]])
def test_every_notebook_runs_its_setup_and_import_cells(first_cells, notebook: Path):
    assert _check(first_cells[notebook]) == "", "the setup cell printed where labkit was installed"


@pytest.mark.parametrize("name", LABS)
def test_the_labs_run_to_the_end(colab, monkeypatch, tmp_path, name: str):
    figures = tmp_path / "figures"
    nb = _execute(colab, ROOT / "labs" / f"{name}.ipynb", monkeypatch, figure_dir=str(figures),
                  **LABS[name])
    assert nb.cells[-1].cell_type != "code" or nb.cells[-1].execution_count
    assert list(figures.glob("*.png")), f"{name} saved no figure"
