"""The unit layer: pure functions, parsers and renderers, with no socket and no child process.

Every unit test runs with the network and process creation switched off, so a test that
would start a lab, a kernel or a tool fails loudly here instead of quietly costing seconds:
move it to ``tests/lab`` (in-process lab) or ``tests/e2e`` (real processes).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator

import pytest


class LayerViolation(AssertionError):
    """A unit test tried to open a socket or start a process."""


def _refuse(what: str):
    def refused(*args, **kwargs):
        raise LayerViolation(f"unit tests open no socket and start no process ({what} called); "
                             "move this test to tests/lab or tests/e2e")
    return refused


_EXEC = [name for name in dir(os) if name.startswith(("exec", "spawn", "posix_spawn")) or name in ("fork", "forkpty", "system", "popen")]


@pytest.fixture(autouse=True)
def _no_sockets_no_processes() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("connect", "connect_ex", "bind"):
            mp.setattr(socket.socket, name, _refuse(f"socket.{name}"))
        mp.setattr(subprocess.Popen, "_execute_child", _refuse("subprocess.Popen"))
        for name in _EXEC:
            mp.setattr(os, name, _refuse(f"os.{name}"))
        yield
