r"""The cost of an all-reduce, and the learning rate of the linear scaling rule (chapter 9).

A ring all-reduce of :math:`n` bytes over :math:`P` workers takes
:math:`T(n) = 2(P-1)\,\alpha + 2\frac{P-1}{P}\,n/\beta`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ring_allreduce_bytes(nbytes: float, world_size: int) -> float:
    r"""Bytes each worker sends in a ring all-reduce of a message of ``nbytes``:
    :math:`2\frac{P-1}{P}\,n` (chapter 9).

    The ring's reduce-scatter passes :math:`P-1` chunks of :math:`n/P` bytes to the next worker,
    its all-gather another :math:`P-1` (Patarasuk and Yuan, 2009).
    """
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    return 2.0 * (world_size - 1) / world_size * float(nbytes)


def ring_allreduce_time(nbytes: float | np.ndarray, world_size: int, latency: float,
                        bandwidth: float) -> float | np.ndarray:
    r"""The ring model of an all-reduce's time:
    :math:`T(n) = 2(P-1)\,\alpha + 2\frac{P-1}{P}\,n/\beta` (chapter 9).

    ``latency`` is :math:`\alpha` in seconds per step, ``bandwidth`` :math:`\beta` in bytes per
    second.
    """
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be positive (bytes per second), got {bandwidth}")
    return 2 * (world_size - 1) * latency + ring_allreduce_bytes(1.0, world_size) * \
        np.asarray(nbytes, dtype=float) / bandwidth


def fit_ring_model(nbytes: Sequence[float], seconds: Sequence[float],
                   world_size: int) -> tuple[float, float]:
    r"""Fit :math:`\alpha` (s) and :math:`\beta` (bytes/s) of :func:`ring_allreduce_time` to
    measured times, by least squares on the relative error (chapter 9).

    :math:`T = 2(P-1)\alpha + 2\frac{P-1}{P} n \cdot (1/\beta)` is linear in
    :math:`(\alpha, 1/\beta)`; each row is divided by its measured time so that the small
    messages (latency) count as much as the large ones (bandwidth). Returns
    ``(latency, bandwidth)``.
    """
    n = np.asarray(nbytes, dtype=float)
    t = np.asarray(seconds, dtype=float)
    if n.shape != t.shape or n.size < 2:
        raise ValueError("fit_ring_model needs two or more (nbytes, seconds) pairs, paired")
    if world_size < 2:
        raise ValueError(f"world_size must be at least 2 to communicate, got {world_size}")
    A = np.stack([np.full_like(n, 2.0 * (world_size - 1)), ring_allreduce_bytes(1.0, world_size)
                  * n], axis=1) / t[:, None]
    (latency, inv_bandwidth), *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    latency = max(float(latency), 0.0)
    inv_bandwidth = max(float(inv_bandwidth), 1e-30)
    return latency, 1.0 / inv_bandwidth


def linear_scaling_lr(step: int, base_lr: float, world_size: int, warmup_steps: int) -> float:
    r"""The linear scaling rule with gradual warmup (Goyal et al., 2017) (chapter 9).

    With :math:`P` times the batch, use :math:`P` times the rate, reached linearly over the first
    ``warmup_steps`` steps:

    .. math:: \alpha_t = \alpha\,\Big(1 + (P-1)\min\big(1, \tfrac{t}{T_w}\big)\Big).
    """
    if warmup_steps <= 0:
        return base_lr * world_size
    return base_lr * (1 + (world_size - 1) * min(1.0, step / warmup_steps))
