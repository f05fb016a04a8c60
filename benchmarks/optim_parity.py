"""Parity of labkit's optimizers with torch.optim, and their step time on the course's MLP.

Usage: ``.venv/bin/python benchmarks/optim_parity.py [--steps 50] [--repeats 300] [--threads 1]``

1. **Parity table.** For every optimizer and every combination of its options: 50 steps on a
   random non-quadratic problem (parameters of shapes (5,), (3, 4), (2, 3, 2) and (), in two
   param groups with different options), in float64 and float32, from labkit and from
   ``torch.optim`` (its for-loop implementation, ``foreach=False``); Lion against
   ``lion_pytorch.Lion``, the Schedule-Free pair against the ``schedulefree`` package (chapter 8),
   Muon on matrices only ((5, 3), (3, 4), (6, 2), (2, 2)). The figure is the largest
   relative difference of the final parameters, max_k ||a_k - b_k||_inf / ||b_k||_inf. The last
   columns rerun labkit with a ``state_dict`` round trip after 23 steps, and with its
   multi-tensor (``foreach``) path.
2. **Step time.** ``optimizer.step()`` alone on the MLP 784-512-512-10 (669,706 parameters),
   gradients from one batch of 64: labkit against torch's for-loop (``foreach=False``, the
   default on a CPU), ``foreach=True`` and ``fused=True`` implementations, timed interleaved,
   median of ``--repeats`` steps. The ratio labkit/torch-for-loop is the figure of merit.
"""

from __future__ import annotations

import argparse
import statistics
import time

import lion_pytorch
import schedulefree
import torch

from labkit import optim
from labkit.models import MLP
from labkit.testing import make_problem, max_relative_difference, option_grid, run_optimizer

#: Muon takes matrices only: its rows run on these shapes (tall, wide, tall, square).
MUON_SHAPES = ((5, 3), (3, 4), (6, 2), (2, 2))


def sgd_rows():
    combos = option_grid(
        dict(momentum=[0.0, 0.9], dampening=[0.0, 0.3], weight_decay=[0.0, 0.1],
             nesterov=[False, True], maximize=[False, True]),
        valid=lambda o: not o["nesterov"] or (o["momentum"] > 0 and o["dampening"] == 0))
    for i, c in enumerate(combos):
        groups = [dict(c, lr=0.02), dict(combos[(i + 7) % len(combos)], lr=0.005)]
        yield ("SGD", c, groups, lambda g, fe=False: optim.SGD(g, foreach=fe),
               lambda g: torch.optim.SGD(g, foreach=False))


def heavy_ball_rows():
    for lr, beta in [(0.01, 0.5), (0.02, 0.9), (0.005, 0.99)]:
        groups = [dict(lr=lr, beta=beta), dict(lr=lr / 2, beta=beta / 2)]

        def make_torch(g):
            return torch.optim.SGD([dict(params=x["params"], **optim.pytorch_sgd_equivalent(
                x["lr"], x["beta"])) for x in g], foreach=False)

        yield ("HeavyBall vs SGD(momentum=beta)", dict(lr=lr, beta=beta), groups,
               lambda g, fe=False: optim.HeavyBall(g, lr=1.0, beta=0.0), make_torch)


def adam_rows():
    combos = option_grid(dict(weight_decay=[0.0, 0.1], amsgrad=[False, True],
                              maximize=[False, True], decoupled_weight_decay=[False, True]))
    for i, c in enumerate(combos):
        groups = [dict(c, lr=0.01), dict(combos[(i + 5) % len(combos)], lr=0.003,
                                         betas=(0.8, 0.99), eps=1e-6)]
        yield ("Adam", c, groups, lambda g, fe=False: optim.Adam(g, foreach=fe),
               lambda g: torch.optim.Adam(g, foreach=False))
    for ams in (False, True):
        groups = [dict(lr=0.01, amsgrad=ams), dict(lr=0.02, weight_decay=0.3, amsgrad=ams)]
        yield ("AdamW", dict(amsgrad=ams), groups,
               lambda g, fe=False: optim.AdamW(g, foreach=fe),
               lambda g: torch.optim.AdamW(g, foreach=False))


def adagrad_rows():
    combos = option_grid(dict(lr_decay=[0.0, 0.05], weight_decay=[0.0, 0.1], eps=[1e-10, 1e-3],
                              maximize=[False, True]))
    for i, c in enumerate(combos):
        init = 0.5 if i % 2 else 0.0  # initial_accumulator_value: torch reads the constructor's
        groups = [dict(c, lr=0.1), dict(combos[(i + 7) % len(combos)], lr=0.03)]
        yield ("Adagrad", dict(c, init=init), groups,
               lambda g, fe=False, a=init: optim.Adagrad(g, initial_accumulator_value=a),
               lambda g, a=init: torch.optim.Adagrad(g, initial_accumulator_value=a,
                                                     foreach=False))


def rmsprop_rows():
    combos = option_grid(dict(alpha=[0.99, 0.5], momentum=[0.0, 0.9], centered=[False, True],
                              weight_decay=[0.0, 0.1], maximize=[False, True]))
    for i, c in enumerate(combos):
        groups = [dict(c, lr=0.01), dict(combos[(i + 5) % len(combos)], lr=0.003, eps=1e-4)]
        yield ("RMSprop", c, groups, lambda g, fe=False: optim.RMSprop(g),
               lambda g: torch.optim.RMSprop(g, foreach=False))


def lbfgs_rows():
    for opts in [dict(lr=1, history_size=10, max_iter=20),
                 dict(lr=0.3, history_size=4, max_iter=5),
                 dict(lr=1, history_size=10, max_iter=20, line_search_fn="strong_wolfe"),
                 dict(lr=1, history_size=3, max_iter=7, line_search_fn="strong_wolfe")]:
        yield ("LBFGS", opts, [opts], lambda g, fe=False, o=opts: optim.LBFGS(g[0]["params"], **o),
               lambda g, o=opts: torch.optim.LBFGS(g[0]["params"], **o))


def lion_rows():
    combos = option_grid(dict(betas=[(0.9, 0.99), (0.95, 0.98), (0.0, 1.0)],
                              weight_decay=[0.0, 0.1, 1.5], decoupled=[False, True]))
    for i, c in enumerate(combos):
        other = combos[(i + 5) % len(combos)]
        groups = [dict(lr=0.01, betas=c["betas"], weight_decay=c["weight_decay"]),
                  dict(lr=0.003, betas=other["betas"], weight_decay=other["weight_decay"])]
        yield ("Lion vs lion_pytorch", c, groups,
               lambda g, fe=False, d=c["decoupled"]: optim.Lion(g, lr=0.01,
                                                                decoupled_weight_decay=d),
               lambda g, d=c["decoupled"]: lion_pytorch.Lion(g, lr=0.01,
                                                             decoupled_weight_decay=d))


def adafactor_rows():
    combos = option_grid(dict(beta2_decay=[-0.8, -0.5, 0.0], eps=[(None, 1e-3), (1e-12, 0.05)],
                              d=[1.0, 2.0], weight_decay=[0.0, 0.1], maximize=[False, True]))
    for i, c in enumerate(combos):
        groups = [dict(c, lr=0.01), dict(combos[(i + 7) % len(combos)], lr=0.3)]
        yield ("Adafactor", c, groups, lambda g, fe=False: optim.Adafactor(g),
               lambda g: torch.optim.Adafactor(g, foreach=False))


def muon_rows():
    combos = option_grid(dict(nesterov=[True, False], momentum=[0.95, 0.0],
                              weight_decay=[0.0, 0.1],
                              adjust_lr_fn=[None, "match_rms_adamw", "spectral_unclamped"],
                              ns_steps=[5, 2]))
    for i, c in enumerate(combos):
        groups = [dict(c, lr=0.02), dict(combos[(i + 11) % len(combos)], lr=0.005, eps=1e-3)]
        yield ("Muon", c, groups, lambda g, fe=False: optim.Muon(g),
               lambda g: torch.optim.Muon(g))


def training(make):
    """A Schedule-Free builder that switches the optimizer to train mode."""
    def build(groups):
        opt = make(groups)
        opt.train()
        return opt
    return build


def schedulefree_rows():
    sgd = option_grid(dict(momentum=[0.9, 0.5], weight_decay=[0.0, 0.1], warmup_steps=[0, 10],
                           r=[0.0, 1.0]))
    for i, c in enumerate(sgd):
        groups = [dict(c, lr=0.05), dict(sgd[(i + 5) % len(sgd)], lr=0.2, weight_lr_power=0.0)]
        yield ("SGDScheduleFree", c, groups,
               lambda g, fe=False: training(optim.SGDScheduleFree)(g),
               training(lambda g: schedulefree.SGDScheduleFree(g, foreach=False)))
    adamw = option_grid(dict(betas=[(0.9, 0.999), (0.5, 0.9)], weight_decay=[0.0, 0.1],
                             warmup_steps=[0, 10], r=[0.0, 1.0]))
    for i, c in enumerate(adamw):
        groups = [dict(c, lr=0.01), dict(adamw[(i + 5) % len(adamw)], lr=0.05, eps=1e-3)]
        yield ("AdamWScheduleFree", c, groups,
               lambda g, fe=False: training(optim.AdamWScheduleFree)(g),
               training(lambda g: schedulefree.AdamWScheduleFree(g, foreach=False)))


def parity(make_ours, make_ref, groups, dtype=torch.float64, steps=50, roundtrip_at=None,
           closure=False, shapes=None) -> float:
    """labkit.testing.parity on the problem of ``shapes`` (its default shapes if None)."""
    init, loss = make_problem(shapes, dtype=dtype) if shapes else make_problem(dtype=dtype)
    ours = run_optimizer(make_ours, init, loss, groups, steps, roundtrip_at, closure=closure)
    ref = run_optimizer(make_ref, init, loss, groups, steps, None, closure=closure)
    return max_relative_difference(ours, ref)


def fmt_options(opts: dict) -> str:
    short = {"momentum": "mom", "dampening": "damp", "weight_decay": "wd", "nesterov": "nest",
             "maximize": "max", "amsgrad": "ams", "decoupled_weight_decay": "decoupled",
             "history_size": "hist", "line_search_fn": "ls", "lr_decay": "lr_decay",
             "centered": "centred", "decoupled": "decoupled", "beta2_decay": "c",
             "warmup_steps": "warmup", "adjust_lr_fn": "adjust"}
    parts = []
    for k, v in opts.items():
        if v is False or v == 0.0 and k not in ("lr", "beta", "alpha"):
            continue
        parts.append(short.get(k, k) if v is True else f"{short.get(k, k)}={v}")
    return " ".join(parts) or "(plain)"


def parity_table(steps: int) -> dict[str, float]:
    print(f"{'optimizer':<32} {'options (group 1)':<42} {'float64':>9} {'float32':>9} "
          f"{'rt f64':>9} {'foreach':>9}")
    worst = {"float64": 0.0, "float32": 0.0, "round trip": 0.0, "foreach": 0.0}
    rows = [*sgd_rows(), *heavy_ball_rows(), *adam_rows(), *adagrad_rows(), *rmsprop_rows(),
            *lbfgs_rows(), *lion_rows(), *adafactor_rows(), *muon_rows(), *schedulefree_rows()]
    for name, opts, groups, make_ours, make_torch in rows:
        closure = name == "LBFGS"
        shapes = MUON_SHAPES if name == "Muon" else None
        d64 = parity(make_ours, make_torch, groups, torch.float64, steps, closure=closure,
                     shapes=shapes)
        d32 = parity(make_ours, make_torch, groups, torch.float32, steps, closure=closure,
                     shapes=shapes)
        rt = parity(make_ours, make_torch, groups, torch.float64, steps, roundtrip_at=23,
                    closure=closure, shapes=shapes)
        has_foreach = name in ("SGD", "Adam", "AdamW")
        fe = parity(lambda g, m=make_ours: m(g, True), make_torch, groups, torch.float64,
                    steps) if has_foreach else float("nan")
        for key, value in zip(worst, (d64, d32, rt, fe if has_foreach else 0.0)):
            worst[key] = max(worst[key], value)
        fe_text = f"{fe:9.1e}" if has_foreach else f"{'-':>9}"
        print(f"{name:<32} {fmt_options(opts):<42} {d64:9.1e} {d32:9.1e} {rt:9.1e} {fe_text}")
    print("worst: " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    return worst


def step_times(repeats: int, hidden: int = 512) -> dict[str, float]:
    """Median step times of labkit's and torch's SGD and Adam; returns labkit/torch-for-loop."""
    torch.manual_seed(0)
    model = MLP(hidden=hidden)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    grads = [p.grad.clone() for p in model.parameters()]

    def make(factory):
        params = [p.detach().clone().requires_grad_() for p in model.parameters()]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt = factory(params)
        for _ in range(5):  # warm up, create the state
            opt.step()
        return opt

    configs = {
        "SGD(momentum=0.9)": {
            "labkit": lambda p: optim.SGD(p, lr=1e-3, momentum=0.9),
            "labkit foreach": lambda p: optim.SGD(p, lr=1e-3, momentum=0.9, foreach=True),
            "torch for-loop": lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9,
                                                        foreach=False),
            "torch foreach": lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9, foreach=True),
            "torch fused": lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9, fused=True),
        },
        "Adam": {
            "labkit": lambda p: optim.Adam(p, lr=1e-3),
            "labkit foreach": lambda p: optim.Adam(p, lr=1e-3, foreach=True),
            "torch for-loop": lambda p: torch.optim.Adam(p, lr=1e-3, foreach=False),
            "torch foreach": lambda p: torch.optim.Adam(p, lr=1e-3, foreach=True),
            "torch fused": lambda p: torch.optim.Adam(p, lr=1e-3, fused=True),
        },
    }
    n_params = sum(g.numel() for g in grads)
    print(f"\nstep time, MLP 784-{hidden}-{hidden}-10 ({n_params:,} parameters), "
          f"{torch.get_num_threads()} thread(s), median of {repeats} interleaved steps")
    print(f"{'optimizer':<20} {'implementation':<16} {'ms/step':>8} {'labkit/this':>12}")
    ratios = {}
    for name, factories in configs.items():
        opts = {k: make(f) for k, f in factories.items()}
        times = {k: [] for k in opts}
        for _ in range(repeats):
            for k, opt in opts.items():
                start = time.perf_counter()
                opt.step()
                times[k].append(time.perf_counter() - start)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        for k, ms in med.items():
            print(f"{name:<20} {k:<16} {ms:8.3f} {med['labkit'] / ms:12.2f}")
        ratios[name] = med["labkit"] / med["torch for-loop"]
        print(f"{name}: labkit / torch for-loop = {ratios[name]:.2f}, "
              f"labkit foreach / torch foreach = "
              f"{med['labkit foreach'] / med['torch foreach']:.2f}")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-parity", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_parity:
        parity_table(args.steps)
    step_times(args.repeats)


if __name__ == "__main__":
    main()
