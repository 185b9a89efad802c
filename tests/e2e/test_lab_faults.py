"""Fault scenarios on the lab: each ends in success after retry, or in a clear failure with
nothing after the failing step executed and a re-run that completes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from runbook_lib.lab import control
from runbook_lib.talos import parse_resources
from tests.e2e.conftest import API_ERRORS
from tests.lab_helpers import LAB_PARAMS, ROOT, copy_lab, record, run_dir_of, runbook, write_params


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


def _wait_for_stage(lab_dir: Path, proc: subprocess.Popen, node: str, stage: str, timeout: float = 180) -> None:
    """Poll the lab until ``node`` is in ``stage`` (fails if the run ends first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = control.status(lab_dir) or {"nodes": []}
        if any(n["name"] == node and n["stage"] == stage for n in st["nodes"]):
            return
        assert proc.poll() is None, f"the run ended before {node} reached stage {stage}:\n{proc.stdout.read()}"
        time.sleep(0.02)
    raise AssertionError(f"{node} never reached stage {stage}")


def _error_of(run_dir: Path, notebook: str) -> str:
    """The error the executed notebook shows (what the operator reads below the failing cell)."""
    cells = json.loads((run_dir / f"{notebook}.ipynb").read_text())["cells"]
    return "\n".join(o.get("evalue", "") for c in cells for o in c.get("outputs", []) if o["output_type"] == "error")


def _volumes(lab_dir: Path, address: str) -> dict[str, dict]:
    info = control.connection(lab_dir)
    out = subprocess.run([info["talosctl"], "--talosconfig", info["talosconfig"], "-n", address, "get",
                          "volumestatus", "-o", "json"], capture_output=True, text=True, check=True).stdout
    return {r["metadata"]["id"]: r["spec"] for r in parse_resources(out)}


def test_node_down_mid_reset_stops_at_that_node_and_rerun_resumes(lab_dir: Path, tmp_path: Path) -> None:
    # 01 resets the nodes one by one; lab-cp-2 loses power in the middle of its reset (lab-cp-1 is done).
    # node_timeout 30 s: talosctl waits 30 real seconds (as the real talosctl counts) for the node to come back.
    env = {**os.environ, "RUNBOOK_LAB_DIR": str(lab_dir)}
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "runbook_lib.cli", "run", "-f", str(LAB_PARAMS), "01", "--out",
                             str(out), "-p", "node_timeout", "30"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        _wait_for_stage(lab_dir, proc, "lab-cp-2", "resetting")
        control.fault_add("node-down", node="lab-cp-2", d=lab_dir)
        stdout, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 1, stdout
    assert "talosctl exited 1 on lab-cp-2" in stdout and "context deadline exceeded" in stdout, stdout
    run_dir = Path(stdout.strip().splitlines()[-1])
    assert "what to do: the node did not come back in time" in _error_of(run_dir, "01-partition")
    rec = record(run_dir, "01-partition")
    assert rec["status"] == "failed"
    # nothing after the failing step: the reset of lab-cp-2 is the last action, lab-cp-3 untouched
    last = rec["actions"][-1]
    assert (last["step"], last["target"], last["outcome"]) == ("reset EPHEMERAL lab-cp-2", "lab-cp-2", "failed")
    assert not [a for a in rec["actions"] if a["target"] == "lab-cp-3"]
    # the cluster is consistent: etcd keeps quorum, lab-cp-1 is done, lab-cp-3 still has the installer's layout
    assert control.status(lab_dir)["etcd_quorum"] is True
    assert _volumes(lab_dir, "10.5.0.2")["r-linstor-storage"]["phase"] == "ready"
    assert "r-linstor-storage" not in _volumes(lab_dir, "10.5.0.4")

    control.fault_clear(lab_dir)  # power back on: the node boots and the run resumes where it stopped
    again = runbook("run", "-f", str(LAB_PARAMS), "01", "--out", str(out), lab_dir=lab_dir, check=True)
    rec = record(run_dir_of(again), "01-partition")
    outcomes = {(a["step"].split()[0], a["target"]): a["outcome"] for a in rec["actions"]}
    assert outcomes[("patch", "lab-cp-1")] == outcomes[("reset", "lab-cp-1")] == "unchanged"
    assert outcomes[("reset", "lab-cp-3")] == "applied"
    assert rec["status"] == "succeeded" and all(c["ok"] for c in rec["checks"])


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
