"""Intake: the submissions in a folder as an LMS exports them, and who handed in each.

Recognised layouts (they may be mixed in one folder):

* plain: ``STUDENT.ipynb`` (any name: spaces and accents are kept; a browser's ``NAME (1).ipynb``
  is the same student as ``NAME.ipynb``);
* Canvas's "Download submissions": ``login_USERID_SUBMISSIONID_file.ipynb`` (``login_LATE_...``
  for a late one; a resubmitted file's name ends in ``-1``);
* Moodle's "Download all submissions" (folders kept): ``Full Name_PARTICIPANT_assignsubmission_
  file_/anything.ipynb``, one folder per student;
* Gradescope's "Export submissions": ``submission_ID/file.ipynb`` beside
  ``submission_metadata.yml``, which names each submission's students.

Files that are not notebooks (``.DS_Store``, ``notes.txt``, Moodle's ``onlinetext`` folders)
are listed as skipped, not graded. A symbolic link is never followed (it is listed as skipped
and graded as nothing), and nothing that resolves outside the folder is read.

With a roster (:func:`read_roster`, a CSV such as Canvas's gradebook export: ``Student``,
``ID``, ``SIS User ID``, ``Section``; or Moodle's: ``Identifier``, ``Full name``, ``Email
address``), each submission is matched on an identifier the LMS put in its name (Canvas user ID,
Moodle participant, Gradescope SID or email) or else on the exact student name; a submission that
matches no one, or more than one, is reported as unmatched, never guessed.
"""

from __future__ import annotations

import csv
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

CANVAS = re.compile(r"^(?P<login>[^_/]+?)(?:_LATE)?_(?P<uid>\d+)_(?P<sub>\d+)_(?P<file>.+)$")
MOODLE = re.compile(r"^(?P<name>.+)_(?P<pid>\d+)_assignsubmission_(?P<kind>[a-z]+)_?$")
DUPLICATE = re.compile(r"^(?P<base>.+?)\s*\((?P<n>\d+)\)$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_DEPTH = 3


@dataclass
class Submission:
    """One notebook handed in: where it is, who it is from, and the LMS's identifiers for them."""

    path: Path
    file: str                       # path relative to the folder, as shown in the sheet
    student: str                    # the name the LMS gave (or the file's name)
    keys: dict = field(default_factory=dict)   # {"canvas": uid, "moodle": pid, "sid": ..}
    copy: int = 0                   # n of a browser's "NAME (n).ipynb", else 0
    roster: dict | None = None      # the matched roster row
    problem: str = ""               # why it is not matched, or not a gradeable name


def normal(name: str) -> str:
    """A name compared across LMS exports: NFC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def _gradescope_metadata(folder: Path) -> dict[str, dict]:
    """{submission folder: {"name", "sid", "email"}} from Gradescope's submission_metadata.yml."""
    meta = folder / "submission_metadata.yml"
    if not meta.is_file() or meta.is_symlink():
        return {}
    import yaml

    try:
        doc = yaml.safe_load(meta.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError):
        return {}
    found = {}
    for sub, info in doc.items() if isinstance(doc, dict) else ():
        people = (info or {}).get(":submitters") or (info or {}).get("submitters") or []
        if people and isinstance(people[0], dict):
            p = {str(k).lstrip(":"): str(v) for k, v in people[0].items()}
            found[str(sub)] = {"name": p.get("name", ""), "sid": p.get("sid", ""),
                               "email": p.get("email", "")}
    return found


def _entries(folder: Path, depth: int = 0):
    """(path, lstat) of every entry under ``folder``, without following links."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return
    for name in names:
        path = folder / name
        try:
            st = path.lstat()
        except OSError:
            continue
        yield path, st
        if stat.S_ISDIR(st.st_mode) and depth < MAX_DEPTH:
            yield from _entries(path, depth + 1)


def discover(folder: Path) -> tuple[list[Submission], list[tuple[str, str]]]:
    """(the notebooks to grade, [(entry, why it is skipped)]) in an LMS export folder."""
    root = folder.resolve()
    gradescope = _gradescope_metadata(folder)
    found: list[Submission] = []
    skipped: list[tuple[str, str]] = []
    for path, st in _entries(folder):
        rel = path.relative_to(folder).as_posix()
        top = rel.split("/")[0]
        if stat.S_ISLNK(st.st_mode):
            skipped.append((rel, "a symbolic link: not followed"))
            continue
        if stat.S_ISDIR(st.st_mode):
            moodle = MOODLE.match(top)
            if "/" not in rel and moodle and moodle["kind"] != "file":
                skipped.append((rel, f"Moodle's {moodle['kind']} submission: not a notebook"))
            continue
        if not stat.S_ISREG(st.st_mode):
            skipped.append((rel, "not a regular file"))
            continue
        if rel.endswith("submission_metadata.yml") and "/" not in rel:
            continue
        if not path.name.lower().endswith(".ipynb") or path.name.startswith("."):
            skipped.append((rel, "not a notebook (.ipynb)"))
            continue
        if not path.resolve().is_relative_to(root) or st.st_nlink > 1:
            skipped.append((rel, "resolves outside the folder (a link): not read"))
            continue
        found.append(_identify(path, rel, gradescope))
    return found, skipped


def _identify(path: Path, rel: str, gradescope: dict) -> Submission:
    parts = rel.split("/")
    stem = path.name[:-len(".ipynb")]
    sub = Submission(path, rel, stem)
    moodle = MOODLE.match(parts[0]) if len(parts) > 1 else None
    canvas = CANVAS.match(path.name) if len(parts) == 1 else None
    if moodle:
        sub.student, sub.keys["moodle"] = moodle["name"], moodle["pid"]
    elif len(parts) > 1 and parts[0] in gradescope:
        info = gradescope[parts[0]]
        sub.student = info["name"] or parts[0]
        sub.keys.update({k: info[k] for k in ("sid", "email") if info[k]})
    elif canvas:
        sub.student, sub.keys["canvas"] = canvas["login"], canvas["uid"]
    else:
        duplicate = DUPLICATE.match(stem)
        if duplicate:
            sub.student, sub.copy = duplicate["base"], int(duplicate["n"])
    sub.student = unicodedata.normalize("NFC", sub.student).strip()
    if not sub.student or CONTROL.search(rel) or len(rel) > 300:
        sub.problem = "the file's name is empty, too long or holds control characters"
    return sub


def read_roster(path: Path) -> list[dict]:
    """The roster's rows (a CSV with a header; Canvas's or Moodle's gradebook export will do)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()}
                for r in csv.DictReader(f)]
    return [r for r in rows if any(r.values()) and r.get("Student") != "Points Possible"]


def _roster_keys(row: dict) -> dict[str, set[str]]:
    ident = row.get("Identifier", "")
    moodle = re.sub(r"\D", "", ident) if ident else ""
    names = {normal(row[k]) for k in ("Student", "Full name", "Name", "name") if row.get(k)}
    if row.get("First name") and row.get("Last name"):
        names.add(normal(f"{row['First name']} {row['Last name']}"))
    return {"canvas": {row.get("ID", "")} - {""}, "moodle": {moodle} - {""},
            "sid": {row.get("SIS User ID", ""), row.get("ID number", ""),
                    row.get("SID", "")} - {""},
            "email": {normal(row.get(k, "")) for k in ("Email address", "Email", "SIS Login ID")}
            - {""},
            "login": {normal(row.get(k, "")) for k in ("SIS Login ID", "Login ID")} - {""},
            "name": names}


def match(submissions: list[Submission], roster: list[dict]) -> None:
    """Set each submission's ``roster`` row, or its ``problem`` when none or several match."""
    keyed = [(row, _roster_keys(row)) for row in roster]
    for sub in submissions:
        if sub.problem:
            continue
        hits = []
        for kind in ("canvas", "moodle", "sid"):
            if kind in sub.keys:
                hits = [row for row, keys in keyed if sub.keys[kind] in keys[kind]]
                break
        if not hits and "email" in sub.keys:
            hits = [row for row, keys in keyed if normal(sub.keys["email"]) in keys["email"]]
        if not hits and not ({"canvas", "moodle", "sid"} & set(sub.keys)):
            name = normal(sub.student)
            hits = [row for row, keys in keyed
                    if name in keys["name"] or name in keys["login"] or name in keys["sid"]]
        if len(hits) == 1:
            sub.roster = hits[0]
        else:
            sub.problem = ("matches no one on the roster" if not hits else
                           f"matches {len(hits)} students on the roster")
