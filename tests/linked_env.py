"""A Python environment made of this one's distributions, linked, not installed: a fresh virtual
environment whose site-packages holds one ``.pth`` file naming a folder of symbolic links to chosen
distributions and their dependency closure (tests/test_colab.py, tests/test_packaging.py).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def dependency_closure(names: tuple[str, ...]) -> dict[str, importlib.metadata.Distribution]:
    """The installed distributions ``names`` and everything they require (markers evaluated,
    extras followed)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = [(name, frozenset()) for name in names]
    seen = set()
    while todo:
        name, extras = todo.pop()
        key = (canonicalize_name(name), extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = found.get(key[0]) or importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue                                 # an optional dependency not installed here
        found[key[0]] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e})
                                         for e in extras | {""}):
                todo.append((req.name, frozenset(req.extras)))
    return found


def link_distributions(dists, site: Path, folder: Path) -> None:
    """Symbolic links in ``folder`` to every top-level file, package and ``.dist-info`` of
    ``dists`` found in ``site``."""
    folder.mkdir(parents=True)
    for dist in dists:
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            target = site / top
            if target.exists() and not top.endswith(".pth") and not (folder / top).exists():
                (folder / top).symlink_to(target)
