"""Seed every random number generator a notebook touches, in one call."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from labkit import _checks as checks


def seed_everything(seed: int = 0, deterministic: bool = False) -> torch.Generator:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device) with ``seed``.

    Every notebook of the course calls it first, from chapter 1 to the labs.

    With ``deterministic=True`` torch is also asked to use deterministic algorithms only
    (``torch.use_deterministic_algorithms``, cuDNN benchmarking off, and the cuBLAS workspace
    setting that CUDA needs for it), so that two runs on the same GPU give the same bits.

    Returns a fresh :class:`torch.Generator` seeded with ``seed``, handy for a ``DataLoader``.
    """
    checks.integer("seed", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
