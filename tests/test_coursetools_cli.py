"""The course's command line, ``python -m coursetools COMMAND``: it lists its commands, refuses
an unknown one clearly, and hands each command's options to the module that does the job."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from coursetools.__main__ import COMMANDS


def coursetools(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coursetools", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_command(flag: str):
    result = coursetools(flag)
    assert result.returncode == 0, result.stderr
    assert "usage: python -m coursetools COMMAND" in result.stdout
    for command in ("book", "execute", "handouts", "grade", "release"):
        assert command in COMMANDS
        assert f"  {command} " in result.stdout, f"--help does not list {command}"


def test_no_command_prints_the_usage():
    result = coursetools()
    assert result.returncode == 0 and "commands:" in result.stdout


def test_unknown_command_exits_2_with_a_clear_message():
    result = coursetools("bake")
    assert result.returncode == 2
    assert "unknown command 'bake'" in result.stderr
    assert "book" in result.stderr, "the message should list the commands there are"
    assert result.stdout == ""


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_its_own_help(command: str):
    module = COMMANDS[command][0]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:  # absent, or a folder with no __init__.py yet
        pytest.skip(f"{module} is not written yet")
    result = coursetools(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m coursetools {command}"), result.stdout


def test_a_closed_pipe_is_not_an_error():
    """``python -m coursetools ... | head``: when head closes the pipe early, the command ends
    quietly with status 0 (the command raises BrokenPipeError here on purpose, as a write into a
    closed pipe would)."""
    code = ("import sys, coursetools.__main__ as cli\n"
            "def closed(argv=None):\n    raise BrokenPipeError(32, 'Broken pipe')\n"
            "cli.main = closed\nsys.exit(cli.run([]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stderr == "", result.stderr
