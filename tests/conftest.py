"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib.lab import control


@pytest.fixture
def lab_dir(tmp_path: Path):
    """A private lab directory for one test (the lab starts on first use); removed with its lab afterwards."""
    d = tmp_path / "lab"
    yield d
    control.remove(d)
