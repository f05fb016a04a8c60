r"""Learning-rate schedules as multipliers, for ``torch.optim.lr_scheduler.LambdaLR`` with any
optimizer (chapter 8).

Warmup-stable-decay (WSD; Hu et al., 2024; Wen et al., 2024) holds the rate constant for most
of the run and decays it only at the end. With :math:`W` warmup steps, decay starting at step
:math:`S` and lasting :math:`D` steps, the multiplier of the base rate at step :math:`t`
(counted from 0, as ``LambdaLR`` counts) is

.. math::

    \eta(t) = \begin{cases}
        (t+1)/W                             & t < W \quad\text{(warmup)}\\
        1                                   & W \le t < S \quad\text{(stable)}\\
        \eta_{\min} + (1-\eta_{\min})\, \phi\big((t-S)/D\big) & S \le t < S + D
            \quad\text{(decay, or cooldown)}\\
        \eta_{\min}                         & t \ge S + D
    \end{cases}

with :math:`\phi(u) = 1-u` (``"linear"``), :math:`1-\sqrt u` (``"sqrt"``) or
:math:`\tfrac12(1+\cos\pi u)` (``"cosine"``). Since the stable phase does not depend on when the
decay starts, one run at the constant rate can be saved at several steps :math:`S` and each
checkpoint cooled down for :math:`D` steps: the "river valley" picture of Wen et al. (2024),
where the constant rate travels along the valley floor while bouncing between its walls, and
the cooldown drops to the floor. :func:`cosine_schedule` is the schedule WSD is compared with.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from labkit import _checks as checks

SHAPES = ("linear", "sqrt", "cosine")


def _decay(shape: str, u: float) -> float:
    if shape == "linear":
        return 1.0 - u
    if shape == "sqrt":
        return 1.0 - math.sqrt(u)
    return 0.5 * (1.0 + math.cos(math.pi * u))


def wsd_schedule(warmup_steps: int, decay_start: int, decay_steps: int, *,
                 shape: str = "linear", final: float = 0.0) -> Callable[[int], float]:
    r"""The warmup-stable-decay multiplier :math:`\eta(t)` of the module docstring (chapter 8).

    ``warmup_steps`` (:math:`W`), ``decay_start`` (:math:`S \ge W`), ``decay_steps``
    (:math:`D`), ``shape`` of the decay (``"linear"``, ``"sqrt"`` or ``"cosine"``) and ``final``
    (:math:`\eta_{\min}`, a fraction of the base rate). Use it as
    ``torch.optim.lr_scheduler.LambdaLR(optimizer, wsd_schedule(...))``.
    """
    checks.integer("warmup_steps", warmup_steps)
    checks.integer("decay_start", decay_start)
    checks.integer("decay_steps", decay_steps)
    if decay_start < warmup_steps:
        raise ValueError(f"decay_start must be >= warmup_steps (the decay starts after the "
                         f"warmup); got decay_start={decay_start}, warmup_steps={warmup_steps}")
    checks.one_of("shape", shape, SHAPES)
    checks.interval("final", final, 0.0, 1.0, "[]")

    def multiplier(t: int) -> float:
        if t < warmup_steps:
            return (t + 1) / warmup_steps
        if t < decay_start:
            return 1.0
        if t < decay_start + decay_steps:
            return final + (1.0 - final) * _decay(shape, (t - decay_start) / decay_steps)
        return final

    return multiplier


def cosine_schedule(total_steps: int, warmup_steps: int = 0, *, final: float = 0.0
                    ) -> Callable[[int], float]:
    r"""Linear warmup over ``warmup_steps``, then a cosine decay to ``final`` at
    ``total_steps`` (chapter 8): :func:`wsd_schedule` with no stable phase and the cosine shape.
    """
    checks.integer("total_steps", total_steps, 1)
    if warmup_steps > total_steps:
        raise ValueError(f"warmup_steps must be <= total_steps; got warmup_steps={warmup_steps}, "
                         f"total_steps={total_steps}")
    return wsd_schedule(warmup_steps, warmup_steps, total_steps - warmup_steps, shape="cosine",
                        final=final)
