"""Interactive figures for the course website: sliders over precomputed results, no kernel.

A notebook computes a small grid of results (one *frame* of curves for every combination of the
sliders' values), and :func:`slider_figure` ships the whole grid as JSON inside the page, with a
few lines of JavaScript that redraw the figure with `plotly.js <https://plot.ly/javascript/>`_
when a slider moves. The site serves plotly.js itself (the book's extension
``_ext/offline_plotly.py``), so the figures work offline; nothing runs in Python once the page is
built.

Every figure also carries a *still*: the frame at the sliders' defaults drawn by matplotlib, as
a PNG inside the HTML. It is what a reader without JavaScript sees, what Jupyter and Colab show
(they have no plotly.js), and what the book's PDF prints. Used by chapters 3, 4, 6 and 7
(the noise floor and the schedules) and by the Demo & Results lab.

Example (a line whose slope is the slider's value)::

    x = np.linspace(0, 1, 20)
    fig = slider_figure(
        [Slider("slope", [0.5, 1.0, 2.0], default=1.0)],
        lambda a: Frame([line(x, a * x, "a x")], readout=f"slope {a:g}"),
        panels=[Panel(xlabel="x", ylabel="y", yrange=(0, 2))],
        title="A line")
    fig          # in a notebook: the figure (interactive on the site)
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: matplotlib's default colours, so that the still and the interactive figure agree.
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")
#: Significant digits of the numbers shipped in the page (a figure needs no more).
DIGITS = 4
_DASHES = {None: "-", "solid": "-", "dash": "--", "dot": ":", "dashdot": "-."}


@dataclass(frozen=True)
class Slider:
    """One slider: a name shown next to it, the values it steps through, and its default
    (the interactive figures of chapters 3, 4, 6 and 7 and of the labs).

    ``labels`` (one per value) replace the values' text, e.g. for a categorical setting;
    otherwise each value is written with ``fmt``.
    """

    name: str
    values: Sequence[float]
    default: float
    fmt: str = "{:g}"
    labels: Sequence[str] | None = None

    def __post_init__(self):
        if len(self.values) < 1:  # one value is a fixed slider (a notebook run with one setting)
            raise ValueError(f"Slider {self.name!r}: values needs at least one entry, got "
                             f"{list(self.values)}")
        if self.default not in list(self.values):
            raise ValueError(f"Slider {self.name!r}: default={self.default!r} is not one of "
                             f"values={list(self.values)}; pass one of them")
        if self.labels is not None and len(self.labels) != len(self.values):
            raise ValueError(f"Slider {self.name!r}: got {len(self.labels)} labels for "
                             f"{len(self.values)} values")

    @property
    def default_index(self) -> int:
        return list(self.values).index(self.default)

    def text(self, i: int) -> str:
        """How value number ``i`` is shown next to the slider."""
        return self.labels[i] if self.labels is not None else self.fmt.format(self.values[i])


@dataclass(frozen=True)
class Panel:
    """One set of axes of a figure (figures with several panels put them side by side), as in
    the interactive figures of chapters 3, 4, 6 and 7 and of the labs.

    Ranges are in data units, also on a logarithmic axis; ``None`` lets the library choose.
    """

    xlabel: str = ""
    ylabel: str = ""
    title: str = ""
    logx: bool = False
    logy: bool = False
    xrange: tuple[float, float] | None = None
    yrange: tuple[float, float] | None = None


@dataclass(frozen=True)
class Trace:
    """One curve (or set of markers) of a frame; make it with :func:`line` (chapters 3, 4, 6
    and 7, and the labs)."""

    x: np.ndarray
    y: np.ndarray
    name: str = ""
    panel: int = 0
    color: str | None = None
    dash: str | None = None
    width: float = 1.5
    markers: bool = False
    lines: bool = True
    size: float = 5.0
    legend: bool = True


def line(x: Sequence[float], y: Sequence[float], name: str = "", *, panel: int = 0,
         color: str | int | None = None, dash: str | None = None, width: float = 1.5,
         markers: bool = False, lines: bool = True, size: float = 5.0,
         legend: bool = True) -> Trace:
    """A curve through the points ``(x[i], y[i])``; NaN and infinite values leave a gap
    (the interactive figures of chapters 3, 4, 6 and 7 and of the labs).

    ``color`` is a CSS colour or an index into :data:`COLORS`; ``dash`` is ``"dash"``,
    ``"dot"``, ``"dashdot"`` or ``None`` (solid); ``markers=True`` marks every point and
    ``lines=False`` draws the markers only. ``legend=False`` keeps it out of the legend.
    """
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"line {name!r}: x has {x.size} points and y has {y.size}; "
                         "pass arrays of the same length")
    if dash not in _DASHES:
        raise ValueError(f"line {name!r}: dash={dash!r}; use one of {sorted(map(str, _DASHES))}")
    if not (lines or markers):
        raise ValueError(f"line {name!r}: lines=False needs markers=True (nothing to draw)")
    if isinstance(color, int):
        color = COLORS[color % len(COLORS)]
    return Trace(x, y, name, panel, color, dash, width, markers, lines, size, legend)


def level_sets(f: Callable[[np.ndarray], np.ndarray], xlim: tuple[float, float],
               ylim: tuple[float, float], levels: Sequence[float], *, panel: int = 0,
               color: str = "#bbbbbb", n: int = 120) -> list[Trace]:
    """The level sets ``f(w) = level`` of a function of two variables, as gray curves.

    ``f`` takes an array of points of shape ``(..., 2)`` and returns their values; it is
    evaluated on an ``n`` by ``n`` grid over ``xlim`` by ``ylim``. The background of the paths
    of chapter 3 (pass the traces as ``static`` to :func:`slider_figure`).
    """
    import matplotlib.pyplot as plt

    xs, ys = np.linspace(*xlim, n), np.linspace(*ylim, n)
    X, Y = np.meshgrid(xs, ys)
    Z = np.asarray(f(np.stack([X, Y], axis=-1)), dtype=float)
    if Z.shape != X.shape:
        raise ValueError(f"level_sets: f returned shape {Z.shape} for points of shape "
                         f"{X.shape + (2,)}; it must return one value per point")
    fig, ax = plt.subplots()
    try:
        contours = ax.contour(X, Y, Z, levels=sorted(float(v) for v in levels))
        segments = contours.allsegs
    finally:
        plt.close(fig)
    traces = []
    for per_level in segments:
        for segment in per_level:
            if len(segment) > 1:
                traces.append(line(segment[:, 0], segment[:, 1], panel=panel, color=color,
                                   width=0.8, legend=False))
    return traces


@dataclass
class Frame:
    """What the figure shows for one combination of the sliders' values (chapters 3, 4, 6 and
    7, and the labs).

    ``readout`` is a line of text under the sliders (the numbers of this frame); ``xrange`` and
    ``yrange`` map a panel's index to the range it shows in this frame (overriding the panel's).
    """

    traces: list[Trace]
    readout: str = ""
    xrange: dict[int, tuple[float, float]] = field(default_factory=dict)
    yrange: dict[int, tuple[float, float]] = field(default_factory=dict)


def compact(values: np.ndarray, digits: int = DIGITS) -> list[float | None]:
    """``values`` rounded to ``digits`` significant digits, as a list for JSON (NaN and
    infinities become ``None``, which plotly.js draws as a gap); the data of the interactive
    figures of chapters 3, 4, 6 and 7 and of the labs."""
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    out = np.zeros_like(v)
    nonzero = finite & (v != 0)
    exponent = np.floor(np.log10(np.abs(v[nonzero])))
    scale = 10.0 ** (digits - 1 - exponent)
    out[nonzero] = np.round(v[nonzero] * scale) / scale
    return [float(a) if ok else None for a, ok in zip(out.tolist(), finite.tolist())]


def _axis_range(lo_hi: tuple[float, float], log: bool) -> list[float]:
    lo, hi = lo_hi
    if log:
        if lo <= 0 or hi <= 0:
            raise ValueError(f"range {lo_hi} of a logarithmic axis must be positive")
        return [math.log10(lo), math.log10(hi)]
    return [float(lo), float(hi)]


def _trace_json(t: Trace, digits: int = DIGITS) -> dict[str, Any]:
    mode = "+".join(m for m, on in (("lines", t.lines), ("markers", t.markers)) if on)
    out: dict[str, Any] = {"type": "scatter", "x": compact(t.x, digits),
                           "y": compact(t.y, digits),
                           "mode": mode, "name": t.name, "showlegend": bool(t.legend and t.name)}
    if t.panel:
        out["xaxis"], out["yaxis"] = f"x{t.panel + 1}", f"y{t.panel + 1}"
    if t.lines:
        out["line"] = {"width": t.width, **({"color": t.color} if t.color else {}),
                       **({"dash": t.dash} if t.dash else {})}
    if t.markers:
        out["marker"] = {"size": t.size, **({"color": t.color} if t.color else {})}
    return out


def _layout(panels: Sequence[Panel], title: str, height: int) -> dict[str, Any]:
    gap = 0.1
    width = (1 - gap * (len(panels) - 1)) / len(panels)
    layout: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 15}},
        "height": height, "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
        "legend": {"orientation": "h", "y": -0.18}, "hovermode": "closest",
    }
    for i, p in enumerate(panels):
        suffix = "" if i == 0 else str(i + 1)
        x = {"title": {"text": p.xlabel}, "domain": [i * (width + gap), i * (width + gap) + width],
             "anchor": f"y{suffix}", "type": "log" if p.logx else "linear"}
        y = {"title": {"text": p.ylabel}, "anchor": f"x{suffix}",
             "type": "log" if p.logy else "linear"}
        if p.xrange is not None:
            x["range"] = _axis_range(p.xrange, p.logx)
        if p.yrange is not None:
            y["range"] = _axis_range(p.yrange, p.logy)
        layout[f"xaxis{suffix}"], layout[f"yaxis{suffix}"] = x, y
        if p.title:
            layout.setdefault("annotations", []).append(
                {"text": p.title, "showarrow": False, "xref": "paper", "yref": "paper",
                 "x": i * (width + gap) + width / 2, "y": 1.0, "yanchor": "bottom",
                 "font": {"size": 12}})
    return layout


def _frame_ranges(frame: Frame, panels: Sequence[Panel]) -> dict[str, list[float]]:
    out = {}
    for axis, ranges in (("x", frame.xrange), ("y", frame.yrange)):
        for i, r in ranges.items():
            if not 0 <= i < len(panels):
                raise ValueError(f"Frame: {axis}range names panel {i}, but the figure has "
                                 f"{len(panels)} panels")
            log = panels[i].logx if axis == "x" else panels[i].logy
            out[f"{axis}axis{'' if i == 0 else i + 1}"] = _axis_range(r, log)
    return out


def draw_still(frame: Frame, panels: Sequence[Panel], title: str, caption: str = "",
               static: Sequence[Trace] = ()):
    """The frame drawn by matplotlib (the still image of an interactive figure of chapters 3,
    4, 6 and 7 or of the labs); returns the ``Figure``."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 0.6, 3.9),
                             squeeze=False)
    axes = axes[0]
    for t in list(static) + frame.traces:
        style = (_DASHES[t.dash] if t.lines else "") + ("o" if t.markers else "")
        axes[t.panel].plot(t.x, t.y, style, color=t.color, lw=t.width, ms=t.size * 0.6,
                           label=t.name if (t.legend and t.name) else None)
    for i, (ax, p) in enumerate(zip(axes, panels)):
        ax.set_xlabel(p.xlabel)
        ax.set_ylabel(p.ylabel)
        ax.set_title(p.title, fontsize=10)
        if p.logx:
            ax.set_xscale("log")
        if p.logy:
            ax.set_yscale("log")
        xr, yr = frame.xrange.get(i, p.xrange), frame.yrange.get(i, p.yrange)
        if xr is not None:
            ax.set_xlim(*xr)
        if yr is not None:
            ax.set_ylim(*yr)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(title + (f"\n{caption}" if caption else ""), fontsize=10)
    fig.tight_layout()
    return fig


_STYLE = """<style>
.labkit-interactive{margin:1em 0}
.labkit-interactive .lk-controls,.labkit-interactive .lk-plot{display:none}
.labkit-interactive.lk-live .lk-controls{display:flex;flex-wrap:wrap;gap:.3em 2em}
.labkit-interactive.lk-live .lk-plot{display:block}
.labkit-interactive.lk-live .lk-still,.labkit-interactive.lk-live .lk-note{display:none}
.labkit-interactive .lk-still{max-width:100%;height:auto}
.labkit-interactive label{display:flex;align-items:center;gap:.5em;font-size:.9em}
.labkit-interactive output{min-width:4em;font-family:monospace}
.labkit-interactive .lk-readout{font-family:monospace;font-size:.85em;white-space:pre-wrap}
@media print{.labkit-interactive.lk-live .lk-controls,.labkit-interactive.lk-live .lk-plot,
.labkit-interactive .lk-note{display:none!important}
.labkit-interactive.lk-live .lk-still{display:block!important}}
</style>"""

# Draws the frame of the sliders' positions with plotly.js; without plotly.js (Jupyter, Colab,
# no JavaScript) nothing happens and the still stays.
_SCRIPT = """<script>(function(){
var root=document.getElementById("%(id)s");
function init(){
if(!window.Plotly||root.classList.contains("lk-live"))return;
var spec=JSON.parse(root.querySelector("script.lk-data").textContent);
var plot=root.querySelector(".lk-plot"),inputs=root.querySelectorAll("input.lk-slider");
var outs=root.querySelectorAll("output"),readout=root.querySelector(".lk-readout");
function draw(){
var k=0;for(var i=0;i<inputs.length;i++){k=k*spec.sizes[i]+Number(inputs[i].value);
outs[i].textContent=spec.labels[i][Number(inputs[i].value)];}
var f=spec.frames[k],layout=JSON.parse(JSON.stringify(spec.layout));
for(var a in f.ranges){layout[a].range=f.ranges[a];}
readout.textContent=f.readout;plot.setAttribute("data-frame",String(k));
return Plotly.react(plot,spec.static.concat(f.traces),layout,{displaylogo:false,responsive:true});
}
for(var i=0;i<inputs.length;i++){inputs[i].addEventListener("input",draw);}
root.classList.add("lk-live");draw();
}
if(document.readyState==="loading"){document.addEventListener("DOMContentLoaded",init);}
else{init();}
})();</script>"""


@dataclass
class SliderFigure:
    """An interactive figure: its HTML (what the notebook displays) and its default frame
    (chapters 3, 4, 6 and 7, and the labs).

    ``html`` is self-contained except for plotly.js, which the page must load; ``nbytes`` is
    its size (the data of every frame, the script and the still).
    """

    html: str
    default: Frame
    frames: int
    still_png: bytes

    @property
    def nbytes(self) -> int:
        return len(self.html.encode())

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return (f"<SliderFigure: {self.frames} frames, {self.nbytes / 1e3:.0f} kB; interactive "
                "on the course site>")


def slider_figure(sliders: Sequence[Slider], frame: Callable[..., Frame | Sequence[Trace]], *,
                  panels: Sequence[Panel] = (Panel(),), title: str = "",
                  static: Sequence[Trace] = (), height: int = 430,
                  alt: str | None = None, digits: int = DIGITS) -> SliderFigure:
    """An interactive figure: ``frame(*values)`` for every combination of the sliders' values
    (chapters 3, 4, 6 and 7, and the Demo & Results lab).

    Args:
        sliders: the sliders, in the order of ``frame``'s arguments.
        frame: returns a :class:`Frame` (or a list of traces) for one value of each slider;
            called once per combination (the grid's product), so it should only look results up.
        panels: the axes, side by side; a trace goes to ``panels[trace.panel]``.
        title: the figure's title.
        static: traces drawn in every frame (level sets, a reference line).
        height: of the interactive figure, in pixels.
        alt: the still's text for screen readers (default: the title and the defaults).
        digits: significant digits of the numbers shipped (fewer make a lighter page).

    Returns:
        A :class:`SliderFigure`; displayed in a notebook it is the still image, and on the
        course site (which serves plotly.js) the sliders and the figure they drive.
    """
    sliders, panels = list(sliders), list(panels)
    if not sliders:
        raise ValueError("slider_figure: pass at least one Slider")
    if not panels:
        raise ValueError("slider_figure: pass at least one Panel")
    if not 1 <= digits <= 17:
        raise ValueError(f"slider_figure: digits={digits}; pass 1 to 17 significant digits")
    for s in sliders:
        if not isinstance(s, Slider):
            raise TypeError("slider_figure: sliders must be Slider objects, got "
                            f"{type(s).__name__}")
    frames = []
    default = None
    default_key = tuple(s.default_index for s in sliders)
    for key in itertools.product(*(range(len(s.values)) for s in sliders)):
        f = frame(*(s.values[i] for s, i in zip(sliders, key)))
        if not isinstance(f, Frame):
            f = Frame(list(f))
        for t in list(f.traces) + list(static):
            if not isinstance(t, Trace):
                raise TypeError(f"slider_figure: a frame holds {type(t).__name__}, not a Trace; "
                                "make curves with labkit.interactive.line")
            if not 0 <= t.panel < len(panels):
                raise ValueError(f"slider_figure: trace {t.name!r} is on panel {t.panel}, but "
                                 f"there are {len(panels)} panels")
        if key == default_key:
            default = f
        frames.append({"traces": [_trace_json(t, digits) for t in f.traces], "readout": f.readout,
                       "ranges": _frame_ranges(f, panels)})
    assert default is not None
    spec = {"sizes": [len(s.values) for s in sliders],
            "labels": [[s.text(i) for i in range(len(s.values))] for s in sliders],
            "layout": _layout(panels, title, height),
            "static": [_trace_json(t, digits) for t in static], "frames": frames}
    data = json.dumps(spec, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    uid = "lkfig-" + hashlib.sha1(data.encode()).hexdigest()[:12]

    settings = ", ".join(f"{s.name} = {s.text(s.default_index)}" for s in sliders)
    import matplotlib.pyplot as plt

    fig = draw_still(default, panels, title, settings, static)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    png = buffer.getvalue()

    controls = "".join(
        f'<label>{html.escape(s.name)} <input class="lk-slider" type="range" min="0" '
        f'max="{len(s.values) - 1}" step="1" value="{s.default_index}" '
        f'aria-label="{html.escape(s.name)}"><output>{html.escape(s.text(s.default_index))}'
        f"</output></label>" for s in sliders)
    alt_text = alt or f"{title} ({settings})"
    page = (
        f'<div class="labkit-interactive" id="{uid}">{_STYLE}'
        f'<div class="lk-controls">{controls}</div>'
        f'<div class="lk-plot"></div>'
        f'<img class="lk-still" alt="{html.escape(alt_text)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f'<div class="lk-readout">{html.escape(default.readout)}</div>'
        f'<div class="lk-note" style="font-size:.8em;opacity:.7">Interactive on the course '
        f"website (move the sliders); here, the figure at {html.escape(settings)}.</div>"
        f'<script type="application/json" class="lk-data">{data}</script>'
        f"{_SCRIPT % {'id': uid}}</div>")
    return SliderFigure(page, default, len(frames), png)
