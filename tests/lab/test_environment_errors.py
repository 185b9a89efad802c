"""One-line errors for environment failures, and a lock that never outlives a failure (issue 14, item 6)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import config

from runbook_lib import kube, lock
from runbook_lib.cli import main
from runbook_lib.errors import RunbookError
from runbook_lib.execution import Executor
from runbook_lib.lab import control
from runbook_lib.record import Record
from tests.lab_helpers import LAB_PARAMS
from tests.unit.test_out_dir_errors import one_line


def test_out_on_a_read_only_filesystem(tmp_path: Path, capsys) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True).returncode:
        pytest.skip("mounting a read-only tmpfs needs root")
    try:
        assert main(["run", "-f", str(LAB_PARAMS), "01", "--out", str(ro / "outputs")]) == 1
        assert "is not writable by" in one_line(capsys.readouterr().err)
    finally:
        subprocess.run(["umount", "-l", str(ro)])




def test_a_missing_tool_names_the_parameter_and_leaves_no_started_action() -> None:
    record = Record("t", "r", {})
    with pytest.raises(RunbookError, match="executable not found; set the 'helm' parameter to its path"):
        Executor(record, dry_run=False, approve=None).run(["/nonexistent/helm", "upgrade"], step="install",
                                                          target="piraeus", kind="helm", mutating=True)
    assert [(a.step, a.outcome) for a in record.actions] == [("install", "failed")]


def test_an_unreachable_api_is_one_sentence(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "x",
           "clusters": [{"name": "x", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
           "users": [{"name": "x", "user": {"token": "t0ken-value"}}],
           "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(cfg))
    api = kube.connect(str(tmp_path / "kubeconfig"))
    api.configuration.retries = 0
    with pytest.raises(RunbookError) as err:
        lock.take(api, "op@host", "run-1")
    assert str(err.value).startswith(f"cannot reach the Kubernetes API at http://127.0.0.1:{port} to take the run lock")
    assert "kubeconfig" in str(err.value) and "\n" not in str(err.value)


def test_a_lease_left_by_a_run_that_ended_is_taken_over_at_once(tmp_path: Path) -> None:
    d = tmp_path / "lab"
    info = control.start(None, d)
    try:
        api = config.new_client_from_config(config_file=info["kubeconfig"])
        stale = lock.take(api, "alice@laptop", "20260101T000000Z-aaaaaa")
        stale._stop.set()  # its release failed (the API was away): the lease is still there, fresh
        with pytest.raises(lock.LockHeld):
            lock.take(api, "bob@desk", "run-2", finished=lambda run_id: False)
        taken = lock.take(api, "bob@desk", "run-2", finished=lambda run_id: run_id == "20260101T000000Z-aaaaaa")
        live = kube.get_object(api, f"{lock.LEASE_PATH}/{lock.LEASE_NAME}")
        assert live["spec"]["holderIdentity"] == "bob@desk run run-2"
        taken._stop.set()
        # a release that cannot reach the API is a sentence, not an exception
        control.stop(d)
        api.configuration.retries = 0
        assert "could not release the run lock" in (taken.release_quietly() or "")
    finally:
        control.remove(d)
