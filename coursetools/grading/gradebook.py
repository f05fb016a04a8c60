"""Gradebooks: the class's scores as the LMSs import them, from ``OUT/results/`` and a roster.

* ``OUT/canvas.csv``: Canvas's gradebook import (``Student``, ``ID``, ``SIS User ID``,
  ``Section``, then one column named after the assignment; give ``--column "Assignment 4
  (123456)"`` to use the column of Canvas's own export, with its assignment ID);
* ``OUT/moodle.csv``: Moodle's offline grading worksheet (``Identifier``, ``Full name``,
  ``Email address``, ``Grade``, ``Maximum Grade``, ``Feedback comments``).

Every student of the roster gets a row (no submission: an empty grade); where a student handed
in several files, the best total counts and ``unmatched.txt`` says so. Files matched to no one
are listed in ``OUT/unmatched.txt`` and in no gradebook: nothing is guessed.
"""

from __future__ import annotations

from pathlib import Path

from coursetools.grading.reports import points, read_results, write_csv


def export(out: Path, autograder, roster: list[dict], column: str | None = None) -> list[str]:
    """Write canvas.csv, moodle.csv and unmatched.txt; return one line per thing to report."""
    results = read_results(out)
    by_student: dict[int, list[dict]] = {}
    unmatched = []
    for r in results:
        row = r.get("roster")
        if row in roster:
            by_student.setdefault(roster.index(row), []).append(r)
        else:
            unmatched.append(f"{r['file']}\t{r.get('unmatched') or 'not matched'}")
    notes = []
    canvas, moodle = [], []
    possible = points(autograder.possible)
    for i, row in enumerate(roster):
        got = by_student.get(i, [])
        best = max(got, key=lambda r: r.get("total", 0)) if got else None
        if len(got) > 1:
            notes.append(f"{row.get('Student') or row.get('Full name')}: {len(got)} files "
                         f"({', '.join(r['file'] for r in got)}); the best, {best['file']}, "
                         "counts")
        grade = points(best["total"]) if best else ""
        canvas.append([row.get("Student") or row.get("Full name", ""), row.get("ID", ""),
                       row.get("SIS User ID", ""), row.get("Section", ""), grade])
        ident = row.get("Identifier", "")
        moodle_feedback = "" if best is None else (
            f"{best['status']}: {points(best['total'])} / {possible}"
            + (f"; {best['flags']}" if best.get("flags") else ""))
        moodle.append([ident, row.get("Full name") or row.get("Student", ""),
                       row.get("Email address") or row.get("Email", ""), grade, possible,
                       moodle_feedback])
    name = column or (autograder.name or autograder.path.stem)
    write_csv(out / "canvas.csv", ["Student", "ID", "SIS User ID", "Section", name], canvas)
    write_csv(out / "moodle.csv", ["Identifier", "Full name", "Email address", "Grade",
                                   "Maximum Grade", "Feedback comments"], moodle)
    (out / "unmatched.txt").write_text("".join(f"{u}\n" for u in unmatched + notes))
    lines = [f"gradebooks: {out / 'canvas.csv'}, {out / 'moodle.csv'} "
             f"({len(by_student)} of {len(roster)} students handed in)"]
    lines += [f"unmatched: {u}" for u in unmatched] + notes
    return lines
