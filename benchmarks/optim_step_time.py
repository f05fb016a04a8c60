"""Step time of labkit's optimizers against torch's for-loop, foreach and fused ones, on any device.

Usage::

    .venv/bin/python benchmarks/optim_step_time.py [--device auto] [--hidden 512 4096]
        [--steps 100] [--rounds 7] [--out FILE.json]

``optimizer.step()`` alone (the gradients are set once and kept), on the labs' MLP
784-H-H-10: H = 512 is the labs' network (669,706 parameters), H = 4096 a larger one (20.0 M)
where the step is bound by memory traffic rather than by launches. Each implementation takes
``--steps`` steps between two synchronisations of the device, so the figure is the time per step
with the GPU's queue kept full (on a CPU: the plain time); the implementations are interleaved
in ``--rounds`` rounds and the median round is reported. The ratio ``labkit / torch X`` is the
figure of merit: below 1, labkit is faster. labkit's optimizers run their ``foreach`` path where
they have one (``labkit foreach``), torch's ``fused=True`` where torch has a fused kernel for that
optimizer on that device. An implementation that torch refuses on the device is listed as such.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from labkit import optim
from labkit.device import get_device
from labkit.models import MLP

Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]


def implementations() -> dict[str, dict[str, Factory]]:
    """Optimizer -> implementation -> factory, with the same hyper-parameters in each row."""
    sgd = dict(lr=1e-3, momentum=0.9)
    adam = dict(lr=1e-3)
    adamw = dict(lr=1e-3, weight_decay=1e-2)
    return {
        "SGD(momentum=0.9)": {
            "labkit": lambda p: optim.SGD(p, **sgd),
            "labkit foreach": lambda p: optim.SGD(p, foreach=True, **sgd),
            "torch for-loop": lambda p: torch.optim.SGD(p, foreach=False, **sgd),
            "torch foreach": lambda p: torch.optim.SGD(p, foreach=True, **sgd),
            "torch fused": lambda p: torch.optim.SGD(p, fused=True, **sgd),
        },
        "Adam": {
            "labkit": lambda p: optim.Adam(p, **adam),
            "labkit foreach": lambda p: optim.Adam(p, foreach=True, **adam),
            "torch for-loop": lambda p: torch.optim.Adam(p, foreach=False, **adam),
            "torch foreach": lambda p: torch.optim.Adam(p, foreach=True, **adam),
            "torch fused": lambda p: torch.optim.Adam(p, fused=True, **adam),
        },
        "AdamW(weight_decay=0.01)": {
            "labkit": lambda p: optim.AdamW(p, **adamw),
            "labkit foreach": lambda p: optim.AdamW(p, foreach=True, **adamw),
            "torch for-loop": lambda p: torch.optim.AdamW(p, foreach=False, **adamw),
            "torch foreach": lambda p: torch.optim.AdamW(p, foreach=True, **adamw),
            "torch fused": lambda p: torch.optim.AdamW(p, fused=True, **adamw),
        },
        "Adagrad": {
            "labkit": lambda p: optim.Adagrad(p, lr=1e-2),
            "torch for-loop": lambda p: torch.optim.Adagrad(p, lr=1e-2, foreach=False),
            "torch foreach": lambda p: torch.optim.Adagrad(p, lr=1e-2, foreach=True),
            "torch fused": lambda p: torch.optim.Adagrad(p, lr=1e-2, fused=True),
        },
        "RMSprop": {
            "labkit": lambda p: optim.RMSprop(p, lr=1e-3),
            "torch for-loop": lambda p: torch.optim.RMSprop(p, lr=1e-3, foreach=False),
            "torch foreach": lambda p: torch.optim.RMSprop(p, lr=1e-3, foreach=True),
        },
    }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _prepared(factory: Factory, model: torch.nn.Module, grads: list[torch.Tensor],
              device: torch.device) -> torch.optim.Optimizer:
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    opt = factory(params)
    for _ in range(3):  # create the state, compile nothing twice
        opt.step()
    synchronize(device)
    return opt


def time_steps(device: torch.device, hidden: int, steps: int, rounds: int) -> dict:
    """Median milliseconds per step of every implementation, on the MLP 784-H-H-10."""
    torch.manual_seed(0)
    model = MLP(hidden=hidden).to(device)
    x = torch.randn(64, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (64,), device=device)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    table = {"hidden": hidden, "parameters": sum(g.numel() for g in grads), "rows": {}}
    for name, factories in implementations().items():
        opts, refused = {}, {}
        for impl, factory in factories.items():
            try:
                opts[impl] = _prepared(factory, model, grads, device)
            except (RuntimeError, TypeError, ValueError) as err:  # torch has no such kernel here
                refused[impl] = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
        times = {impl: [] for impl in opts}
        for _ in range(rounds):
            for impl, opt in opts.items():
                synchronize(device)
                start = time.perf_counter()
                for _ in range(steps):
                    opt.step()
                synchronize(device)
                times[impl].append((time.perf_counter() - start) / steps * 1e3)
        ms = {impl: statistics.median(v) for impl, v in times.items()}
        table["rows"][name] = {"ms_per_step": ms, "refused": refused,
                               "labkit_over": {impl: ms["labkit"] / v for impl, v in ms.items()
                                               if impl != "labkit"}}
    return table


def format_table(report: dict) -> str:
    lines = [f"optimizer step time on {report['device_name']} (torch {report['torch']}), "
             f"{report['steps']} steps between synchronisations, median of {report['rounds']} "
             f"interleaved rounds"]
    for table in report["tables"]:
        lines.append(f"\nMLP 784-{table['hidden']}-{table['hidden']}-10, "
                     f"{table['parameters']:,} parameters")
        lines.append(f"{'optimizer':<26} {'implementation':<16} {'ms/step':>9} "
                     f"{'labkit/this':>12}")
        for name, row in table["rows"].items():
            for impl, ms in row["ms_per_step"].items():
                ratio = 1.0 if impl == "labkit" else row["labkit_over"][impl]
                lines.append(f"{name:<26} {impl:<16} {ms:9.4f} {ratio:12.2f}")
            for impl, why in row["refused"].items():
                lines.append(f"{name:<26} {impl:<16} {'refused':>9}  ({why})")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 4096])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    report = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
        "torch": torch.__version__, "steps": args.steps, "rounds": args.rounds,
        "tables": [time_steps(device, h, args.steps, args.rounds) for h in args.hidden],
    }
    print(format_table(report), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
