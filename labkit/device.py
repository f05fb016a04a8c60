"""Pick the device a notebook runs on: ``cuda``, then ``mps``, then ``cpu``.

Every lab calls :func:`get_device` with its ``device`` parameter (``"auto"`` by default), so the
same notebook runs on a laptop, on Colab and on a GPU server. An explicit choice, or the
environment variable ``LABKIT_DEVICE``, overrides the automatic pick.
"""

from __future__ import annotations

import os

import torch

#: Environment variable overriding the automatic choice (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
DEVICE_ENV_VAR = "LABKIT_DEVICE"

_KNOWN_TYPES = ("cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """The device types usable on this machine, best first (``cpu`` is always last).

    What the labs' note "Runs on a GPU, works without one" relies on.
    """
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if _mps_available():
        found.append("mps")
    found.append("cpu")
    return found


def get_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return the :class:`torch.device` to run on (every lab calls it with its ``device``).

    ``device`` is ``"auto"`` (or ``None``) for the best available (``cuda`` > ``mps`` > ``cpu``),
    or an explicit name such as ``"cpu"``, ``"cuda"`` or ``"cuda:1"``. When ``device`` is
    ``"auto"`` the environment variable ``LABKIT_DEVICE`` is honoured first.

    Raises:
        ValueError: the name is not a device type torch knows, or that device is not available
            here (the message lists what is).
    """
    if isinstance(device, torch.device):
        name = str(device)
    else:
        name = "auto" if device is None else str(device).strip().lower()
    source = "argument device"
    if name == "auto":
        env = os.environ.get(DEVICE_ENV_VAR, "").strip().lower()
        if env and env != "auto":
            name, source = env, f"environment variable {DEVICE_ENV_VAR}"
        else:
            return torch.device(available_devices()[0])

    kind, _, index = name.partition(":")
    if kind not in _KNOWN_TYPES or (index and not index.isdigit()):
        raise ValueError(
            f"Unknown device {name!r} (from the {source}). Use 'auto', 'cpu', 'cuda', "
            f"'cuda:N' or 'mps'."
        )
    if kind not in available_devices():
        raise ValueError(
            f"Device {name!r} (from the {source}) is not available on this machine; "
            f"available: {', '.join(available_devices())}. Use device='auto' to pick the best one."
        )
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ValueError(
            f"Device {name!r} (from the {source}) does not exist: this machine has "
            f"{torch.cuda.device_count()} CUDA device(s)."
        )
    return torch.device(name)
