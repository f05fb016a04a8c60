"""The labkit API page lists every module, and every public docstring points at its chapter.

Fast (no book build): reads ``api.md`` and imports labkit. The page itself is built by
``sphinx.ext.autodoc`` from these docstrings (``tests/test_book.py`` builds it with warnings as
errors).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import labkit

ROOT = Path(__file__).resolve().parent.parent
API_PAGE = ROOT / "api.md"
# "chapter 3", "chapters 4 and 5", "Chapter 1", "the labs", "lab": where a reader meets it.
NAMES_ITS_PLACE = re.compile(r"\bchapters?\s+\d|\blabs?\b", re.IGNORECASE)


def public_modules() -> list[str]:
    """Every importable module of labkit whose dotted name has no part starting with ``_``."""
    names = []
    for info in pkgutil.walk_packages(labkit.__path__, prefix="labkit."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def documented_modules() -> set[str]:
    text = re.sub(r"<!--.*?-->", "", API_PAGE.read_text(), flags=re.DOTALL)  # not the template
    return set(re.findall(r"^\s*\.\.\s+automodule::\s+(\S+)", text, flags=re.MULTILINE))


MODULES = public_modules()


def test_the_api_page_is_in_the_book():
    assert API_PAGE.is_file()
    toc = (ROOT / "_toc.yml").read_text()
    assert re.search(r"file:\s*api\s*$", toc, flags=re.MULTILINE), "api.md is not in _toc.yml"


@pytest.mark.parametrize("module", MODULES)
def test_every_module_is_on_the_api_page(module: str):
    assert module in documented_modules(), (
        f"{module} is missing from api.md; add a section:\n\n### `{module}`\n\n```{{eval-rst}}\n"
        f".. automodule:: {module}\n   :members:\n```\n")


def test_the_api_page_lists_no_missing_module():
    stale = documented_modules() - set(MODULES)
    assert not stale, f"api.md documents modules that do not exist: {sorted(stale)}"


def public_objects(module_name: str) -> dict[str, object]:
    """The functions and classes a module defines itself (not the ones it imports)."""
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    found = {}
    for name, obj in vars(module).items():
        if name.startswith("_") or (exported is not None and name not in exported):
            continue
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == module_name:
            found[name] = obj
    return found


@pytest.mark.parametrize("module", MODULES)
def test_every_public_docstring_names_its_chapter(module: str):
    """The reader of the API page can go back to the prose: each function and class says which
    chapter (or lab) explains it."""
    missing = [name for name, obj in public_objects(module).items()
               if not NAMES_ITS_PLACE.search(inspect.getdoc(obj) or "")]
    assert not missing, (
        f"{module}: the docstrings of {', '.join(missing)} do not name their chapter "
        "(e.g. '(chapter 3)' or 'used in the labs')")


@pytest.mark.parametrize("module", MODULES)
def test_data_docstrings_survive_napoleon(module: str):
    """napoleon reads the first line of a ``#:`` comment (the docstring of a constant) as
    ``type: description`` when it holds a colon, and -n then fails on the bogus type."""
    source = inspect.getsource(importlib.import_module(module))
    bad = []
    lines = source.splitlines()
    for node in ast.parse(source).body:
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            continue
        first = node.lineno - 1  # walk up the comment block to its first line
        while first >= 1 and lines[first - 1].strip().startswith("#:"):
            first -= 1
        if first < node.lineno - 1:
            comment = lines[first].strip()
            if re.search(r":\s", comment[2:]):
                bad.append(f"line {first + 1}: {comment}")
    assert not bad, (f"{module}: reword without a colon (napoleon takes the part before it as "
                     "the type):\n" + "\n".join(bad))


def test_the_book_loads_its_extensions_from_ext_without_coursetools():
    """``_config.yml`` loads the book's own extensions from ``_ext/`` (``local_extensions``: the
    public release copies that folder as it is), none of them imports coursetools (which the
    release lacks), and sphinx.ext.viewcode gives every API entry its [source] link."""
    import yaml

    sphinx = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]
    assert "sphinx.ext.viewcode" in sphinx["extra_extensions"]
    assert not [e for e in sphinx["extra_extensions"] if e.startswith("coursetools")]
    own = sphinx.get("local_extensions") or {}
    assert set(own.values()) == {"_ext"}, own
    files = {p.stem for p in (ROOT / "_ext").glob("*.py")}
    assert set(own) == files, f"every module of _ext/ is loaded, and only those: {files}"
    for name in own:
        assert callable(getattr(importlib.import_module(name), "setup", None)), name
        tree = ast.parse((ROOT / "_ext" / f"{name}.py").read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {m for m in imported if m.split(".")[0] == "coursetools"}, name
    assert not (ROOT / "coursetools" / "sphinxext").exists()
