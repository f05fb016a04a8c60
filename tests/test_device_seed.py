"""labkit.device picks and validates devices; labkit.seed makes runs repeatable."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from labkit.device import DEVICE_ENV_VAR, available_devices, get_device
from labkit.seed import seed_everything


def test_auto_picks_the_best_available(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    assert get_device("auto").type == available_devices()[0]
    assert get_device(None).type == available_devices()[0]
    assert available_devices()[-1] == "cpu"


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("labkit.device._mps_available", lambda: True)
    assert get_device("auto") == torch.device("mps")


def test_explicit_choice_and_environment_override(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV_VAR, "cpu")
    assert get_device("auto") == torch.device("cpu")
    assert get_device(" CPU ") == torch.device("cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")


def test_unknown_device_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    with pytest.raises(ValueError, match="Unknown device 'tpu'"):
        get_device("tpu")
    monkeypatch.setenv(DEVICE_ENV_VAR, "gpu")
    with pytest.raises(ValueError, match=f"environment variable {DEVICE_ENV_VAR}"):
        get_device("auto")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_device_names_what_is_available(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    with pytest.raises(ValueError, match="not available on this machine; available: .*cpu"):
        get_device("cuda")


def test_seed_everything_repeats_python_numpy_and_torch():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3).tolist()

    seed_everything(123)
    first = draw()
    seed_everything(123)
    assert draw() == first
    seed_everything(124)
    assert draw() != first


def test_seed_returns_a_seeded_generator_and_rejects_bad_seeds():
    a = torch.rand(4, generator=seed_everything(7))
    b = torch.rand(4, generator=seed_everything(7))
    assert torch.equal(a, b)
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            seed_everything(bad)


def test_deterministic_mode_switches_torch_to_deterministic_algorithms():
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
