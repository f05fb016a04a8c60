"""The checks behind labkit's ``ValueError`` exceptions: every module validates its arguments
with these functions, whose messages name the argument, what was expected and the value it got."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a check needs it: the numeric checks serve
    import torch  # torch-free modules too (labkit.benchmark.scoring)


def finite(name: str, value: float) -> float:
    """``value`` as a float, or a ``ValueError`` naming ``name`` if it is not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return number


def at_least(name: str, value: float, low: float = 0.0) -> float:
    """A finite ``value >= low`` (by default a non-negative number)."""
    number = finite(name, value)
    if number < low:
        raise ValueError(f"{name} must be >= {low:g}; got {name}={value!r}")
    return number


def positive(name: str, value: float) -> float:
    """A finite ``value > 0`` (a step size, a curvature, a scale)."""
    number = finite(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be positive; got {name}={value!r}")
    return number


def interval(name: str, value: float, low: float, high: float, brackets: str = "[)") -> float:
    """A finite ``value`` between ``low`` and ``high``, each end closed ``[ ]`` or open ``( )``."""
    number = finite(name, value)
    above = low <= number if brackets[0] == "[" else low < number
    below = number <= high if brackets[1] == "]" else number < high
    if not (above and below):
        raise ValueError(f"{name} must be in {brackets[0]}{low:g}, {high:g}{brackets[1]}; "
                         f"got {name}={value!r}")
    return number


def betas(value: tuple[float, float]) -> tuple[float, float]:
    """Adam's ``(beta1, beta2)``, each in ``[0, 1)``."""
    try:
        beta1, beta2 = value
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a pair (beta1, beta2); got {value!r}") from None
    return interval("betas[0]", beta1, 0.0, 1.0), interval("betas[1]", beta2, 0.0, 1.0)


def integer(name: str, value: int, low: int = 0) -> int:
    """An ``int`` (not a ``bool``) ``>= low``: a number of steps, of iterations, a size."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        bound = "a non-negative integer" if low == 0 else f"at least {low} (an integer)"
        raise ValueError(f"{name} must be {bound}; got {name}={value!r}")
    return int(value)


def one_of(name: str, value, choices: Sequence):
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def rows(X, y) -> None:
    """``X`` and ``y`` hold one row per sample: the same number of them."""
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")


def nonempty(X) -> None:
    """A dataset with at least one row."""
    if len(X) == 0:
        raise ValueError("the dataset is empty: an average over no sample is undefined")


def floating(name: str, w: torch.Tensor) -> torch.Tensor:
    """A floating-point tensor (gradients need one)."""
    import torch

    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        kind = w.dtype if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f"{name} must be a floating-point tensor; got dtype {kind}")
    return w


def shape_of(value) -> tuple | str:
    """A tensor's shape, or the type's name of anything else, for a message."""
    import torch

    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def vector(w: torch.Tensor, length: int | None = None, what: str = "of parameters"
           ) -> torch.Tensor:
    """A flat (1-D) tensor, of ``length`` entries when given; returned detached."""
    import torch

    if not isinstance(w, torch.Tensor) or w.dim() != 1 or length not in (None, w.numel()):
        size = "" if length is None else f" of length {length}"
        raise ValueError(f"w must be a flat vector{size} (1-D) {what}; got shape {shape_of(w)}")
    return w.detach()


def scalar(value: torch.Tensor) -> torch.Tensor:
    """The one number of a function's value, as a 0-dim tensor."""
    import torch

    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise ValueError(f"f must return a scalar tensor (one loss value); got {shape_of(value)}")
    return value.reshape(())


def matrix(X: torch.Tensor) -> None:
    """A 2-D ``(samples, features)`` tensor."""
    if X.dim() != 2:
        raise ValueError(f"X must be a 2-D (samples, features) tensor, got shape {tuple(X.shape)}")


def same_shape(input: torch.Tensor, target: torch.Tensor, name: str) -> None:
    """A prediction and its target of one shape (broadcasting them is a classic bug)."""
    if input.shape != target.shape:
        raise ValueError(
            f"{name}: input has shape {tuple(input.shape)} but target has shape "
            f"{tuple(target.shape)}; they must match (broadcasting them silently is a classic "
            f"bug: reshape one of them, e.g. pred.squeeze(-1))"
        )


def class_weight(weight: torch.Tensor | None, n_classes: int) -> None:
    """``None``, or one weight per class."""
    if weight is not None and (weight.dim() != 1 or weight.numel() != n_classes):
        raise ValueError(
            f"weight must be a 1-D tensor with one entry per class ({n_classes}); "
            f"got shape {tuple(weight.shape)}"
        )


def class_indices(input: torch.Tensor, target: torch.Tensor, cdim: int, name: str) -> None:
    """Integer class indices shaped like ``input`` without its class dimension ``cdim``."""
    import torch

    expected = input.shape[:cdim] + input.shape[cdim + 1:]
    if target.shape != expected:
        raise ValueError(
            f"{name}: target has shape {tuple(target.shape)} but an input of shape "
            f"{tuple(input.shape)} needs class indices of shape {tuple(expected)}"
        )
    if target.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(
            f"{name}: target of class indices must be an integer tensor; got {target.dtype}"
        )


def batch_size(n: int, size: int, replacement: bool = False) -> None:
    """A mini-batch of ``size`` rows out of ``n`` (no more than ``n`` without replacement)."""
    integer("n (the number of rows)", n, 1)
    if size < 1 or (not replacement and size > n):
        raise ValueError(
            f"batch_size must be between 1 and n = {n} (any size >= 1 with replacement), "
            f"got {size!r}"
        )


def preloaded(X: torch.Tensor, y: torch.Tensor) -> None:
    """A training set as two tensors on one device, with the same positive number of rows."""
    import torch

    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"X and y must be tensors (use labkit.data.preload), got "
                        f"{type(X).__name__} and {type(y).__name__}")
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"X and y must hold the same positive number of samples, got "
                         f"{len(X)} and {len(y)}")
    if X.device != y.device:
        raise ValueError(f"X and y must be on one device, got {X.device} and {y.device}")
