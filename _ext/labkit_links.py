"""A directive that links every labkit function a chapter's notebooks use to its API entry and
to its source.

In a chapter's ``index.md``::

    ```{labkit-used}
    ```

renders, one line per module, the labkit functions and classes that the notebooks next to the
page (``*.ipynb`` of the same folder) call or import: each name links to its entry on the API
page, and the ``[source]`` after it to its code (the page ``_modules/...`` that
``sphinx.ext.viewcode`` writes, which also gives every entry of the API page its ``[source]``).
The list is read from the notebooks' code at build time, so it stays right when a notebook
changes; a name that the API page does not document fails the build (``-n``).
``tests/test_site_content.py`` checks that every chapter links what it uses, by this directive or
by ``{py:func}`` roles in its prose. The analysis (:func:`labkit_names_used`) is shared with the
tests.

Enabled in ``_config.yml`` under ``sphinx: local_extensions`` (from ``_ext/``, which the public
release copies as it is); it loads ``sphinx.ext.viewcode``. It imports nothing of coursetools.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import posixpath
from collections import defaultdict
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.ext.viewcode import OUTPUT_DIRNAME, viewcode_anchor
from sphinx.util.docutils import SphinxDirective

__all__ = ["LabkitUsed", "labkit_names_used", "notebook_code", "source_page"]


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


def labkit_names_used(code: str) -> set[str]:
    """The labkit functions and classes some code uses by name, fully qualified where they are
    defined: ``from labkit.optim import SGD`` gives ``labkit.optim.sgd.SGD``."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    aliases: dict[str, str] = {}  # local name -> dotted labkit name
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "labkit":
                    aliases[alias.asname or "labkit"] = alias.name if alias.asname else "labkit"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.split(".")[0] == "labkit":
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def dotted(node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    candidates = set(aliases.values())
    candidates.update(name for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                      if (name := dotted(node)))
    found = set()
    for name in candidates:
        module_name, _, attr = name.rpartition(".")
        if not module_name.startswith("labkit"):
            continue
        try:
            obj = getattr(importlib.import_module(module_name), attr, None)
        except ImportError:
            continue
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and \
                getattr(obj, "__module__", "").startswith("labkit"):
            found.add(f"{obj.__module__}.{obj.__qualname__}")
    return found


def source_page(module: str) -> str:
    """The page of the site that shows the code of ``module`` (written by sphinx.ext.viewcode)."""
    return posixpath.join(OUTPUT_DIRNAME, module.replace(".", "/"))


class LabkitUsed(SphinxDirective):
    """``{labkit-used}``: the labkit functions the notebooks of this folder use, each linked to
    its API entry and followed by a ``[source]`` link to its code."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        folder = Path(self.env.doc2path(self.env.docname)).parent
        used: dict[str, list[str]] = defaultdict(list)
        for notebook in sorted(folder.glob("*.ipynb")):
            self.env.note_dependency(str(notebook))
            for name in labkit_names_used(notebook_code(notebook)):
                module, _, _ = name.rpartition(".")
                used[module].append(name)
        if not used:
            return [nodes.paragraph(text="The notebooks of this chapter use no labkit function.")]
        items = nodes.bullet_list()
        for module in sorted(used):
            paragraph = nodes.paragraph()
            paragraph += nodes.literal(text=module)
            paragraph += nodes.Text(": ")
            for i, name in enumerate(sorted(set(used[module]))):
                if i:
                    paragraph += nodes.Text(", ")
                short = name.rpartition(".")[2]
                xref = addnodes.pending_xref(
                    "", refdomain="py", reftype="obj", reftarget=name, refexplicit=True,
                    refwarn=True, refdoc=self.env.docname)
                xref += nodes.literal(text=short, classes=["xref", "py", "py-obj"])
                paragraph += xref
                paragraph += nodes.Text(" ")
                # Becomes viewcode's own "[source]" link in HTML, and disappears elsewhere.
                paragraph += viewcode_anchor(reftarget=source_page(module), refid=short,
                                             refdoc=self.env.docname)
            items += nodes.list_item("", paragraph)
        return [items]


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx.ext.viewcode")
    app.add_directive("labkit-used", LabkitUsed)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
