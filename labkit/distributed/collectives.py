"""Inside a worker: its rank, its device, and the two averaging steps of data-parallel SGD
(chapter 9)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` outside a process group (chapter 9)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def worker_device() -> torch.device:
    """The device of this worker: ``cuda:LOCAL_RANK`` under NCCL, else the CPU (chapter 9)."""
    if dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def average_gradients(model: nn.Module) -> int:
    r"""The hand-written data-parallel step: replace each gradient by its mean over the workers.

    .. math:: g \leftarrow \frac1P\sum_{p=1}^P g_p \quad\text{(one all-reduce per parameter)}

    Called between ``backward()`` and ``optimizer.step()`` (chapter 9). Returns the number of
    bytes all-reduced (the message size :math:`n` of :func:`~.ring_allreduce_bytes`); does nothing
    outside a process group.
    """
    _, world = rank_and_world()
    sent = 0
    for p in model.parameters():
        if p.grad is None:
            continue
        sent += p.grad.numel() * p.grad.element_size()
        if world > 1:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)
    return sent


@torch.no_grad()
def average_parameters(model: nn.Module) -> int:
    r"""Local SGD's synchronisation: replace the weights by their mean over the workers.

    .. math:: w \leftarrow \frac1P\sum_{p=1}^P w_p

    Called every :math:`H` steps of local SGD (chapter 9); returns the bytes all-reduced.
    """
    _, world = rank_and_world()
    sent = 0
    for p in model.parameters():
        sent += p.numel() * p.element_size()
        if world > 1:
            dist.all_reduce(p.data, op=dist.ReduceOp.SUM)
            p.data.div_(world)
    return sent


def bytes_written() -> int | None:
    """Bytes this process has written through system calls so far (``wchar`` of
    ``/proc/self/io``); ``None`` where Linux's ``/proc`` is missing (chapter 9).

    gloo sends its messages with ``write`` calls on sockets, so the difference of two readings
    around an all-reduce measures the bytes the worker sent. NCCL's transfers (NVLink, GPU
    memory) do not go through system calls and are not counted.
    """
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split(":")[1])
    except OSError:
        return None
    return None
