"""Validation of hyper-parameters shared by labkit's optimizers: clear ``ValueError``s."""

from __future__ import annotations

import math


def check_finite(name: str, value: float) -> float:
    """``value`` as a float, or a ``ValueError`` naming ``name`` if it is not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return number


def check_nonnegative(name: str, value: float) -> float:
    """A finite ``value >= 0``, else a ``ValueError`` naming ``name`` and ``value``."""
    number = check_finite(name, value)
    if number < 0:
        raise ValueError(f"{name} must be >= 0; got {name}={value!r}")
    return number


def check_unit_interval(name: str, value: float) -> float:
    """A finite ``value`` in ``[0, 1)`` (a momentum or an averaging coefficient)."""
    number = check_finite(name, value)
    if not 0.0 <= number < 1.0:
        raise ValueError(f"{name} must be in [0, 1); got {name}={value!r}")
    return number


def check_betas(betas: tuple[float, float]) -> tuple[float, float]:
    """Adam's ``(beta1, beta2)``, each in ``[0, 1)``."""
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a pair (beta1, beta2); got {betas!r}") from None
    return check_unit_interval("betas[0]", beta1), check_unit_interval("betas[1]", beta2)
