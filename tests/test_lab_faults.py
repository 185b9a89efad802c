"""Fault scenarios on the lab: each ends in success after retry, or in a clear failure with
nothing after the failing step executed and a re-run that completes."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib.lab import control

from .lab_helpers import LAB_PARAMS, record, run_dir_of, runbook

pytestmark = pytest.mark.lab


@pytest.fixture
def lab_dir(tmp_path: Path):
    d = tmp_path / "lab"
    control.start(None, d)
    yield d
    control.remove(d)


def test_api_error_burst_is_retried(lab_dir: Path, tmp_path: Path) -> None:
    control.fault_add("api-errors", count=4, d=lab_dir)
    proc = runbook("run", "-f", str(LAB_PARAMS), "01", "--out", str(tmp_path / "o"), lab_dir=lab_dir, check=True)
    assert record(run_dir_of(proc), "01-partition")["status"] == "succeeded"
    assert control.fault_list(lab_dir) == []  # all four errors were met and ridden out


def test_talosctl_failure_stops_at_that_node_and_rerun_completes(lab_dir: Path, tmp_path: Path) -> None:
    # The next talosctl call for lab-cp-2 (reading its volumes while 01 plans) exits 1 like Talos does:
    # the run stops with an error naming the node, before any change to lab-cp-2 or lab-cp-3.
    control.fault_add("talosctl-fail", node="lab-cp-2", count=1, d=lab_dir)
    proc = runbook("run", "-f", str(LAB_PARAMS), "01", "--out", str(tmp_path / "o"), lab_dir=lab_dir)
    assert proc.returncode == 1 and "lab-cp-2" in proc.stdout
    rec = record(run_dir_of(proc), "01-partition")
    assert not [a for a in rec["actions"] if a["target"] == "lab-cp-3"]
    again = runbook("run", "-f", str(LAB_PARAMS), "01", "--out", str(tmp_path / "o"), lab_dir=lab_dir, check=True)
    rec = record(run_dir_of(again), "01-partition")
    assert rec["status"] == "succeeded" and all(c["ok"] for c in rec["checks"])
