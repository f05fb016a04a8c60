"""labkit.batches: the batch sources of every training loop (chapter 4; shards, chapter 9)."""

from __future__ import annotations

import pytest
import torch

from labkit.batches import epoch_batches, shard_batches


def _data(n: int = 50):
    X = torch.arange(n, dtype=torch.float64).reshape(n, 1)
    return X, torch.arange(n)


def test_shards_of_one_permutation_make_the_global_batch():
    """P workers with generators seeded alike each take their slice of the same global batch:
    concatenated in rank order they are the single process's batch, step after step."""
    X, y = _data()
    whole = list(shard_batches(X, y, 12, generator=torch.Generator().manual_seed(3), steps=9))
    parts = [list(shard_batches(X, y, 12, rank, 3, torch.Generator().manual_seed(3), steps=9))
             for rank in range(3)]
    assert len(whole) == 9 and all(len(xb) == 12 for xb, _ in whole)
    for t, (xb, yb) in enumerate(whole):
        assert torch.equal(torch.cat([parts[r][t][1] for r in range(3)]), yb)
        assert torch.equal(torch.cat([parts[r][t][0] for r in range(3)]), xb)


def test_each_epoch_is_one_permutation_without_its_incomplete_last_batch():
    """50 images in global batches of 12: 4 steps an epoch (2 images left out), each epoch a fresh
    torch.randperm of the same generator, as the hand-written loop of chapter 9 drew them."""
    X, y = _data()
    batches = [yb for _, yb in shard_batches(X, y, 12, generator=torch.Generator().manual_seed(0),
                                             steps=10)]
    g = torch.Generator().manual_seed(0)
    expected = []
    for _ in range(3):
        order = torch.randperm(50, generator=g)
        expected += [order[s * 12:(s + 1) * 12] for s in range(4)]
    assert len(batches) == 10
    for got, want in zip(batches, expected[:10]):
        assert torch.equal(got, want)
    for epoch in range(2):  # no image twice within an epoch
        assert len(set(torch.cat(batches[4 * epoch:4 * epoch + 4]).tolist())) == 48
    one_epoch = list(shard_batches(X, y, 12, generator=torch.Generator().manual_seed(0)))
    assert len(one_epoch) == 4
    # epoch_batches keeps the last, smaller batch: same first permutation, one batch more
    first = [yb for _, yb in epoch_batches(X, y, 12, torch.Generator().manual_seed(0))]
    assert len(first) == 5 and len(first[-1]) == 2
    assert all(torch.equal(a, b) for a, b in zip(first, batches[:4]))


def test_shard_batches_rejects_bad_arguments():
    X, y = _data()
    with pytest.raises(ValueError, match="multiple of shards"):
        next(shard_batches(X, y, 10, 0, 3))
    with pytest.raises(ValueError, match="rank must be"):
        next(shard_batches(X, y, 12, 3, 3))
    with pytest.raises(ValueError, match="exceeds the 50 training images"):
        next(shard_batches(X, y, 64))
