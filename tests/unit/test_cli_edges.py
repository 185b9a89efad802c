"""Small edges of the ``runbook`` command: --version, lab help, a closed pipe, nested -p overrides."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from runbook_lib import cli
from runbook_lib.errors import ParamsError
from runbook_lib.params import parse_params
from runbook_lib.runner import merge_overrides

ROOT = Path(__file__).resolve().parents[2]




@pytest.mark.parametrize("argv", [["lab"], ["lab", "fault"], ["lab", "fault", "add"], ["lab", "status"]])
def test_lab_subcommands_have_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    if argv == ["lab"]:
        for name in ("start", "stop", "status", "reset", "fault", "power-on"):
            assert f"    {name}" in out  # each subcommand listed with its own line of help
        assert "stop the lab" in out
    if argv[-1] == "add":
        assert "node-down" in out and "--count" in out and "how many" in out


def test_a_reader_that_leaves_early_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``runbook ... | head``: the pipe closes before the output is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    pipe = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", pipe)
    assert cli.main(["params", "check", str(ROOT / "parameters" / "lab.yaml")]) == 0
    print("more output after the reader left", file=pipe)
    pipe.flush()  # would raise BrokenPipeError: main() pointed stdout at /dev/null when the reader left
    pipe.close()


def test_nested_override_sets_one_key_of_a_section() -> None:
    raw = {"cluster_name": "lab", "failover": {"quorum_loss": False}}
    merged = merge_overrides(raw, {"failover.keep_test_objects": True, "dry_run": True})
    assert merged["failover"] == {"quorum_loss": False, "keep_test_objects": True} and merged["dry_run"] is True
    assert raw["failover"] == {"quorum_loss": False}  # the file's mapping is not changed
    assert parse_params(merged).failover.keep_test_objects is True


def test_nested_override_into_a_value_names_the_override() -> None:
    with pytest.raises(ParamsError) as exc:
        merge_overrides({"cluster_name": "lab"}, {"cluster_name.x": 1})
    assert exc.value.problems == ["-p cluster_name.x: cluster_name is not a section (it holds str)"]
    assert exc.value.source == "the -p overrides"
