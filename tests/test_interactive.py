"""labkit.interactive: the slider figures of the website, checked without building the book.

The data each figure ships (one frame per combination of the sliders, in the order the page's
script looks them up), its still image, its validation of bad input, and, in headless Chromium,
that moving a slider draws the frame of the new position.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import offline_plotly  # _ext/, on pytest's pythonpath (pyproject.toml)
import pytest

from labkit.interactive import (
    Frame,
    Panel,
    Slider,
    compact,
    level_sets,
    line,
    slider_figure,
)

CHROMIUM = Path("/usr/bin/chromium")
X = np.linspace(0.0, 1.0, 11)


def spec_of(fig) -> dict:
    """The JSON a figure ships in its page."""
    data = re.search(r'<script type="application/json" class="lk-data">(.*?)</script>', fig.html,
                     re.S).group(1)
    return json.loads(data.replace("<\\/", "</"))


def two_slider_figure(**kwargs):
    a_values, b_values = [0.5, 1.0, 2.0], [0, 1, 2, 3]
    return slider_figure(
        [Slider("a", a_values, default=1.0), Slider("b", b_values, default=3)],
        lambda a, b: Frame([line(X, a * X + b, "a x + b", color=0)], readout=f"a={a:g} b={b:g}"),
        panels=[Panel(xlabel="x", ylabel="y", yrange=(0, 6))], title="lines", **kwargs), \
        a_values, b_values


def test_frames_are_in_the_order_the_page_looks_them_up():
    """The script reads frame k = sum_i index_i * prod_{j>i} size_j (the last slider fastest)."""
    fig, a_values, b_values = two_slider_figure()
    spec = spec_of(fig)
    assert spec["sizes"] == [3, 4]
    assert fig.frames == len(spec["frames"]) == 12
    for i, a in enumerate(a_values):
        for j, b in enumerate(b_values):
            frame = spec["frames"][i * len(b_values) + j]
            assert frame["readout"] == f"a={a:g} b={b:g}"
            assert frame["traces"][0]["y"] == pytest.approx(list(a * X + b), rel=1e-3)


def test_default_frame_and_still():
    fig, _, _ = two_slider_figure()
    assert fig.default.readout == "a=1 b=3"
    assert fig.still_png.startswith(b"\x89PNG")
    embedded = re.search(r'src="data:image/png;base64,([^"]+)"', fig.html).group(1)
    assert base64.b64decode(embedded) == fig.still_png
    # the sliders start at the defaults, and the readout shown without JavaScript is theirs
    assert re.findall(r'value="(\d+)"', fig.html) == ["1", "3"]
    assert '<div class="lk-readout">a=1 b=3</div>' in fig.html
    assert fig.nbytes == len(fig.html.encode())
    assert fig._repr_html_() == fig.html


def test_numbers_are_rounded_and_gaps_are_null():
    assert compact(np.array([1.23456789, -0.000123456, 0.0, 98765.4321]), 4) == \
        [1.235, -0.0001235, 0.0, 98770.0]
    assert compact(np.array([np.nan, np.inf, -np.inf, 2.0])) == [None, None, None, 2.0]
    fig = slider_figure([Slider("s", [1, 2], default=1)],
                        lambda s: [line([0, 1, 2], [s, np.inf, np.nan])])
    assert spec_of(fig)["frames"][0]["traces"][0]["y"] == [1.0, None, None]
    json.loads(json.dumps(spec_of(fig), allow_nan=False))  # strict JSON: no NaN in the page


def test_log_ranges_and_panels():
    fig = slider_figure(
        [Slider("T", [10, 100], default=10)],
        lambda T: Frame([line([1, T], [1, 2], panel=1)], xrange={1: (1, T)}),
        panels=[Panel(), Panel(logx=True, logy=True, yrange=(0.1, 10))])
    spec = spec_of(fig)
    assert spec["layout"]["yaxis2"]["range"] == [-1.0, 1.0]
    assert spec["layout"]["xaxis2"]["type"] == "log"
    assert [f["ranges"]["xaxis2"] for f in spec["frames"]] == [[0.0, 1.0], [0.0, 2.0]]
    assert spec["frames"][0]["traces"][0]["xaxis"] == "x2"


def test_text_cannot_close_the_data_script():
    fig = slider_figure([Slider("s", [1, 2], default=1)],
                        lambda s: Frame([line([0], [s], "</script><b>")], readout="</script>"))
    data = fig.html.split('class="lk-data">', 1)[1]
    assert data.index("</script>") > data.index("<\\/script><b>")
    assert spec_of(fig)["frames"][0]["traces"][0]["name"] == "</script><b>"


@pytest.mark.parametrize("make, message", [
    (lambda: Slider("s", [], default=1.0), "at least one"),
    (lambda: Slider("s", [1.0, 2.0], default=3.0), "default=3.0 is not one of"),
    (lambda: Slider("s", [1, 2], default=1, labels=["one"]), "1 labels for 2 values"),
    (lambda: line([0, 1], [0], "x"), "same length"),
    (lambda: line([0], [0], dash="wavy"), "dash='wavy'"),
    (lambda: line([0], [0], lines=False), "nothing to draw"),
    (lambda: slider_figure([], lambda: []), "at least one Slider"),
    (lambda: slider_figure([Slider("s", [1, 2], default=1)], lambda s: [line([0], [0], panel=2)]),
     "panel 2"),
    (lambda: slider_figure([Slider("s", [1, 2], default=1)], lambda s: [(0, 0)]), "not a Trace"),
    (lambda: slider_figure([Slider("s", [1, 2], default=1)], lambda s: [line([0], [0])],
                           panels=[Panel(logy=True, yrange=(0, 1))]), "must be positive"),
])
def test_bad_input_says_what_to_do(make, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        make()


def test_level_sets_of_a_quadratic_are_ellipses():
    traces = level_sets(lambda w: (w**2 * np.array([1.0, 4.0])).sum(-1), (-2, 2), (-2, 2), [1.0])
    assert len(traces) == 1
    x, y = traces[0].x, traces[0].y
    assert np.allclose(x**2 + 4 * y**2, 1.0, atol=0.02)
    assert x.max() == pytest.approx(1.0, abs=0.02) and y.max() == pytest.approx(0.5, abs=0.02)


def test_the_vendored_plotly_is_the_published_file():
    data = offline_plotly.FILE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == offline_plotly.SHA256
    assert b"plotly.js (basic - minified) v4.1.1" in data[:200]
    assert offline_plotly.LICENSE.read_text().startswith("MIT License")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt)")
def test_moving_a_slider_draws_its_frame(tmp_path):
    """The page's script in a real browser, with plotly.js loaded as the site loads it."""
    from playwright.sync_api import sync_playwright

    fig, _, _ = two_slider_figure()
    page_file = tmp_path / "figure.html"
    page_file.write_text(f'<!doctype html><html><head><script src="{offline_plotly.FILE.as_uri()}">'
                         f"</script></head><body>{fig.html}</body></html>")
    errors = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_file.as_uri())
        page.wait_for_selector(".labkit-interactive.lk-live .main-svg")
        assert not page.locator("img.lk-still").is_visible()  # the live figure replaces it
        readout = page.locator(".lk-readout")
        assert readout.text_content() == "a=1 b=3"
        sliders = page.locator("input.lk-slider")
        sliders.nth(0).focus()
        page.keyboard.press("ArrowRight")
        assert readout.text_content() == "a=2 b=3"
        sliders.nth(1).focus()
        page.keyboard.press("Home")
        assert readout.text_content() == "a=2 b=0"
        assert page.locator("output").all_text_contents() == ["2", "0"]
        y = page.evaluate("() => document.querySelector('.lk-plot').data[0].y")
        assert y == pytest.approx(list(2.0 * X), rel=1e-3)
        page.emulate_media(media="print")  # the PDF shows the still, not the live figure
        assert page.locator("img.lk-still").is_visible()
        assert not page.locator(".lk-plot").is_visible()
        browser.close()
    assert not errors, errors


def test_a_slider_of_one_value_is_a_fixed_figure():
    """A notebook run with one setting (papermill, small parameters) still draws its figure."""
    fig = slider_figure([Slider("a", [1.0], default=1.0)],
                        lambda a: Frame([line([0, 1], [a, 2 * a], "a")], readout=f"a = {a:g}"))
    assert fig.default.readout == "a = 1"
    assert '<div class="lk-readout">a = 1</div>' in fig.html
