"""The base of labkit's ``torch.optim`` optimizers (chapters 4-7).

A subclass checks a param group in :meth:`Optimizer.check_group`, once, when the group is added
(with the defaults filled in), and updates a group's parameters by its step function (``sgd_step``,
``heavy_ball_step``, ``adam_step``) in :meth:`Optimizer.step_group`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class Optimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` that checks each param group once and runs the closure
    (the base of labkit's SGD, heavy ball, Adam, L-BFGS, AdaGrad and RMSProp; chapters 4-7)."""

    #: Keys a pickled optimizer of an older torch (or of torch's own class) may lack in its
    #: param groups, with the value they get when it is unpickled.
    group_keys_on_load: dict = {}

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self.group_keys_on_load.items():
                group.setdefault(key, value)

    def states(self, params: list[torch.Tensor],
               buffers: Callable[[torch.Tensor], dict]) -> list[dict]:
        """The state of each of ``params``, made on its first step as PyTorch makes it: ``step``
        (a float32 scalar tensor, the step count) and the tensors ``buffers(p)`` returns."""
        for p in params:
            if not self.state[p]:
                self.state[p].update(step=torch.tensor(0.0, dtype=torch.float32), **buffers(p))
        return [self.state[p] for p in params]

    def check_group(self, group: dict) -> None:
        """Raise a ``ValueError`` naming the first invalid hyper-parameter of ``group``."""

    def step_group(self, group: dict, params: list[torch.Tensor],
                   grads: list[torch.Tensor]) -> None:
        """Update ``params`` (the group's parameters that have a gradient) in place."""
        raise NotImplementedError

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        self.check_group(self.param_groups[-1])

    @staticmethod
    def evaluate(closure: Callable[[], torch.Tensor] | None) -> torch.Tensor | None:
        """The loss ``closure()`` returns, computed with gradients enabled (``None`` without)."""
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One step for every group; ``closure`` re-evaluates the loss (with gradients) first."""
        loss = self.evaluate(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            self.step_group(group, params, [p.grad for p in params])
        return loss
