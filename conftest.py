"""Test-session set-up shared by tests/ and the nbmake run over notebooks/.

Every test session gets its own lab directory, so tests never touch a developer's
lab, and the lab servers it started are stopped at the end.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests import executed

_SESSION_LAB = Path(tempfile.mkdtemp(prefix="runbook-test-lab-"))
os.environ["RUNBOOK_LAB_DIR"] = str(_SESSION_LAB)
os.environ["RUNBOOK_STATE_DIR"] = str(_SESSION_LAB / "state")  # run journals: never the user's
# a notebook nbmake runs is an interactive run: its record goes to a private folder, not the project's outputs/
os.environ["RUNBOOK_OUT"] = tempfile.mkdtemp(prefix="runbook-test-outputs-")


@pytest.fixture(scope="session", autouse=True)
def _stop_session_lab():
    yield
    from runbook_lib.lab import control

    control.remove(_SESSION_LAB)


executed.keep_nbmake_outputs()


def pytest_collection_modifyitems(items: list) -> None:
    """Tests marked ``after_notebooks`` read the notebooks nbmake executed: run them last."""
    items.sort(key=lambda item: item.get_closest_marker("after_notebooks") is not None)
