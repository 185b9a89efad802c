"""06 never reports a loss that did not happen: on a loaded machine, at ``lab.time_scale`` 25 and 100.

The cluster 01-04 leave (Piraeus up, the ``replicated`` class) is built once in this process at x2000 and
saved as a lab state; each test starts a lab server from a copy of it at its own time scale and runs 06
through ``runbook run``, the way an operator does. Phase times must come from the cluster's own
timestamps, and the results table must agree with the phase table.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from runbook_lib.lab import control
from runbook_lib.steps.nb04_storage_classes import PROVISIONER, storage_class
from tests.lab_helpers import LAB_PARAMS, output_tail, record, run_dir_of, runbook, write_params
from tests.storage_lab import bootstrap, cluster_ready, start_lab, stop_lab, wait_for

BUSY_SECONDS = 240  # each busy process ends by itself even if the test is killed before its finally


@pytest.fixture(scope="module")
def storage_state(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What 01-04 leave, as a saved lab state: Piraeus with 3/3 satellites, HA controller, the replicated class."""
    s = start_lab(tmp_path_factory.mktemp("build"), scale=2000.0)
    try:
        bootstrap(s)
        wait_for(lambda: cluster_ready(s), "LinstorCluster Available+Configured with 3/3 satellites", timeout=60)
        sc = storage_class("replicated", "linstor-pool", replicas=3, layers="drbd storage", binding="Immediate",
                           default=False, extra={f"{PROVISIONER}/allowRemoteVolumeAccess": "true",
                                                 f"property.{PROVISIONER}/DrbdOptions/Resource/on-no-quorum": "suspend-io"})
        s.http.post("/apis/storage.k8s.io/v1/storageclasses", json=sc).raise_for_status()

        def ha_ready() -> bool:
            pods = s.core.list_namespaced_pod("piraeus-datastore", label_selector="app.kubernetes.io/component=ha-controller")
            return len(pods.items) == 3 and all(any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
                                                for p in pods.items)

        wait_for(ha_ready, "HA controller Ready on every node", timeout=60)
        with s.lab.lock:
            return json.loads(json.dumps(s.lab.to_dict()))
    finally:
        stop_lab(s)


def lab_from(state: dict, d: Path, scale: float) -> Path:
    """A lab directory whose server will start from ``state`` with its clock at ``scale``."""
    d.mkdir(parents=True)
    data = json.loads(json.dumps(state))
    data["clock"]["scale"] = scale
    data["options"]["time_scale"] = scale
    (d / "state.json").write_text(json.dumps(data))
    (d / "options.json").write_text(json.dumps(data["options"]))
    return d


@contextlib.contextmanager
def busy_machine(per_core: int = 1) -> Iterator[None]:
    """A busy process per core for the duration (the other xdist worker loads the machine too), always killed."""
    procs = [subprocess.Popen([sys.executable, "-c", f"import time\nend = time.time() + {BUSY_SECONDS}\nwhile time.time() < end: pass"])
             for _ in range(per_core * (os.cpu_count() or 1))]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def drill(state: dict, tmp_path: Path, scale: float, **failover) -> tuple[subprocess.CompletedProcess, dict]:
    d = lab_from(state, tmp_path / "lab", scale)
    base = yaml.safe_load(LAB_PARAMS.read_text())
    params = write_params(tmp_path / "params.yaml", lab={**base["lab"], "time_scale": scale},
                          failover={**base["failover"], "steady_s": 10, **failover})
    try:
        proc = runbook("run", "-f", str(params), "06", "--out", str(tmp_path / "out"), lab_dir=d)
        assert not control.fault_list(d)  # every fault the drill injected is gone
    finally:
        control.remove(d)
    return proc, record(run_dir_of(proc), "06-failover-drill")


def phases_of(rec: dict, scenario: str) -> dict[str, dict]:
    return {p["phase"]: p for p in rec["results"]["phases"] if p["scenario"] == scenario}


def assert_honest(proc: subprocess.CompletedProcess, rec: dict) -> None:
    failed = [c for c in rec["checks"] if not c["ok"]]
    assert proc.returncode == 0 and not failed, f"{failed}\n{output_tail(proc)}"
    integrity = rec["results"]["integrity"]
    assert integrity["ok"] and integrity["lost_records"] == 0 and integrity["acknowledged"] > 20, integrity
    phases = phases_of(rec, "failover")
    sources = {name: p["source"] for name, p in phases.items()}
    assert sources["node NotReady"] == sources["node back"] == "Node Ready condition lastTransitionTime", sources
    assert sources["lost-quorum taint"] == "taint timeAdded" and sources["pod running elsewhere"] == "container startedAt"
    assert sources["writes acknowledged again"] == sources["last write before the stall"] == "writer's record stamp"
    t = {name: p["seconds"] for name, p in phases.items()}
    # a power loss makes the node NotReady at once: object timestamps put it within 2 cluster seconds of the fault
    assert 0 <= t["node NotReady"] <= 2.0, t
    assert t["node NotReady"] <= t["lost-quorum taint"] <= t["pod running elsewhere"] <= t["writes acknowledged again"] + 1, t
    summary = {s["scenario"]: s for s in rec["results"]["summary"]}["failover"]
    assert summary["writes back (s after the fault)"] == t["writes acknowledged again"]
    assert abs(summary["I/O stall (s)"] - (t["writes acknowledged again"] - t["last write before the stall"])) <= 0.2


def test_a_loaded_machine_at_x100_reports_no_loss_and_times_phases_from_the_cluster(storage_state, tmp_path) -> None:
    with busy_machine():
        proc, rec = drill(storage_state, tmp_path, 100.0)
    assert_honest(proc, rec)
    quorum = phases_of(rec, "quorum-loss")
    assert {"quorum lost", "nodes back", "writes resumed", "resync done"} <= set(quorum), quorum
    assert quorum["nodes back"]["source"] == "Node Ready condition lastTransitionTime"
    # the HA controller moved the pod within seconds, not Kubernetes' ~15 minutes (lab.time_scale applied)
    assert phases_of(rec, "failover")["pod running elsewhere"]["seconds"] < 60
    assert any(c["name"].startswith("no write completed while quorum was lost") for c in rec["checks"])
    summary = {s["scenario"]: s for s in rec["results"]["summary"]}
    assert summary["quorum-loss"]["I/O stall (s)"] >= 10  # frozen for the whole outage
    lab_faults = [a for a in rec["actions"] if a["kind"] == "lab"]
    assert [a["command"][2:4] for a in lab_faults][:2] == [["fault", "add"], ["fault", "remove"]]


def test_x25_reports_no_loss_and_times_phases_from_the_cluster(storage_state, tmp_path) -> None:
    proc, rec = drill(storage_state, tmp_path, 25.0, quorum_loss=False)
    assert_honest(proc, rec)
