"""Isolation: the bubblewrap sandbox every submission runs in.

Inside the sandbox (:func:`sandbox_command`) a submission sees a read-only system (``/usr``,
``/etc``), a read-only Python (the interpreter, the course's virtual environment and ``labkit``),
a private writable ``/tmp`` of limited size (its working folder and home), no network, its own PID
namespace (nothing it starts outlives it), and the unprivileged user ``nobody`` (65534) with no
capabilities. The course repository, its masters and ``_build/`` (the autograder archives), the
reference values and the other submissions are not there: they are never mounted. Limits on
memory, time, output and processes are applied from outside (:mod:`~coursetools.grading.supervise`).

Where no sandbox can be made the grader stops (:func:`require_sandbox`) with one line naming what
to install, unless the instructor passed ``--unsafe-no-sandbox``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

INSTALL = "apt-get install -y bubblewrap"
WORKER = Path(__file__).with_name("worker.py")
INSIDE_WORKER = "/opt/grader/worker.py"
INSIDE_LIB = "/opt/grader/lib"  # first on the notebook's sys.path: the labkit the grader uses
NOBODY = "65534"


def python_roots() -> list[Path]:
    """What the sandbox must see, read-only, for Python, the course's packages and IPython."""
    import labkit

    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(),
             Path(sysconfig.get_paths()["purelib"]).resolve(),
             Path(labkit.__file__).resolve().parent}
    exe = Path(sys.executable)
    roots.add(exe.parent.resolve())
    roots.add(exe.resolve().parent)
    system = (Path("/usr"), Path("/etc"))
    roots = {r for r in roots if not any(r.is_relative_to(s) for s in system)}
    return sorted(r for r in roots if not any(r != o and r.is_relative_to(o) for o in roots))


def labkit_dir() -> Path:
    """The ``labkit`` package the grader itself imports (the notebooks import the same)."""
    import labkit

    return Path(labkit.__file__).resolve().parent


def worker_argv(args: list[str]) -> list[str]:
    """``python -I worker.py ARGS`` as the sandbox sees it."""
    return [sys.executable, "-I", INSIDE_WORKER, *args]


def sandbox_command(inside: list[str], *, tmp_bytes: int = 512 << 20,
                    hide: Sequence[Path] = ()) -> list[str]:
    """The bwrap command line that runs the command ``inside`` in the sandbox.

    ``hide`` names files and folders (outside paths) that must not be readable inside, although
    a folder mounted above them is: each is masked wherever the sandbox mounts it (a folder by
    an empty read-only tmpfs, a file by ``/dev/null``). The leaderboard hides the data sets that
    ship inside installed packages (:func:`coursetools.grading.leaderboard.hidden_data`).
    """
    bwrap = shutil.which("bwrap")
    cmd = [bwrap, "--unshare-all", "--unshare-user", "--uid", NOBODY, "--gid", NOBODY,
           "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--disable-userns",
           "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
           "--dev", "/dev", "--proc", "/proc",
           "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        top = Path("/") / name
        if top.is_symlink():
            cmd += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            cmd += ["--ro-bind", str(top), str(top)]
    for root in python_roots():
        cmd += ["--ro-bind", str(root), str(root)]
    prefix = Path(sys.prefix)
    if prefix.is_absolute() and prefix.resolve() != prefix and not any(
            prefix.is_relative_to(r) for r in python_roots()):
        cmd += ["--ro-bind", str(prefix.resolve()), str(prefix)]  # a virtual environment linked
    cmd += ["--ro-bind", str(labkit_dir()), f"{INSIDE_LIB}/labkit"]  # the grader's own labkit
    cmd += _masks(cmd, hide)
    cmd += ["--ro-bind", str(WORKER), INSIDE_WORKER, "--dir", "/tmp/home", "--dir", "/tmp/work",
            "--chdir", "/tmp/work", "--clearenv"]
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
           "HOME": "/tmp/home", "TMPDIR": "/tmp", "LANG": "C.UTF-8", "MPLBACKEND": "agg",
           "MPLCONFIGDIR": "/tmp/home/.matplotlib", "IPYTHONDIR": "/tmp/home/.ipython",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
           "PYTHONDONTWRITEBYTECODE": "1", "PIP_NO_INDEX": "1", "VIRTUAL_ENV": sys.prefix,
           "GRADER_SYS_PATH": INSIDE_LIB}
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    return cmd + ["--", *inside]


def _masks(cmd: list[str], hide: Sequence[Path]) -> list[str]:
    """bwrap arguments that mask each path of ``hide`` under every read-only bind of ``cmd``."""
    binds = [(Path(cmd[i + 1]), Path(cmd[i + 2])) for i, a in enumerate(cmd) if a == "--ro-bind"]
    masks: list[str] = []
    for path in (Path(p).resolve() for p in hide):
        for source, dest in binds:
            if not path.is_relative_to(source.resolve()):
                continue
            inside = str(dest / path.relative_to(source.resolve()))
            if path.is_dir():
                masks += ["--tmpfs", inside, "--remount-ro", inside]
            elif path.exists():
                masks += ["--ro-bind", "/dev/null", inside]
    return masks


#: Without a sandbox, the user the worker runs as (set where the grader is root, e.g. inside
#: Gradescope's container: see :mod:`coursetools.grading.gradescope`); None: the grader's own.
FALLBACK_USER: str | None = None


def unsafe_command(worker_args: list[str]) -> list[str]:
    """Without a sandbox (``--unsafe-no-sandbox``): the worker in a plain process, as
    :data:`FALLBACK_USER` (``setpriv``, every capability and group dropped) when that is set."""
    cmd = [sys.executable, "-I", str(WORKER), *worker_args]
    if FALLBACK_USER:
        cmd = [shutil.which("setpriv") or "setpriv", "--reuid", FALLBACK_USER, "--regid",
               FALLBACK_USER, "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
               "--", *cmd]
    return cmd


def sandbox_problem() -> str | None:
    """Why no sandbox can be made here (one line), or None when bubblewrap works."""
    if not sys.platform.startswith("linux"):
        return f"grading needs Linux with bubblewrap; this is {sys.platform}"
    if shutil.which("bwrap") is None:
        return f"no sandbox: bubblewrap is not installed ({INSTALL})"
    cmd = sandbox_command(worker_argv(["--self-test"]), tmp_bytes=16 << 20)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as err:
        return f"no sandbox: bubblewrap failed to start ({err}); {INSTALL}"
    if out.returncode != 0 or out.stdout.strip() != "isolated":
        why = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return (f"no sandbox: bubblewrap could not make one here ({why}); it needs unprivileged "
                f"user namespaces or root ({INSTALL})")
    return None


def require_sandbox(unsafe: bool) -> str | None:
    """None when the sandbox works; the note the CSV records in unsafe mode; else stop."""
    problem = sandbox_problem()
    if problem is None:
        return None
    if unsafe:
        return f"UNSAFE: graded without a sandbox ({problem})"
    raise SystemExit(f"grade: {problem}; or pass --unsafe-no-sandbox to grade without one")
