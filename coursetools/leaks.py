"""The leak check: what a master notebook must never give away, and whether a text gives it away.

A master ``labs/assignments/NAME.ipynb`` holds, in Otter's notebook format, solutions (between
``# BEGIN SOLUTION`` and ``# END SOLUTION``) and hidden tests. :func:`secrets` lists them and
:func:`leaks` finds them in a text: a handout (:func:`coursetools.notebooks.notebook_text`), a
page of the website, an autograder's output.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat

from coursetools.notebooks import notebook_text

__all__ = ["leaks", "notebook_text", "secrets"]

_CONFIG_START = re.compile(r'^\s*(?:\w+\s*=\s*)?"""?\s*#\s*BEGIN\s+TEST\s+CONFIG', re.I)
_CONFIG_END = re.compile(r'^\s*"""?\s*#\s*END\s+TEST\s+CONFIG', re.I)


def _raw_marker(cell) -> str:
    """'BEGIN SOLUTION', 'END TESTS', ... for Otter's raw delimiter cells, else ''."""
    if cell.cell_type != "raw":
        return ""
    first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
    match = re.match(r"#\s*((?:BEGIN|END)\s+(?:SOLUTION|TESTS|QUESTION|PROMPT))", first, re.I)
    return " ".join(match.group(1).upper().split()) if match else ""


def _test_config(source: str) -> tuple[dict, str]:
    """The YAML test config of an Otter test cell, and the code after it."""
    lines = source.splitlines()
    if lines and _CONFIG_START.match(lines[0]):
        for i, line in enumerate(lines[1:], start=1):
            if _CONFIG_END.match(line):
                import yaml

                return yaml.safe_load("\n".join(lines[1:i])) or {}, "\n".join(lines[i + 1:])
    return {}, source


def secrets(master: Path) -> dict[str, list[str]]:
    """What a handout must not contain: solution lines, hidden test names and hidden test lines.

    Solution lines are those between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` (or ending in
    ``# SOLUTION``) in the master's solution cells; hidden tests are the test cells whose config
    says ``hidden: true``. Lines shorter than 12 characters, and lines that also occur in the
    master's public parts (its prose, its other code, its public tests, as written and as Otter
    rewrites them), give nothing away and are left out.
    """
    nb = nbformat.read(master, as_version=4)
    solution, hidden_names, hidden_lines, public = [], [], [], []
    block = None
    for cell in nb.cells:
        marker = _raw_marker(cell)
        if marker in ("BEGIN SOLUTION", "BEGIN TESTS"):
            block = marker
            continue
        if marker in ("END SOLUTION", "END TESTS"):
            block = None
            continue
        if cell.cell_type == "raw":
            continue
        if cell.cell_type == "code" and block == "BEGIN SOLUTION":
            inside = False
            for line in cell.source.splitlines():
                tag = line.strip()
                if tag.startswith("# BEGIN SOLUTION"):
                    inside = True
                elif tag.startswith("# END SOLUTION"):
                    inside = False
                elif inside or tag.endswith("# SOLUTION"):
                    solution.append(tag.removesuffix("# SOLUTION").strip())
                else:
                    public.append(line)
        elif cell.cell_type == "code" and block == "BEGIN TESTS":
            config, code = _test_config(cell.source)
            first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
            hidden = config.get("hidden", bool(re.match(r"#.*\bhidden\b", first, re.I)))
            tree = ast.parse(code)
            if hidden:
                hidden_names += [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
                hidden_lines += [ln.strip() for ln in code.splitlines()]
                hidden_lines += [ln.strip() for ln in ast.unparse(tree).splitlines()]
            else:
                public += [code, ast.unparse(tree)]
        else:
            public.append(cell.source)
    corpus = "\n".join(public)

    def keep(lines):
        return sorted({ln for ln in lines if len(ln) >= 12 and ln not in corpus})

    return {"solution": keep(solution), "hidden_names": keep(hidden_names),
            "hidden_lines": keep(hidden_lines)}


def leaks(master: Path, text: str) -> list[str]:
    """The secrets of ``master`` (see :func:`secrets`) that occur in ``text``."""
    found = []
    for kind, items in secrets(master).items():
        found += [f"{kind}: {item}" for item in items if item in text]
    return found
