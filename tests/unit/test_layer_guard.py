"""The unit layer's guard: a socket or a child process in a unit test fails loudly."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.unit.conftest import LayerViolation


def test_a_socket_cannot_connect_or_bind() -> None:
    with socket.socket() as s:
        with pytest.raises(LayerViolation, match="socket.connect"):
            s.connect(("127.0.0.1", 9))
        with pytest.raises(LayerViolation, match="socket.bind"):
            s.bind(("127.0.0.1", 0))


def test_no_child_process_starts() -> None:
    with pytest.raises(LayerViolation, match="subprocess.Popen"):
        subprocess.run(["true"], check=False)
    with pytest.raises(LayerViolation, match="os.execv"):
        os.execv("/bin/true", ["true"])


def test_every_test_module_is_in_a_layer_folder() -> None:
    """The folder gives a test its markers (root conftest.py): a module outside the three would get none."""
    tests = Path(__file__).resolve().parents[1]
    assert not sorted(p.name for p in tests.glob("test_*.py"))
    assert {p.parent.name for p in tests.rglob("test_*.py")} == {"unit", "lab", "e2e"}
