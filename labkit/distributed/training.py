"""The training loop of data-parallel SGD, alone or in a worker (chapter 9 and its lab).

It is labkit's driver, :func:`labkit.train.train_epoch`, on the worker's shard of one shared
permutation (:func:`labkit.batches.shard_batches`), with the gradient exchange in its
``on_gradients`` hook (between backward and step), local SGD's averaging of the weights in its
``on_step`` hook, and the evaluation of :func:`labkit.fast.evaluate_tensors`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from labkit.batches import shard_batches
from labkit.data import digits5k
from labkit.distributed.collectives import (
    average_gradients,
    average_parameters,
    bytes_written,
    rank_and_world,
    worker_device,
)
from labkit.distributed.cost import linear_scaling_lr, ring_allreduce_bytes
from labkit.fast import evaluate_tensors
from labkit.models import MLP
from labkit.seed import seed_everything
from labkit.train import History, train_epoch

#: Hooks of :func:`train_worker` (DDP communication hooks from ``torch.distributed.algorithms``).
HOOKS = ("none", "fp16", "bf16", "powersgd")
#: PowerSGD's first steps are plain all-reduces (its error feedback starts from them).
_POWERSGD_START = 2
#: Ways of combining the workers' gradients in :func:`train_data_parallel`.
MODES = ("allreduce", "ddp", "local_sgd")



def _make_model(name: str, hidden: int, dtype: torch.dtype, device: torch.device) -> nn.Module:
    if name == "mlp":
        model = MLP(hidden=hidden)
    elif name == "linear":
        model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    else:
        raise ValueError(f"model must be 'mlp' or 'linear', got {name!r}")
    return model.to(device=device, dtype=dtype)


def _register_hook(ddp: nn.Module, hook: str, powersgd_rank: int, seed: int) -> None:
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook

    if hook == "fp16":
        ddp.register_comm_hook(None, default_hooks.fp16_compress_hook)
    elif hook == "bf16":
        ddp.register_comm_hook(None, default_hooks.bf16_compress_hook)
    elif hook == "powersgd":
        state = powerSGD_hook.PowerSGDState(
            process_group=None, matrix_approximation_rank=powersgd_rank,
            start_powerSGD_iter=_POWERSGD_START,
            min_compression_rate=2, use_error_feedback=True, warm_start=True, random_seed=seed)
        ddp.register_comm_hook(state, powerSGD_hook.powerSGD_hook)


def digits_tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(X_train, y_train, X_test, y_test)`` of ``digits5k``, images flattened to 784 columns
    (chapter 9 and its lab).

    Load them once in the notebook and pass them to the workers (``data=``): the processes then
    share the tensors' memory instead of each parsing the dataset again.
    """
    train, test = digits5k(train=True), digits5k(train=False)
    return (train.tensors[0].flatten(1), train.tensors[1], test.tensors[0].flatten(1),
            test.tensors[1])


def _load_digits(dtype: torch.dtype, device: torch.device,
                 data: Sequence[torch.Tensor] | None = None) -> tuple[torch.Tensor, ...]:
    X, y, X_test, y_test = digits_tensors() if data is None else data
    return (X.to(device, dtype), y.to(device), X_test.to(device, dtype), y_test.to(device))


class _AllSteps(History):
    """A worker's history that never stops its run: alone, it would leave the other workers
    waiting in the next collective; a loss that is NaN or infinite is returned as it is."""

    def blew_up(self, loss: float) -> bool:
        return False


def train_data_parallel(
    *,
    mode: str = "allreduce",
    hook: str = "none",
    model: str = "mlp",
    hidden: int = 512,
    dtype: str = "float32",
    batch_per_worker: int = 32,
    world_size: int | None = None,
    epochs: float = 1.0,
    steps: int | None = None,
    lr: float = 0.05,
    scale_lr: bool = False,
    warmup_steps: int = 0,
    local_steps: int = 1,
    powersgd_rank: int = 4,
    seed: int = 0,
    evaluate: bool = True,
    return_weights: bool = False,
    n_train: int | None = None,
    bucket_cap_mb: float | None = None,
    data: Sequence[torch.Tensor] | None = None,
) -> dict[str, Any]:
    r"""Data-parallel mini-batch SGD on the digits, in the current process group (chapter 9).

    Every worker draws the same random order of the :math:`N` training images (seeded by
    ``seed`` and the epoch); step :math:`t` uses the global batch of :math:`Pb` images
    ``order[t·Pb : (t+1)·Pb]`` and worker :math:`p` the :math:`p`-th slice of :math:`b` of them.
    The loop is :func:`labkit.train.train_epoch` on :func:`labkit.batches.shard_batches`; the
    worker's gradients are combined by ``mode`` in its hooks:

    * ``"allreduce"``: :func:`~.average_gradients` after ``backward()``, in ``on_gradients``
      (hand-written);
    * ``"ddp"``: :class:`~torch.nn.parallel.DistributedDataParallel`, optionally with the
      communication ``hook`` ``"fp16"``, ``"bf16"`` or ``"powersgd"`` (rank ``powersgd_rank``)
      (Li et al., 2020; Vogels et al., 2019);
    * ``"local_sgd"``: no gradient exchange; :func:`~.average_parameters` every ``local_steps``
      steps, in ``on_step`` (Stich, 2019).

    Outside a process group it is the single-process run with batch :math:`Pb`, where :math:`P`
    is ``world_size`` (default 1): the reference of the equality :math:`P` workers = one process
    with batch :math:`Pb`. The learning rate is ``lr``, or :func:`~.linear_scaling_lr` when
    ``scale_lr`` (then :math:`P` is the product of ``world_size`` and the process group's size).

    Returns plain values: ``losses`` (this worker's mini-batch loss per step), ``samples`` (the
    samples seen by all workers after each step), ``bytes_model`` (the bytes this worker sends by
    the ring model), ``bytes_measured`` (:func:`~.bytes_written` during training, ``None`` where not
    measurable), ``seconds``, ``train_loss``/``test_accuracy`` of the final weights (if
    ``evaluate``; :func:`labkit.fast.evaluate_tensors` in batches of 1,000), and ``weights``
    (the flat final weights, if ``return_weights``). ``data``:
    the tensors of :func:`digits_tensors` (loaded here when ``None``). ``bucket_cap_mb``: DDP's
    bucket size (its default when ``None``; one bucket for PowerSGD on gloo).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if hook not in HOOKS:
        raise ValueError(f"hook must be one of {HOOKS}, got {hook!r}")
    if hook != "none" and mode != "ddp":
        raise ValueError(f"hook={hook!r} needs mode='ddp' (communication hooks are DDP's)")
    if local_steps < 1:
        raise ValueError(f"local_steps must be at least 1, got {local_steps}")
    rank, group = rank_and_world()
    if mode == "ddp" and group == 1:
        raise ValueError("mode='ddp' needs a process group; start it with launch()")
    if group > 1 and world_size not in (None, group):
        raise ValueError(f"world_size={world_size} but the process group has {group} workers")
    shards = group if group > 1 else (world_size or 1)  # P
    torch_dtype = getattr(torch, dtype)
    device = worker_device()
    X, y, X_test, y_test = _load_digits(torch_dtype, device, data)
    if n_train is not None:
        X, y = X[:n_train], y[:n_train]
    global_batch = shards * batch_per_worker
    steps_per_epoch = len(X) // global_batch
    if steps_per_epoch == 0:
        raise ValueError(f"the global batch {global_batch} exceeds the {len(X)} training images")
    total_steps = steps if steps is not None else max(1, int(round(epochs * steps_per_epoch)))

    seed_everything(seed)
    net = _make_model(model, hidden, torch_dtype, device)
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        if hook == "powersgd" and device.type == "cpu" and bucket_cap_mb is None:
            # On gloo, PowerSGD's chained collectives of several buckets can reach the workers
            # in different orders (a collective mismatch): keep the gradient in one bucket.
            bucket_cap_mb = sum(p.numel() * p.element_size() for p in net.parameters()) / 2**20 + 1
        net = DDP(net, device_ids=[device.index] if device.type == "cuda" else None,
                  bucket_cap_mb=bucket_cap_mb)
        _register_hook(net, hook, powersgd_rank, seed)
    params = list(net.parameters())
    n_bytes = sum(p.numel() * p.element_size() for p in params)
    # With scale_lr the scheduler sets the rate of step t to 1.0 * linear_scaling_lr(t, ...).
    optimizer = torch.optim.SGD(params, lr=1.0 if scale_lr else lr)
    scheduler = None if not scale_lr else torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: linear_scaling_lr(step, lr, shards, warmup_steps))

    t = 0  # the step under way
    sent_model = 0.0

    def communicate(model: nn.Module) -> None:  # between backward and step: combine gradients
        nonlocal sent_model
        if mode == "allreduce":
            sent_model += ring_allreduce_bytes(average_gradients(model), group)
        elif mode == "ddp":  # DDP has averaged them during backward(); count its messages
            sent_model += ring_allreduce_bytes(
                _ddp_message_bytes(model, hook if t >= _POWERSGD_START or hook != "powersgd"
                                   else "none", powersgd_rank), group)

    def after_step(model: nn.Module) -> None:  # local SGD: average the weights every H steps
        nonlocal t, sent_model
        t += 1
        if mode == "local_sgd" and (t % local_steps == 0 or t == total_steps):
            sent_model += ring_allreduce_bytes(average_parameters(model), group)

    history = _AllSteps()
    # the same permutations on every worker; alone, the whole global batch
    batches = shard_batches(X, y, global_batch, rank, group, torch.Generator().manual_seed(seed),
                            total_steps)
    start_bytes = bytes_written()
    start = time.perf_counter()
    train_epoch(batches, net, F.cross_entropy, optimizer, [history], print_every=None,
                check_every=1 if device.type == "cpu" else 100, scheduler=scheduler,
                on_gradients=communicate, on_step=after_step)
    losses = history.loss
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    end_bytes = bytes_written()
    measured = None
    if start_bytes is not None and end_bytes is not None and device.type == "cpu":
        measured = end_bytes - start_bytes

    result: dict[str, Any] = {
        "rank": rank, "world_size": shards, "mode": mode, "hook": hook,
        "local_steps": local_steps, "steps": total_steps, "global_batch": global_batch,
        "losses": losses,
        "samples": [(k + 1) * global_batch for k in range(total_steps)],
        "bytes_model": sent_model, "bytes_measured": measured,
        "gradient_bytes": n_bytes, "seconds": seconds,
    }
    inner = net.module if mode == "ddp" else net
    if evaluate:
        result["train_loss"], result["train_accuracy"] = evaluate_tensors(
            inner, X, y, F.cross_entropy, batch_size=1000, verbose=False)
        result["test_loss"], result["test_accuracy"] = evaluate_tensors(
            inner, X_test, y_test, F.cross_entropy, batch_size=1000, verbose=False)
    if return_weights:
        result["weights"] = torch.cat([p.detach().reshape(-1).cpu() for p in inner.parameters()])
    return result


def _ddp_message_bytes(ddp: nn.Module, hook: str, powersgd_rank: int) -> float:
    """The bytes DDP all-reduces for one step, by hook: the gradient, half of it (fp16/bf16), or
    PowerSGD's factors P (n x r) and Q (m x r) per matrix, plus the vectors uncompressed."""
    total = 0.0
    for p in ddp.parameters():
        nbytes = p.numel() * p.element_size()
        if hook in ("fp16", "bf16"):
            total += p.numel() * 2
        elif hook == "powersgd" and p.dim() >= 2:
            n, m = p.shape[0], p[0].numel()
            compressed = (n + m) * powersgd_rank * p.element_size()
            # PowerSGD leaves a matrix uncompressed when compression saves less than 2x.
            total += compressed if compressed * 2 <= nbytes else nbytes
        else:
            total += nbytes
    return total


def train_worker(configs: dict[str, Any] | Sequence[dict[str, Any]],
                 data: Sequence[torch.Tensor] | None = None) -> list[dict[str, Any]]:
    """Run :func:`train_data_parallel` once per config, in this worker (chapter 9 and its lab).

    One launch can run several experiments one after the other, saving the start-up of the
    processes. ``data``: the tensors of :func:`digits_tensors`, shared by every config. Returns
    the list of results.
    """
    if isinstance(configs, dict):
        configs = [configs]
    if data is None:
        data = digits_tensors()
    return [train_data_parallel(**dict(c), data=data) for c in configs]
