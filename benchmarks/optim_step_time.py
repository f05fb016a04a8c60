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


def _variants(ours, theirs, options: dict, labkit_foreach: bool = True,
              fused: bool = True) -> dict[str, Factory]:
    """labkit's class and torch's, each in every implementation it has, with ``options``."""
    found = {"labkit": lambda p: ours(p, **options)}
    if labkit_foreach:
        found["labkit foreach"] = lambda p: ours(p, foreach=True, **options)
    found["torch for-loop"] = lambda p: theirs(p, foreach=False, **options)
    found["torch foreach"] = lambda p: theirs(p, foreach=True, **options)
    if fused:
        found["torch fused"] = lambda p: theirs(p, fused=True, **options)
    return found


def implementations() -> dict[str, dict[str, Factory]]:
    """Optimizer -> implementation -> factory, with the same hyper-parameters in each row."""
    return {
        "SGD(momentum=0.9)": _variants(optim.SGD, torch.optim.SGD, dict(lr=1e-3, momentum=0.9)),
        "Adam": _variants(optim.Adam, torch.optim.Adam, dict(lr=1e-3)),
        "AdamW(weight_decay=0.01)": _variants(optim.AdamW, torch.optim.AdamW,
                                              dict(lr=1e-3, weight_decay=1e-2)),
        "Adagrad": _variants(optim.Adagrad, torch.optim.Adagrad, dict(lr=1e-2),
                             labkit_foreach=False),
        "RMSprop": _variants(optim.RMSprop, torch.optim.RMSprop, dict(lr=1e-3),
                             labkit_foreach=False, fused=False),
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
