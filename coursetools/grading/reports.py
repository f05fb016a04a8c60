"""Reports: ``grades.csv``, one feedback text per student, one results JSON per student.

Every CSV cell the grader writes goes through :func:`cell`, which neutralises what a spreadsheet
would read as a formula (OWASP's advice: a leading ``=``, ``+``, ``-``, ``@``, tab or carriage
return gets a ``'`` in front), whatever the file name or message.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str:
    """``value`` as a CSV cell no spreadsheet runs as a formula."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def write_csv(path: Path, header: list, rows: list[list]) -> Path:
    """A CSV file of neutralised cells (UTF-8)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([cell(h) for h in header])
        writer.writerows([[cell(v) for v in r] for r in rows])
    return path


def points(x: float) -> str:
    """``2`` for 2.0, ``0.5`` for 0.5: points as a person writes them."""
    return str(int(x)) if float(x).is_integer() else f"{x:.3f}".rstrip("0")


ALWAYS_SHOWN = ("your code uses ", "`")  # forbidden references, missing definitions

EXPLAIN = {
    "wrong-filename": "The file was not graded: its name holds characters that are not allowed "
                      "(control characters). Hand in your notebook with an ordinary name.",
    "not-a-notebook": "The file was not graded: it is not a Jupyter notebook (.ipynb) that "
                      "could be read. Hand in the .ipynb file itself, saved from Jupyter or Colab.",
    "wrong-assignment": "The file was not graded: it is the notebook of another assignment.",
    "timeout": "Your notebook did not finish running within the time limit, so it was not "
               "graded. Look for a loop that never ends or a computation that is far too large.",
    "output-flood": "Your notebook printed far too much output, so it was stopped and not "
                    "graded. Remove the prints inside long loops.",
    "memory": "Your notebook used more memory than grading allows, so it was stopped and not "
              "graded. Look for a tensor or a list that grows far too large.",
    "exited": "Your notebook stopped its own Python process (exit(), quit() or os._exit()), so "
              "grading could not finish. Remove that call.",
    "crashed": "Your notebook's Python process crashed while it was graded, so it was not "
               "graded. Run it top to bottom (Restart & Run All) to find the cell that crashes.",
}


def feedback(row, autograder, hidden_messages: bool = False) -> str:
    """The text returned to one student: status, score, and every test with its verdict.

    A hidden test shows its name and verdict only, unless ``hidden_messages`` (the instructor's
    ``--show-hidden-messages``, after the deadline).
    """
    lines = [f"Assignment {autograder.name or autograder.path.stem}: {row.file}",
             f"Status: {row.status}" + (f" ({row.detail})" if row.detail else ""),
             f"Score: {points(row.total)} / {points(autograder.possible)}", ""]
    if row.status != "ok":
        lines.append(EXPLAIN.get(row.status, ""))
        return "\n".join(lines) + "\n"
    if row.flags:
        lines += [f"Integrity: your code uses {row.flags}, which this assignment does not allow; "
                  "the tests that compare against it earn nothing.", ""]
    for q, possible in autograder.questions.items():
        info = row.questions.get(q, {"score": 0, "tests": []})
        lines.append(f"{q}: {points(info['score'])} / {points(possible)}")
        for t in info["tests"]:
            mark = "passed" if t["passed"] else "FAILED"
            kind = ", hidden" if t["hidden"] else ""
            lines.append(f"  [{mark}] {t['name']} ({points(t['points'])} pt{kind})")
            if not t["passed"] and (hidden_messages or not t["hidden"]
                                    or t["message"].startswith(ALWAYS_SHOWN)):
                lines += ["      " + m for m in t["message"].splitlines()]
        lines.append("")
    return "\n".join(lines)


COLUMNS_AFTER = ["total", "possible", "status", "flags", "detail"]


def sheet_row(row, autograder) -> dict:
    ok = row.status == "ok"
    out = {"student": row.student, "file": row.file}
    for q in autograder.questions:
        out[q] = points(row.questions.get(q, {}).get("score", 0)) if ok else ""
    out.update({"total": points(row.total if ok else 0), "possible": points(autograder.possible),
                "status": row.status, "flags": row.flags, "detail": row.detail})
    return out


def _previous(csv_path: Path, header: list) -> list[dict]:
    """The rows of an existing sheet with the same columns (a regrade merges into it)."""
    if not csv_path.is_file():
        return []
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != header:
            return []
        return [{k: (v[1:] if v.startswith("'") and v[1:].startswith(FORMULA_START) else v)
                 for k, v in r.items()} for r in reader]


def write_reports(rows: list, autograder, out: Path, hidden_messages: bool = False,
                  skipped: list | None = None, merge: bool = True) -> Path:
    """``out/grades.csv``, ``out/feedback/KEY.txt`` and ``out/results/KEY.json``.

    With ``merge``, the rows of an existing ``grades.csv`` whose file was not graded now are
    kept (in file order), as are their feedback and results: regrading a few students never
    drops the others. ``out/skipped.txt`` lists what the folder held that is not a notebook.
    """
    header = ["student", "file", *autograder.questions, *COLUMNS_AFTER]
    csv_path = out / "grades.csv"
    graded = {r.file for r in rows}
    kept = [r for r in _previous(csv_path, header) if r["file"] not in graded] if merge else []
    sheet = sorted(kept + [sheet_row(r, autograder) for r in rows], key=lambda r: r["file"])
    write_csv(csv_path, header, [[r[h] for h in header] for r in sheet])
    if skipped is not None:
        (out / "skipped.txt").write_text("".join(f"{rel}\t{why}\n" for rel, why in skipped))
    for row in rows:
        key = row.key or row.student
        (out / "feedback" / f"{key}.txt").write_text(feedback(row, autograder, hidden_messages))
        (out / "results" / f"{key}.json").write_text(json.dumps(
            {"student": row.student, "file": row.file, "status": row.status,
             "detail": row.detail, "flags": row.flags,
             "total": row.total if row.status == "ok" else 0,
             "possible": autograder.possible, "questions": row.questions,
             "roster": row.roster, "unmatched": row.problem,
             "seconds": round(row.seconds, 2)}, indent=1))
    return csv_path


def read_results(out: Path) -> list[dict]:
    """The per-submission results a grading run left in ``out/results/*.json`` (unreadable ones
    skipped), in file order: what the gradebooks and the class report are made from."""
    found = []
    for path in sorted((out / "results").glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found
