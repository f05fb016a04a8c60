"""labkit.train: the lecture's loops, logging against samples seen, stopping on divergence."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from labkit import train as lk_train  # noqa: E402
from labkit.models import MLP, count_parameters  # noqa: E402
from labkit.plot import plot_losses, smooth  # noqa: E402
from labkit.runs import run_title  # noqa: E402
from labkit.train import History, fit, train_loop  # noqa: E402


def _blobs(n: int = 300, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.5]])
    y = torch.randint(0, 3, (n,), generator=g)
    x = centers[y] + 0.5 * torch.randn(n, 2, generator=g)
    return TensorDataset(x, y)


def _setup(lr: float = 0.1, seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    return model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=lr)


def test_train_loop_logs_loss_against_samples_seen(capsys):
    model, loss_fn, opt = _setup()
    loader = DataLoader(_blobs(300), batch_size=32)
    history = train_loop(loader, model, loss_fn, opt, print_every=5)
    # 300 samples in batches of 32: nine full batches and one of 12.
    assert history.samples == [32 * (i + 1) for i in range(9)] + [300]
    assert len(history.loss) == 10 and all(math.isfinite(v) for v in history.loss)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("loss: ") and printed[0].endswith("[   32/  300]")
    assert len(printed) == 2  # batches 0 and 5
    history = train_loop(loader, model, loss_fn, opt, history, print_every=None)
    assert history.samples[-1] == 600 and capsys.readouterr().out == ""


def test_training_reduces_the_loss_and_test_loop_measures_accuracy(capsys):
    model, loss_fn, opt = _setup(lr=0.2)
    train = DataLoader(_blobs(600, 1), batch_size=32, shuffle=True)
    test = DataLoader(_blobs(200, 2))
    before, acc_before = lk_train.test_loop(test, model, loss_fn, verbose=False)
    history = fit(model, train, test, loss_fn, opt, epochs=3, print_every=None)
    after, acc_after = history.test_loss[-1], history.test_accuracy[-1]
    assert len(history.test_loss) == 3 and not history.diverged
    assert after < 0.5 * before and acc_after > 0.9 > acc_before
    lk_train.test_loop(test, model, loss_fn)
    assert "Accuracy:" in capsys.readouterr().out


def test_test_loop_accuracy_is_the_fraction_correct():
    class Fixed(nn.Module):
        def forward(self, x):
            return x

    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 0.0], [1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 1])
    loss, acc = lk_train.test_loop(DataLoader(TensorDataset(logits, labels), batch_size=2), Fixed(),
                          nn.CrossEntropyLoss(), verbose=False)
    assert acc == pytest.approx(0.5)
    expected = 0.5 * (nn.functional.cross_entropy(logits[:2], labels[:2])
                      + nn.functional.cross_entropy(logits[2:], labels[2:]))
    assert loss == pytest.approx(expected.item())


def test_a_diverging_run_stops_and_is_marked(capsys):
    model, loss_fn, opt = _setup(lr=1e6)
    loader = DataLoader(_blobs(600), batch_size=16)
    history = fit(model, loader, loader, loss_fn, opt, epochs=5, print_every=1)
    assert history.diverged
    assert not math.isfinite(history.loss[-1])
    assert history.samples[-1] < 5 * 600, "the run must stop at the first non-finite loss"
    assert history.test_loss == [], "a diverged run is not evaluated"
    assert "diverged, run stopped" in capsys.readouterr().out


def test_fit_rejects_zero_epochs():
    model, loss_fn, opt = _setup()
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        fit(model, [], None, loss_fn, opt, epochs=0)


def test_the_lecture_mlp():
    model = MLP()
    assert count_parameters(model) == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10 == 669_706
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_run_title_matches_the_lecture():
    assert run_title("SGD", 0.001, 0.5, 16) == "Optimizer-SGD lr-0.001 mt-0.5 bs-16"
    assert run_title("Adam", 10.0, 0.0, 256) == "Optimizer-Adam lr-10 mt-0 bs-256"


def test_plot_losses_draws_each_run_and_marks_divergence():
    ok = History(samples=[10, 20, 30], loss=[2.0, 1.0, 0.5], label="ok")
    bad = History(samples=[10, 20, 30], loss=[2.0, 50.0, float("nan")], diverged=True, label="bad")
    ax = plot_losses([ok, bad], title="t")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["ok", "bad (diverged)"]
    assert ax.get_title() == "t" and ax.get_xlabel() == "samples seen"
    bad_line = ax.get_lines()[1]
    assert list(bad_line.get_ydata()) == [2.0, 50.0], "non-finite losses are not drawn"
    with pytest.raises(ValueError, match="2 labels for 1 runs"):
        plot_losses([ok], labels=["a", "b"])
    plt.close("all")


def test_smooth_is_a_moving_average():
    assert smooth([1, 2, 3, 4], 2).tolist() == [1.5, 2.5, 3.5]
    assert smooth([1, 2], 5).tolist() == [1, 2]


def test_progress_and_evaluation_lines_match_the_lecture():
    assert lk_train.progress_line(2.30123, 64, 60000) == "loss: 2.301230  [   64/60000]"
    assert lk_train.progress_line(float("nan"), 16, 300, diverged=True) == \
        "loss:     nan  [   16/  300]  diverged, run stopped"
    assert lk_train.evaluation_report(0.512345, 0.8234) == \
        "Test Error: \n Accuracy: 82.3%, Avg loss: 0.512345 \n"


def test_each_step_is_the_scripts_five_lines():
    """train_epoch is predict, loss, backward, step, zero the gradients, batch after batch: the
    same weights as those five lines written out (a missing zero_grad adds up gradients)."""
    data = _blobs(96)
    weights = {}
    for how in ("driver", "by hand"):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3)).double()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        batches = [(X.double(), y) for X, y in DataLoader(data, batch_size=32)]
        if how == "driver":
            lk_train.train_epoch(batches, model, nn.functional.cross_entropy, opt,
                                 [History()], print_every=None)
        else:
            for X, y in batches:
                loss = nn.functional.cross_entropy(model(X), y)
                loss.backward()
                opt.step()
                opt.zero_grad()
        weights[how] = [p.detach().clone() for p in model.parameters()]
    for a, b in zip(weights["driver"], weights["by hand"]):
        assert torch.equal(a, b)


def test_hooks_run_between_backward_and_step_and_after_the_step():
    """on_gradients sees this batch's gradients before the step, on_step the new weights after
    it (gradients zeroed), then the scheduler steps: in that order, once per batch."""
    model, loss_fn, _ = _setup()
    events = []

    class Recording(torch.optim.SGD):
        def step(self, closure=None):
            events.append("step")
            return super().step(closure)

    opt = Recording(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)
    sched.step = lambda *a, _step=sched.step: (events.append("scheduler"), _step(*a))
    weight = model[0].weight

    def on_gradients(m):
        assert m is model and weight.grad is not None and weight.grad.abs().sum() > 0
        events.append(("gradients", weight.detach().clone()))

    def on_step(m):
        assert m is model and weight.grad is None, "on_step comes after zero_grad"
        events.append(("step done", weight.detach().clone()))

    batches = list(DataLoader(_blobs(96), batch_size=32))
    lk_train.train_epoch(batches, model, loss_fn, opt, [History()], print_every=None,
                         scheduler=sched, on_gradients=on_gradients, on_step=on_step)
    names = [e if isinstance(e, str) else e[0] for e in events]
    assert names == ["gradients", "step", "step done", "scheduler"] * 3
    for before, after in zip(events[0::4], events[2::4]):
        assert not torch.equal(before[1], after[1]), "on_gradients sees the weights before the step"


def test_on_gradients_clips_like_the_hand_written_loop_bit_for_bit():
    """Chapter 7's loop: gradient norm read and clipped between backward and step. The driver
    with on_gradients gives the same norms and the same weights as the loop written out."""
    data = _blobs(160)
    runs = {}
    for how in ("driver", "by hand"):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3)).double()
        opt = torch.optim.SGD(model.parameters(), lr=2.0, momentum=0.9)
        batches = [(X.double(), y) for X, y in DataLoader(data, batch_size=16)]
        norms = []
        if how == "driver":
            lk_train.train_epoch(
                batches, model, nn.functional.cross_entropy, opt, [History()], print_every=None,
                on_gradients=lambda m, norms=norms: norms.append(
                    nn.utils.clip_grad_norm_(m.parameters(), 0.5).item()))
        else:
            for X, y in batches:
                opt.zero_grad()
                nn.functional.cross_entropy(model(X), y).backward()
                norms.append(nn.utils.clip_grad_norm_(model.parameters(), 0.5).item())
                opt.step()
        runs[how] = norms, [p.detach().clone() for p in model.parameters()]
    (norms, weights), (hand_norms, hand_weights) = runs["driver"], runs["by hand"]
    assert norms == hand_norms
    assert max(norms) > 0.5, "some steps must be clipped"
    for a, b in zip(weights, hand_weights):
        assert torch.equal(a, b)
    # without clipping the weights differ: the test sees whether clipping was applied
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    opt = torch.optim.SGD(model.parameters(), lr=2.0, momentum=0.9)
    lk_train.train_epoch([(X.double(), y) for X, y in DataLoader(data, batch_size=16)], model,
                         nn.functional.cross_entropy, opt, [History()], print_every=None)
    assert not all(torch.equal(a, b) for a, b in zip(model.parameters(), hand_weights))


def test_on_step_changes_the_weights_the_next_batch_sees():
    """on_step may change the weights (local SGD averages them): the next forward pass uses them,
    as in the loop written out."""
    data = _blobs(96)
    weights = {}
    for how in ("driver", "by hand"):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3)).double()
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        batches = [(X.double(), y) for X, y in DataLoader(data, batch_size=32)]

        def shrink(m):
            with torch.no_grad():
                for p in m.parameters():
                    p.mul_(0.5)

        if how == "driver":
            lk_train.train_epoch(batches, model, nn.functional.cross_entropy, opt, [History()],
                                 print_every=None, on_step=shrink)
        else:
            for X, y in batches:
                nn.functional.cross_entropy(model(X), y).backward()
                opt.step()
                opt.zero_grad()
                shrink(model)
        weights[how] = [p.detach().clone() for p in model.parameters()]
    for a, b in zip(weights["driver"], weights["by hand"]):
        assert torch.equal(a, b)
