"""Record the path of any optimizer on a 2-D test function, for the contour figures (ch. 3-6)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from labkit import _checks as checks

Objective = Callable[[torch.Tensor], torch.Tensor]


def record_trajectory(
    make_optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    f: Objective,
    w0: torch.Tensor | Sequence[float],
    steps: int,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Run ``steps`` optimizer steps on ``f`` from ``w0``; the iterates, ``(steps+1, 2)``.

    Used for the contour figures of chapters 3-6.

    ``make_optimizer`` receives ``[w]`` (one tensor of shape ``(2,)``) and returns any
    ``torch.optim.Optimizer``, labkit's or PyTorch's, e.g. ``lambda p: torch.optim.SGD(p,
    lr=0.1)``. Each step is taken as ``optimizer.step(closure)``, so optimizers that need a
    closure (L-BFGS, Nesterov's look-ahead) work too. If the iterate stops being finite the run
    ends and the remaining rows are ``nan``: a diverging run still gives a full-size array.
    """
    checks.integer("steps", steps)
    w = torch.as_tensor(w0, dtype=dtype).detach().clone()
    if w.shape != (2,):
        raise ValueError(f"w0 must have shape (2,); got {tuple(w.shape)}")
    w.requires_grad_(True)
    optimizer = make_optimizer([w])

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = f(w)
        loss.backward()
        return loss

    trajectory = torch.full((steps + 1, 2), float("nan"), dtype=dtype)
    trajectory[0] = w.detach()
    for t in range(1, steps + 1):
        optimizer.step(closure)
        if not torch.isfinite(w).all():
            break
        trajectory[t] = w.detach()
    return trajectory


def losses_along(f: Objective, trajectory: torch.Tensor) -> torch.Tensor:
    """The values ``f(w_t)`` along a trajectory of shape ``(T, 2)`` (chapters 3-6).

    ``nan`` rows (a diverged run) give ``nan``.
    """
    if trajectory.dim() != 2 or trajectory.shape[1] != 2:
        raise ValueError(f"trajectory must have shape (T, 2); got {tuple(trajectory.shape)}")
    with torch.no_grad():
        return f(trajectory)


__all__ = ["losses_along", "record_trajectory"]
