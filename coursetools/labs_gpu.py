"""Run every lab at full size on a GPU with papermill, and keep what it produced (make labs-gpu).

    python -m coursetools labs-gpu [--out _build/labs-gpu] [--dataset fashion-mnist]
        [--epochs 10] [--device cuda] [--precision fp32] [--synthetic [--synthetic-sizes N M]]
        [--labs first_training demo_results data_parallel] [-p lab.name=value ...]

Full size means the lecture's setting: FashionMNIST (60,000 training images), 10 epochs, the
device ``cuda``. Each lab is executed with papermill from ``labs/`` and receives only the
parameters its ``parameters`` cell has (``device``, ``dataset``, ``epochs``, ``precision``,
``figure_dir``; Demo & Results also ``vectorize=True``; the data-parallel lab picks NCCL for the
runs that have a GPU each). ``-p lab.name=value`` overrides one parameter of one lab (a Python
literal, e.g. ``-p demo_results.epochs=2``). ``--synthetic`` writes a synthetic dataset of the real
shape first (:func:`labkit.data.write_synthetic_images`) and points ``LABKIT_DATA_ROOT`` at it:
for a GPU machine that cannot download FashionMNIST; its accuracies say nothing about the real
data, its timings are the labs' at full size.

Writes to ``--out``: the executed notebooks, ``figures/``, and ``timings.json`` /
``timings.txt`` (the GPU's name, each lab's wall time, kernel start and data loading included, and
the Demo & Results grid's own time as the notebook printed it). A lab that fails is reported
with its error and the others still run; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import time
from pathlib import Path

import nbformat

from coursetools.notebooks import KERNELSPEC, ROOT

LABS = ("first_training", "demo_results", "data_parallel")
#: What every lab gets when its parameters cell has the name (see the module docstring).
SHARED = ("device", "dataset", "epochs", "precision", "figure_dir")


def parameter_names(notebook: Path) -> set[str]:
    """The names assigned in the notebook's cell tagged ``parameters``."""
    nb = nbformat.read(notebook, as_version=4)
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        raise ValueError(f"{notebook} has no cell tagged 'parameters'")
    return {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def lab_parameters(lab: str, settings: dict, overrides: dict[str, dict]) -> dict:
    """The papermill parameters of ``lab``: the shared settings it has, then its overrides."""
    names = parameter_names(ROOT / "labs" / f"{lab}.ipynb")
    params = {k: v for k, v in settings.items() if k in names}
    if lab == "demo_results" and "vectorize" in names:
        params["vectorize"] = True
    unknown = set(overrides.get(lab, {})) - names
    if unknown:
        raise ValueError(f"-p {lab}.{sorted(unknown)[0]}=...: labs/{lab}.ipynb has no such "
                         f"parameter; it has {', '.join(sorted(names))}")
    params.update(overrides.get(lab, {}))
    return params


def parse_override(text: str) -> tuple[str, str, object]:
    """``lab.name=value`` -> ``(lab, name, value)``, the value a Python literal (or a string)."""
    try:
        key, raw = text.split("=", 1)
        lab, name = key.split(".", 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"-p {text!r}: write lab.name=value, e.g. demo_results.epochs=2") from None
    if lab not in LABS:
        raise argparse.ArgumentTypeError(f"-p {text!r}: no lab {lab!r}; the labs are "
                                         f"{', '.join(LABS)}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return lab, name, value


def grid_lines(notebook: Path) -> list[str]:
    """The lines of the executed Demo & Results that report the whole grid's time."""
    nb = nbformat.read(notebook, as_version=4)
    return [line for cell in nb.cells for out in cell.get("outputs", [])
            for line in str(out.get("text", "")).splitlines() if "whole grid" in line]


def device_description(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(torch.device(device))}, torch {torch.__version__}"
    return f"{device} (no CUDA device), torch {torch.__version__}"


def run_labs(out: Path, labs: list[str], settings: dict, overrides: dict[str, dict],
             synthetic: bool, cell_timeout: int, synthetic_sizes: tuple[int, int] = (60_000, 10_000)
             ) -> dict:
    import papermill

    out.mkdir(parents=True, exist_ok=True)
    settings = dict(settings, figure_dir=str((out / "figures").resolve()))
    report = {"device": device_description(settings["device"]), "settings": settings,
              "synthetic_data": synthetic,
              "synthetic_sizes": list(synthetic_sizes) if synthetic else None, "labs": {}}
    if synthetic:
        from labkit.data import write_synthetic_images

        root = (out / "data").resolve()
        start = time.perf_counter()
        write_synthetic_images(settings["dataset"], root, *synthetic_sizes)
        os.environ["LABKIT_DATA_ROOT"] = str(root)
        report["synthetic_write_s"] = time.perf_counter() - start
    for lab in labs:
        params = lab_parameters(lab, settings, overrides)
        start = time.perf_counter()
        entry = {"parameters": params}
        try:
            papermill.execute_notebook(str(ROOT / "labs" / f"{lab}.ipynb"),
                                       str(out / f"{lab}.ipynb"), parameters=params,
                                       kernel_name=KERNELSPEC["name"],
                                       cwd=str(ROOT / "labs"), progress_bar=False,
                                       execution_timeout=cell_timeout)
            entry["status"] = "ok"
        except Exception as err:  # a failed lab is reported; the others still run
            entry["status"] = "failed"
            entry["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1][:300]}"
        entry["seconds"] = time.perf_counter() - start
        if lab == "demo_results" and entry["status"] == "ok":
            entry["grid"] = grid_lines(out / f"{lab}.ipynb")
        report["labs"][lab] = entry
        print(f"{lab:<16} {entry['status']:<7} {entry['seconds']:8.1f} s"
              + (f"  {entry.get('error')}" if entry["status"] != "ok" else ""), flush=True)
    (out / "timings.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "timings.txt").write_text(format_report(report) + "\n")
    return report


def _synthetic(report: dict) -> str:
    if not report["synthetic_data"]:
        return ""
    n_train, n_test = report["synthetic_sizes"]
    return f" (synthetic: {n_train:,} + {n_test:,} images of 28x28)"


def format_report(report: dict) -> str:
    s = report["settings"]
    lines = [f"# labs on {report['device']}: dataset={s['dataset']}"
             f"{_synthetic(report)} "
             f"epochs={s['epochs']} precision={s['precision']}"]
    for lab, e in report["labs"].items():
        lines.append(f"{lab:<16} {e['status']:<7} {e['seconds']:8.1f} s (whole notebook: kernel "
                     f"start and data loading included)")
        lines += [f"  {line.strip()}" for line in e.get("grid", [])]
        if e["status"] != "ok":
            lines.append(f"  {e['error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursetools labs-gpu",
                                     description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "labs-gpu")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--synthetic", action="store_true",
                        help="write a synthetic dataset of the real shape first (no network)")
    parser.add_argument("--synthetic-sizes", type=int, nargs=2, default=[60_000, 10_000],
                        metavar=("TRAIN", "TEST"), help="images of the synthetic dataset")
    parser.add_argument("--labs", nargs="+", default=list(LABS), choices=LABS)
    parser.add_argument("-p", dest="overrides", action="append", default=[],
                        type=parse_override, metavar="LAB.NAME=VALUE",
                        help="one lab's parameter, e.g. -p demo_results.epochs=2")
    parser.add_argument("--cell-timeout", type=int, default=1800,
                        help="seconds any one cell may run")
    args = parser.parse_args(argv)
    overrides: dict[str, dict] = {}
    for lab, name, value in args.overrides:
        overrides.setdefault(lab, {})[name] = value
    settings = {"device": args.device, "dataset": args.dataset, "epochs": args.epochs,
                "precision": args.precision}
    for lab in args.labs:  # every override names a real parameter, before anything runs
        try:
            lab_parameters(lab, settings, overrides)
        except ValueError as err:
            parser.error(str(err))
    report = run_labs(args.out, args.labs, settings, overrides, args.synthetic, args.cell_timeout,
                      tuple(args.synthetic_sizes))
    print(f"executed notebooks, figures and timings in {args.out}")
    return int(any(e["status"] != "ok" for e in report["labs"].values()))
