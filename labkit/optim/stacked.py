r"""SGD and Adam for ``K`` runs at once, one hyper-parameter value per run (the labs' sweeps;
chapters 4 and 6).

A stacked model (:class:`labkit.sweep.StackedMLP`) holds the weights of ``K`` runs in each of its
parameters, run-major: ``p.view(K, -1)[k]`` is run ``k``'s. Here a hyper-parameter is a ``(K, 1)``
column against those ``(K, -1)`` rows, so one in-place kernel updates every run. Run ``k``'s row
goes through exactly the floating-point operations that :func:`labkit.optim.sgd.sgd_step`
(chapter 4) and :func:`labkit.optim.adam.adam_step` (chapter 6) apply to a lone tensor with run
``k``'s hyper-parameters, in the same order: for SGD

.. math::

    g_k &\leftarrow g_k + \lambda_k w_k, \qquad
    b_k \leftarrow \mu_k b_k + g_k \;(b_k = 0 \text{ before the first step}),\\
    w_k &\leftarrow w_k - \alpha_k\,(g_k + \mu_k b_k \text{ (Nesterov) or } b_k),

and for Adam the module docstring of :mod:`labkit.optim.adam` row by row, with :math:`\alpha_k,
\beta_{1,k}, \beta_{2,k}, \varepsilon_k, \lambda_k` per run. ``tests/test_optim_stacked.py``
checks every row against the step function, bit for bit.

The optimizers are :class:`labkit.optim.base.Optimizer` subclasses (param groups, ``state_dict``,
``zero_grad``) whose group values are ``K``-tuples, one per run. Two things differ from torch's
optimizers, both for a captured CUDA graph (:mod:`labkit.graphs`): the state exists before the
first step (zeros; :meth:`StackedOptimizer.state_tensors` creates and lists it), and Adam's step
count lives on the parameters' device. Off the CPU the bias corrections are computed there too
(in float64, except on Apple's MPS), so a step never waits for the host; the float64 powers of a
GPU may then differ from Python's in the last bit, which the CPU's bit-for-bit check does not
cover.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from labkit import _checks as checks
from labkit.optim.base import Optimizer


def _column(values: Sequence[float], like: torch.Tensor, dtype: torch.dtype | None = None
            ) -> torch.Tensor:
    """``values`` as a ``(K, 1)`` column on ``like``'s device (``like``'s dtype by default)."""
    return torch.tensor(list(values), dtype=dtype or like.dtype, device=like.device).view(-1, 1)


def _exact_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """The dtype of the bias corrections: float64 as Python computes them, but MPS has none."""
    return dtype if device.type == "mps" else torch.float64


@torch.no_grad()
def stacked_sgd_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    momentum_buffers: list[torch.Tensor] | None,
    *,
    k: int,
    neg_lr: torch.Tensor,
    momentum: torch.Tensor | None = None,
    weight_decay: torch.Tensor | None = None,
    nesterov: bool = False,
) -> None:
    r""":func:`labkit.optim.sgd.sgd_step` on the ``K`` rows of every parameter, in place
    (chapter 4; the labs' sweeps).

    ``neg_lr`` (:math:`-\alpha_k`), ``momentum`` (:math:`\mu_k`) and ``weight_decay``
    (:math:`\lambda_k`) are ``(K, 1)`` columns (``None``: no momentum, no weight decay);
    ``momentum_buffers`` holds one ``(K, n)`` buffer per parameter (zeros before the first step,
    which gives :math:`b_1 = g_1` as ``sgd_step``'s copy does), updated in place.
    """
    for i, p in enumerate(params):
        w, g = p.view(k, -1), grads[i].view(k, -1)
        if weight_decay is not None:
            g = torch.addcmul(g, w, weight_decay)       # g + lambda w   (sgd_step: g.add(w, alpha))
        if momentum is not None:
            buf = momentum_buffers[i]
            buf.mul_(momentum).add_(g)                 # b <- mu b + g
            g = torch.addcmul(g, buf, momentum) if nesterov else buf
        w.addcmul_(neg_lr, g)                           # w <- w - alpha d


def _bias_corrections(lr: torch.Tensor, beta1: torch.Tensor, beta2: torch.Tensor,
                      step_t: torch.Tensor, dtype: torch.dtype
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The columns :math:`-\alpha / (1-\beta_1^t)` and :math:`\sqrt{1-\beta_2^t}` in ``dtype``.

    On the CPU they are computed by Python, as :func:`labkit.optim.adam.adam_step` computes them
    (torch's vectorised ``pow`` can differ from Python's in the last bit); elsewhere on the
    device, so that a step never waits for the host (a CUDA graph can replay it)."""
    if step_t.device.type == "cpu":
        t = step_t.item()
        columns = [(-(a / (1 - b1**t)), (1 - b2**t) ** 0.5) for a, b1, b2 in
                   zip(lr.view(-1).tolist(), beta1.view(-1).tolist(), beta2.view(-1).tolist())]
        neg_step, bc2_sqrt = torch.tensor(columns, dtype=dtype).unbind(1)
        return neg_step.view(-1, 1), bc2_sqrt.view(-1, 1)
    t = step_t.to(lr.dtype)
    return (-(lr / (1 - beta1**t))).to(dtype), (1 - beta2**t).sqrt().to(dtype)


@torch.no_grad()
def stacked_adam_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    max_exp_avg_sqs: list[torch.Tensor],
    state_steps: list[torch.Tensor],
    *,
    k: int,
    lr: torch.Tensor,
    beta1: torch.Tensor,
    beta2: torch.Tensor,
    eps: torch.Tensor,
    weight_decay: torch.Tensor | None = None,
    decay: torch.Tensor | None = None,
    amsgrad: bool = False,
) -> None:
    r""":func:`labkit.optim.adam.adam_step` on the ``K`` rows of every parameter, in place
    (chapter 6; the labs' sweeps).

    ``lr``, ``beta1`` and ``beta2`` are ``(K, 1)`` float64 columns (the bias corrections are
    computed from them by ``_bias_corrections``: on the CPU by Python, as
    ``adam_step`` computes them); ``eps`` is a column in
    the parameters' dtype, as are ``weight_decay`` (Adam's :math:`g + \lambda w`) or ``decay``
    (AdamW's factor :math:`1 - \alpha\lambda`), ``None`` without weight decay. The state is one
    ``(K, n)`` tensor per parameter in ``exp_avgs``, ``exp_avg_sqs`` and, with ``amsgrad``,
    ``max_exp_avg_sqs``, and a scalar step count per parameter in ``state_steps``; all are
    updated in place.
    """
    for i, p in enumerate(params):
        w, g = p.view(k, -1), grads[i].view(k, -1)
        m, v, step_t = exp_avgs[i], exp_avg_sqs[i], state_steps[i]
        step_t += 1
        if decay is not None:
            w.mul_(decay.to(w.dtype))                  # AdamW: w <- (1 - lr lambda) w
        elif weight_decay is not None:
            g = torch.addcmul(g, w, weight_decay)       # Adam: g <- g + lambda w
        m.lerp_(g, (1 - beta1).to(w.dtype))            # m <- beta1 m + (1-beta1) g
        v.mul_(beta2.to(w.dtype)).addcmul_(g, g * (1 - beta2).to(w.dtype))  # v <- beta2 v + ...
        neg_step, bc2_sqrt = _bias_corrections(lr, beta1, beta2, step_t, w.dtype)
        if amsgrad:
            torch.maximum(max_exp_avg_sqs[i], v, out=max_exp_avg_sqs[i])
            v = max_exp_avg_sqs[i]
        denom = (v.sqrt() / bc2_sqrt).add_(eps)       # sqrt(v_hat) + eps
        w.addcdiv_(m * neg_step, denom)                 # w <- w - lr m_hat / (sqrt(v_hat) + eps)


def _per_run(name: str, value, k: int | None) -> tuple[float, ...]:
    """``value`` (one number, or one per run) as a tuple of ``k`` floats."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if k is None:
            raise ValueError(f"{name}={value!r}: give lr as one value per run (a list), so that "
                             "the number of runs K is known")
        return (float(value),) * k
    try:
        values = tuple(float(x) for x in value)
    except TypeError:
        raise TypeError(f"{name} must be a number or a sequence of numbers (one per run), got "
                        f"{type(value).__name__}") from None
    if k is not None and len(values) != k:
        raise ValueError(f"{name} has {len(values)} values but lr has {k}: give one per run")
    if not values:
        raise ValueError(f"{name} is empty: give one value per run")
    return values


class StackedOptimizer(Optimizer):
    """The base of :class:`StackedSGD` and :class:`StackedAdam` (chapters 4 and 6; the labs'
    sweeps): ``K`` from the group's ``lr``, hyper-parameter columns cached per device and dtype,
    and the state made before the first step (:meth:`state_tensors`)."""

    #: Group values that hold one number per run.
    per_run: tuple[str, ...] = ()

    def check_group(self, group: dict) -> None:
        group["lr"] = _per_run("lr", group["lr"], None)
        k = len(group["lr"])
        for name in self.per_run:
            group[name] = _per_run(name, group[name], k)
            for value in group[name]:
                checks.at_least(name, value)
        for p in group["params"]:
            if p.numel() % k:
                raise ValueError(f"a parameter of shape {tuple(p.shape)} does not split into "
                                 f"K={k} runs (one per lr value); stack the model's weights "
                                 "run-major (labkit.sweep.StackedMLP)")

    def column(self, values: tuple[float, ...], like: torch.Tensor,
               dtype: torch.dtype | None = None) -> torch.Tensor:
        """``values`` as a ``(K, 1)`` column, made once per device and dtype (a captured CUDA
        graph must find it at the same address at every replay)."""
        dtype = dtype or like.dtype
        key = (values, dtype, like.device)
        columns = self.__dict__.setdefault("_columns", {})  # not in state_dict, not pickled
        if key not in columns:
            columns[key] = _column(values, like, dtype)
        return columns[key]

    def rows(self, p: torch.Tensor, k: int) -> torch.Tensor:
        """Zeros shaped like ``p``'s ``K`` rows (a state tensor)."""
        return torch.zeros(k, p.numel() // k, dtype=p.dtype, device=p.device)

    def init_state(self, group: dict, p: torch.Tensor) -> dict:
        """The state of parameter ``p`` of ``group`` before its first step."""
        raise NotImplementedError

    def group_states(self, group: dict, params: list[torch.Tensor]) -> list[dict]:
        for p in params:
            if not self.state[p]:
                self.state[p].update(self.init_state(group, p))
        return [self.state[p] for p in params]

    def state_tensors(self) -> list[torch.Tensor]:
        """Every tensor the optimizer updates in place, its state made now if missing
        (:mod:`labkit.graphs` saves and restores them around a CUDA graph's warm-up steps)."""
        found = []
        for group in self.param_groups:
            for state in self.group_states(group, list(group["params"])):
                found += [t for t in state.values() if isinstance(t, torch.Tensor)]
        return found


class StackedSGD(StackedOptimizer):
    """``torch.optim.SGD`` for ``K`` runs at once: one learning rate, momentum and weight decay per
    run (chapter 4; the labs' sweeps), rows updated by :func:`stacked_sgd_step`.

    ``lr`` is a sequence of ``K`` values; ``momentum`` and ``weight_decay`` one value for all runs
    or ``K`` values. Every parameter must split into ``K`` run-major rows
    (:class:`labkit.sweep.StackedMLP`'s do). A parameter's state is ``{"momentum_buffer": (K, n)
    tensor}`` when a run has momentum.
    """

    per_run = ("momentum", "weight_decay")

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: Sequence[float],
                 momentum: float | Sequence[float] = 0.0,
                 weight_decay: float | Sequence[float] = 0.0, nesterov: bool = False) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def check_group(self, group: dict) -> None:
        super().check_group(group)
        for value in group["lr"]:
            checks.at_least("lr", value)
        if group["nesterov"] and min(group["momentum"]) <= 0:
            raise ValueError(f"nesterov=True needs momentum > 0 in every run; got momentum="
                             f"{group['momentum']!r}")

    def init_state(self, group: dict, p: torch.Tensor) -> dict:
        k = len(group["lr"])
        return {"momentum_buffer": self.rows(p, k)} if any(group["momentum"]) else {}

    def step_group(self, group: dict, params: list[torch.Tensor],
                   grads: list[torch.Tensor]) -> None:
        if not params:
            return
        states, like = self.group_states(group, params), params[0]
        stacked_sgd_step(
            params, grads, [s.get("momentum_buffer") for s in states], k=len(group["lr"]),
            neg_lr=self.column(tuple(-x for x in group["lr"]), like),
            momentum=self.column(group["momentum"], like) if any(group["momentum"]) else None,
            weight_decay=(self.column(group["weight_decay"], like)
                          if any(group["weight_decay"]) else None),
            nesterov=group["nesterov"])


class StackedAdam(StackedOptimizer):
    """``torch.optim.Adam``/``AdamW`` for ``K`` runs at once: one learning rate,
    :math:`\\beta_1, \\beta_2, \\varepsilon` and weight decay per run (chapter 6; the labs'
    sweeps), rows updated by :func:`stacked_adam_step`.

    ``lr`` is a sequence of ``K`` values; ``betas`` one pair for all runs or ``K`` pairs; ``eps``
    and ``weight_decay`` one value or ``K``. A parameter's state is ``step`` (a float32 scalar on
    the parameter's device), ``exp_avg``, ``exp_avg_sq`` and, with ``amsgrad``,
    ``max_exp_avg_sq`` (``(K, n)`` tensors).
    """

    per_run = ("beta1", "beta2", "eps", "weight_decay")

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: Sequence[float],
                 betas: tuple[float, float] | Sequence[tuple[float, float]] = (0.9, 0.999),
                 eps: float | Sequence[float] = 1e-8,
                 weight_decay: float | Sequence[float] = 0.0, amsgrad: bool = False, *,
                 decoupled_weight_decay: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def check_group(self, group: dict) -> None:
        group["lr"] = _per_run("lr", group["lr"], None)
        k = len(group["lr"])
        betas = group.pop("betas", None)
        if betas is not None:
            pairs = [betas] * k if len(betas) == 2 and not isinstance(betas[0], (tuple, list)) \
                else list(betas)
            if len(pairs) != k:
                raise ValueError(f"betas has {len(pairs)} pairs but lr has {k} values: give one "
                                 "pair for all runs or one per run")
            pairs = [checks.betas(tuple(pair)) for pair in pairs]
            group["beta1"], group["beta2"] = (tuple(b[0] for b in pairs),
                                              tuple(b[1] for b in pairs))
        super().check_group(group)
        for value in group["lr"]:
            checks.at_least("lr", value)

    def init_state(self, group: dict, p: torch.Tensor) -> dict:
        k = len(group["lr"])
        names = ["exp_avg", "exp_avg_sq"] + ["max_exp_avg_sq"] * group["amsgrad"]
        return {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                **{name: self.rows(p, k) for name in names}}

    def step_group(self, group: dict, params: list[torch.Tensor],
                   grads: list[torch.Tensor]) -> None:
        if not params:
            return
        states, like = self.group_states(group, params), params[0]
        exact = _exact_dtype(like.device, like.dtype)
        decay = weight_decay = None
        if any(group["weight_decay"]):
            if group["decoupled_weight_decay"]:
                decay = self.column(tuple(1 - lr * wd for lr, wd in
                                          zip(group["lr"], group["weight_decay"])), like, exact)
            else:
                weight_decay = self.column(group["weight_decay"], like)
        stacked_adam_step(
            params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
            [s["max_exp_avg_sq"] for s in states if group["amsgrad"]],
            [s["step"] for s in states], k=len(group["lr"]),
            lr=self.column(group["lr"], like, exact),
            beta1=self.column(group["beta1"], like, exact),
            beta2=self.column(group["beta2"], like, exact),
            eps=self.column(group["eps"], like), weight_decay=weight_decay, decay=decay,
            amsgrad=group["amsgrad"])
