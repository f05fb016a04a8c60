r"""A whole sweep trained at once, as one batched model (the labs' Demo & Results).

The runs of a sweep (three learning rates, or three momenta, ...) share the network, its initial
weights and the batch order; only the optimiser's hyperparameters differ. They are ``K``
independent problems, so they can be trained side by side: stack each layer's weights of the
``K`` copies into one tensor and compute every copy's layer with one (batched) matrix product,

.. math:: h^{(l+1)}_k = \sigma\big(h^{(l)}_k W^{(l)\top}_k + b^{(l)}_k\big),
          \qquad k = 1, \dots, K \quad\text{(one \texttt{torch.baddbmm})}.

Back-propagating the sum :math:`\sum_k L_k(w_k)` of the runs' mini-batch losses gives each run
its own gradient, :math:`\partial / \partial w_k \sum_j L_j(w_j) = \nabla L_k(w_k)`, because
:math:`L_j` does not depend on :math:`w_k`. The optimisers below then apply torch's SGD (chapter
4) and Adam (chapter 6) updates with one learning rate, momentum, ... per run, stored as ``(K, 1)``
columns against the ``(K, -1)`` rows of the stacked weights. The result equals ``K`` sequential
runs of :func:`labkit.fast.train_tensors` (``tests/test_fast_training.py`` checks it in float64).
On a GPU it replaces ``K`` small kernels by one large one; on a 2-core CPU it is no faster than
the sequential runs (``benchmarks/train_speed.py`` measures both).

A run whose loss becomes NaN or infinite is marked ``diverged`` and its history ends there, as
in :func:`labkit.train.train_loop`; it keeps computing (harmlessly, it shares nothing with the
others) until every run has diverged or the sweep ends.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from labkit.fast import _check_inputs, accumulator_dtype, autocast_context, epoch_permutation
from labkit.plot import run_title
from labkit.train import History

#: Element-wise activations the stacked model can apply to a ``(K, B, H)`` tensor unchanged.
ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.SiLU, nn.Identity)


@dataclass(frozen=True)
class SweepConfig:
    """One run of a sweep in the labs: the optimiser (``"SGD"``/``"Adam"``), its hyperparameters."""

    optimizer: str = "SGD"
    lr: float = 1e-3
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self):
        name = {"sgd": "SGD", "adam": "Adam"}.get(str(self.optimizer).lower())
        if name is None:
            raise ValueError(f"optimizer must be 'SGD' or 'Adam', got {self.optimizer!r}")
        object.__setattr__(self, "optimizer", name)
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if name == "Adam" and self.momentum:
            raise ValueError(f"Adam takes no momentum (beta1 plays that role), got {self.momentum}")

    def title(self, batch_size: int) -> str:
        """The lecture's figure title of this run, e.g. ``Optimizer-SGD lr-0.1 mt-0.9 bs-64``."""
        return run_title(self.optimizer, self.lr, self.momentum, batch_size)


class StackedMLP(nn.Module):
    """``K`` copies of a feed-forward network (``Flatten``, ``Linear`` and element-wise activations,
    e.g. :class:`labkit.models.MLP`), all starting from ``model``'s weights, evaluated at once
    (the labs' vectorised sweeps).

    ``forward(x)`` takes one batch ``(B, ...)`` and returns the ``K`` outputs ``(K, B, C)``. The
    first layer's ``K`` weight matrices are stacked into one ``(K * out, in)`` matrix, so that
    layer is one ``F.linear``; the other layers hold ``(K, in, out)`` stacks (the transposed
    weights) and are batched products (``torch.baddbmm``). Every parameter is run-major:
    ``p.view(K, -1)[k]`` holds run ``k``'s values, which is what the optimisers below use.
    """

    def __init__(self, model: nn.Module, k: int):
        super().__init__()
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k (the number of runs) must be a positive integer, got {k!r}")
        self.k = k
        self.names: list[tuple[str, str]] = []  # (weight name, bias name) in the original model
        self.activations: list[nn.Module] = []
        weights, biases = [], []
        leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
        for position, (name, module) in enumerate(leaves):
            if isinstance(module, nn.Flatten) and position == 0:
                continue
            if isinstance(module, nn.Linear):
                if len(weights) > len(self.activations):
                    self.activations.append(nn.Identity())
                if module.bias is None:
                    raise ValueError(f"layer {name!r} has no bias; StackedMLP expects biases")
                w, b = module.weight.detach(), module.bias.detach()
                if not weights:  # (K * out, in): the K copies of W one above the other
                    weights.append(w.repeat(k, 1))
                    biases.append(b.repeat(k))
                else:            # (K, in, out) and (K, 1, out)
                    weights.append(w.T.unsqueeze(0).repeat(k, 1, 1))
                    biases.append(b.view(1, 1, -1).repeat(k, 1, 1))
                self.names.append((f"{name}.weight", f"{name}.bias"))
            elif isinstance(module, ELEMENTWISE) and len(weights) == len(self.activations) + 1:
                self.activations.append(module)
            else:
                raise ValueError(
                    f"StackedMLP handles Flatten (first), Linear and one element-wise activation "
                    f"after each Linear; got {type(module).__name__} at {name!r}"
                )
        if not weights:
            raise ValueError("the model has no Linear layer to stack")
        self.out0 = weights[0].shape[0] // k
        self.weights = nn.ParameterList(nn.Parameter(w) for w in weights)
        self.biases = nn.ParameterList(nn.Parameter(b) for b in biases)
        self._check_against(model)

    @torch.no_grad()
    def _check_against(self, model: nn.Module) -> None:
        """The stack must compute what ``model`` computes (its forward may do more than chain)."""
        w = self.weights[0]
        probe = torch.Generator(device=w.device).manual_seed(0)  # leaves the global RNG alone
        x = torch.randn(3, w.shape[1], dtype=w.dtype, device=w.device, generator=probe)
        if not torch.allclose(self(x)[0], model(x), rtol=1e-4, atol=1e-5):
            raise ValueError("the model's forward is not its layers applied in order; "
                             "StackedMLP cannot stack it")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        h = F.linear(x, self.weights[0], self.biases[0])               # (B, K * out)
        h = h.view(len(x), self.k, self.out0).transpose(0, 1).contiguous()  # (K, B, out)
        for i in range(1, len(self.weights)):
            h = self.activations[i - 1](h)
            h = torch.baddbmm(self.biases[i], h, self.weights[i])     # (K, B, out_i)
        if len(self.activations) == len(self.weights):
            h = self.activations[-1](h)
        return h

    def state_dict_of(self, k: int) -> dict[str, torch.Tensor]:
        """Run ``k``'s weights under the original model's names, for ``model.load_state_dict``."""
        cols = slice(k * self.out0, (k + 1) * self.out0)
        (w0n, b0n), *rest = self.names
        out = {w0n: self.weights[0][cols].detach().clone(),
               b0n: self.biases[0][cols].detach().clone()}
        for (wn, bn), w, b in zip(rest, list(self.weights)[1:], list(self.biases)[1:]):
            out[wn], out[bn] = w[k].T.detach().clone(), b[k, 0].detach().clone()
        return out


class StackedSGD:
    r"""torch's SGD with one learning rate and momentum per run (chapter 4).

    .. math:: b_{t} = \mu_k b_{t-1} + g_t \;(b_0 = g_0),\qquad w_{t+1} = w_t - \eta_k b_t

    (with :math:`\mu_k = 0` this is plain SGD, :math:`w_{t+1} = w_t - \eta_k g_t`). Every
    parameter of a :class:`StackedMLP` is viewed as ``(K, -1)``, one row per run, so the
    hyperparameters are ``(K, 1)`` columns; two in-place passes per step with momentum, one without.
    """

    def __init__(self, model: StackedMLP, configs: Sequence[SweepConfig]):
        self.params = list(model.parameters())
        self.k = model.k
        like = self.params[0]
        self.neg_lr = _column([-c.lr for c in configs], like)
        self.momentum = _column([c.momentum for c in configs], like)
        self.use_momentum = any(c.momentum for c in configs)
        self.buffers = ([torch.zeros(self.k, p.numel() // self.k, dtype=p.dtype, device=p.device)
                         for p in self.params] if self.use_momentum else None)

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            g = p.grad.view(self.k, -1)
            if self.use_momentum:
                g = torch.addcmul(g, self.buffers[i], self.momentum, out=self.buffers[i])
            p.view(self.k, -1).addcmul_(self.neg_lr, g)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


class StackedAdam:
    r"""torch's Adam with one learning rate, :math:`\beta_1, \beta_2, \epsilon` per run (chapter 6).

    .. math:: m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
              v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
              w_{t} = w_{t-1} - \frac{\eta}{1-\beta_1^t}\,
                      \frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}

    The bias corrections are computed on the device, once per step for all the parameters, so a
    GPU never waits for the host.
    """

    def __init__(self, model: StackedMLP, configs: Sequence[SweepConfig]):
        self.params = list(model.parameters())
        self.k = model.k
        like = self.params[0]
        self.t = 0
        self.m = [torch.zeros(self.k, p.numel() // self.k, dtype=p.dtype, device=p.device)
                  for p in self.params]
        self.v = [torch.zeros_like(m) for m in self.m]
        self.lr = _column([c.lr for c in configs], like)
        self.b1 = _column([c.betas[0] for c in configs], like)
        self.b2 = _column([c.betas[1] for c in configs], like)
        self.eps = _column([c.eps for c in configs], like)

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        neg_step = -self.lr / (1 - self.b1 ** self.t)
        bc2_sqrt = (1 - self.b2 ** self.t).sqrt()
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad.view(self.k, -1)
            m.lerp_(g, 1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g * (1 - self.b2))
            denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
            p.view(self.k, -1).addcdiv_(m * neg_step, denom)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


def _column(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """One value per run as a ``(K, 1)`` column, with the dtype and device of ``like``."""
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, 1)


def stacked_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each run's mini-batch cross-entropy (chapter 2): logits ``(K, B, C)``, labels ``(B,)``."""
    k, b, c = logits.shape
    per_sample = F.cross_entropy(logits.reshape(k * b, c), y.repeat(k), reduction="none")
    return per_sample.view(k, b).mean(dim=1)


@dataclass
class SweepResult:
    """The runs of a sweep (the labs): one :class:`labkit.train.History` each, the stacked model."""

    configs: list[SweepConfig]
    histories: list[History]
    model: StackedMLP
    batch_size: int
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def load_run(self, k: int, model: nn.Module) -> nn.Module:
        """``model`` (a copy of the swept architecture) with run ``k``'s final weights."""
        model.load_state_dict(self.model.state_dict_of(k))
        return model


@torch.no_grad()
def evaluate_stacked(
    stacked: StackedMLP, X: torch.Tensor, y: torch.Tensor, batch_size: int = 1000,
    precision: str = "fp32",
) -> tuple[list[float], list[float]]:
    """Each run's average test loss (mean of batch means) and accuracy, read back once (labs)."""
    total = torch.zeros(stacked.k, device=X.device, dtype=accumulator_dtype(X.device))
    correct = torch.zeros(stacked.k, device=X.device, dtype=torch.long)
    num_batches = 0
    with autocast_context(X.device, precision):
        for start in range(0, len(X), batch_size):
            logits = stacked(X[start:start + batch_size])
            target = y[start:start + batch_size]
            total += stacked_cross_entropy(logits, target).to(total.dtype)
            correct += (logits.argmax(2) == target).sum(1)
            num_batches += 1
    return (total / num_batches).tolist(), (correct.double() / len(X)).tolist()


def _log_rows(histories: list[History], losses: torch.Tensor, start: int, stop: int, seen0: int,
              ends: list[int]) -> None:
    """Log batches ``start:stop`` of ``losses`` (batches × runs) in the histories still going."""
    for b, row in zip(range(start, stop), losses[start:stop].tolist()):
        for history, value in zip(histories, row):
            if not history.diverged:
                history.log(seen0 + ends[b], value)
                history.diverged = not math.isfinite(value)


def sweep_mlp(
    model: nn.Module,
    configs: Sequence[SweepConfig | dict],
    X: torch.Tensor,
    y: torch.Tensor,
    epochs: int = 1,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    test_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    precision: str = "fp32",
    check_every: int = 100,
) -> SweepResult:
    """Train one copy of ``model`` per configuration, all at once, with cross-entropy (the labs'
    Demo & Results).

    Every run starts from ``model``'s weights (``model`` itself is not changed) and sees the
    batches in the same order, one ``torch.randperm(len(X), generator=generator)`` per epoch,
    like :func:`labkit.fast.train_tensors` with an equally seeded generator. All configurations
    must use the same optimiser. Losses are read back every ``check_every`` batches and at the
    end of each epoch; the sweep stops early once every run has diverged.
    """
    _check_inputs(X, y, epochs, batch_size)
    configs = [c if isinstance(c, SweepConfig) else SweepConfig(**c) for c in configs]
    if not configs:
        raise ValueError("configs is empty: give at least one SweepConfig")
    names = {c.optimizer for c in configs}
    if len(names) != 1:
        raise ValueError(f"all configurations of one sweep must use one optimizer, got {names}")
    if not isinstance(check_every, int) or check_every < 1:
        raise ValueError(f"check_every must be a positive integer, got {check_every!r}")
    start_time = time.perf_counter()
    k = len(configs)
    stacked = StackedMLP(copy.deepcopy(model), k)
    opt_cls = StackedSGD if names == {"SGD"} else StackedAdam
    optimizer = opt_cls(stacked, configs)
    histories = [History(label=c.title(batch_size)) for c in configs]
    n = len(X)
    n_batches = math.ceil(n / batch_size)
    ends = [min((b + 1) * batch_size, n) for b in range(n_batches)]
    autocast = autocast_context(X.device, precision)
    seen0 = 0
    for _ in range(epochs):
        perm = epoch_permutation(n, generator, X.device)
        losses = torch.empty(n_batches, k, device=X.device, dtype=accumulator_dtype(X.device))
        checked = 0
        stacked.train()
        for batch in range(n_batches):
            idx = perm[batch * batch_size: ends[batch]]
            with autocast:
                per_run = stacked_cross_entropy(stacked(X[idx]), y[idx])
            losses[batch] = per_run.detach()
            per_run.sum().backward()
            optimizer.step()
            optimizer.zero_grad()
            if (batch + 1) % check_every == 0:
                _log_rows(histories, losses, checked, batch + 1, seen0, ends)
                checked = batch + 1
                if all(h.diverged for h in histories):
                    break
        _log_rows(histories, losses, checked, batch + 1, seen0, ends)
        seen0 += n
        if test_data is not None:
            test_loss, test_acc = evaluate_stacked(stacked, *test_data, batch_size, precision)
            for history, loss, acc in zip(histories, test_loss, test_acc):
                if not history.diverged:
                    history.test_loss.append(loss)
                    history.test_accuracy.append(acc)
        if all(h.diverged for h in histories):
            break
    return SweepResult(configs, histories, stacked, batch_size,
                       seconds=time.perf_counter() - start_time)
