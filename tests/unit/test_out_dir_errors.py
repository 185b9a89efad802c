"""An --out that cannot hold a run is refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib.cli import main
from runbook_lib.errors import RunbookError
from runbook_lib.runs import make_run_dir
from tests.lab_helpers import LAB_PARAMS


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def test_out_is_a_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "out").write_text("not a folder")
    assert main(["run", "-f", str(LAB_PARAMS), "01", "--out", str(tmp_path / "out" / "x")]) == 1
    line = one_line(capsys.readouterr().err)
    assert "is a file, not a directory; choose a directory for the records" in line


def test_an_existing_run_directory_is_never_reused(tmp_path: Path) -> None:
    (tmp_path / "lab" / "20260101T000000Z-aaaaaa").mkdir(parents=True)
    with pytest.raises(RunbookError, match="already exists: a run directory is never reused"):
        make_run_dir(tmp_path / "lab", "20260101T000000Z-aaaaaa")

