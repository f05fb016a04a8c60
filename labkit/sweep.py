r"""A whole sweep trained at once, as one batched model (the labs' Demo & Results).

The runs of a sweep (three learning rates, or three momenta, ...) share the network, its initial
weights and the batch order; only the optimiser's hyperparameters differ. They are ``K``
independent problems, so they can be trained side by side: stack each layer's weights of the
``K`` copies into one tensor and compute every copy's layer with one (batched) matrix product,

.. math:: h^{(l+1)}_k = \sigma\big(h^{(l)}_k W^{(l)\top}_k + b^{(l)}_k\big),
          \qquad k = 1, \dots, K \quad\text{(one \texttt{torch.baddbmm})}.

Back-propagating the sum :math:`\sum_k L_k(w_k)` of the runs' mini-batch losses gives each run
its own gradient, :math:`\partial / \partial w_k \sum_j L_j(w_j) = \nabla L_k(w_k)`, because
:math:`L_j` does not depend on :math:`w_k`. The stacked optimisers of :mod:`labkit.optim.stacked`
then apply torch's SGD (chapter 4) and Adam (chapter 6) updates with one learning rate, momentum,
... per run, stored as ``(K, 1)`` columns against the ``(K, -1)`` rows of the stacked weights
(``tests/test_optim_stacked.py`` checks each row against ``sgd_step``/``adam_step``, bit for
bit). The result equals ``K`` sequential runs of :func:`labkit.fast.train_tensors`
(``tests/test_fast_training.py`` checks it in float64).
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

from labkit import _checks as checks
from labkit.batches import epoch_batches
from labkit.fast import autocast_context
from labkit.graphs import captured_epochs
from labkit.optim.stacked import StackedAdam, StackedSGD
from labkit.runs import OptimizerConfig
from labkit.train import History, evaluate, train_epoch, train_epochs

#: Element-wise activations the stacked model can apply to a ``(K, B, H)`` tensor unchanged.
ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.SiLU, nn.Identity)


#: One run of a sweep, an optimizer by name and its hyper-parameters (the labs).
SweepConfig = OptimizerConfig


class StackedMLP(nn.Module):
    """``K`` copies of a feed-forward network (``Flatten``, ``Linear`` and element-wise activations,
    e.g. :class:`labkit.models.MLP`), all starting from ``model``'s weights, evaluated at once
    (the labs' vectorised sweeps).

    ``forward(x)`` takes one batch ``(B, ...)`` and returns the ``K`` outputs ``(K, B, C)``. The
    first layer's ``K`` weight matrices are stacked into one ``(K * out, in)`` matrix, so that
    layer is one ``F.linear``; the other layers hold ``(K, in, out)`` stacks (the transposed
    weights) and are batched products (``torch.baddbmm``). Every parameter is run-major:
    ``p.view(K, -1)[k]`` holds run ``k``'s values, which is what the optimisers of
    :mod:`labkit.optim.stacked` use.
    """

    def __init__(self, model: nn.Module, k: int):
        super().__init__()
        self.k = checks.integer("k (the number of runs)", k, 1)
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


def stacked_optimizer(model: StackedMLP, configs: Sequence[SweepConfig]
                      ) -> StackedSGD | StackedAdam:
    """The optimizer of a sweep: :class:`labkit.optim.stacked.StackedSGD` (chapter 4) or
    :class:`labkit.optim.stacked.StackedAdam` (chapter 6) over ``model``'s parameters, with each
    run's hyper-parameters from its configuration (the labs)."""
    names = {c.optimizer for c in configs}
    if len(names) != 1:
        raise ValueError(f"all configurations of one sweep must use one optimizer, got {names}")
    if names.pop() == "SGD":
        return StackedSGD(model.parameters(), lr=[c.lr for c in configs],
                          momentum=[c.momentum for c in configs])
    return StackedAdam(model.parameters(), lr=[c.lr for c in configs],
                       betas=[c.betas for c in configs], eps=[c.eps for c in configs])


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
    max_loss: float = math.inf,
    cuda_graph: bool = False,
) -> SweepResult:
    """Train one copy of ``model`` per configuration, all at once, with cross-entropy (the labs'
    Demo & Results).

    Every run starts from ``model``'s weights (``model`` itself is not changed) and sees the
    batches in the same order, one ``torch.randperm(len(X), generator=generator)`` per epoch,
    like :func:`labkit.fast.train_tensors` with an equally seeded generator, through the same
    driver, :func:`labkit.train.train_epoch`. All configurations must use the same optimiser.
    Losses are read back every ``check_every`` batches and at the end of each epoch; the sweep
    stops early once every run has diverged (a loss NaN, infinite or above ``max_loss``).

    ``cuda_graph=True`` trains the full batches of every epoch by replaying one captured CUDA
    graph of the step (:class:`labkit.graphs.CapturedEpoch`; the losses are then read back once
    per epoch). With the data on the CPU it runs the same steps eagerly.
    """
    checks.preloaded(X, y)
    configs = [c if isinstance(c, OptimizerConfig) else OptimizerConfig(**c) for c in configs]
    if not configs:
        raise ValueError("configs is empty: give at least one SweepConfig")
    start_time = time.perf_counter()
    stacked = StackedMLP(copy.deepcopy(model), len(configs))
    optimizer = stacked_optimizer(stacked, configs)
    histories = [History(label=c.title(batch_size), max_loss=max_loss) for c in configs]
    autocast = autocast_context(X.device, precision)

    def test_pass() -> tuple[list[float], list[float]]:  # each run's test loss and accuracy
        with autocast:
            return evaluate(epoch_batches(*test_data, batch_size, shuffle=False), stacked,
                            stacked_cross_entropy)

    if cuda_graph:
        train_one = captured_epochs(stacked, stacked_cross_entropy, optimizer, X, y, batch_size,
                                    histories, generator, precision)
    else:
        def train_one() -> None:
            train_epoch(epoch_batches(X, y, batch_size, generator), stacked,
                        stacked_cross_entropy, optimizer, histories, len(X), None, check_every,
                        autocast)
    train_epochs(epochs, train_one, histories, None if test_data is None else test_pass, None)
    return SweepResult(configs, histories, stacked, batch_size,
                       seconds=time.perf_counter() - start_time)
