r"""Fast training on preloaded tensors, with the same math as the lecture's ``DataLoader`` loop.

:func:`labkit.train.train_loop` walks a ``DataLoader``: every epoch it builds each mini-batch
sample by sample in Python (``dataset[i]`` then ``torch.stack``) and, for torchvision's datasets,
converts every image with ``ToTensor`` again. None of that is optimisation. Here the whole
training set is one tensor ``X`` (and ``y``) that lives on the device, an epoch is one
``torch.randperm``, and a mini-batch is one indexing operation ``X[perm[i:i + B]]``:

.. math:: \mathcal B_t = \{\pi(tB), \dots, \pi(tB + B - 1)\},\qquad
          w_{t+1} = w_t - \eta\, \nabla \frac{1}{|\mathcal B_t|}
          \sum_{i \in \mathcal B_t} \ell(f_{w_t}(x_i), y_i)

with :math:`\pi` a fresh uniform permutation each epoch and the last batch possibly smaller,
exactly what ``DataLoader(shuffle=True)`` feeds the script (chapter 4). Given the same initial
weights and the same batch order the two loops give the same weights (``tests/
test_fast_training.py``); :class:`RandpermSampler` hands a ``DataLoader`` the batch order of
:func:`train_tensors`.

The loops are :func:`labkit.train.train_epoch` and :func:`labkit.train.evaluate` on these
batches: losses stay on the device and are read back at the lines that print and at the
divergence checks (every batch on the CPU, every ``check_every`` batches on a GPU), so a GPU
waits for the host only there, not at every step. ``precision="bf16"`` runs the forward pass under
``torch.autocast`` in bfloat16 (CPU and CUDA); the weights and the optimiser stay in float32.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
from torch import nn

from labkit import _checks as checks
from labkit.batches import RandpermSampler, epoch_batches, epoch_permutation
from labkit.train import History, LossFn, evaluate, evaluation_report, train_epoch, train_epochs

__all__ = ["PRECISIONS", "RandpermSampler", "autocast_context", "epoch_batches",
           "epoch_permutation", "evaluate_tensors", "train_epoch_tensors", "train_tensors"]

PRECISIONS = ("fp32", "bf16")


def autocast_context(device: torch.device, precision: str = "fp32"):
    """``torch.autocast`` in bfloat16 for ``precision="bf16"``, a no-op for ``"fp32"`` (labs)."""
    if checks.one_of("precision", precision, PRECISIONS) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def train_epoch_tensors(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    history: History | None = None,
    print_every: int | None = 100,
    precision: str = "fp32",
    check_every: int | None = None,
) -> History:
    """One epoch of :func:`labkit.train.train_loop`, on preloaded tensors (chapter 4, the labs).

    Same steps (predict, loss, backward, step, zero the gradients), same log (each batch's loss
    against the running count of samples seen), same printed line every ``print_every`` batches,
    and the same stop on a NaN or infinite loss: both run :func:`labkit.train.train_epoch`.
    With ``check_every=1`` (the default on the CPU) the check happens before the step, as in
    ``train_loop``; with ``check_every=k`` it happens every ``k`` batches, so the weights may have
    taken up to ``k - 1`` steps past the first bad loss, while the history still ends at that
    loss.
    """
    checks.preloaded(X, y)
    history = History() if history is None else history
    if check_every is None:  # read the losses back every batch on a CPU, every 100 on a GPU
        check_every = 1 if X.device.type == "cpu" else 100
    train_epoch(epoch_batches(X, y, batch_size, generator), model, loss_fn, optimizer, [history],
                len(X), print_every, check_every, autocast_context(X.device, precision))
    return history


def evaluate_tensors(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    batch_size: int = 1000,
    precision: str = "fp32",
    verbose: bool = True,
) -> tuple[float, float]:
    """:func:`labkit.train.test_loop` on preloaded tensors: average loss and accuracy (the labs).

    The average loss is the mean over batches of ``batch_size`` of the batch-mean loss, as in
    the lecture's script; the result is read back once, at the end.
    """
    checks.preloaded(X, y)
    with autocast_context(X.device, precision):
        (loss,), (accuracy,) = evaluate(epoch_batches(X, y, batch_size, shuffle=False), model,
                                        loss_fn)
    if verbose:
        print(evaluation_report(loss, accuracy))
    return loss, accuracy


def train_tensors(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    epochs: int = 1,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    test_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    print_every: int | None = 100,
    precision: str = "fp32",
    check_every: int | None = None,
    label: str = "",
    max_loss: float = math.inf,
    scheduler=None,
    shuffle: bool = True,
    on_gradients: Callable[[nn.Module], object] | None = None,
    on_step: Callable[[nn.Module], object] | None = None,
) -> History:
    """:func:`labkit.train.fit` on preloaded tensors: ``epochs`` epochs, each with a test pass
    (the labs' Demo & Results trains every run with it).

    ``X``/``y`` (and ``test_data = (X_test, y_test)``) must already be on the model's device
    (see :func:`labkit.data.preload`). Each epoch draws ``torch.randperm(len(X),
    generator=generator)``; the test set is evaluated in batches of ``batch_size``, like the
    script's test ``DataLoader``. Stops at the first NaN or infinite loss, or the first above
    ``max_loss``, and marks the history ``diverged``. ``shuffle=False`` takes the training images
    in their stored order every epoch (the lecture's script). ``scheduler`` (e.g. a
    ``torch.optim.lr_scheduler``) is stepped after every optimizer step; ``on_gradients`` and
    ``on_step`` are :func:`labkit.train.train_epoch`'s hooks (between backward and step: read
    or clip the gradients, chapter 7; after the step). Returns the :class:`labkit.train.History`.
    """
    checks.preloaded(X, y)
    history = History(label=label, max_loss=max_loss)
    if check_every is None:  # read the losses back every batch on a CPU, every 100 on a GPU
        check_every = 1 if X.device.type == "cpu" else 100
    autocast = autocast_context(X.device, precision)

    def train_one() -> None:
        train_epoch(epoch_batches(X, y, batch_size, generator, shuffle), model, loss_fn,
                    optimizer, [history], len(X), print_every, check_every, autocast, scheduler,
                    on_gradients, on_step)

    train_epochs(
        epochs, train_one, [history],
        None if test_data is None else lambda: [[v] for v in evaluate_tensors(
            model, *test_data, loss_fn, batch_size, precision, verbose=bool(print_every))],
        print_every)
    return history
