"""Training and evaluation loops with the lecture's semantics (chapter 4 and the labs).

:func:`train_loop` and :func:`test_loop` behave like the lecture's script: one pass over a
``DataLoader``, ``loss: … [current/size]`` printed every 100 batches, accuracy and average loss
on the test set. On top of that they log the loss against the number of samples seen (the x-axis
of every figure of the course) and stop a run whose loss becomes NaN or infinite, marking it
diverged instead of crashing the notebook. One driver, :func:`train_epoch`, :func:`evaluate` and
:func:`train_epochs`, runs these loops, those on preloaded tensors (:mod:`labkit.fast`) and the
vectorised sweep (:mod:`labkit.sweep`), whose loss is one number per run.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from labkit import _checks as checks

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class History:
    """What a training run leaves behind (chapter 4 and the labs).

    ``samples[i]`` is the number of training samples seen when ``loss[i]`` (the mini-batch loss)
    was measured; ``test_loss``/``test_accuracy`` hold one entry per evaluated epoch. A loss that
    is NaN, infinite or above ``max_loss`` marks the run ``diverged`` (:meth:`blew_up`).
    """

    samples: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    diverged: bool = False
    label: str = ""
    max_loss: float = math.inf

    def blew_up(self, loss: float) -> bool:
        """NaN, infinite or above ``max_loss`` (a bf16 run can blow up and fall back, never NaN)."""
        return not math.isfinite(loss) or loss > self.max_loss

    @property
    def samples_seen(self) -> int:
        return self.samples[-1] if self.samples else 0

    def log(self, samples: int, loss: float) -> None:
        self.samples.append(int(samples))
        self.loss.append(float(loss))


def progress_line(loss: float, current: int, size: int | None, diverged: bool = False) -> str:
    """The lecture's progress line, ``loss: 2.301234  [   64/60000]`` (labs, chapter 4).

    Printed by :func:`train_epoch`, so every loop prints the same thing; a diverged run gets
    ``diverged, run stopped`` appended.
    """
    total = f"{size:>5d}" if isinstance(size, int) else str(size)
    line = f"loss: {loss:>7f}  [{current:>5d}/{total}]"
    return f"{line}  diverged, run stopped" if diverged else line


def evaluation_report(loss: float, accuracy: float) -> str:
    """The lecture's evaluation summary: accuracy in percent and the average loss (labs)."""
    return f"Test Error: \n Accuracy: {(100 * accuracy):>0.1f}%, Avg loss: {loss:>8f} \n"


def log_losses(
    histories: list[History],
    seen0: list[int],
    pending: list[tuple[int, torch.Tensor]],
    size: int | None = None,
    print_every: int | None = 100,
) -> None:
    """Log the losses of ``pending`` batches, read back from the device in one transfer (the labs).

    ``pending`` holds ``(samples of this epoch so far, loss)`` pairs, each loss one number or one
    per run; ``seen0`` the samples each run had seen when the epoch began. A loss that is NaN,
    infinite or above the history's ``max_loss`` marks its run diverged and ends its history.
    """
    if not pending:
        return
    rows = torch.stack([loss for _, loss in pending]).reshape(len(pending), -1)
    for (current, _), row in zip(pending, rows.tolist()):
        for history, seen, value in zip(histories, seen0, row):
            if not history.diverged:
                history.log(seen + current, value)
                history.diverged = history.blew_up(value)
                if history.diverged and print_every:
                    print(progress_line(value, current, size, diverged=True))


def train_epoch(
    batches: Batches,
    model: nn.Module,
    loss_fn: LossFn,
    optimizer,
    histories: list[History],
    size: int | None = None,
    print_every: int | None = 100,
    check_every: int = 1,
    autocast=None,
    scheduler=None,
    on_gradients: Callable[[nn.Module], object] | None = None,
    on_step: Callable[[nn.Module], object] | None = None,
) -> None:
    """One epoch of mini-batch training, the driver of every training loop (chapter 4, the labs).

    For each batch: ``loss = loss_fn(model(X), y)`` (under ``autocast`` when given), backward,
    ``on_gradients(model)``, step, zero the gradients, ``on_step(model)``, then
    ``scheduler.step()`` when a scheduler is given (a learning rate that changes every step:
    warmup, cosine, chapter 7). The two hooks are where a loop does more than the five lines:
    ``on_gradients`` sees the gradients of this batch before the step uses them (read their norm,
    clip them, chapter 7; average them across workers, chapter 9); ``on_step`` sees the new
    weights (probe them, the appendix; average them every H steps in local SGD, chapter 9).
    Their return values are ignored. The loss (one number, or one per
    run of a sweep) goes into each run's history against the samples seen. Every
    ``check_every`` batches the losses are read back: one that is NaN, infinite or above the
    history's ``max_loss`` marks its run diverged and ends its history, and the epoch stops once
    every run has diverged. With
    ``check_every=1`` the check comes before the step, as in the lecture's loop. Every
    ``print_every`` batches the :func:`progress_line` is printed.
    """
    checks.integer("check_every", check_every, 1)
    autocast = contextlib.nullcontext() if autocast is None else autocast
    seen0 = [h.samples_seen for h in histories]
    pending: list[tuple[int, torch.Tensor]] = []  # (samples of this epoch, loss): not read yet

    def check() -> bool:  # log the pending losses; True while some run has not diverged
        log_losses(histories, seen0, pending, size, print_every)
        pending.clear()
        return not all(h.diverged for h in histories)

    model.train()
    current = 0
    for batch, (X, y) in enumerate(batches):
        with autocast:
            loss = loss_fn(model(X), y)
        current += len(X)
        pending.append((current, loss.detach()))
        if check_every == 1 and not check():
            return
        loss.backward(torch.ones_like(loss))
        if on_gradients is not None:
            on_gradients(model)
        optimizer.step()
        optimizer.zero_grad()
        if on_step is not None:
            on_step(model)
        if scheduler is not None:
            scheduler.step()
        if print_every and batch % print_every == 0:
            print(progress_line(loss.item(), current, size))
        if check_every > 1 and (batch + 1) % check_every == 0 and not check():
            return
    check()


@torch.no_grad()
def evaluate(batches: Batches, model: nn.Module, loss_fn: LossFn
             ) -> tuple[list[float], list[float]]:
    """Average loss and accuracy of ``model`` over ``batches``, one of each per run (chapter 4,
    the labs).

    The average loss is the mean over batches of the batch-mean loss, as in the lecture's
    script; the accuracy is the fraction of samples whose largest output is the label. Both are
    summed on the device and read back once, at the end.
    """
    model.eval()
    total = correct = torch.zeros(1)
    num_batches = size = 0
    for X, y in batches:
        pred = model(X)
        loss = loss_fn(pred, y)
        if num_batches == 0:
            wide = torch.float32 if loss.device.type == "mps" else torch.float64  # no f64 on MPS
            total = torch.zeros_like(loss, dtype=wide)
            correct = torch.zeros_like(loss, dtype=torch.long)
        total += loss.to(total.dtype)
        correct += (pred.argmax(-1) == y).sum(-1)
        num_batches += 1
        size += len(X)
    return ([t / max(num_batches, 1) for t in total.reshape(-1).tolist()],
            [c / max(size, 1) for c in correct.reshape(-1).tolist()])


def train_epochs(
    epochs: int,
    train_one: Callable[[], object],
    histories: list[History],
    evaluate_one: Callable[[], tuple] | None = None,
    print_every: int | None = 100,
) -> None:
    """``epochs`` rounds of ``train_one()`` then ``evaluate_one()`` (chapter 4, the labs).

    Stops once every history has diverged; ``evaluate_one()`` returns the test losses and
    accuracies (one per run), appended to the histories that have not diverged.
    """
    checks.integer("epochs", epochs, 1)
    for epoch in range(epochs):
        if print_every:
            print(f"Epoch {epoch + 1}\n-------------------------------")
        train_one()
        if all(h.diverged for h in histories):
            break
        if evaluate_one is not None:
            for history, loss, accuracy in zip(histories, *evaluate_one()):
                if not history.diverged:
                    history.test_loss.append(loss)
                    history.test_accuracy.append(accuracy)


def _to(device: torch.device | str | None, batches: Batches) -> Iterator:
    for X, y in batches:
        if device is not None:
            X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
        yield X, y


def train_loop(
    dataloader: Iterable,
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    history: History | None = None,
    device: torch.device | str | None = None,
    print_every: int | None = 100,
    progress: bool = False,
) -> History:
    """One epoch of mini-batch training: predict, loss, backward, step, zero the gradients.

    The training loop of chapter 4 and the labs, on :func:`train_epoch`.

    Each batch's loss is logged in ``history`` against the running count of samples seen. When a
    loss is NaN or infinite, the epoch stops, ``history.diverged`` is set and the history is
    returned: the caller decides what to show. ``print_every=None`` silences the printed lines;
    ``progress=True`` shows a ``tqdm`` bar.
    """
    history = History() if history is None else history
    size = len(dataloader.dataset) if hasattr(dataloader, "dataset") else None
    batches = tqdm(dataloader, desc="train", leave=False, disable=not progress)
    train_epoch(_to(device, batches), model, loss_fn, optimizer, [history], size, print_every)
    return history


def test_loop(
    dataloader: Iterable,
    model: nn.Module,
    loss_fn: LossFn,
    device: torch.device | str | None = None,
    verbose: bool = True,
) -> tuple[float, float]:
    """Average loss and accuracy (a fraction in [0, 1]) of ``model`` on a whole ``DataLoader``.

    The evaluation of chapter 4 and the labs, on :func:`evaluate`.

    The average loss is the mean over batches of the batch-mean loss, as in the lecture's script.
    """
    (loss,), (accuracy,) = evaluate(_to(device, dataloader), model, loss_fn)
    if verbose:
        print(evaluation_report(loss, accuracy))
    return loss, accuracy


def fit(
    model: nn.Module,
    train_loader: Iterable,
    test_loader: Iterable | None,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    epochs: int = 1,
    device: torch.device | str | None = None,
    print_every: int | None = 100,
    progress: bool = False,
    label: str = "",
) -> History:
    """``epochs`` rounds of :func:`train_loop` then :func:`test_loop`, stopping on divergence.

    A whole run as the labs do it.
    """
    history = History(label=label)
    train_epochs(
        epochs,
        lambda: train_loop(train_loader, model, loss_fn, optimizer, history, device, print_every,
                           progress),
        [history],
        None if test_loader is None else lambda: [[v] for v in test_loop(
            test_loader, model, loss_fn, device, verbose=bool(print_every))],
        print_every)
    return history
