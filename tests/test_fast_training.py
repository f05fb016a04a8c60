"""labkit.fast and labkit.sweep: the fast loops compute what the lecture's DataLoader loop does.

* ``train_tensors`` (preloaded tensors, one ``randperm`` per epoch) against ``labkit.train.fit``
  over a ``DataLoader`` fed the same batch order: same losses, same weights, bit for bit.
* ``sweep_mlp`` (K runs as one batched model) against K sequential runs, in float64.
* divergence: stopped and marked, never a crash; bf16 autocast runs and learns.
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from labkit.batches import epoch_batches
from labkit.data import digits5k
from labkit.fast import (
    RandpermSampler,
    epoch_permutation,
    evaluate_tensors,
    train_epoch_tensors,
    train_tensors,
)
from labkit.models import MLP
from labkit.runs import make_torch_optimizer
from labkit.sweep import StackedMLP, SweepConfig, sweep_mlp
from labkit.train import fit
from labkit.train import test_loop as script_test_loop  # not named test_*: pytest collects those

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def digits():
    """480 training and 200 test digits: enough to train, small enough to be quick."""
    X, y = digits5k(train=True).tensors
    Xt, yt = digits5k(train=False).tensors
    return X[:480], y[:480], Xt[:200], yt[:200]


def _optimizer(name, params, lr, momentum=0.0):
    """torch's for-loop SGD or Adam by name (the factory's fused kernels are another code path)."""
    return make_torch_optimizer(name, params, lr, momentum, fused=False)


@pytest.mark.parametrize("name,lr,momentum", [("SGD", 0.05, 0.9), ("Adam", 1e-3, 0.0)])
def test_train_tensors_equals_the_dataloader_loop(digits, name, lr, momentum):
    """Same initial weights and batch order: the same weights after every step, bit for bit."""
    X, y, Xt, yt = digits
    torch.manual_seed(1)
    model_loader = MLP()
    model_fast = copy.deepcopy(model_loader)
    loader = DataLoader(TensorDataset(X, y), batch_size=64,
                        sampler=RandpermSampler(len(X), torch.Generator().manual_seed(7)))
    test_loader = DataLoader(TensorDataset(Xt, yt), batch_size=64)
    ref = fit(model_loader, loader, test_loader, F.cross_entropy,
              _optimizer(name, model_loader.parameters(), lr, momentum), epochs=2,
              print_every=None)
    got = train_tensors(model_fast, X, y, F.cross_entropy,
                        _optimizer(name, model_fast.parameters(), lr, momentum), epochs=2,
                        batch_size=64, generator=torch.Generator().manual_seed(7),
                        test_data=(Xt, yt), print_every=None)
    assert len(got.loss) == 2 * math.ceil(480 / 64)
    assert got.samples == ref.samples and got.samples[-1] == 960
    assert got.loss == ref.loss
    assert got.test_loss == ref.test_loss and got.test_accuracy == ref.test_accuracy
    for a, b in zip(model_loader.parameters(), model_fast.parameters()):
        assert torch.equal(a, b)


def test_float64_losses_are_logged_at_full_precision(digits):
    X, y, _, _ = (t.double() if t.is_floating_point() else t for t in digits)
    torch.manual_seed(0)
    model_loader = MLP(hidden=64).double()
    model_fast = copy.deepcopy(model_loader)
    loader = DataLoader(TensorDataset(X, y), batch_size=100,
                        sampler=RandpermSampler(len(X), torch.Generator().manual_seed(2)))
    ref = fit(model_loader, loader, None, F.cross_entropy,
              torch.optim.SGD(model_loader.parameters(), lr=0.1), print_every=None)
    got = train_tensors(model_fast, X, y, F.cross_entropy,
                        torch.optim.SGD(model_fast.parameters(), lr=0.1), batch_size=100,
                        generator=torch.Generator().manual_seed(2), print_every=None)
    assert got.loss == ref.loss
    assert any(v != float(np.float32(v)) for v in got.loss)  # not rounded to float32


def test_a_different_seed_gives_a_different_order(digits):
    X, y, _, _ = digits
    runs = []
    for s in (0, 1):
        torch.manual_seed(0)
        m = MLP()
        runs.append(train_tensors(m, X, y, F.cross_entropy, torch.optim.SGD(m.parameters(), 0.1),
                                  generator=torch.Generator().manual_seed(s), print_every=None))
    assert runs[0].loss != runs[1].loss


def test_epoch_permutation_is_a_permutation():
    perm = epoch_permutation(1000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(perm.sort().values, torch.arange(1000))
    assert not torch.equal(perm, torch.arange(1000))


def test_printed_lines_follow_the_script(digits, capsys):
    X, y, Xt, yt = digits
    m = MLP()
    train_tensors(m, X, y, F.cross_entropy, torch.optim.SGD(m.parameters(), 0.01),
                  batch_size=16, test_data=(Xt, yt), print_every=20)
    out = capsys.readouterr().out
    assert "Epoch 1\n" in out
    assert "loss: " in out and "[   16/  480]" in out and "[  336/  480]" in out
    assert "Accuracy:" in out and "Avg loss:" in out


def test_evaluate_tensors_equals_test_loop(digits):
    _, _, Xt, yt = digits
    torch.manual_seed(3)
    m = MLP()
    ref = script_test_loop(DataLoader(TensorDataset(Xt, yt), batch_size=64), m, F.cross_entropy,
                    verbose=False)
    got = evaluate_tensors(m, Xt, yt, F.cross_entropy, batch_size=64, verbose=False)
    assert got[1] == ref[1]
    assert got[0] == pytest.approx(ref[0], rel=1e-6)


@pytest.mark.parametrize("check_every", [1, 4])
def test_divergence_is_stopped_and_marked_like_train_loop(digits, check_every):
    X, y, _, _ = digits
    torch.manual_seed(0)
    m_ref = MLP()
    m_fast = copy.deepcopy(m_ref)
    loader = DataLoader(TensorDataset(X, y), batch_size=32,
                        sampler=RandpermSampler(len(X), torch.Generator().manual_seed(0)))
    ref = fit(m_ref, loader, None, F.cross_entropy,
              torch.optim.SGD(m_ref.parameters(), lr=1e4, momentum=0.9), epochs=3,
              print_every=None)
    got = train_tensors(m_fast, X, y, F.cross_entropy,
                        torch.optim.SGD(m_fast.parameters(), lr=1e4, momentum=0.9), epochs=3,
                        batch_size=32,
                        generator=torch.Generator().manual_seed(0), print_every=None,
                        check_every=check_every)
    assert ref.diverged and got.diverged
    assert not math.isfinite(got.loss[-1]) and all(map(math.isfinite, got.loss[:-1]))
    assert got.samples == ref.samples
    np.testing.assert_array_equal(got.loss, ref.loss)
    if check_every == 1:  # the check comes before the step, exactly as in train_loop
        for a, b in zip(m_ref.parameters(), m_fast.parameters()):
            assert torch.equal(a, b)


def test_bf16_autocast_runs_and_learns(digits):
    X, y, Xt, yt = digits
    accuracies = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        m = MLP()
        h = train_tensors(m, X, y, F.cross_entropy,
                          make_torch_optimizer("SGD", m.parameters(), 0.1),
                          epochs=3, batch_size=32, generator=torch.Generator().manual_seed(0),
                          test_data=(Xt, yt), print_every=None, precision=precision)
        assert not h.diverged and all(map(math.isfinite, h.loss))
        assert np.mean(h.loss[-5:]) < 0.8 * np.mean(h.loss[:5])
        accuracies[precision] = h.test_accuracy[-1]
        assert all(p.dtype == torch.float32 for p in m.parameters())
    assert accuracies["bf16"] > 0.5
    assert abs(accuracies["bf16"] - accuracies["fp32"]) < 0.1


def test_bad_arguments_are_named(digits):
    X, y, _, _ = digits
    m = MLP()
    opt = torch.optim.SGD(m.parameters(), 0.1)
    with pytest.raises(ValueError, match="precision"):
        train_tensors(m, X, y, F.cross_entropy, opt, precision="fp16")
    with pytest.raises(ValueError, match="batch_size"):
        train_tensors(m, X, y, F.cross_entropy, opt, batch_size=0)
    with pytest.raises(ValueError, match="same positive number"):
        train_epoch_tensors(m, X, y[:10], F.cross_entropy, opt)
    with pytest.raises(TypeError, match="preload"):
        train_tensors(m, X.numpy(), y, F.cross_entropy, opt)
    with pytest.raises(ValueError, match="Adam takes no momentum"):
        make_torch_optimizer("Adam", m.parameters(), 1e-3, momentum=0.9)
    with pytest.raises(ValueError, match="'SGD' or 'Adam'"):
        make_torch_optimizer("RMSprop", m.parameters(), 1e-3)


def test_the_factory_builds_torchs_optimizers_by_name():
    params = [torch.zeros(2, requires_grad=True)]
    sgd = make_torch_optimizer("sgd", params, 0.1, 0.9)
    assert type(sgd) is torch.optim.SGD and sgd.defaults["momentum"] == 0.9
    assert sgd.defaults["fused"]  # torch's fused kernel on a CPU tensor
    adam = make_torch_optimizer("ADAM", params, 1e-3, fused=False)
    assert type(adam) is torch.optim.Adam and adam.defaults["lr"] == 1e-3
    assert not adam.defaults["fused"]


def test_training_does_not_need_matplotlib():
    code = "import sys, labkit.fast, labkit.sweep, labkit.train; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# labkit.sweep
# ---------------------------------------------------------------------------------------------

def _sequential(model, config, X, y, test_data, epochs, batch_size, seed):
    m = copy.deepcopy(model)
    opt = _optimizer(config.optimizer, m.parameters(), config.lr, config.momentum)
    h = train_tensors(m, X, y, F.cross_entropy, opt, epochs=epochs, batch_size=batch_size,
                      generator=torch.Generator().manual_seed(seed), test_data=test_data,
                      print_every=None)
    return m, h


def _leaky_net() -> nn.Module:
    """The lecture's MLP, narrower (float64 is slow) and with leaky ReLUs (no unit dies, so a
    too large learning rate reliably drives the loss to infinity)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.LeakyReLU(0.1),
                         nn.Linear(128, 128), nn.LeakyReLU(0.1), nn.Linear(128, 10))


@pytest.mark.parametrize("configs", [
    # 2 learning rates x 2 momenta, and a run that diverges
    [SweepConfig("SGD", lr, mt) for lr in (0.1, 0.01) for mt in (0.0, 0.9)]
    + [SweepConfig("SGD", 100.0, 0.0)],
    [SweepConfig("Adam", lr) for lr in (1e-2, 1e-3, 1e-4)],
], ids=["sgd-lr-x-momentum", "adam-lr"])
def test_sweep_equals_sequential_runs_in_float64(digits, configs):
    X, y, Xt, yt = (t.double() if t.is_floating_point() else t for t in digits)
    model = _leaky_net().double()
    before = copy.deepcopy(model.state_dict())
    result = sweep_mlp(model, configs, X, y, epochs=2, batch_size=50,
                       generator=torch.Generator().manual_seed(5), test_data=(Xt, yt),
                       check_every=7)
    for key, value in model.state_dict().items():  # the model itself is left alone
        assert torch.equal(value, before[key])
    assert any(h.diverged for h in result.histories) == (configs[0].optimizer == "SGD")
    for k, config in enumerate(configs):
        m, ref = _sequential(model, config, X, y, (Xt, yt), 2, 50, 5)
        got = result.histories[k]
        assert got.label == config.title(50)
        assert got.diverged == ref.diverged
        assert got.samples == ref.samples
        np.testing.assert_allclose(got.loss, ref.loss, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got.test_loss, ref.test_loss, rtol=1e-9)
        assert got.test_accuracy == ref.test_accuracy
        if not ref.diverged:
            swept = result.load_run(k, _leaky_net().double())
            for a, b in zip(m.parameters(), swept.parameters()):
                torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_sweep_of_diverging_runs_stops_early(digits):
    X, y, _, _ = digits
    torch.manual_seed(0)
    result = sweep_mlp(MLP(), [SweepConfig("SGD", 1e4), SweepConfig("SGD", 1e4, 0.9)], X, y,
                       epochs=5, batch_size=32, check_every=2)
    assert all(h.diverged for h in result.histories)
    assert all(h.samples_seen < 480 for h in result.histories)


def test_sweep_in_bf16_runs(digits):
    X, y, Xt, yt = digits
    configs = [SweepConfig("SGD", 0.05, 0.9), SweepConfig("SGD", 0.02, 0.9)]
    torch.manual_seed(0)
    model = MLP()
    results = {precision: sweep_mlp(model, configs, X, y, epochs=2, batch_size=32,
                                    test_data=(Xt, yt), precision=precision)
               for precision in ("fp32", "bf16")}
    for h32, h16 in zip(results["fp32"].histories, results["bf16"].histories):
        assert not h16.diverged and h16.test_accuracy[-1] > 0.3
        assert h16.loss[-1] < 0.95 * h16.loss[0]
        assert abs(h16.test_accuracy[-1] - h32.test_accuracy[-1]) <= 0.05


def test_stacked_mlp_computes_the_model_and_refuses_others():
    torch.manual_seed(0)
    model = MLP()
    stacked = StackedMLP(model, 3)
    x = torch.rand(5, 1, 28, 28)
    out = stacked(x)
    assert out.shape == (3, 5, 10)
    for k in range(3):
        torch.testing.assert_close(out[k], model(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="Conv2d"):
        StackedMLP(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(1352, 10)), 2)

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)

        def forward(self, x):
            return x + self.a(x)

    with pytest.raises(ValueError, match="cannot stack"):
        StackedMLP(Residual(), 2)


def test_sweep_configs_are_checked(digits):
    X, y, _, _ = digits
    with pytest.raises(ValueError, match="one optimizer"):
        sweep_mlp(MLP(), [SweepConfig("SGD", 0.1), SweepConfig("Adam", 1e-3)], X, y)
    with pytest.raises(ValueError, match="lr must be positive"):
        SweepConfig("SGD", -1.0)
    with pytest.raises(ValueError, match="momentum"):
        SweepConfig("SGD", 0.1, momentum=1.5)
    with pytest.raises(ValueError, match="configs is empty"):
        sweep_mlp(MLP(), [], X, y)
    assert SweepConfig("sgd", 0.001, 0.5).title(16) == "Optimizer-SGD lr-0.001 mt-0.5 bs-16"


def test_a_scheduler_steps_after_every_optimizer_step(digits):
    """train_tensors(scheduler=...) is the loop with ``scheduler.step()`` after each step: the
    same weights as that loop written out, and not those of a constant rate."""
    X, y, _, _ = digits
    weights = {}
    for how in ("driver", "by hand", "constant"):
        torch.manual_seed(0)
        model = MLP()
        opt = _optimizer("SGD", model.parameters(), 0.1, 0.9)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 / (1 + t))
        if how == "driver":
            train_tensors(model, X, y, F.cross_entropy, opt, epochs=2, batch_size=64,
                          generator=torch.Generator().manual_seed(1), print_every=None,
                          scheduler=sched)
        else:
            g = torch.Generator().manual_seed(1)
            for _ in range(2):
                for Xb, yb in epoch_batches(X, y, 64, g):
                    F.cross_entropy(model(Xb), yb).backward()
                    opt.step()
                    opt.zero_grad()
                    if how == "by hand":
                        sched.step()
        weights[how] = [p.detach().clone() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(weights["driver"], weights["by hand"]))
    assert not all(torch.equal(a, b) for a, b in zip(weights["driver"], weights["constant"]))


def test_train_tensors_without_shuffling_is_the_lectures_loop(digits):
    """shuffle=False: every epoch in the stored order, as DataLoader(shuffle=False) feeds the
    lecture's script; the same weights as that loop, and not those of a shuffled run."""
    X, y, _, _ = digits
    runs = {}
    for how in ("tensors", "dataloader", "shuffled"):
        torch.manual_seed(0)
        model = MLP()
        opt = _optimizer("SGD", model.parameters(), 0.05, 0.9)
        if how == "dataloader":
            fit(model, DataLoader(TensorDataset(X, y), batch_size=64, shuffle=False), None,
                F.cross_entropy, opt, epochs=2, print_every=None)
        else:
            train_tensors(model, X, y, F.cross_entropy, opt, epochs=2, batch_size=64,
                          generator=torch.Generator().manual_seed(1), print_every=None,
                          shuffle=how == "shuffled")
        runs[how] = [p.detach().clone() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(runs["tensors"], runs["dataloader"]))
    assert not all(torch.equal(a, b) for a, b in zip(runs["tensors"], runs["shuffled"]))
