"""Integrity: the grading environment and the archive must be the same after a batch as before.

:func:`fingerprint` hashes what grading trusts: the autograder archive (its bytes), ``labkit``
and ``coursetools`` (every file's bytes) and the virtual environment's ``site-packages``
(every file's path, size, mode, modification and change times, and the bytes of every ``.py`` and
``.pth`` file). A change time cannot be set back from user space, so no file there can be changed
unseen. Byte-code caches (``__pycache__``), which Python itself writes, are left out.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from pathlib import Path


def _tree(root: Path, content: bool) -> dict[str, str]:
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            path = Path(folder) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            meta = f"{st.st_size}:{st.st_mode:o}:{st.st_mtime_ns}:{st.st_ctime_ns}"
            if content or name.endswith((".py", ".pth")):
                try:
                    meta += ":" + hashlib.sha256(path.read_bytes()).hexdigest()
                except OSError:
                    meta += ":unreadable"
            found[str(path)] = meta
    return found


def package_dirs() -> dict[str, Path]:
    """The folders of the packages grading imports: ``labkit`` and ``coursetools``."""
    import coursetools
    import labkit

    return {"labkit": Path(labkit.__file__).resolve().parent,
            "coursetools": Path(coursetools.__file__).resolve().parent}


def fingerprint(archive: Path) -> dict[str, str]:
    """{what: hash} for the archive, labkit, coursetools and site-packages."""
    parts = {"archive": {str(archive): hashlib.sha256(archive.read_bytes()).hexdigest()}}
    parts.update({name: _tree(folder, content=True) for name, folder in package_dirs().items()})
    parts["site-packages"] = _tree(Path(sysconfig.get_paths()["purelib"]), content=False)
    return {f"{kind}: {path}": value for kind, files in parts.items()
            for path, value in files.items()}


def compare(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """One line per file that appeared, disappeared or changed between two fingerprints."""
    lines = [f"removed {k}" for k in sorted(before.keys() - after.keys())]
    lines += [f"added {k}" for k in sorted(after.keys() - before.keys())]
    lines += [f"changed {k}" for k in sorted(before.keys() & after.keys()) if before[k] != after[k]]
    return lines
