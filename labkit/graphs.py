r"""One training step captured as a CUDA graph, replayed for every full batch (labs on a GPU).

On a GPU the labs' MLP is tiny: a step at batch 16 is some twenty kernels of a few microseconds
each, and the time goes into Python and the kernel launches, not into the arithmetic. A CUDA graph
records the kernels of one whole step (forward, backward, optimizer step) once; a replay launches
all of them with one call. The replayed step must find its batch at the same addresses every
time, so an epoch here is

.. math:: \Pi \leftarrow \text{the epoch's permutation as } \lfloor n/B \rfloor \times B
          \text{ rows},\qquad
          \text{for } t = 0, 1, \dots:\;
          \mathcal B_t = \Pi_{t},\;
          w \leftarrow \operatorname{step}\big(w, \nabla L_{\mathcal B_t}(w)\big)

with the row index :math:`t` a counter on the device that the graph itself increments, and each
step's loss written by the graph into row :math:`t` of a loss buffer. The last, short batch
(:math:`n \bmod B` samples) has another shape, so it is trained eagerly after the replays; the
losses are read back once per epoch. The arithmetic is that of :func:`labkit.train.train_epoch`
(chapter 4): ``tests/test_graphs.py`` checks that the same steps run eagerly on the CPU give the
weights and losses of :func:`labkit.sweep.sweep_mlp` bit for bit, and
``benchmarks/lecture_grid.py --cuda-graph`` compares the replayed graph with the eager sweep on
CUDA before it times anything.

One difference: :func:`labkit.train.train_epoch` stops an epoch as soon as every run has diverged,
a captured epoch always runs to its end (the histories are the same: a run's history ends at its
first NaN, infinite or too large loss either way).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch
from torch import nn

from labkit import _checks as checks
from labkit.batches import epoch_permutation
from labkit.fast import PRECISIONS
from labkit.train import History, LossFn, log_losses


def graph_autocast(device: torch.device, precision: str = "fp32"):
    """bfloat16 autocast without its weight-cast cache (a captured graph must recompute the casts
    at every replay), or a no-op for ``"fp32"`` (the labs on a GPU)."""
    if checks.one_of("precision", precision, PRECISIONS) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=False)


class CapturedEpoch:
    """Epochs of mini-batch training whose full batches replay one captured CUDA graph (the
    labs on a GPU; the arithmetic of chapter 4's loop).

    ``optimizer`` must update its state in place and list it in ``state_tensors()`` (labkit's
    stacked optimizers, :class:`labkit.optim.stacked.StackedSGD` and
    :class:`labkit.optim.stacked.StackedAdam`):
    capturing needs a few real warm-up steps, after which the weights and that state are put back
    as they were. ``capture=False`` runs the very same steps eagerly (any device), which is how
    the tests check them on a CPU; ``capture=None`` captures on CUDA only.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        optimizer,
        X: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        precision: str = "fp32",
        capture: bool | None = None,
        warmup_steps: int = 3,
    ):
        checks.preloaded(X, y)
        checks.integer("batch_size", batch_size, 1)
        if not callable(getattr(optimizer, "state_tensors", None)):
            raise TypeError(f"{type(optimizer).__name__} has no state_tensors(): a captured epoch "
                            "needs an optimizer whose state is updated in place (StackedSGD or "
                            "StackedAdam of labkit.optim.stacked)")
        self.n_full = len(X) // batch_size
        if self.n_full == 0:
            raise ValueError(f"batch_size={batch_size} is larger than the {len(X)} training "
                             "samples: nothing to capture; use a smaller batch")
        capture = X.device.type == "cuda" if capture is None else bool(capture)
        if capture and X.device.type != "cuda":
            raise ValueError(f"capture=True needs the data on a CUDA device, got {X.device}; "
                             "pass capture=False to run the same steps eagerly")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.X, self.y, self.batch_size = X, y, batch_size
        self.autocast = graph_autocast(X.device, precision)
        self.rows = torch.zeros(self.n_full, batch_size, dtype=torch.long, device=X.device)
        self.counter = torch.zeros((), dtype=torch.long, device=X.device)
        self.losses: torch.Tensor | None = None  # (n_full, runs), written by each step
        self.graph: torch.cuda.CUDAGraph | None = None
        if capture:
            self._capture(checks.integer("warmup_steps", warmup_steps, 1))

    def _state(self) -> list[torch.Tensor]:
        return [p.data for p in self.model.parameters()] + list(self.optimizer.state_tensors())

    def _step(self, zero_grad: bool) -> None:
        """One step on row ``counter`` of the epoch's batches; its loss into ``losses``."""
        idx = self.rows.index_select(0, self.counter.view(1)).view(-1)
        with self.autocast:
            loss = self.loss_fn(self.model(self.X.index_select(0, idx)),
                                self.y.index_select(0, idx))
        loss.backward(torch.ones_like(loss))
        self.optimizer.step()
        if zero_grad:
            self.optimizer.zero_grad()
        value = loss.detach().reshape(1, -1)
        if self.losses is None:
            self.losses = torch.zeros(self.n_full, value.shape[1], dtype=value.dtype,
                                      device=value.device)
        self.losses.index_copy_(0, self.counter.view(1), value)
        self.counter += 1

    def _capture(self, warmup_steps: int) -> None:
        saved = [t.detach().clone() for t in self._state()]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # cuBLAS handles, autograd's buffers: before the capture
            for _ in range(warmup_steps):
                self.counter.zero_()
                self._step(zero_grad=True)
        torch.cuda.current_stream().wait_stream(side)
        self.optimizer.zero_grad()  # the captured backward then assigns its own gradients
        self.counter.zero_()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._step(zero_grad=False)
        with torch.no_grad():
            for tensor, value in zip(self._state(), saved):
                tensor.copy_(value)
        self.counter.zero_()

    def run(self, histories: Sequence[History], generator: torch.Generator | None = None,
            size: int | None = None) -> None:
        """One epoch: every full batch (replayed, or eagerly without a graph), then the short
        last batch eagerly; the losses go into ``histories`` (one per run) in one read-back."""
        n, b = len(self.X), self.batch_size
        perm = epoch_permutation(n, generator, self.X.device)
        seen0 = [h.samples_seen for h in histories]
        self.rows.copy_(perm[: self.n_full * b].view(self.n_full, b))
        self.counter.zero_()
        self.model.train()
        for _ in range(self.n_full):
            if self.graph is not None:
                self.graph.replay()
            else:
                self._step(zero_grad=True)
        pending = [((t + 1) * b, row) for t, row in enumerate(self.losses)]
        rest = perm[self.n_full * b:]
        if len(rest):
            self.optimizer.zero_grad()  # the graph's gradients must not be added to
            with self.autocast:
                loss = self.loss_fn(self.model(self.X[rest]), self.y[rest])
            loss.backward(torch.ones_like(loss))
            self.optimizer.step()
            self.optimizer.zero_grad()
            pending.append((n, loss.detach()))
        log_losses(list(histories), seen0, pending, size, print_every=None)


def captured_epochs(
    model: nn.Module, loss_fn: LossFn, optimizer, X: torch.Tensor, y: torch.Tensor,
    batch_size: int, histories: Sequence[History], generator: torch.Generator | None = None,
    precision: str = "fp32", capture: bool | None = None,
) -> Callable[[], None]:
    """A ``train_one()`` for :func:`labkit.train.train_epochs` that runs one :class:`CapturedEpoch`
    per call (captured once, on the first call's device; the labs' sweeps on a GPU)."""
    epoch = CapturedEpoch(model, loss_fn, optimizer, X, y, batch_size, precision, capture)
    return lambda: epoch.run(histories, generator, len(X))
