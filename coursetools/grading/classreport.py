"""The class report: ``OUT/report.html``, one page for the instructor about a graded folder.

It reads ``OUT/results/*.json`` (so a regrade's merged results are in it) and shows: the status
of every file (how many ``ok``, ``timeout``, ...), a figure of the score distribution of each
question (``report.svg``, beside the page), the tests most often failed with the message a
student saw for them (public tests' own messages; hidden tests' name only), the submissions with
flags, and the slowest submissions. Everything is escaped: the page shows student names and
messages as text, never as markup.
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path

from coursetools.grading.reports import points, read_results

SLOWEST = 10
MOST_FAILED = 15


def figure(results: list[dict], autograder, path: Path) -> Path:
    """One histogram per question of the graded (``ok``) submissions' scores, as SVG."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    questions = list(autograder.questions)
    graded = [r for r in results if r.get("status") == "ok"]
    fig, axes = plt.subplots(1, len(questions), figsize=(2.6 * len(questions), 2.4),
                             squeeze=False)
    for ax, q in zip(axes[0], questions):
        possible = autograder.questions[q]
        scores = [r["questions"].get(q, {}).get("score", 0) for r in graded]
        counts = Counter(scores)
        xs = sorted(set(counts) | {0, possible})
        ax.bar([str(points(x)) for x in xs], [counts.get(x, 0) for x in xs], color="#4477aa")
        ax.set_title(f"{q} (of {points(possible)})")
        ax.set_xlabel("points")
    axes[0][0].set_ylabel("submissions")
    fig.suptitle(f"{autograder.name}: scores per question ({len(graded)} graded)")
    fig.tight_layout()
    fig.savefig(path, format="svg")
    plt.close(fig)
    return path


def write_report(out: Path, autograder) -> Path:
    """Write ``out/report.html`` (and ``out/report.svg``) from ``out/results``; return its path."""
    results = read_results(out)
    esc = html.escape
    statuses = Counter(r.get("status", "?") for r in results)
    failed: Counter = Counter()
    messages: dict[str, Counter] = {}
    hidden: dict[str, bool] = {}
    for r in results:
        for q in (r.get("questions") or {}).values():
            for t in q.get("tests", []):
                hidden[t["name"]] = t["hidden"]
                if not t["passed"]:
                    failed[t["name"]] += 1
                    if not t["hidden"]:
                        messages.setdefault(t["name"], Counter())[t["message"][:300]] += 1
    figure(results, autograder, out / "report.svg")
    ok = [r for r in results if r.get("status") == "ok"]
    mean = sum(r["total"] for r in ok) / len(ok) if ok else 0
    rows = [f"<tr><td>{esc(s)}</td><td>{n}</td></tr>" for s, n in statuses.most_common()]
    fails = []
    for name, n in failed.most_common(MOST_FAILED):
        if hidden.get(name):
            shown = "<em>hidden test</em>"
        else:
            text, _ = messages.get(name, Counter({"": 0})).most_common(1)[0]
            shown = f"<code>{esc(text)}</code>"
        fails.append(f"<tr><td><code>{esc(name)}</code></td><td>{n}</td><td>{shown}</td></tr>")
    slow = sorted(results, key=lambda r: -r.get("seconds", 0))[:SLOWEST]
    slow_rows = [f"<tr><td>{esc(r['student'])}</td><td>{esc(r['file'])}</td>"
                 f"<td>{r.get('seconds', 0):.1f}</td><td>{esc(r.get('status', ''))}</td></tr>"
                 for r in slow]
    flagged = [f"<li>{esc(r['student'])} ({esc(r['file'])}): {esc(r['flags'])}</li>"
               for r in results if r.get("flags")]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{esc(str(autograder.name))}: class report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}
</style></head><body>
<h1>{esc(str(autograder.name))}: class report</h1>
<p id="summary">{len(results)} file(s); {len(ok)} graded; mean score of the graded
{points(round(mean, 2))} / {points(autograder.possible)}.</p>
<h2>Statuses</h2>
<table id="statuses"><tr><th>status</th><th>files</th></tr>{''.join(rows)}</table>
<h2>Scores per question</h2>
<img id="distributions" src="report.svg" alt="score distribution of each question">
<h2>Tests most often failed</h2>
<table id="failed"><tr><th>test</th><th>failed by</th><th>the message students saw most</th>
</tr>{''.join(fails)}</table>
<h2>Flags</h2>
<ul id="flags">{''.join(flagged) or '<li>none</li>'}</ul>
<h2>Slowest submissions</h2>
<table id="slowest"><tr><th>student</th><th>file</th><th>seconds</th><th>status</th></tr>
{''.join(slow_rows)}</table>
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
