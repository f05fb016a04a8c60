"""labkit.graphs: an epoch whose full batches replay one captured step computes what
labkit.sweep's eager epoch computes.

On the CPU the captured epoch's steps run eagerly (the same static index rows, device counter and
loss buffer that a CUDA graph replays): weights and histories must equal ``sweep_mlp``'s bit for
bit. On a CUDA machine the replayed graph itself is compared with the eager sweep.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from labkit.data import digits5k
from labkit.graphs import CapturedEpoch
from labkit.optim.stacked import StackedSGD
from labkit.sweep import StackedMLP, SweepConfig, stacked_cross_entropy, sweep_mlp
from labkit.train import History

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def digits():
    X, y = digits5k(train=True).tensors
    Xt, yt = digits5k(train=False).tensors
    return X[:250].double(), y[:250], Xt[:100].double(), yt[:100]


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.LeakyReLU(0.1),
                         nn.Linear(64, 10)).double()


CONFIGS = {
    "sgd-momentum-and-a-diverging-run": [SweepConfig("SGD", 0.1, 0.9), SweepConfig("SGD", 0.05),
                                         SweepConfig("SGD", 1e4)],
    "adam": [SweepConfig("Adam", 1e-2), SweepConfig("Adam", 1e-3)],
    "one-run": [SweepConfig("Adam", 3e-3)],
}


@pytest.mark.parametrize("batch_size", [32, 50], ids=["short-last-batch", "no-short-batch"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_captured_steps_equal_the_eager_sweep_bit_for_bit(digits, name, batch_size):
    X, y, Xt, yt = digits
    runs = {}
    for graph in (False, True):
        runs[graph] = sweep_mlp(_net(), CONFIGS[name], X, y, epochs=3, batch_size=batch_size,
                                generator=torch.Generator().manual_seed(3), test_data=(Xt, yt),
                                check_every=4, max_loss=1e6, cuda_graph=graph)
    eager, captured = runs[False], runs[True]
    for a, b in zip(eager.histories, captured.histories):
        assert (a.samples, a.loss, a.diverged) == (b.samples, b.loss, b.diverged)
        assert (a.test_loss, a.test_accuracy) == (b.test_loss, b.test_accuracy)
    assert any(h.diverged for h in eager.histories) == name.endswith("diverging-run")
    for k, history in enumerate(eager.histories):
        if not history.diverged:
            for p, q in zip(eager.model.state_dict_of(k).values(),
                            captured.model.state_dict_of(k).values()):
                assert torch.equal(p, q)


def test_every_batch_of_an_epoch_is_seen_once(digits):
    """The rows of the epoch are its permutation: every sample once, in the permutation's order."""
    X, y, _, _ = digits
    stacked = StackedMLP(_net(), 1)
    epoch = CapturedEpoch(stacked, stacked_cross_entropy,
                          StackedSGD(stacked.parameters(), lr=[1e-300]), X, y, 32,
                          capture=False)
    h = History()
    epoch.run([h], torch.Generator().manual_seed(0), len(X))
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
    assert torch.equal(epoch.rows.flatten(), perm[:7 * 32])
    assert int(epoch.counter) == 7
    assert h.samples == [32 * (t + 1) for t in range(7)] + [250]
    # lr 1e-300 moves no weight (below one ulp): each loss is its batch's at the initial weights
    with torch.no_grad():
        expected = [float(stacked_cross_entropy(stacked(X[idx]), y[idx]))
                    for idx in [*perm[:224].view(7, 32), perm[224:]]]
    assert h.loss == expected


def test_bad_arguments_say_what_to_do(digits):
    X, y, _, _ = digits
    stacked = StackedMLP(_net(), 1)
    sgd = StackedSGD(stacked.parameters(), lr=[0.1])
    with pytest.raises(ValueError, match="capture=False"):
        CapturedEpoch(stacked, stacked_cross_entropy, sgd, X, y, 32, capture=True)
    with pytest.raises(ValueError, match="larger than the 250"):
        CapturedEpoch(stacked, stacked_cross_entropy, sgd, X, y, 251, capture=False)
    with pytest.raises(TypeError, match="state_tensors"):
        CapturedEpoch(stacked, stacked_cross_entropy, torch.optim.SGD(stacked.parameters(), 0.1),
                      X, y, 32, capture=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_replayed_graph_equals_the_eager_sweep_on_cuda(digits, name, precision):
    """The replayed kernels are the eager ones: the same losses and weights, bit for bit."""
    X, y, Xt, yt = (t.float().cuda() if t.is_floating_point() else t.cuda() for t in digits)
    model = copy.deepcopy(_net()).float().cuda()
    runs = [sweep_mlp(model, CONFIGS[name], X, y, epochs=2, batch_size=32,
                      generator=torch.Generator().manual_seed(3), test_data=(Xt, yt),
                      precision=precision, max_loss=1e6, cuda_graph=graph)
            for graph in (False, True)]
    for k, (a, b) in enumerate(zip(runs[0].histories, runs[1].histories)):
        assert (a.samples, a.loss, a.diverged) == (b.samples, b.loss, b.diverged)
        if not a.diverged:
            for p, q in zip(runs[0].model.state_dict_of(k).values(),
                            runs[1].model.state_dict_of(k).values()):
                assert torch.equal(p, q)
