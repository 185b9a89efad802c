"""One run per cluster at a time: the Lease lock, against the lab's Kubernetes API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import config

from runbook_lib import kube, lock
from runbook_lib.lab import control
from tests.lab_helpers import LAB_PARAMS, runbook


@pytest.fixture
def lab(tmp_path: Path):
    d = tmp_path / "lab"
    info = control.start(None, d)
    yield d, config.new_client_from_config(config_file=info["kubeconfig"])
    control.remove(d)


def test_a_second_run_is_refused_and_told_who_holds_the_lock(lab, tmp_path: Path) -> None:
    d, api = lab
    held = lock.take(api, "alice@laptop", "20260101T000000Z-aaaaaa")
    try:
        proc = runbook("run", "-f", str(LAB_PARAMS), "01", "--out", str(tmp_path / "out"), lab_dir=d)
        assert proc.returncode == 1
        assert "locked by alice@laptop run 20260101T000000Z-aaaaaa since" in proc.stderr
        assert not (tmp_path / "out").exists()  # refused before anything was written or changed
        with pytest.raises(lock.LockHeld):
            lock.take(api, "bob@desk", "20260101T000001Z-bbbbbb")
        # the holder itself may take it again (notebooks of the run that holds it)
        lock.take(api, "alice@laptop", "20260101T000000Z-aaaaaa")._stop.set()
    finally:
        held.release()
    assert kube.get_object(api, f"{lock.LEASE_PATH}/{lock.LEASE_NAME}") is None
    again = lock.take(api, "bob@desk", "20260101T000001Z-bbbbbb")
    again.release()


def test_a_dead_holders_lock_expires(lab) -> None:
    _, api = lab
    stale = (datetime.now(UTC) - timedelta(seconds=300)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    kube.request(api, "POST", lock.LEASE_PATH, body={
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": lock.LEASE_NAME, "namespace": lock.LEASE_NAMESPACE},
        "spec": {"holderIdentity": "crashed@host run x", "leaseDurationSeconds": 60, "acquireTime": stale,
                 "renewTime": stale}})
    taken = lock.take(api, "carol@ci", "run-2")
    live = kube.get_object(api, f"{lock.LEASE_PATH}/{lock.LEASE_NAME}")
    assert live["spec"]["holderIdentity"] == "carol@ci run run-2"
    taken.release()
