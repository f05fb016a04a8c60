r"""Where mini-batches come from: one permutation per epoch, one indexing per batch (chapter 4).

An epoch of mini-batch SGD visits the training set in a fresh uniformly random order,

.. math:: \mathcal B_t = \{\pi(tB), \dots, \pi(tB + B - 1)\},

with :math:`\pi` one ``torch.randperm`` per epoch and the last batch possibly smaller: what
``DataLoader(shuffle=True)`` feeds the lecture's script. These are the batch sources of every
training loop of the course (:func:`labkit.train.train_epoch` consumes them; :func:`shard_batches`
feeds data-parallel SGD, chapter 9); this module imports
nothing from the rest of labkit but its checks.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from labkit import _checks as checks


class RandpermSampler(Sampler[int]):
    """A ``DataLoader`` sampler that draws one ``torch.randperm(n, generator=generator)`` per epoch
    (the labs: it proves the two loops equal).

    With ``DataLoader(dataset, batch_size, sampler=RandpermSampler(len(dataset), g))`` the
    script's loop sees its mini-batches in the order :func:`labkit.fast.train_tensors` uses with
    a generator seeded like ``g``. (``shuffle=True`` draws the same kind of permutation, but
    consumes the generator a little differently, so the orders differ for the same seed.)
    """

    def __init__(self, n: int, generator: torch.Generator):
        self.n = int(n)
        self.generator = generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        yield from torch.randperm(self.n, generator=self.generator).tolist()


def epoch_permutation(
    n: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """One epoch's batch order (chapter 4): ``torch.randperm(n, generator)`` on ``device``."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(n, generator=generator, device=gen_device)
    return perm.to(device, non_blocking=True)


def epoch_batches(
    X: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The mini-batches of one pass over preloaded tensors (chapter 4, the labs).

    In the order of one :func:`epoch_permutation` (drawn when the pass starts), each batch one
    indexing operation ``X[perm[i:i + B]]``, the last one possibly smaller; in the stored order
    with ``shuffle=False`` (a test set).
    """
    checks.integer("batch_size", batch_size, 1)
    perm = epoch_permutation(len(X), generator, X.device) if shuffle else None
    for start in range(0, len(X), batch_size):
        if perm is None:
            yield X[start:start + batch_size], y[start:start + batch_size]
        else:
            idx = perm[start:start + batch_size]
            yield X[idx], y[idx]


def shard_batches(
    X: torch.Tensor,
    y: torch.Tensor,
    global_batch: int,
    rank: int = 0,
    shards: int = 1,
    generator: torch.Generator | None = None,
    steps: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    r"""Worker ``rank``'s mini-batches of data-parallel SGD over ``shards`` workers (chapter 9).

    Every worker draws the same :func:`epoch_permutation` :math:`\pi` (its ``generator`` seeded
    like the others'); step :math:`t` of an epoch uses the global batch of :math:`B` =
    ``global_batch`` images :math:`\pi(tB), \dots, \pi(tB + B - 1)`, and worker :math:`p` its
    :math:`p`-th slice of :math:`B/P` of them, so the :math:`P` workers together see what one
    process with batch :math:`B` sees. The last incomplete global batch of an epoch is dropped
    (every worker takes the same steps). ``steps`` batches in all, over as many epochs as they
    need (each with a fresh permutation); one epoch when ``None``.
    """
    checks.integer("global_batch", global_batch, 1)
    checks.integer("shards", shards, 1)
    if global_batch % shards:
        raise ValueError(f"global_batch must be a multiple of shards={shards}; got "
                         f"global_batch={global_batch}")
    if not isinstance(rank, int) or not 0 <= rank < shards:
        raise ValueError(f"rank must be an integer in [0, {shards}); got rank={rank!r}")
    per_epoch = len(X) // global_batch
    if per_epoch == 0:
        raise ValueError(f"the global batch {global_batch} exceeds the {len(X)} training images")
    total = per_epoch if steps is None else checks.integer("steps", steps, 0)
    local = global_batch // shards
    taken = 0
    while taken < total:
        perm = epoch_permutation(len(X), generator, X.device)
        for s in range(min(per_epoch, total - taken)):
            start = s * global_batch + rank * local
            idx = perm[start:start + local]
            yield X[idx], y[idx]
        taken += per_epoch
