"""labkit.optim.stacked: each run's row of a stacked optimizer is the step function's tensor.

K runs, each with its own hyper-parameters, stacked run-major into every parameter; the same
gradients; after every step, run k's rows must equal, bit for bit, a lone copy of run k's weights
updated by ``sgd_step``/``adam_step`` with run k's hyper-parameters (float64 and float32).
Then: the optimizer contract (param groups, a state_dict round trip), and bad input.
"""

from __future__ import annotations

import pytest
import torch

from labkit.optim import adam_step, sgd_step
from labkit.optim.stacked import StackedAdam, StackedSGD

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

K = 5  # more than one AVX2 register of float64 (4): torch's vectorised kernels run too
SHAPES = [(K * 5, 4), (K * 7,), (K, 3, 2)]  # StackedMLP's first layer, its bias, a (K, in, out)
STEPS = 40
DTYPES = [torch.float64, torch.float32]
SGD_LR = [0.1, 0.03, 0.5, 0.2, 0.01]
ADAM_LR = [1e-3, 1e-2, 0.1, 3e-3, 0.03]

SGD_CASES = {
    "plain": dict(lr=SGD_LR),
    "momentum, one run without": dict(lr=SGD_LR, momentum=[0.9, 0.0, 0.5, 0.3, 0.0]),
    "nesterov": dict(lr=SGD_LR, momentum=[0.9, 0.99, 0.5, 0.1, 0.7], nesterov=True),
    "weight decay": dict(lr=SGD_LR, weight_decay=[1e-2, 0.0, 0.3, 1e-4, 0.1]),
    "momentum and weight decay": dict(lr=SGD_LR, momentum=0.9,
                                      weight_decay=[1e-2, 1e-3, 0.3, 0.0, 0.05]),
    "nesterov and weight decay": dict(lr=SGD_LR, momentum=[0.9, 0.7, 0.5, 0.95, 0.2],
                                      weight_decay=0.05, nesterov=True),
}
ADAM_CASES = {
    "plain": dict(lr=ADAM_LR),
    "betas and eps per run": dict(lr=ADAM_LR, betas=[(0.9, 0.999), (0.8, 0.99), (0.5, 0.9),
                                                     (0.95, 0.9999), (0.0, 0.5)],
                                  eps=[1e-8, 1e-6, 0.1, 1e-3, 1e-10]),
    "L2 weight decay": dict(lr=ADAM_LR, weight_decay=[1e-2, 0.0, 0.5, 0.1, 1e-3]),
    "AdamW": dict(lr=ADAM_LR, weight_decay=[1e-2, 0.0, 0.5, 0.1, 1e-3],
                  decoupled_weight_decay=True),
    "AMSGrad": dict(lr=ADAM_LR, amsgrad=True, betas=(0.9, 0.99)),
    "AMSGrad with AdamW": dict(lr=ADAM_LR, amsgrad=True, weight_decay=0.1,
                               decoupled_weight_decay=True),
}


def per_run(options: dict, name: str, default, k: int):
    value = options.get(name, default)
    if name == "betas":
        return value[k] if isinstance(value[0], tuple) else value
    return value[k] if isinstance(value, list) else value


def stacked_params(dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
            for shape in SHAPES]


def gradients(step: int, dtype: torch.dtype) -> list[torch.Tensor]:
    """Step ``step``'s gradients, of varying scale (so AMSGrad's running maximum matters)."""
    g = torch.Generator().manual_seed(1000 + step)
    return [(torch.randn(shape, generator=g, dtype=torch.float64) * (1 + step % 4)).to(dtype)
            for shape in SHAPES]


def rows(params: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    return [p.detach().view(K, -1)[k].clone() for p in params]


def run_stacked(make, params, steps: range, dtype):
    optimizer = make(params)
    for t in steps:
        for p, g in zip(params, gradients(t, dtype)):
            p.grad = g
        optimizer.step()
        optimizer.zero_grad()
    return optimizer


def sgd_reference(options: dict, k: int, dtype: torch.dtype) -> list[torch.Tensor]:
    """Run ``k`` alone: its rows updated by ``sgd_step`` with its hyper-parameters."""
    ws = rows(stacked_params(dtype), k)
    buffers = [None] * len(ws)
    for t in range(STEPS):
        grads = [g.view(K, -1)[k].clone() for g in gradients(t, dtype)]
        sgd_step(ws, grads, buffers, lr=options["lr"][k],
                 momentum=per_run(options, "momentum", 0.0, k),
                 weight_decay=per_run(options, "weight_decay", 0.0, k),
                 nesterov=options.get("nesterov", False))
    return ws


def adam_reference(options: dict, k: int, dtype: torch.dtype) -> list[torch.Tensor]:
    """Run ``k`` alone: its rows updated by ``adam_step`` with its hyper-parameters."""
    ws = rows(stacked_params(dtype), k)
    m, v, vmax = ([torch.zeros_like(w) for w in ws] for _ in range(3))
    steps = [torch.tensor(0.0) for _ in ws]
    beta1, beta2 = per_run(options, "betas", (0.9, 0.999), k)
    amsgrad = options.get("amsgrad", False)
    for t in range(STEPS):
        grads = [g.view(K, -1)[k].clone() for g in gradients(t, dtype)]
        adam_step(ws, grads, m, v, vmax if amsgrad else [], steps, lr=options["lr"][k],
                  beta1=beta1, beta2=beta2, eps=per_run(options, "eps", 1e-8, k),
                  weight_decay=per_run(options, "weight_decay", 0.0, k), amsgrad=amsgrad,
                  decoupled_weight_decay=options.get("decoupled_weight_decay", False))
    return ws


def max_difference(stacked: list[torch.Tensor], reference: list[list[torch.Tensor]]) -> float:
    return max((p.detach().view(K, -1)[k] - w).abs().max().item()
               for k, ws in enumerate(reference) for p, w in zip(stacked, ws))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", list(SGD_CASES))
def test_each_row_of_stacked_sgd_is_sgd_step(case, dtype):
    options = SGD_CASES[case]
    params = stacked_params(dtype)
    run_stacked(lambda ps: StackedSGD(ps, **options), params, range(STEPS), dtype)
    reference = [sgd_reference(options, k, dtype) for k in range(K)]
    assert max_difference(params, reference) == 0.0
    assert max_difference(stacked_params(dtype), reference) > 1e-3  # the runs moved


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", list(ADAM_CASES))
def test_each_row_of_stacked_adam_is_adam_step(case, dtype):
    options = ADAM_CASES[case]
    params = stacked_params(dtype)
    run_stacked(lambda ps: StackedAdam(ps, **options), params, range(STEPS), dtype)
    reference = [adam_reference(options, k, dtype) for k in range(K)]
    assert max_difference(params, reference) == 0.0
    assert max_difference(stacked_params(dtype), reference) > 1e-3


STATEFUL = {
    "SGD momentum": lambda ps: StackedSGD(ps, lr=SGD_LR, momentum=[0.9, 0.0, 0.5, 0.3, 0.0]),
    "AMSGrad with AdamW": lambda ps: StackedAdam(ps, **ADAM_CASES["AMSGrad with AdamW"]),
}


@pytest.mark.parametrize("name", list(STATEFUL))
def test_a_state_dict_round_trip_resumes_the_run_exactly(name):
    make, dtype = STATEFUL[name], torch.float64
    straight = stacked_params(dtype)
    run_stacked(make, straight, range(STEPS), dtype)
    resumed, fresh = stacked_params(dtype), stacked_params(dtype)
    saved = run_stacked(make, resumed, range(STEPS // 2), dtype).state_dict()
    run_stacked(make, fresh, range(STEPS // 2), dtype)
    optimizer = make(resumed)
    optimizer.load_state_dict(saved)
    for t in range(STEPS // 2, STEPS):
        for p, g in zip(resumed, gradients(t, dtype)):
            p.grad = g
        optimizer.step()
    run_stacked(make, fresh, range(STEPS // 2, STEPS), dtype)  # a new optimizer: state lost
    assert all(torch.equal(a, b) for a, b in zip(straight, resumed))
    assert max((a - b).abs().max().item() for a, b in zip(straight, fresh)) > 1e-4


def test_param_groups_each_have_their_runs_hyper_parameters():
    dtype = torch.float64
    params = stacked_params(dtype)
    lrs = ([0.1, 0.03, 0.5, 0.2, 0.01], [0.2, 0.01, 0.05, 0.3, 0.1])
    groups = [{"params": params[:2], "lr": lrs[0]}, {"params": params[2:], "lr": lrs[1],
                                                      "momentum": [0.5, 0.6, 0.7, 0.0, 0.9]}]
    run_stacked(lambda _: StackedSGD(groups, lr=[1.0] * K, momentum=0.9), params, range(STEPS),
                dtype)
    for i, options in enumerate([dict(lr=lrs[0], momentum=0.9),
                                 dict(lr=lrs[1], momentum=[0.5, 0.6, 0.7, 0.0, 0.9])]):
        in_group = slice(0, 2) if i == 0 else slice(2, 3)
        reference = [sgd_reference(options, k, dtype)[in_group] for k in range(K)]
        assert max_difference(params[in_group], reference) == 0.0


def test_the_state_exists_before_the_first_step_for_a_captured_graph():
    params = stacked_params(torch.float64)
    adam = StackedAdam(params, lr=[1e-3] * K, amsgrad=True)
    tensors = adam.state_tensors()
    assert len(tensors) == 4 * len(params)  # step, exp_avg, exp_avg_sq, max_exp_avg_sq
    assert all(not t.any() for t in tensors)
    assert StackedSGD(params, lr=[0.1] * K).state_tensors() == []  # no momentum, no state


def test_bad_input_says_what_to_do():
    params = stacked_params(torch.float64)
    with pytest.raises(ValueError, match="lr has 5"):
        StackedSGD(params, lr=[0.1, 0.2, 0.3, 0.4, 0.5], momentum=[0.9, 0.9])
    with pytest.raises(ValueError, match="one value per run"):
        StackedSGD(params, lr=0.1)
    with pytest.raises(ValueError, match="does not split into K=2"):
        StackedAdam(params, lr=[0.1, 0.2])
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        StackedSGD(params, lr=[0.1] * K, momentum=[0.9, 0.0, 0.9, 0.9, 0.9], nesterov=True)
    with pytest.raises(ValueError, match="lr"):
        StackedSGD(params, lr=[0.1, -1.0, 0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="betas has 2 pairs"):
        StackedAdam(params, lr=[0.1] * K, betas=[(0.9, 0.99), (0.9, 0.99)])
    with pytest.raises(TypeError, match="momentum must be a number"):
        StackedSGD(params, lr=[0.1] * K, momentum=None)
