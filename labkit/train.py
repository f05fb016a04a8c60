"""Training and evaluation loops with the lecture's semantics (chapter 4 and the labs).

:func:`train_loop` and :func:`test_loop` behave like the lecture's script: one pass over a
``DataLoader``, ``loss: … [current/size]`` printed every 100 batches, accuracy and average loss
on the test set. On top of that they log the loss against the number of samples seen (the x-axis
of every figure of the course) and stop a run whose loss becomes NaN or infinite, marking it
diverged instead of crashing the notebook.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm


@dataclass
class History:
    """What a training run leaves behind (chapter 4 and the labs).

    ``samples[i]`` is the number of training samples seen when ``loss[i]`` (the mini-batch loss)
    was measured; ``test_loss``/``test_accuracy`` hold one entry per evaluated epoch.
    """

    samples: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    diverged: bool = False
    label: str = ""

    @property
    def samples_seen(self) -> int:
        return self.samples[-1] if self.samples else 0

    def log(self, samples: int, loss: float) -> None:
        self.samples.append(int(samples))
        self.loss.append(float(loss))


def progress_line(loss: float, current: int, size: int | None, diverged: bool = False) -> str:
    """The lecture's progress line, ``loss: 2.301234  [   64/60000]`` (labs, chapter 4).

    Shared by :func:`train_loop` and :func:`labkit.fast.train_epoch_tensors`, so both loops print
    the same thing; a diverged run gets ``diverged, run stopped`` appended.
    """
    total = f"{size:>5d}" if isinstance(size, int) else str(size)
    line = f"loss: {loss:>7f}  [{current:>5d}/{total}]"
    return f"{line}  diverged, run stopped" if diverged else line


def evaluation_report(loss: float, accuracy: float) -> str:
    """The lecture's evaluation summary: accuracy in percent and the average loss (labs)."""
    return f"Test Error: \n Accuracy: {(100 * accuracy):>0.1f}%, Avg loss: {loss:>8f} \n"


def train_loop(
    dataloader: Iterable,
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    history: History | None = None,
    device: torch.device | str | None = None,
    print_every: int | None = 100,
    progress: bool = False,
) -> History:
    """One epoch of mini-batch training: predict, loss, backward, step, zero the gradients.

    The training loop of chapter 4 and the labs.

    Each batch's loss is logged in ``history`` against the running count of samples seen. When a
    loss is NaN or infinite, the epoch stops, ``history.diverged`` is set and the history is
    returned: the caller decides what to show. ``print_every=None`` silences the printed lines;
    ``progress=True`` shows a ``tqdm`` bar.
    """
    history = History() if history is None else history
    size = len(dataloader.dataset) if hasattr(dataloader, "dataset") else None
    seen = history.samples_seen
    current = 0
    model.train()
    batches = tqdm(dataloader, desc="train", leave=False, disable=not progress)
    for batch, (X, y) in enumerate(batches):
        if device is not None:
            X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
        pred = model(X)
        loss = loss_fn(pred, y)
        loss_value = loss.item()
        current += len(X)
        seen += len(X)
        history.log(seen, loss_value)
        if not math.isfinite(loss_value):
            history.diverged = True
            if print_every:
                print(progress_line(loss_value, current, size, diverged=True))
            break
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if print_every and batch % print_every == 0:
            print(progress_line(loss_value, current, size))
    return history


@torch.no_grad()
def test_loop(
    dataloader: Iterable,
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device | str | None = None,
    verbose: bool = True,
) -> tuple[float, float]:
    """Average loss and accuracy (a fraction in [0, 1]) of ``model`` on a whole ``DataLoader``.

    The evaluation of chapter 4 and the labs.

    The average loss is the mean over batches of the batch-mean loss, as in the lecture's script.
    """
    model.eval()
    num_batches, size = 0, 0
    test_loss, correct = 0.0, 0
    for X, y in dataloader:
        if device is not None:
            X, y = X.to(device), y.to(device)
        pred = model(X)
        test_loss += loss_fn(pred, y).item()
        correct += (pred.argmax(1) == y).sum().item()
        num_batches += 1
        size += len(X)
    test_loss /= max(num_batches, 1)
    accuracy = correct / max(size, 1)
    if verbose:
        print(evaluation_report(test_loss, accuracy))
    return test_loss, accuracy


def fit(
    model: nn.Module,
    train_loader: Iterable,
    test_loader: Iterable | None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
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
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    history = History(label=label)
    for epoch in range(epochs):
        if print_every:
            print(f"Epoch {epoch + 1}\n-------------------------------")
        train_loop(train_loader, model, loss_fn, optimizer, history, device, print_every, progress)
        if history.diverged:
            break
        if test_loader is not None:
            loss, acc = test_loop(test_loader, model, loss_fn, device, verbose=bool(print_every))
            history.test_loss.append(loss)
            history.test_accuracy.append(acc)
    return history
