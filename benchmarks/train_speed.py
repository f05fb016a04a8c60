"""Training speed of the lecture's MLP: the seed's loop as written against labkit's loops.

Usage: ``.venv/bin/python benchmarks/train_speed.py [--epochs 1] [--repeats 3] [--threads N]
[--optimizer SGD|Adam] [--device auto] [--batch-sizes 16 64 256] [--json PATH]``;
``--markdown JSON...`` prints the README's block for committed results.

One epoch over the 4,000 training images of ``digits5k`` (the MLP 784-512-512-10, cross-entropy,
SGD with lr 0.01 and momentum 0.9, or Adam with lr 0.001), from the same initial weights, at
batch sizes 16, 64 and 256. Columns, in samples per second (best of ``--repeats``, the variants
interleaved within each repeat so that ratios compare runs made under the same load):

* ``seed``: the lecture's script as written: a torchvision-style dataset of uint8 PIL images with
  ``transforms.ToTensor()`` in ``__getitem__`` (what ``torchvision.datasets.MNIST`` does), a
  ``DataLoader(shuffle=True)``, ``labkit.train.train_loop`` and ``torch.optim`` with its defaults;
* ``DL+tensors``: the same loop, the ``DataLoader`` over preloaded tensors (``TensorDataset``);
* ``labkit``: ``labkit.fast.train_tensors`` (tensors on the device, one ``randperm`` per epoch,
  one indexing operation per batch) with fused optimisers (``labkit.runs.make_torch_optimizer``);
* ``labkit bf16``: the same under bfloat16 autocast;
* ``sweep x3`` and ``3 runs``: three learning rates trained at once by ``labkit.sweep.sweep_mlp``,
  and the same three runs one after the other with ``labkit``'s loop (samples of all three runs
  per second).

The figures of merit are the ratios ``labkit/seed`` (target: at least 1.5 at every batch size on
the course's 2-core CPU) and ``sweep/3 runs`` (about 1 on a CPU, above 1 on a GPU).
``--json PATH`` also writes the table (every row's samples per second and ratios) with the
machine it ran on, as committed under ``benchmarks/results/`` and quoted in labs/README.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import VisionDataset

from labkit.data import digits5k, preload
from labkit.device import get_device
from labkit.fast import train_tensors
from labkit.models import MLP
from labkit.runs import OptimizerConfig, make_torch_optimizer
from labkit.sweep import sweep_mlp
from labkit.train import train_loop


class Digits5kImages(VisionDataset):
    """digits5k as torchvision's ``MNIST`` stores and serves it: uint8 images, PIL per item."""

    def __init__(self, transform=None):
        super().__init__(root="", transform=transform)
        x, y = digits5k(train=True).tensors
        self.data = (x[:, 0] * 255).round().to(torch.uint8)
        self.targets = y

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        img, target = self.data[index], int(self.targets[index])
        img = Image.fromarray(img.numpy(), mode="L")
        if self.transform is not None:
            img = self.transform(img)
        return img, target


def torch_optimizer(name, params):
    """The script's optimiser, torch's defaults (a for-loop over the parameters on a CPU)."""
    if name == "SGD":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9)
    return torch.optim.Adam(params, lr=0.001)


COLUMNS = ["seed", "DL+tensors", "labkit", "labkit bf16", "sweep x3", "3 runs"]
RATIOS = ["labkit/seed", "tensors/seed", "bf16/fp32", "sweep/runs"]


def markdown(run: dict, name: str) -> str:
    """The block labs/README.md shows for one ``--json`` result named ``name``: a heading line,
    the table, and the range of each ratio over the batch sizes (checked by
    tests/test_cpu_results.py)."""
    threads = f"{run['threads']} thread{'s' if run['threads'] != 1 else ''}"
    lines = [f"{run['optimizer']}, {threads} (`{name}`, load average "
             f"{run['load_average_at_start'][0]:.2f} before the run):", "",
             "| batch | " + " | ".join(c.replace("x3", "×3") for c in COLUMNS) + " | "
             + " | ".join(RATIOS) + " |",
             "| " + " | ".join(["---:"] * (1 + len(COLUMNS) + len(RATIOS))) + " |"]
    for r in run["rows"]:
        speeds = " | ".join(f"{r['samples_per_s'][c]:,.0f}" for c in COLUMNS)
        ratios = " | ".join(f"**{r[k]:.2f}**" if k == "labkit/seed" else f"{r[k]:.2f}"
                            for k in RATIOS)
        lines.append(f"| {r['batch_size']} | {speeds} | {ratios} |")
    ranges = ", ".join(f"{k} {min(r[k] for r in run['rows']):.2f}–"
                       f"{max(r[k] for r in run['rows']):.2f}" for k in RATIOS)
    lines += ["", f"Over the batch sizes: {ranges}."]
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--optimizer", choices=["SGD", "Adam"], default="SGD")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--json", type=Path, default=None, help="also write the table here")
    parser.add_argument("--markdown", type=Path, nargs="+", default=None, metavar="JSON",
                        help="print labs/README.md's block for these results, run nothing")
    args = parser.parse_args()
    if args.markdown:
        for path in args.markdown:
            print(markdown(json.loads(path.read_text()), f"{path.parent.name}/{path.name}"), "\n")
        return 0
    load_at_start = os.getloadavg()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    torch.manual_seed(0)
    initial = MLP().to(device)
    vision = Digits5kImages(transform=transforms.ToTensor())
    tensors = digits5k(train=True)
    X, y = preload(tensors, device)
    x0 = vision[0][0].to(device)
    assert torch.allclose(x0, X[0], atol=1 / 255), "the PIL dataset must hold the same images"
    n = len(X) * args.epochs
    lr_key = 0.01 if args.optimizer == "SGD" else 0.001
    mom = 0.9 if args.optimizer == "SGD" else 0.0
    configs = [OptimizerConfig(args.optimizer, lr_key * f, mom) for f in (10.0, 1.0, 0.1)]

    def loader_run(dataset, bs):
        model = copy.deepcopy(initial)
        opt = torch_optimizer(args.optimizer, model.parameters())
        loader = DataLoader(dataset, batch_size=bs, shuffle=True)
        for _ in range(args.epochs):
            train_loop(loader, model, F.cross_entropy, opt, device=device, print_every=None)

    def labkit_run(bs, precision="fp32", config=None):
        config = config or OptimizerConfig(args.optimizer, lr_key, mom)
        model = copy.deepcopy(initial)
        opt = make_torch_optimizer(config.optimizer, model.parameters(), config.lr, config.momentum)
        train_tensors(model, X, y, F.cross_entropy, opt, epochs=args.epochs, batch_size=bs,
                      print_every=None, precision=precision)

    def sweep_run(bs):
        sweep_mlp(initial, configs, X, y, epochs=args.epochs, batch_size=bs)

    def sequential_runs(bs):
        for c in configs:
            labkit_run(bs, config=c)

    variants = {
        "seed": lambda bs: loader_run(vision, bs),
        "DL+tensors": lambda bs: loader_run(tensors, bs),
        "labkit": lambda bs: labkit_run(bs),
        "labkit bf16": lambda bs: labkit_run(bs, "bf16"),
        "sweep x3": sweep_run,
        "3 runs": sequential_runs,
    }
    samples = {name: n * (3 if name in ("sweep x3", "3 runs") else 1) for name in variants}
    labkit_run(64)  # warm-up: allocator, kernels, thread pool
    print(f"{args.optimizer} on {device}, {torch.get_num_threads()} threads, "
          f"{len(X):,} images x {args.epochs} epoch(s), best of {args.repeats}; samples/s")
    header = f"{'batch':>5} " + "".join(f"{k:>12}" for k in variants)
    header += f"{'labkit/seed':>12}{'tensors/seed':>13}{'bf16/fp32':>10}{'sweep/runs':>11}"
    print(header)
    rows = []
    for bs in args.batch_sizes:
        best = {k: 0.0 for k in variants}
        for _ in range(args.repeats):
            for name, fn in variants.items():
                seconds = timed(lambda fn=fn, bs=bs: fn(bs), device)
                best[name] = max(best[name], samples[name] / seconds)
        row = f"{bs:>5} " + "".join(f"{best[k]:>12,.0f}" for k in variants)
        row += (f"{best['labkit'] / best['seed']:>12.2f}"
                f"{best['DL+tensors'] / best['seed']:>13.2f}"
                f"{best['labkit bf16'] / best['labkit']:>10.2f}"
                f"{best['sweep x3'] / best['3 runs']:>11.2f}")
        print(row, flush=True)
        rows.append({"batch_size": bs, "samples_per_s": {k: round(v, 1) for k, v in best.items()},
                     "labkit/seed": best["labkit"] / best["seed"],
                     "tensors/seed": best["DL+tensors"] / best["seed"],
                     "bf16/fp32": best["labkit bf16"] / best["labkit"],
                     "sweep/runs": best["sweep x3"] / best["3 runs"]})
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "optimizer": args.optimizer, "device": str(device), "threads": torch.get_num_threads(),
            "epochs": args.epochs, "repeats": args.repeats, "images": len(X),
            "torch": torch.__version__, "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg(),
            "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
