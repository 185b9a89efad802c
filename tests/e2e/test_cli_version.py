"""The runbook command as a real process: its version."""

from __future__ import annotations

import os
import subprocess
import sys

from runbook_lib import __version__
from tests.unit.test_cli_edges import ROOT


def test_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "--version"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert proc.stdout.strip() == f"runbook {__version__}"

