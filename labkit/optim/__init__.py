"""labkit's optimizers: each a readable step function on tensors plus a ``torch.optim.Optimizer``.

The step functions (``sgd_step``, ``heavy_ball_step``, ``adam_step``, ``newton_step``,
``adagrad_step``, ``rmsprop_step``, and chapter 8's ``lion_step``, ``adafactor_step``,
``muon_step``, ``sgd_schedulefree_step``, ``adamw_schedulefree_step``) are what
the chapters read: each updates a list of parameter tensors in place from their gradients and
its state. The optimizer classes, on one base (:class:`labkit.optim.base.Optimizer`), wrap them
so that param groups, ``state_dict``, ``zero_grad`` and learning-rate schedulers work as with
``torch.optim``; ``tests/test_optim_*.py`` prove them equal to PyTorch. The stacked SGD and Adam
of the labs' sweeps (:mod:`labkit.optim.stacked`), one hyper-parameter value per run, are checked
equal to ``sgd_step`` and ``adam_step`` run by run. (PyTorch's optimizers by name, as the labs'
sequential runs use them: :func:`labkit.runs.make_torch_optimizer`.)
"""

from labkit.optim.adafactor import Adafactor, adafactor_step
from labkit.optim.adagrad import Adagrad, adagrad_step
from labkit.optim.adam import Adam, AdamW, adam_step, adam_step_foreach
from labkit.optim.base import Optimizer
from labkit.optim.heavy_ball import HeavyBall, heavy_ball_step, lookahead, pytorch_sgd_equivalent
from labkit.optim.lbfgs import LBFGS, lbfgs_direction
from labkit.optim.lion import Lion, lion_step
from labkit.optim.muon import Muon, muon_param_groups, muon_step, newton_schulz
from labkit.optim.newton import (
    conjugate_gradient,
    damped_newton_direction,
    newton,
    newton_cg_step,
    newton_step,
)
from labkit.optim.rmsprop import RMSprop, rmsprop_step
from labkit.optim.schedulefree import (
    AdamWScheduleFree,
    SGDScheduleFree,
    adamw_schedulefree_step,
    sgd_schedulefree_step,
)
from labkit.optim.sgd import SGD, sgd_step, sgd_step_foreach
from labkit.optim.stacked import StackedAdam, StackedSGD, stacked_adam_step, stacked_sgd_step

__all__ = [
    "Adam", "AdamW", "HeavyBall", "LBFGS", "Optimizer", "SGD", "adam_step",
    "adam_step_foreach", "conjugate_gradient", "damped_newton_direction", "heavy_ball_step",
    "lbfgs_direction", "lookahead", "newton", "newton_cg_step", "newton_step",
    "pytorch_sgd_equivalent", "sgd_step", "sgd_step_foreach",
    "Adagrad", "RMSprop", "adagrad_step", "rmsprop_step",  # chapter 7
    "Adafactor", "AdamWScheduleFree", "Lion", "Muon", "SGDScheduleFree",  # chapter 8, after Adam
    "adafactor_step", "adamw_schedulefree_step", "lion_step", "muon_param_groups", "muon_step",
    "newton_schulz", "sgd_schedulefree_step",
    "StackedAdam", "StackedSGD", "stacked_adam_step", "stacked_sgd_step",  # the labs' sweeps
]
