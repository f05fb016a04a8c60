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

Losses are written into a tensor on the device and read back at the lines that print and at the
divergence checks (every batch on the CPU, every ``check_every`` batches on a GPU), so a GPU
waits for the host only there, not at every step. ``precision="bf16"`` runs the forward pass under
``torch.autocast`` in bfloat16 (CPU and CUDA); the weights and the optimiser stay in float32.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.utils.data import Sampler

from labkit.train import History, evaluation_report, progress_line

PRECISIONS = ("fp32", "bf16")


class RandpermSampler(Sampler[int]):
    """A ``DataLoader`` sampler that draws one ``torch.randperm(n, generator=generator)`` per epoch
    (the labs: it proves the two loops equal).

    With ``DataLoader(dataset, batch_size, sampler=RandpermSampler(len(dataset), g))`` the script's
    loop sees its mini-batches in the order :func:`train_tensors` uses with a generator seeded like
    ``g``. (``shuffle=True`` draws the same kind of permutation, but consumes the generator a
    little differently, so the orders differ for the same seed.)
    """

    def __init__(self, n: int, generator: torch.Generator):
        self.n = int(n)
        self.generator = generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        yield from torch.randperm(self.n, generator=self.generator).tolist()


def autocast_context(device: torch.device, precision: str = "fp32"):
    """``torch.autocast`` in bfloat16 for ``precision="bf16"``, a no-op for ``"fp32"`` (labs)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def epoch_permutation(
    n: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """One epoch's batch order (chapter 4): ``torch.randperm(n, generator)`` on ``device``."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(n, generator=generator, device=gen_device)
    return perm.to(device, non_blocking=True)


def accumulator_dtype(device: torch.device) -> torch.dtype:
    """float64 for logged losses (as precise as ``test_loop``'s floats), float32 on MPS (labs)."""
    return torch.float32 if device.type == "mps" else torch.float64


def default_check_every(device: torch.device) -> int:
    """How often the labs' loop reads the losses back: every batch on a CPU, every 100 on a GPU."""
    return 1 if device.type == "cpu" else 100


def _check_inputs(X: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int) -> None:
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"X and y must be tensors (use labkit.data.preload), got "
                        f"{type(X).__name__} and {type(y).__name__}")
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"X and y must hold the same positive number of samples, got "
                         f"{len(X)} and {len(y)}")
    if X.device != y.device:
        raise ValueError(f"X and y must be on one device, got {X.device} and {y.device}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def train_epoch_tensors(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
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
    and the same stop on a NaN or infinite loss. With ``check_every=1`` (the default on the CPU)
    the check happens before the step, as in ``train_loop``; with ``check_every=k`` it happens
    every ``k`` batches, so the weights may have taken up to ``k - 1`` steps past the first bad
    loss, while the history still ends at that loss.
    """
    _check_inputs(X, y, 1, batch_size)
    history = History() if history is None else history
    check_every = default_check_every(X.device) if check_every is None else int(check_every)
    if check_every < 1:
        raise ValueError(f"check_every must be a positive integer, got {check_every}")
    n = len(X)
    n_batches = math.ceil(n / batch_size)
    perm = epoch_permutation(n, generator, X.device)
    losses = torch.empty(n_batches, device=X.device, dtype=accumulator_dtype(X.device))
    seen0 = history.samples_seen
    ends = [min((b + 1) * batch_size, n) for b in range(n_batches)]
    checked = 0  # losses[:checked] are known to be finite and logged

    def flush(upto: int) -> bool:
        """Log losses[checked:upto]; stop at the first non-finite one. True while all finite."""
        nonlocal checked
        values = losses[checked:upto].tolist()
        for b, value in zip(range(checked, upto), values):
            history.log(seen0 + ends[b], value)
            if not math.isfinite(value):
                history.diverged = True
                if print_every:
                    print(progress_line(value, ends[b], n, diverged=True))
                return False
        checked = upto
        return True

    model.train()
    autocast = autocast_context(X.device, precision)
    for batch in range(n_batches):
        idx = perm[batch * batch_size: ends[batch]]
        with autocast:
            loss = loss_fn(model(X[idx]), y[idx])
        losses[batch] = loss.detach()
        if check_every == 1 and not flush(batch + 1):
            return history
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if print_every and batch % print_every == 0:
            value = losses[batch].item()
            print(progress_line(value, ends[batch], n))
        if check_every > 1 and (batch + 1) % check_every == 0 and not flush(batch + 1):
            return history
    flush(n_batches)
    return history


@torch.no_grad()
def evaluate_tensors(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batch_size: int = 1000,
    precision: str = "fp32",
    verbose: bool = True,
) -> tuple[float, float]:
    """:func:`labkit.train.test_loop` on preloaded tensors: average loss and accuracy (the labs).

    The average loss is the mean over batches of ``batch_size`` of the batch-mean loss, as in
    the lecture's script; the result is read back once, at the end.
    """
    _check_inputs(X, y, 1, batch_size)
    model.eval()
    total_loss = torch.zeros((), device=X.device, dtype=accumulator_dtype(X.device))
    correct = torch.zeros((), device=X.device, dtype=torch.long)
    num_batches = 0
    with autocast_context(X.device, precision):
        for start in range(0, len(X), batch_size):
            pred = model(X[start:start + batch_size])
            target = y[start:start + batch_size]
            total_loss += loss_fn(pred, target).to(total_loss.dtype)
            correct += (pred.argmax(1) == target).sum()
            num_batches += 1
    test_loss = total_loss.item() / num_batches
    accuracy = correct.item() / len(X)
    if verbose:
        print(evaluation_report(test_loss, accuracy))
    return test_loss, accuracy


def train_tensors(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    epochs: int = 1,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    test_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    print_every: int | None = 100,
    precision: str = "fp32",
    check_every: int | None = None,
    label: str = "",
) -> History:
    """:func:`labkit.train.fit` on preloaded tensors: ``epochs`` epochs, each with a test pass
    (the labs' Demo & Results trains every run with it).

    ``X``/``y`` (and ``test_data = (X_test, y_test)``) must already be on the model's device
    (see :func:`labkit.data.preload`). Each epoch draws ``torch.randperm(len(X),
    generator=generator)``; the test set is evaluated in batches of ``batch_size``, like the
    script's test ``DataLoader``. Stops at the first NaN or infinite loss and marks the history
    ``diverged``. Returns the :class:`labkit.train.History`.
    """
    _check_inputs(X, y, epochs, batch_size)
    history = History(label=label)
    for epoch in range(epochs):
        if print_every:
            print(f"Epoch {epoch + 1}\n-------------------------------")
        train_epoch_tensors(model, X, y, loss_fn, optimizer, batch_size, generator, history,
                            print_every, precision, check_every)
        if history.diverged:
            break
        if test_data is not None:
            loss, acc = evaluate_tensors(model, *test_data, loss_fn, batch_size, precision,
                                         verbose=bool(print_every))
            history.test_loss.append(loss)
            history.test_accuracy.append(acc)
    return history


def make_optimizer(
    name: str,
    params,
    lr: float,
    momentum: float = 0.0,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """``torch.optim.SGD(params, lr, momentum)`` or ``torch.optim.Adam(params, lr)`` by name
    (chapters 4 and 6; the labs).

    ``fused=None`` picks torch's fused kernels on CPU and CUDA tensors, one kernel for all the
    parameters instead of a Python loop over them (on this course's 2-core CPU the for-loop Adam
    is 2–4× slower than SGD at small batches, the fused one is not). Adam has no ``momentum``: a
    non-zero value raises.
    """
    key = str(name).strip().lower()
    if key not in ("sgd", "adam"):
        raise ValueError(f"optimizer name must be 'SGD' or 'Adam', got {name!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    params = list(params)
    if fused is None:  # torch's fused kernels exist for CPU and CUDA tensors
        tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
        fused = all(t.device.type in ("cpu", "cuda") for t in tensors)
    if key == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, fused=fused)
    if momentum:
        raise ValueError(f"Adam takes no momentum (its beta1 plays that role), got {momentum!r}")
    return torch.optim.Adam(params, lr=lr, fused=fused)
