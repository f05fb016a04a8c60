"""The leaderboard's training harness: grader code that runs *inside* the sandbox.

The leaderboard (:mod:`coursetools.grading.leaderboard`) sends this file's source into the
sandbox, once per workload, with the workload (its fixed architecture as a list of layer widths,
its step budget, its batch size) and the *training* split only (raw bytes). The worker
(:mod:`coursetools.grading.worker`) runs it after the notebook's cells: :func:`train` builds the
architecture with :func:`build_model`, asks the notebook's ``make_optimizer(params)`` for an
optimizer, trains, and sends the weights every ``every`` steps as a checkpoint frame (``emit``).
It trusts nothing the optimizer returns and computes no score: the grader times each checkpoint
on arrival with its own clock and scores the weights outside, on validation data that never
enters the sandbox. The same :func:`build_model` builds the architecture outside, where the
weights are loaded.

It imports only the standard library and torch: inside the sandbox the course's packages are
not on the path of this code (it is executed from source by the worker).
"""

from __future__ import annotations

import base64
import time


def build_model(layers: list[int]):
    """The fixed architecture: ``Flatten``, then ``Linear`` layers of the given widths with ReLU
    between them (``[784, 10]``: logistic regression; ``[784, 64, 10]``: a one-hidden-layer MLP).
    """
    from torch import nn

    modules: list = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(layers[:-1], layers[1:])):
        if i:
            modules.append(nn.ReLU())
        modules.append(nn.Linear(a, b))
    return nn.Sequential(*modules)


def tensor(spec: dict):
    """A tensor sent as ``{"dtype", "shape", "data"}`` (raw bytes, base64), as the worker sends
    them back (:func:`coursetools.grading.worker.encode`)."""
    import torch

    raw = bytearray(base64.b64decode(spec["data"]))
    return torch.frombuffer(raw, dtype=getattr(torch, spec["dtype"])).reshape(spec["shape"])


def train(job: dict, user_ns: dict, emit) -> None:
    """Train ``job``'s workload with the notebook's ``make_optimizer``; checkpoints via ``emit``.

    ``emit("checkpoint", step=k, weights=[...])`` every ``job["every"]`` steps and after the
    last one; the loop stops after ``job["steps"]`` steps or once ``job["budget"]`` seconds have
    passed (the grader enforces the budget from outside as well, and times the checkpoints
    itself). Pixels arrive as ``uint8`` and are scaled to ``[0, 1]``.

    A job with ``"warmup"`` (sent before the timed workloads) carries no data: it trains the
    model on random pixels with ``torch.optim.SGD`` and emits nothing, so that what PyTorch loads
    on first use (``torch.optim.Optimizer`` imports ``torch._dynamo``: seconds) is not timed.
    """
    import torch
    import torch.nn.functional as F

    torch.manual_seed(int(job["seed"]))
    if job.get("warmup"):
        x, y = torch.rand(256, 1, 28, 28), torch.randint(10, (256,))
    else:
        x = tensor(job["x"]).float().div_(255.0)
        y = tensor(job["y"]).long()
    model = build_model([int(n) for n in job["layers"]])
    make_optimizer = user_ns.get("make_optimizer")
    if job.get("warmup"):
        make_optimizer = lambda params: torch.optim.SGD(params, lr=0.01)  # noqa: E731
        emit = lambda *args, **kwargs: None  # noqa: E731
    elif not callable(make_optimizer):
        raise NameError("the notebook defines no function make_optimizer(params)")
    optimizer = make_optimizer(model.parameters())
    generator = torch.Generator().manual_seed(int(job["seed"]))
    steps, batch, every = int(job["steps"]), int(job["batch"]), int(job["every"])
    start, step = time.perf_counter(), 0
    while step < steps and time.perf_counter() - start < float(job["budget"]):
        idx = torch.randint(len(y), (batch,), generator=generator)
        optimizer.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        optimizer.step()  # whatever it returns is ignored
        step += 1
        if step % every == 0:
            emit("checkpoint", step=step, weights=[p.detach() for p in model.parameters()])
    if step % every:
        emit("checkpoint", step=step, weights=[p.detach() for p in model.parameters()])
