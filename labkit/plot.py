"""Figures of the course: loss-versus-samples curves of several runs on one axes."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from labkit.train import History


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Moving average over ``window`` points (``window <= 1`` returns the values unchanged).

    Smooths the noisy mini-batch losses of chapter 4 and the labs.
    """
    v = np.asarray(values, dtype=float)
    if window <= 1 or len(v) < window:
        return v
    kernel = np.ones(window) / window
    return np.convolve(v, kernel, mode="valid")


def plot_losses(
    histories: Sequence[History],
    labels: Sequence[str] | None = None,
    title: str | None = None,
    ax: plt.Axes | None = None,
    smoothing: int = 1,
    logy: bool = False,
) -> plt.Axes:
    """Plot the training loss of several runs against the number of samples seen.

    The figure of chapter 4 and of the labs.

    A run that diverged ends in a cross at its last finite loss and gets "(diverged)" appended
    to its label. ``smoothing`` averages over that many consecutive mini-batches.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    labels = list(labels) if labels is not None else [h.label for h in histories]
    if len(labels) != len(histories):
        raise ValueError(f"got {len(labels)} labels for {len(histories)} runs")
    for history, label in zip(histories, labels):
        samples = np.asarray(history.samples, dtype=float)
        loss = np.asarray(history.loss, dtype=float)
        finite = np.isfinite(loss)
        samples, loss = samples[finite], loss[finite]
        y = smooth(loss, smoothing)
        x = samples[len(samples) - len(y):]
        name = f"{label} (diverged)" if history.diverged else label
        (line,) = ax.plot(x, y, label=name, lw=1.2)
        if history.diverged and len(x):
            ax.plot(x[-1], y[-1], "x", color=line.get_color(), ms=9, mew=2)
    ax.set_xlabel("samples seen")
    ax.set_ylabel("training loss")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if any(labels):
        ax.legend()
    ax.grid(alpha=0.3)
    return ax


def plot_contours(
    f,
    trajectories: dict | None = None,
    xlim: tuple[float, float] = (-2.0, 2.0),
    ylim: tuple[float, float] = (-2.0, 2.0),
    levels: int | Sequence[float] = 20,
    ax: plt.Axes | None = None,
    log_levels: bool = True,
    resolution: int = 200,
    title: str | None = None,
) -> plt.Axes:
    """Contour lines of a 2-D function with optimizer paths drawn over them (chapters 3-6).

    ``f`` maps a tensor of shape ``(..., 2)`` to values (e.g. ``labkit.functions.rosenbrock()``);
    ``trajectories`` maps a label to a ``(T, 2)`` tensor or array of iterates (e.g. from
    ``labkit.trajectory.record_trajectory``). With ``log_levels`` the ``levels`` contour values
    are spaced geometrically above the grid's minimum, which shows both the steep walls and the
    flat floor of a valley. A ``minimiser`` attribute of ``f`` is marked with a star; each path
    starts with a circle, and ``nan`` rows (a diverged run) are left out.
    """
    import torch

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    xs = torch.linspace(xlim[0], xlim[1], resolution, dtype=torch.float64)
    ys = torch.linspace(ylim[0], ylim[1], resolution, dtype=torch.float64)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    with torch.no_grad():
        Z = f(torch.stack([X, Y], dim=-1)).numpy()
    if isinstance(levels, int):
        lo, hi = float(np.nanmin(Z)), float(np.nanmax(Z))
        if log_levels:
            span = hi - lo
            levels = lo + np.geomspace(span * 1e-4, span, levels) if span > 0 else levels
        else:
            levels = np.linspace(lo, hi, levels)
    ax.contour(X.numpy(), Y.numpy(), Z, levels=levels, cmap="viridis", linewidths=0.8)
    minimiser = getattr(f, "minimiser", None)
    if minimiser is not None:
        ax.plot(*minimiser, "*", color="black", ms=12, label="minimiser")
    for label, path in (trajectories or {}).items():
        path = np.asarray(path.detach().cpu() if hasattr(path, "detach") else path, dtype=float)
        path = path[np.isfinite(path).all(axis=1)]
        (line,) = ax.plot(path[:, 0], path[:, 1], ".-", lw=1.2, ms=3, label=label)
        ax.plot(path[0, 0], path[0, 1], "o", color=line.get_color(), ms=6)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("$w_1$")
    ax.set_ylabel("$w_2$")
    if title:
        ax.set_title(title)
    if trajectories:
        ax.legend(fontsize=8)
    return ax


def plot_comparison(comparison, ax: plt.Axes | None = None, logy: bool = False) -> plt.Axes:
    """The standard figure of a fair comparison (:func:`labkit.compare.compare`; chapters 6
    and 7, the labs): each method's
    final metric against its learning rate (log axis), the mean over tuning seeds as a line with a
    band from the smallest to the largest seed's value, and the chosen rate's mean ± std on the
    fresh seeds as an error bar. A diverged run is left out of its band; a rate whose every run
    diverged is marked with a cross at the top of the axes."""
    import matplotlib.transforms as mtransforms

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    top = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    for result in comparison.results:
        t = result.tuning
        lrs = np.asarray(t.lrs, dtype=float)
        values = np.where(np.isfinite(t.values), t.values, np.nan)
        diverged = np.isnan(values).all(axis=1)
        with np.errstate(all="ignore"):
            mean = np.nanmean(np.where(diverged[:, None], 0.0, values), axis=1)
        mean[diverged] = np.nan
        (line,) = ax.plot(lrs, mean, "o-", ms=4, lw=1.3, label=result.name)
        if values.shape[1] > 1:
            lo = np.where(diverged, np.nan, np.nanmin(np.where(diverged[:, None], 0.0, values), 1))
            hi = np.where(diverged, np.nan, np.nanmax(np.where(diverged[:, None], 0.0, values), 1))
            ax.fill_between(lrs, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
        if diverged.any():
            ax.plot(lrs[diverged], np.full(diverged.sum(), 0.97), "x", color=line.get_color(),
                    transform=top, ms=7, mew=2, clip_on=False)
        ax.errorbar([t.best_lr], [result.mean], yerr=[result.std], fmt="s", ms=7, capsize=4,
                    color=line.get_color(), mfc="white", mew=1.5)
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    better = "lower" if comparison.minimize else "higher"
    ax.set_ylabel(f"final {comparison.metric} ({better} is better)")
    ax.set_title(f"budget: {comparison.budget}; band: tuning seeds, square: fresh seeds ± std",
                 fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return ax


def plot_performance_profiles(taus: np.ndarray, profiles: dict[str, np.ndarray],
                              ax: plt.Axes | None = None, title: str | None = None) -> plt.Axes:
    r"""AlgoPerf's figure (the lab ``labs/optimizer_benchmark.ipynb``): each submission's
    performance profile :math:`\rho_s(\tau)`, the fraction of workloads it solves within a
    factor :math:`\tau` of the fastest, as a step function of :math:`\tau \in [1, r_{\max}]`
    (``taus``, ``profiles`` as :func:`labkit.benchmark.scoring.performance_profiles` returns
    them). Submissions with the same profile are drawn on top of each other; the legend lists
    them in order of their score (the area under the curve)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    order = sorted(profiles, key=lambda s: -float(np.trapezoid(profiles[s], taus)))
    styles = ["-", "--", "-.", ":"]
    for k, name in enumerate(order):
        ax.step(taus, profiles[name], where="post", lw=1.6, ls=styles[k % len(styles)],
                label=name)
    ax.set_xlim(taus[0], taus[-1])
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(r"$\tau$ (time to target relative to the fastest)")
    ax.set_ylabel(r"$\rho(\tau)$: fraction of workloads")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return ax
