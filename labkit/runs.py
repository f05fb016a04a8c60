"""The labs' runs: an optimizer by name and its hyper-parameters, the figure title of a run, and
the PyTorch optimizer that trains it: ``make_torch_optimizer("SGD", params, lr, momentum)``.

An :class:`OptimizerConfig` (a name and checked hyper-parameters) becomes ``torch.optim.SGD`` or
``torch.optim.Adam`` here (PyTorch's own, fused where it can: the labs' sequential runs and the
benchmarks), and labkit's stacked counterparts (:mod:`labkit.optim.stacked`) in
:mod:`labkit.sweep`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from labkit import _checks as checks

#: The optimizers the labs know, by lower-case name.
NAMES = {"sgd": "SGD", "adam": "Adam"}


def run_title(optimizer: str, lr: float, momentum: float, batch_size: int) -> str:
    """The lecture's figure title, e.g. ``Optimizer-SGD lr-0.001 mt-0.5 bs-16`` (the labs)."""
    return f"Optimizer-{optimizer} lr-{lr:g} mt-{momentum:g} bs-{batch_size}"


@dataclass(frozen=True)
class OptimizerConfig:
    """An optimizer by name (``"SGD"``/``"Adam"``) and its hyper-parameters: one run of the labs'
    sweeps (chapters 4 and 6). The name is stored as ``"SGD"`` or ``"Adam"``."""

    optimizer: str = "SGD"
    lr: float = 1e-3
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self):
        name = NAMES.get(str(self.optimizer).strip().lower())
        if name is None:
            raise ValueError(f"optimizer name must be 'SGD' or 'Adam', got {self.optimizer!r}")
        object.__setattr__(self, "optimizer", name)
        checks.positive("lr", self.lr)
        checks.interval("momentum", self.momentum, 0.0, 1.0)
        if name == "Adam" and self.momentum:
            raise ValueError(f"Adam takes no momentum (its beta1 plays that role), got "
                             f"{self.momentum!r}")
        object.__setattr__(self, "betas", checks.betas(self.betas))
        checks.at_least("eps", self.eps)

    def title(self, batch_size: int) -> str:
        """The lecture's figure title of this run, e.g. ``Optimizer-SGD lr-0.1 mt-0.9 bs-64``."""
        return run_title(self.optimizer, self.lr, self.momentum, batch_size)


def make_torch_optimizer(
    name: str,
    params,
    lr: float,
    momentum: float = 0.0,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """PyTorch's ``torch.optim.SGD(params, lr, momentum)`` or ``torch.optim.Adam(params, lr)`` by
    name, not labkit's (chapters 4 and 6; the labs).

    ``fused=None`` picks torch's fused kernels on CPU and CUDA tensors, one kernel for all the
    parameters instead of a Python loop over them (on this course's 2-core CPU the for-loop Adam
    is 2–4× slower than SGD at small batches, the fused one is not). Adam has no ``momentum``: a
    non-zero value raises.
    """
    config = OptimizerConfig(name, lr, momentum)
    params = list(params)
    if fused is None:  # torch's fused kernels exist for CPU and CUDA tensors
        tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
        fused = all(t.device.type in ("cpu", "cuda") for t in tensors)
    if config.optimizer == "SGD":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, fused=fused)
    return torch.optim.Adam(params, lr=lr, betas=config.betas, eps=config.eps, fused=fused)
