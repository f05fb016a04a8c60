"""Figures of the course: loss-versus-samples curves of several runs on one axes."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from labkit.train import History


def run_title(optimizer: str, lr: float, momentum: float, batch_size: int) -> str:
    """The lecture's figure title, e.g. ``Optimizer-SGD lr-0.001 mt-0.5 bs-16``."""
    return f"Optimizer-{optimizer} lr-{lr:g} mt-{momentum:g} bs-{batch_size}"


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Moving average over ``window`` points (``window <= 1`` returns the values unchanged)."""
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
