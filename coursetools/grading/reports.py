"""Reports: ``grades.csv``, one feedback text per student, one results JSON per student."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def points(x: float) -> str:
    """``2`` for 2.0, ``0.5`` for 0.5: points as a person writes them."""
    return str(int(x)) if float(x).is_integer() else f"{x:.3f}".rstrip("0")


EXPLAIN = {
    "wrong-filename": "The file was not graded: hand in your notebook as STUDENT.ipynb.",
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


def feedback(row, autograder, hidden_messages: bool = True) -> str:
    """The text returned to one student: status, score, and every test with its verdict."""
    lines = [f"Assignment {autograder.name or autograder.path.stem}: {row.file}",
             f"Status: {row.status}" + (f" ({row.detail})" if row.detail else ""),
             f"Score: {points(row.total)} / {points(autograder.possible)}", ""]
    if row.status != "ok":
        lines.append(EXPLAIN.get(row.status, ""))
        return "\n".join(lines) + "\n"
    for q, possible in autograder.questions.items():
        info = row.questions.get(q, {"score": 0, "tests": []})
        lines.append(f"{q}: {points(info['score'])} / {points(possible)}")
        for t in info["tests"]:
            mark = "passed" if t["passed"] else "FAILED"
            kind = ", hidden" if t["hidden"] else ""
            lines.append(f"  [{mark}] {t['name']} ({points(t['points'])} pt{kind})")
            if not t["passed"] and (hidden_messages or not t["hidden"]):
                lines += ["      " + m for m in t["message"].splitlines()]
        lines.append("")
    return "\n".join(lines)


def write_reports(rows: list, autograder, out: Path, hidden_messages: bool = True) -> Path:
    """``out/grades.csv``, ``out/feedback/STUDENT.txt`` and ``out/results/STUDENT.json``."""
    header = ["student", "file", *autograder.questions, "total", "possible", "status", "detail"]
    csv_path = out / "grades.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            ok = row.status == "ok"
            scores = [points(row.questions.get(q, {}).get("score", 0)) if ok else ""
                      for q in autograder.questions]
            writer.writerow([row.student, row.file, *scores, points(row.total if ok else 0),
                             points(autograder.possible), row.status, row.detail])
    for row in rows:
        (out / "feedback" / f"{row.student}.txt").write_text(feedback(row, autograder,
                                                                      hidden_messages))
        (out / "results" / f"{row.student}.json").write_text(json.dumps(
            {"student": row.student, "file": row.file, "status": row.status,
             "detail": row.detail, "total": row.total if row.status == "ok" else 0,
             "possible": autograder.possible, "questions": row.questions,
             "seconds": round(row.seconds, 2)}, indent=1))
    return csv_path
