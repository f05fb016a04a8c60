r"""Schedule-Free SGD and AdamW, as the ``schedulefree`` package computes them (chapter 8).

Schedule-Free (Defazio et al., 2024) runs plain SGD (or Adam) on a sequence :math:`z`, evaluates
the gradient at an interpolation :math:`y`, and returns the running average :math:`x` of the
:math:`z` sequence. At step :math:`t = 1, 2, \dots`, with :math:`x_1 = z_1 = w_0` and momentum
:math:`\beta`:

.. math::

    y_t &= (1-\beta)\, z_t + \beta\, x_t       &&\text{(where the gradient is taken)}\\
    g_t &= \nabla f(y_t) + \lambda y_t          &&\text{(weight decay at } y)\\
    z_{t+1} &= z_t - \gamma_t\, g_t              &&\text{(the SGD step)}\\
    x_{t+1} &= (1-c_{t+1})\, x_t + c_{t+1}\, z_{t+1}, \quad
    c_{t+1} = \frac{w_t}{\sum_{i \le t} w_i}     &&\text{(weighted average)}

with the weights :math:`w_t = t^r \max_{i\le t}\gamma_i^{p}` (``r`` and ``weight_lr_power``
:math:`p`; :math:`r = 0`, :math:`p = 2` by default) and the rate :math:`\gamma_t` warmed up
linearly over ``warmup_steps``. Uniform averaging of SGD's iterates is what makes the schedule
unnecessary: the average of the :math:`z`'s forgets early iterates as :math:`1/t`, which is what
a decaying rate would do to the last iterate, without fixing the length of the run in advance.

The parameter tensor holds :math:`y` while training and :math:`x` for evaluation:
``optimizer.train()`` and ``optimizer.eval()`` switch between them (call ``eval()`` before
evaluating or saving the model, ``train()`` before the next step). The optimizer keeps :math:`z`
and derives :math:`x = (y - (1-\beta) z)/\beta` when needed, so it stores one tensor per weight
(SGD) or two (AdamW, which also keeps Adam's second moment :math:`v`):

.. math:: v_t = \beta_2 v_{t-1} + (1-\beta_2)\, \nabla f(y_t)^2, \qquad
          g_t = \frac{\nabla f(y_t)}{\sqrt{v_t/(1-\beta_2^t)} + \varepsilon} + \lambda y_t

and then the same three lines, with :math:`\beta = \beta_1`. The step functions update :math:`y`
in place with one ``lerp`` and one ``add``, as the package does, so the two agree to the last bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from labkit import _checks as checks
from labkit.optim.base import Optimizer


def average_weight(group: dict) -> tuple[float, float]:
    r"""Advance the group's schedule counters by one step; return ``(lr, c)``: the warmed-up
    rate :math:`\gamma_t` and the averaging weight :math:`c_{t+1} = w_t/\sum_{i\le t} w_i`
    (chapter 8). Updates ``scheduled_lr``, ``lr_max`` and ``weight_sum`` in ``group``."""
    k = group["k"]
    sched = (k + 1) / group["warmup_steps"] if k < group["warmup_steps"] else 1.0
    lr = group["lr"] * sched
    group["scheduled_lr"] = lr
    lr_max = group["lr_max"] = max(lr, group["lr_max"])
    weight = ((k + 1) ** group["r"]) * (lr_max ** group["weight_lr_power"])
    weight_sum = group["weight_sum"] = group["weight_sum"] + weight
    try:
        c = weight / weight_sum
    except ZeroDivisionError:  # lr = 0 on the first steps
        c = 0
    return lr, c


@torch.no_grad()
def sgd_schedulefree_step(ys: list[torch.Tensor], grads: list[torch.Tensor],
                          zs: list[torch.Tensor], *, lr: float, c: float, momentum: float = 0.9,
                          weight_decay: float = 0.0) -> None:
    r"""One Schedule-Free SGD step, in place on ``ys`` (the parameters, at :math:`y_t`) and
    ``zs`` (chapter 8).

    .. math:: z_{t+1} = z_t - \gamma g_t, \quad x_{t+1} = (1-c)x_t + c z_{t+1}, \quad
              y_{t+1} = (1-\beta) z_{t+1} + \beta x_{t+1}

    computed as :math:`y \leftarrow y + c(z - y) + \gamma(\beta(1-c) - 1)\, g`, then
    :math:`z \leftarrow z - \gamma g`, with ``lr`` :math:`=\gamma` and ``c`` from
    :func:`average_weight`.
    """
    for y, g, z in zip(ys, grads, zs, strict=True):
        if weight_decay != 0:
            g = g.add(y, alpha=weight_decay)  # gradient of f + lambda/2 |y|^2, at y
        y.lerp_(end=z, weight=c)
        y.add_(g, alpha=lr * (momentum * (1 - c) - 1))
        z.sub_(g, alpha=lr)


@torch.no_grad()
def adamw_schedulefree_step(ys: list[torch.Tensor], grads: list[torch.Tensor],
                            zs: list[torch.Tensor], exp_avg_sqs: list[torch.Tensor], *,
                            lr: float, c: float, k: int, beta1: float = 0.9,
                            beta2: float = 0.999, eps: float = 1e-8,
                            weight_decay: float = 0.0) -> None:
    r"""One Schedule-Free AdamW step, in place on ``ys``, ``zs`` and ``exp_avg_sqs``
    (chapter 8); ``k`` is the number of steps taken before this one.

    .. math:: v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
              \hat g = g/(\sqrt{v/(1-\beta_2^{k+1})} + \varepsilon) + \lambda y

    then :func:`sgd_schedulefree_step`'s update with :math:`\hat g` and :math:`\beta = \beta_1`.
    """
    bias_correction2 = 1 - beta2 ** (k + 1)
    for y, g, z, v in zip(ys, grads, zs, exp_avg_sqs, strict=True):
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = v.div(bias_correction2).sqrt_().add_(eps)
        g = g.div(denom)  # the Adam-normalised gradient
        if weight_decay != 0:
            g.add_(y, alpha=weight_decay)  # decay at y
        y.lerp_(end=z, weight=c)
        y.add_(g, alpha=lr * (beta1 * (1 - c) - 1))
        z.sub_(g, alpha=lr)


class ScheduleFree(Optimizer):
    """The base of :class:`SGDScheduleFree` and :class:`AdamWScheduleFree` (chapter 8): the
    ``train()``/``eval()`` switch between :math:`y` and :math:`x`, and the check that a step is
    taken in train mode."""

    def _beta(self, group: dict) -> float:
        raise NotImplementedError

    @torch.no_grad()
    def eval(self) -> None:
        """Put :math:`x` (the average, the point to evaluate and save) into the parameters
        (chapter 8)."""
        for group in self.param_groups:
            if group["train_mode"]:
                for p in group["params"]:
                    if "z" in self.state[p]:  # y -> x = y + (1 - 1/beta)(z - y)
                        p.lerp_(end=self.state[p]["z"].to(p.device),
                                weight=1 - 1 / self._beta(group))
                group["train_mode"] = False

    @torch.no_grad()
    def train(self) -> None:
        """Put :math:`y` (where gradients are taken) into the parameters (chapter 8)."""
        for group in self.param_groups:
            if not group["train_mode"]:
                for p in group["params"]:
                    if "z" in self.state[p]:  # x -> y = x + (1 - beta)(z - x)
                        p.lerp_(end=self.state[p]["z"].to(p.device), weight=1 - self._beta(group))
                group["train_mode"] = True

    def check_group(self, group: dict) -> None:
        checks.at_least("lr", group["lr"])
        checks.at_least("weight_decay", group["weight_decay"])
        checks.integer("warmup_steps", group["warmup_steps"])
        checks.finite("r", group["r"])
        checks.finite("weight_lr_power", group["weight_lr_power"])

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One step of every group (chapter 8); a ``RuntimeError`` in eval mode, as the package
        raises."""
        if not self.param_groups[0]["train_mode"]:
            raise RuntimeError("the optimizer is in eval mode: call optimizer.train() before "
                               "training steps (and optimizer.eval() before evaluating)")
        return super().step(closure)


def _schedule_keys(lr: float, warmup_steps: int, r: float, weight_lr_power: float,
                   weight_decay: float) -> dict:
    return dict(lr=lr, r=r, k=0, warmup_steps=warmup_steps, train_mode=False, weight_sum=0.0,
                lr_max=-1.0, scheduled_lr=0.0, weight_lr_power=weight_lr_power,
                weight_decay=weight_decay, foreach=False)


class SGDScheduleFree(ScheduleFree):
    """``schedulefree.SGDScheduleFree`` rebuilt on :func:`sgd_schedulefree_step` (chapter 8).

    Each parameter's state is ``z``; the param groups carry the same schedule keys (``k``,
    ``train_mode``, ``weight_sum``, ``lr_max``, ``scheduled_lr``), so the ``state_dict`` objects
    load across. Call ``train()`` before the first step.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float = 1.0,
                 momentum: float = 0.9, weight_decay: float = 0, warmup_steps: int = 0,
                 r: float = 0.0, weight_lr_power: float = 2) -> None:
        super().__init__(params, dict(_schedule_keys(lr, warmup_steps, r, weight_lr_power,
                                                     weight_decay), momentum=momentum))

    def _beta(self, group: dict) -> float:
        return group["momentum"]

    def check_group(self, group: dict) -> None:
        super().check_group(group)
        checks.interval("momentum", group["momentum"], 0.0, 1.0, "()")

    def step_group(self, group: dict, params: list[torch.Tensor],
                   grads: list[torch.Tensor]) -> None:
        lr, c = average_weight(group)
        for p in params:
            if "z" not in self.state[p]:
                self.state[p]["z"] = torch.clone(p, memory_format=torch.preserve_format)
        sgd_schedulefree_step(params, grads, [self.state[p]["z"] for p in params], lr=lr, c=c,
                              momentum=group["momentum"], weight_decay=group["weight_decay"])
        group["k"] += 1


class AdamWScheduleFree(ScheduleFree):
    """``schedulefree.AdamWScheduleFree`` rebuilt on :func:`adamw_schedulefree_step`
    (chapter 8).

    Each parameter's state is ``z`` and ``exp_avg_sq``, with the same group keys as the
    package's, so the ``state_dict`` objects load across. Call ``train()`` before the first
    step. Unlike the package, which checks nothing, bad hyper-parameters raise a ``ValueError``.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float = 0.0025,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, warmup_steps: int = 0, r: float = 0.0,
                 weight_lr_power: float = 2.0) -> None:
        super().__init__(params, dict(_schedule_keys(lr, warmup_steps, r, weight_lr_power,
                                                     weight_decay), betas=betas, eps=eps))

    def _beta(self, group: dict) -> float:
        return group["betas"][0]

    def check_group(self, group: dict) -> None:
        super().check_group(group)
        beta1, beta2 = checks.betas(group["betas"])
        if beta1 == 0:
            raise ValueError("betas[0] must be in (0, 1): eval() divides by it; got betas[0]=0")
        checks.at_least("eps", group["eps"])

    def step_group(self, group: dict, params: list[torch.Tensor],
                   grads: list[torch.Tensor]) -> None:
        k = group["k"]
        lr, c = average_weight(group)
        for p in params:
            if "z" not in self.state[p]:
                self.state[p]["z"] = torch.clone(p, memory_format=torch.preserve_format)
                self.state[p]["exp_avg_sq"] = torch.zeros_like(p,
                                                               memory_format=torch.preserve_format)
        beta1, beta2 = group["betas"]
        adamw_schedulefree_step(params, grads, [self.state[p]["z"] for p in params],
                                [self.state[p]["exp_avg_sq"] for p in params], lr=lr, c=c, k=k,
                                beta1=beta1, beta2=beta2, eps=group["eps"],
                                weight_decay=group["weight_decay"])
        group["k"] = k + 1
