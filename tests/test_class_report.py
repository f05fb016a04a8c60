"""The class report (``OUT/report.html``), opened in Debian's chromium through Playwright, as
tests/test_site_browser.py opens the site: the figure loads, the tables say what the results say,
and a student's name is shown as text, never run as markup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coursetools.grading import classreport
from coursetools.grading.archive import Autograder

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _result(student: str, status: str, q1: int, q2: int, seconds: float, flags: str = "",
            message: str = "expected 1.5, got 2.5") -> dict:
    def tests(score, name, hidden):
        return [{"name": name, "hidden": hidden, "points": 1, "passed": score > 0,
                 "message": "" if score > 0 else message}]
    return {"student": student, "file": f"{student}.ipynb", "status": status, "detail": "",
            "flags": flags, "total": q1 + q2 if status == "ok" else 0, "possible": 2,
            "questions": {} if status != "ok" else {
                "q1": {"score": q1, "possible": 1, "tests": tests(q1, "test_public_one", False)},
                "q2": {"score": q2, "possible": 1, "tests": tests(q2, "test_hidden_two", True)}},
            "seconds": seconds}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    (out / "results").mkdir()
    results = [_result("ann", "ok", 1, 1, 3.0), _result("bo", "ok", 0, 1, 4.0),
               _result("<script>window.HACKED=1</script>", "ok", 0, 0, 9.5,
                       flags="torch.optim.Adam"),
               _result("dee", "timeout", 0, 0, 300.0)]
    for i, r in enumerate(results):
        (out / "results" / f"{i}.json").write_text(json.dumps(r))
    autograder = Autograder(Path("x.zip"), "04_adam", {"q1": 1, "q2": 1}, [])
    return classreport.write_report(out, autograder)


def test_the_report_opens_in_a_browser(report: Path):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        width = page.eval_on_selector("#distributions", "img => img.naturalWidth")
        statuses = page.inner_text("#statuses")
        failed = page.inner_text("#failed")
        slowest = page.inner_text("#slowest")
        flags = page.inner_text("#flags")
        hacked = page.evaluate("() => window.HACKED === 1")
        browser.close()
    assert width > 100, "the figure of the score distributions did not load"
    assert "ok\t3" in statuses and "timeout\t1" in statuses, statuses
    lines = failed.splitlines()
    assert lines[1].startswith("test_public_one\t2\texpected 1.5, got 2.5"), failed
    assert "test_hidden_two\t1\thidden test" in failed and "got 2.5\n" not in lines[2], failed
    assert slowest.splitlines()[1].startswith("dee\tdee.ipynb\t300.0\ttimeout"), slowest
    assert "<script>window.HACKED=1</script>" in flags and "torch.optim.Adam" in flags
    assert not hacked and not errors, errors


def test_the_figure_has_one_panel_per_question(report: Path):
    svg = (report.parent / "report.svg").read_text()
    assert "q1 (of 1)" in svg and "q2 (of 1)" in svg
