"""The models of the course: linear models for the chapters and the lecture's MLP for the labs."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """The lecture's network: ``Flatten``, then 784→512→512→10 with ReLU between the layers.

    It has 669,706 parameters, so its Hessian would have about 4.5e11 entries (chapter 5).
    """

    def __init__(self, in_features: int = 28 * 28, hidden: int = 512, n_classes: int = 10):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_relu_stack(self.flatten(x))


def count_parameters(model: nn.Module) -> int:
    """The number of trainable scalars in ``model``.

    669,706 for the lecture's :class:`MLP`: chapter 1 counts the cost of one evaluation of the
    risk with it, chapter 5 the size of its Hessian.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
