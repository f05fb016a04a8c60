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


class TinyTransformer(nn.Module):
    """One pre-norm transformer block on three tokens ``(a, b, =)`` that predicts
    :math:`(a + b) \\bmod p` (chapter 8's notebook ``muon.ipynb`` and the benchmark lab).

    Embeddings of the ``p + 1`` tokens plus learned positions, two-head self-attention, an MLP of
    width ``4 d`` with GELU, and an output layer read from the last token. The hidden matrices
    (attention's projections and the MLP's two layers) are what Muon takes; ``embed``, ``head``
    and the vectors go to AdamW (:func:`labkit.optim.muon.muon_param_groups`).
    """

    def __init__(self, p: int, d: int, heads: int = 2):
        super().__init__()
        self.embed = nn.Embedding(p + 1, d)
        self.pos_embed = nn.Parameter(0.02 * torch.randn(3, d))
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp_in, self.mlp_out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.head = nn.Linear(d, p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.pos_embed
        a = self.norm1(h)
        h = h + self.attn(a, a, a, need_weights=False)[0]
        h = h + self.mlp_out(nn.functional.gelu(self.mlp_in(self.norm2(h))))
        return self.head(h[:, -1])


class SmallCNN(nn.Module):
    """A small convolutional network for 14x14 digits (the benchmark lab): ``depth`` 3x3
    convolutions with ReLU (the first two of stride 2, 14 -> 7 -> 4, the others keep the size),
    then one linear layer on the flattened ``channels * 4 * 4`` features."""

    def __init__(self, channels: int = 8, depth: int = 2, n_classes: int = 10):
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be >= 2 (two strided convolutions); got depth={depth}")
        layers: list[nn.Module] = [nn.Conv2d(1, channels, 3, stride=2, padding=1), nn.ReLU(),
                                   nn.Conv2d(channels, channels, 3, stride=2, padding=1),
                                   nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels * 4 * 4, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))
