"""The seed article's wrong names appear nowhere in the project (DESIGN: known errors)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Spelled in parts so that this file does not contain them either.
STALE = [".".join(("factory", "talos", "systems")), ".".join(("charts", "piraeusdatastore", "io")),
         "DrbdOptions/" + "auto-quorum"]


def test_no_stale_names_in_tracked_files() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    hits = []
    for name in files:
        path = ROOT / name
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        hits += [f"{name}: {s}" for s in STALE if s in text]
    assert not hits
