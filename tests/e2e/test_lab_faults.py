"""Fault scenarios on the lab: each ends in success after retry, or in a clear failure with
nothing after the failing step executed and a re-run that completes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from runbook_lib.lab import control
from tests.e2e.conftest import API_ERRORS
from tests.lab_helpers import LAB_PARAMS, copy_lab, record, run_dir_of, runbook, write_params


@pytest.fixture
def lab_dir(tmp_path: Path):
    d = tmp_path / "lab"
    control.start(None, d)
    yield d
    control.remove(d)


def test_api_error_burst_is_retried(installed) -> None:
    # the shared 01-04 run (tests/e2e/conftest.py) started its lab answering its first requests with 500s
    assert yaml.safe_load(installed.params.read_text())["lab"]["faults"] == [{"kind": "api-errors", "count": API_ERRORS}]
    assert record(installed.run, "01-partition")["status"] == "succeeded"
    state = json.loads((installed.lab / "state.json").read_text())
    assert state["faults"] == []  # all four errors were met and ridden out


def _error_of(run_dir: Path, notebook: str) -> str:
    """The error the executed notebook shows (what the operator reads below the failing cell)."""
    cells = json.loads((run_dir / f"{notebook}.ipynb").read_text())["cells"]
    return "\n".join(o.get("evalue", "") for c in cells for o in c.get("outputs", []) if o["output_type"] == "error")


def test_notebook_out_of_order_says_which_to_run_first(lab_dir: Path, tmp_path: Path) -> None:
    # A fresh lab: no LINSTOR, no StorageClasses. 04 and 07 stop before any change and name the notebook.
    for notebook, first in (("04", "run 03-piraeus-install first"), ("07", "run 04-storage-classes first")):
        proc = runbook("run", "-f", str(LAB_PARAMS), notebook, "--out", str(tmp_path / "o"), lab_dir=lab_dir)
        assert proc.returncode == 1 and first in proc.stdout, proc.stdout
        name = {"04": "04-storage-classes", "07": "07-benchmarks"}[notebook]
        rec = record(run_dir_of(proc), name)
        assert rec["status"] == "failed" and not [a for a in rec["actions"] if a["outcome"] == "applied"]


@pytest.fixture(scope="module")
def installed_copy(tmp_path_factory, installed):
    """A copy of the lab 01-04 left (partitions, DRBD extensions, Piraeus, pools, classes), shared by the tests below."""
    base = tmp_path_factory.mktemp("installed")
    lab_dir, out = copy_lab(installed.lab, base / "lab", start=True), base / "out"
    yield lab_dir, out
    control.remove(lab_dir)


def test_05_without_snapshot_controller_stops_early_with_the_command(installed_copy, tmp_path: Path) -> None:
    lab_dir, out = installed_copy
    params = write_params(tmp_path / "no-controller.yaml",
                          snapshots={**yaml.safe_load(LAB_PARAMS.read_text())["snapshots"], "install_controller": False})
    proc = runbook("run", "-f", str(params), "05", "--out", str(out), lab_dir=lab_dir)
    assert proc.returncode == 1, proc.stdout
    error = _error_of(run_dir_of(proc), "05-snapshots")
    assert "missing: CRD VolumeSnapshot" in error and "snapshot-controller" in error, error
    assert "helm upgrade --install snapshot-controller oci://ghcr.io/piraeusdatastore/helm-charts/snapshot-controller" \
        in error, error
    rec = record(run_dir_of(proc), "05-snapshots")
    assert rec["status"] == "failed" and not [a for a in rec["actions"] if a["outcome"] == "applied"]
