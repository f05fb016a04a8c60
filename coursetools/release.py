"""Write the public tree for students: what the public repository holds, with no solution in it.

    python -m coursetools release                      # make release: writes _build/release/
    python -m coursetools release --out DIR

This repository stays private: it holds the assignments' master notebooks (every solution and every
hidden test), the grading tooling and its wrong-answer fixtures. The release is what is pushed to
the public repository (``public_repository`` in ``_config.yml``) that the website and its launch
buttons use. It holds the book's sources (chapters, labs, the assignments' handouts, the API and
references pages, the book's Sphinx extensions in ``_ext/``), labkit with its ``pyproject.toml``,
Binder's configuration, a README for students and the requirements without the test and grading
tools; its ``_config.yml`` points ``repository.url`` (the buttons) at the public repository.

What goes in is a list (:data:`PUBLIC` and the pages of ``_toc.yml``), not what stays out: a
new private file stays private. Once written, every file of the release is checked against every
master notebook (:func:`leaks_in`, with :func:`coursetools.leaks.secrets`): if a solution or a
hidden test is found anywhere, the release is removed and the command fails.
"""

from __future__ import annotations

import argparse
import re
import shutil
import string
import sys
from collections import Counter
from pathlib import Path

import yaml

from coursetools import leaks
from coursetools.notebooks import ROOT, notebook_text
from coursetools.setup_cell import notebooks as setup_notebooks
from coursetools.setup_cell import problem as setup_problem
from coursetools.setup_cell import public_repository, release_version

#: What the release copies from the repository (folders whole, less caches and build outputs),
#: besides every page of the table of contents (:func:`toc_files`).
PUBLIC = ("_toc.yml", "references.bib", "chapters", "labs/handouts", "labkit", "pyproject.toml",
          "binder", "_ext")
#: Never copied from inside those folders.
IGNORE = ("__pycache__", "*.pyc", ".ipynb_checkpoints", "_build", "*.egg-info", ".pytest_cache")
#: requirements.txt lines the students' copy leaves out: the tests, the browser test, grading.
PRIVATE_REQUIREMENTS = {"pytest", "pytest-xdist", "playwright", "nbval", "ruff", "psutil",
                        "papermill"}
#: The file that marks a folder as a release, which the next release may replace.
STAMP = ".course-release"
README = Path(__file__).with_name("release_README.md")
DEFAULT_OUT = ROOT / "_build" / "release"
#: Lines of Otter's master format that no public file has.
OTTER_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN TESTS", "BEGIN QUESTION",
                 "BEGIN TEST CONFIG", "ASSIGNMENT CONFIG")
#: Consecutive solution or hidden-test lines that make a leak outside the handouts.
BLOCK = 3
#: The value of ``url:`` in the block ``repository:`` of ``_config.yml`` (group 1: what precedes).
_REPOSITORY_URL = re.compile(r"(?m)^(repository:[ \t]*\n(?:[ \t]+.*\n|[ \t]*\n)*?"
                             r"[ \t]+url:[ \t]*)\S.*$")


class ReleaseError(RuntimeError):
    """The release cannot be written (bad output folder, bad configuration) or would leak."""


def public_config(text: str, url: str) -> str:
    """``_config.yml``'s text with ``repository.url`` set to ``url`` (comments kept)."""
    new, count = _REPOSITORY_URL.subn(lambda m: m.group(1) + url, text, count=1)
    if count != 1 or (yaml.safe_load(new).get("repository") or {}).get("url") != url:
        raise ReleaseError("_config.yml: found no 'url:' under 'repository:' to point at the "
                           "public repository")
    return new


def public_requirements(text: str) -> str:
    """``requirements.txt`` without :data:`PRIVATE_REQUIREMENTS` (and the comments above them)."""
    kept, comments = [], []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            comments.append(line)
            continue
        name = re.split(r"[\s=<>!~;\[]", stripped, maxsplit=1)[0].lower().replace("_", "-")
        if name not in PRIVATE_REQUIREMENTS:
            kept += comments + [line]
        comments = []
    return "\n".join(kept).strip("\n") + "\n"


def toc_files(root: Path = ROOT) -> list[str]:
    """Every page that ``_toc.yml`` lists (its root included), as a path relative to ``root``."""
    pages, todo = [], [yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo += node
        elif isinstance(node, dict):
            pages += [node[k] for k in ("root", "file") if isinstance(node.get(k), str)]
            todo += [v for v in node.values() if isinstance(v, (list, dict))]
    found = []
    for page in pages:
        files = [root / f"{page}{suffix}" for suffix in ("", ".md", ".ipynb", ".rst")]
        match = [f for f in files if f.is_file()]
        if not match:
            raise ReleaseError(f"_toc.yml lists {page!r}, which is not a file")
        found.append(match[0].relative_to(root).as_posix())
    return sorted(set(found))


def extension_files(config: dict, root: Path = ROOT) -> list[str]:
    """The folders of the book's own Sphinx extensions (``sphinx.local_extensions`` of
    ``_config.yml``, e.g. ``_ext``), relative to ``root``: the release copies them as they are.
    An extension must import nothing of the repository but labkit (released whole), so a module
    of the repository in ``sphinx.extra_extensions`` (``coursetools.…``) is refused: the public
    tree could not import it."""
    sphinx = config.get("sphinx") or {}
    found = set()
    for folder in (sphinx.get("local_extensions") or {}).values():
        path = (root / folder).resolve()
        if not path.is_dir() or not path.is_relative_to(root) or path == root:
            raise ReleaseError(f"_config.yml: local extension folder {folder!r} not found (a "
                               "folder of the repository, not its root)")
        found.add(path.relative_to(root).as_posix())
    for name in sphinx.get("extra_extensions") or []:
        top = name.split(".")[0]
        if top != "labkit" and ((root / top).is_dir() or (root / f"{top}.py").is_file()):
            raise ReleaseError(f"_config.yml: extra_extensions names {name!r}, a module of this "
                               "repository that the public tree lacks; put the extension in "
                               "_ext/ and list it under sphinx: local_extensions")
    return sorted(found)


def _text(path: Path) -> str:
    """A file's text; for a notebook, its cells' sources and outputs too (JSON escapes them)."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix == ".ipynb":
        try:
            text += "\n" + notebook_text(path)
        except Exception:                                  # noqa: BLE001 - not a notebook
            pass
    return text


def _runs(text: str, secret: set[str], neutral: set[str], length: int) -> list[str]:
    """Every run of ``length`` or more lines of ``text`` in ``secret`` with nothing between them
    but blank lines, lines shorter than 12 characters and lines in ``neutral``; each as
    ``'N lines from FIRST'``."""
    found, run = [], []
    for line in [ln.strip() for ln in text.splitlines()] + [None]:
        if line in secret:
            run.append(line)
        elif line is not None and (len(line) < 12 or line in neutral):
            continue
        else:
            if len(run) >= length:
                found.append(f"{len(run)} lines from {run[0]!r}")
            run = []
    return found


def leaks_in(tree: Path, masters: list[Path], handouts: str = "labs/handouts") -> list[str]:
    """``'FILE: WHAT'`` for everything of ``masters`` that a file under ``tree`` gives away.

    Three checks, as strict as each kind of file allows:

    * every file: no hidden test's name and none of Otter's markers (``BEGIN SOLUTION``, ...);
    * the handout ``HANDOUTS/NAME.ipynb`` of a master ``NAME.ipynb``: no line of its solutions
      and no line of its hidden tests (:func:`coursetools.leaks.leaks`, as the handouts build);
    * every other file: no :data:`BLOCK` consecutive lines of one master's solutions or hidden
      tests. A single line such as ``with torch.no_grad():`` occurs in solutions and in labkit
      alike and gives nothing away, and the lines that several masters share (``for group in
      self.param_groups:``) are PyTorch's idioms: they neither count nor break a run. Three
      lines of one master in a row are a pasted solution.
    """
    secrets = {m: leaks.secrets(m) for m in masters}
    names = {n for s in secrets.values() for n in s["hidden_names"]}
    count = Counter(ln for s in secrets.values()
                    for ln in set(s["solution"]) | set(s["hidden_lines"]))
    lines = {ln for ln, n in count.items() if n == 1}
    idioms = set(count) - lines
    by_handout = {f"{handouts}/{m.name}": m for m in masters}
    found = []
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        rel, text = path.relative_to(tree).as_posix(), _text(path)
        found += [f"{rel}: hidden test {n}" for n in sorted(names) if n in text]
        found += [f"{rel}: Otter marker {m!r}" for m in OTTER_MARKERS if m in text]
        if rel in by_handout:
            found += [f"{rel}: {item}" for item in leaks.leaks(by_handout[rel], text)]
        else:
            found += [f"{rel}: solution or hidden test, {run}"
                      for run in _runs(text, lines, idioms, BLOCK)]
    return found


def _check_out(out: Path, root: Path) -> None:
    """Refuse an output folder that the release must not wipe."""
    if root.is_relative_to(out) or any(out.is_relative_to(root / p) for p in PUBLIC):
        raise ReleaseError(f"--out {out}: would overwrite the repository's own files")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / STAMP).exists())):
        raise ReleaseError(f"--out {out}: exists and is not an earlier release (no {STAMP}); "
                           "remove it or choose another folder")


def stale_setup_cells(root: Path = ROOT) -> list[str]:
    """Notebooks whose setup cell does not install labkit from the configured public repository
    and version (``public_repository`` in ``_config.yml``, ``version`` in ``pyproject.toml``)."""
    return [msg for nb in setup_notebooks(root) if (msg := setup_problem(nb, root))]


def build_release(out: Path = DEFAULT_OUT, root: Path = ROOT) -> Path:
    """Write the release into ``out`` (replacing an earlier release there) and check it for
    leaks; return ``out``. Raises :class:`ReleaseError` on a bad ``out``, a setup cell that
    installs from another repository or version than the configured ones, or a leak."""
    out, root = Path(out).resolve(), Path(root).resolve()
    _check_out(out, root)
    url, version = public_repository(root), release_version(root)
    stale = stale_setup_cells(root)
    if stale:
        raise ReleaseError(f"{len(stale)} notebook(s) would not install labkit {version} from "
                           f"{url}; run `python -m coursetools setup-cell` and commit:\n  "
                           + "\n  ".join(stale))
    config_text = (root / "_config.yml").read_text(encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    items = {*PUBLIC, *toc_files(root), *extension_files(yaml.safe_load(config_text), root)}
    for item in sorted(items):
        source, target = root / item, out / item
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns(*IGNORE),
                            dirs_exist_ok=True)
        elif source.is_file():
            shutil.copy2(source, target)
        else:
            raise ReleaseError(f"{item}: listed in coursetools.release.PUBLIC but not found")
    (out / "_config.yml").write_text(public_config(config_text, url), encoding="utf-8")
    (out / "requirements.txt").write_text(
        public_requirements((root / "requirements.txt").read_text(encoding="utf-8")))
    readme = string.Template(README.read_text(encoding="utf-8"))
    (out / "README.md").write_text(readme.substitute(repository=url, version=version,
                                                     folder=url.rsplit("/", 1)[-1]),
                                   encoding="utf-8")
    (out / ".gitignore").write_text((root / ".gitignore").read_text(encoding="utf-8")
                                    + f"{STAMP}\n")
    found = leaks_in(out, sorted((root / "labs" / "assignments").glob("*.ipynb")))
    if found:
        shutil.rmtree(out)
        raise ReleaseError("the release would give away solutions or hidden tests, so it was "
                           "removed:\n  " + "\n  ".join(found))
    (out / STAMP).write_text(f"labkit {version} for {url}\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursetools release",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="where to write it (default: _build/release)")
    args = parser.parse_args(argv)
    try:
        out = build_release(args.out)
    except (ReleaseError, ValueError) as error:
        print(f"release: {error}", file=sys.stderr)
        return 1
    files = sum(1 for p in out.rglob("*") if p.is_file())
    version = release_version()
    print(f"release: {files} files in {out}, checked: no solution and no hidden test.\n"
          f"Publish it: copy it over a clone of {public_repository()} (keep its .git), commit, "
          f"tag v{version} (the notebooks' setup cell installs labkit from that tag) and push "
          "with the tag.")
    return 0
