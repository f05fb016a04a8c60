"""Isolation: a network namespace (and a PID namespace) of its own, where the machine allows it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

BLACKHOLE_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens there


def bring_up_loopback() -> None:
    """Switch on ``lo`` in a fresh network namespace (the kernel talks to Otter over 127.0.0.1)."""
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, ifreq)[:18])[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up))


_PROBE = """
import socket
from coursetools.grading.isolation import bring_up_loopback
bring_up_loopback()
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
client = socket.create_connection(server.getsockname(), timeout=2)
try:
    socket.create_connection(("1.1.1.1", 80), timeout=2)
except OSError:
    print("isolated")
"""


def network_isolation() -> list[str]:
    """The command prefix that gives a process its own, empty network namespace ([] if none).

    The namespace has only a loopback interface, which the worker switches on (the kernel and
    Otter talk over 127.0.0.1): nothing outside the machine can be reached.
    """
    unshare = shutil.which("unshare")
    if not unshare or not sys.platform.startswith("linux"):
        return []
    # A PID namespace too, where possible: when the worker dies, everything it started dies.
    sandboxes = [["--net", "--pid", "--kill-child"], ["--net"]]
    candidates = [[unshare, *s] for s in sandboxes] if os.geteuid() == 0 else []
    candidates += [[unshare, "--user", "--map-root-user", *s] for s in sandboxes]
    for prefix in candidates:
        try:
            out = subprocess.run(prefix + [sys.executable, "-c", _PROBE], capture_output=True,
                                 text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and out.stdout.strip() == "isolated":
            return prefix
    return []
