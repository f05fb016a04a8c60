"""labkit's optimizers: each a readable step function on tensors plus a ``torch.optim.Optimizer``.

The step functions (``sgd_step``, ``heavy_ball_step``, ...) are what the chapters read; the
optimizer classes wrap them so that param groups, ``state_dict``, ``zero_grad`` and learning-rate
schedulers work as with ``torch.optim``. ``tests/test_optim_*.py`` prove them equal to PyTorch.
"""

from labkit.optim.adam import Adam, AdamW, adam_step, adam_step_foreach
from labkit.optim.heavy_ball import HeavyBall, heavy_ball_step, lookahead, pytorch_sgd_equivalent
from labkit.optim.lbfgs import LBFGS, lbfgs_direction
from labkit.optim.newton import (
    conjugate_gradient,
    damped_newton_direction,
    gradient,
    hessian,
    hvp,
    newton,
    newton_cg_step,
    newton_step,
)
from labkit.optim.sgd import SGD, sgd_step, sgd_step_foreach

__all__ = [
    "Adam",
    "AdamW",
    "adam_step",
    "adam_step_foreach",
    "LBFGS",
    "SGD",
    "conjugate_gradient",
    "damped_newton_direction",
    "gradient",
    "hessian",
    "hvp",
    "lbfgs_direction",
    "newton",
    "newton_cg_step",
    "newton_step",
    "HeavyBall",
    "heavy_ball_step",
    "lookahead",
    "pytorch_sgd_equivalent",
    "sgd_step",
    "sgd_step_foreach",
]
