"""Node faults stop 01 and 02 at the failing node, with nothing done after it, and a re-run resumes.

Each scenario drives the runbooks' own step functions in the order notebooks 01 and 02 call them,
against a fresh in-process lab (its ``talosctl`` shim is a real subprocess over the lab's Talos API):
a ``talosctl-fail`` on lab-cp-2 while 01 reads the layouts, lab-cp-2 losing power the moment its
reset begins (``node-down``), and lab-cp-2 stuck in the reboot of its upgrade (``stuck-reboot``).
The record checked is the session's, the error the one the step raises (what the operator reads
below the failing cell), the cluster's state the lab's own (etcd quorum, ``talosctl get volumestatus``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import nbformat
import pytest
import yaml

from runbook_lib import compat
from runbook_lib.errors import RunbookError, TalosError
from runbook_lib.lab.talos import factory_api
from runbook_lib.params import parse_params
from runbook_lib.record import RECORD_ENV
from runbook_lib.runner import merge_record
from runbook_lib.session import RUN_ID_ENV, Session
from runbook_lib.steps import nb01_partition as part
from runbook_lib.steps import nb02_extensions_and_upgrade as upgrade
from runbook_lib.steps.nb06_failover_drill import faults as drill_faults
from runbook_lib.talos import parse_resources
from tests.lab_helpers import LAB_PARAMS
from tests.storage_lab import StorageLab, start_lab, stop_lab, wait_for

SCALE = 2000.0  # lab seconds per real second: a reboot takes a few hundredths of a second
NODE_TIMEOUT = 3  # real seconds (talosctl counts real time): ~70x what a node needs at SCALE; the wait for a lost one


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StorageLab]:
    """A fresh lab of default nodes, on the installer's layout; records go where `runbook run` points them."""
    s = start_lab(tmp_path / "lab", scale=SCALE)
    s.server.factory_handler = factory_api.handle  # 02 registers its schematic at the lab's Image Factory
    monkeypatch.setenv(RECORD_ENV, str(tmp_path / "record.json"))
    try:
        yield s
    finally:
        stop_lab(s)


def session(s: StorageLab, notebook: str, tmp: Path, monkeypatch: pytest.MonkeyPatch, run_id: str) -> Session:
    """A session of one run (``run_id``) with parameters/lab.yaml, exactly as ``Session.begin`` builds it on the lab."""
    monkeypatch.setenv(RUN_ID_ENV, run_id)  # the notebooks of one run share its cluster lock, as under `runbook run`
    connection = s.connection
    data = yaml.safe_load(LAB_PARAMS.read_text())
    data.update(backup_dir=str(tmp / "etcd-backups"), node_timeout=NODE_TIMEOUT)
    data["lab"] = {**data["lab"], "time_scale": SCALE}
    return Session.open(notebook, parse_params(data), connection)


def run_01(rb: Session) -> list:
    """Notebook 01's cells after ``Session.begin``."""
    docs = part.documents(rb.params)
    problems = part.validate_documents(docs, rb.params.talos_version)
    rb.check("volume documents pass Talos validation", not problems, problems or "no problems", "no problems")
    layouts = part.observe_all(rb)
    plans = part.plan_all(rb, layouts)
    part.apply_all(rb, plans, layouts, timeout=rb.params.node_timeout)
    after = part.verify_all(rb)
    rb.finish()
    rb.lock.release()  # the run ends: `runbook run` releases its lock
    return after


def run_02(rb: Session) -> None:
    """Notebook 02's cells after ``Session.begin``."""
    compat.preflight(rb, before_upgrade=True)
    images = upgrade.prepare_installer(rb)
    upgrade.observe_all(rb)
    upgrade.config_patches(rb, images)
    upgrade.apply_config_patch(rb, images)
    upgrade.rolling_upgrade(rb, images, timeout=rb.params.node_timeout)
    upgrade.verify(rb, images)
    compat.after_upgrade(rb)
    rb.finish()
    rb.lock.release()


def fails(run: Callable[[Session], object], rb: Session) -> tuple[RunbookError, dict]:
    """Run a notebook's cells that must fail: the error raised, and the record as `runbook run` seals it."""
    with pytest.raises(RunbookError) as info:
        run(rb)
    record = merge_record(nbformat.v4.new_notebook(), final_status="failed")  # the kernel's saved record
    assert record is not None and record["actions"] == rb.record.to_dict()["actions"]
    rb.lock.release()
    return info.value, record


def back(s: StorageLab, name: str) -> None:
    """Wait until the node is up and its kubelet Ready in the lab's model (what the operator checks before re-running)."""
    def up() -> bool:
        with s.lab.lock:
            s.lab.tick()
            node, now = s.lab.talos.nodes[name], s.lab.clock.now()
            return node.is_up(now) and node.kubelet_ready(now)
    wait_for(up, f"{name} back", timeout=30)


def volumes(s: StorageLab, address: str) -> dict[str, dict]:
    """``talosctl get volumestatus`` through the lab's talosctl, as an operator reads it."""
    out = subprocess.run([str(s.dir / "bin" / "talosctl"), "--talosconfig", str(s.dir / "talosconfig"), "-n", address,
                          "get", "volumestatus", "-o", "json"], capture_output=True, text=True, check=True).stdout
    return {r["metadata"]["id"]: r["spec"] for r in parse_resources(out)}


def etcd_quorum(s: StorageLab) -> bool:
    return s.http.get("/lab/v1/status").json()["etcd_quorum"]


def test_talosctl_failure_stops_at_that_node_and_rerun_completes(lab: StorageLab, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The next talosctl call for lab-cp-2 (01's first read, the nodes' Talos versions) exits 1 like Talos does:
    # the run stops with an error naming the node, before any change to any node.
    lab.add_fault("talosctl-fail", "lab-cp-2", count=1)
    rb = session(lab, "01-partition", tmp_path, monkeypatch, "talosctl-fail")
    error, rec = fails(run_01, rb)
    assert isinstance(error, TalosError) and "lab-cp-2" in str(error), error
    assert rec["status"] == "failed"
    assert not [a for a in rec["actions"] if a["target"] == "lab-cp-3"]
    assert not [a for a in rec["actions"] if a["outcome"] == "applied"]

    again = session(lab, "01-partition", tmp_path, monkeypatch, "talosctl-fail-rerun")
    run_01(again)
    assert again.record.status == "succeeded" and all(c.ok for c in again.record.checks)


def test_node_down_mid_reset_stops_at_that_node_and_rerun_resumes(lab: StorageLab, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # 01 resets the nodes one by one; lab-cp-2 loses power the moment its reset begins (lab-cp-1 is done).
    # The fault goes into the lab's fault book inside the reset call, so the next tick powers the node off before
    # its drain ends. (A controller step or a thread watching the stage would race: at x2000 one tick can run the
    # drain, the wipe and the boot together, and the stage "resetting" is never seen.)
    reset = lab.lab.talos.reset

    def reset_then_lose_power(node, *args, **kwargs):
        actor = reset(node, *args, **kwargs)
        if node.name == "lab-cp-2" and node.stage == "resetting":
            lab.lab.faults.add("node-down", "lab-cp-2")  # the handler holds lab.lock: what POST /lab/v1/faults does
            lab.lab.mark_dirty()
        return actor

    monkeypatch.setattr(lab.lab.talos, "reset", reset_then_lose_power)
    rb = session(lab, "01-partition", tmp_path, monkeypatch, "node-down")
    error, rec = fails(run_01, rb)
    text = str(error)
    # talosctl waits node_timeout real seconds (as the real talosctl counts) for the node to come back
    assert "talosctl exited 1 on lab-cp-2" in text and "context deadline exceeded" in text, text
    assert "what to do: the node did not come back in time" in text, text
    assert rec["status"] == "failed"
    # nothing after the failing step: the reset of lab-cp-2 is the last action, lab-cp-3 untouched
    last = rec["actions"][-1]
    assert (last["step"], last["target"], last["outcome"]) == ("reset EPHEMERAL lab-cp-2", "lab-cp-2", "failed")
    assert not [a for a in rec["actions"] if a["target"] == "lab-cp-3"]
    # the cluster is consistent: etcd keeps quorum, lab-cp-1 is done, lab-cp-3 still has the installer's layout
    assert etcd_quorum(lab) is True
    assert volumes(lab, "10.5.0.2")["r-linstor-storage"]["phase"] == "ready"
    assert "r-linstor-storage" not in volumes(lab, "10.5.0.4")

    monkeypatch.setattr(lab.lab.talos, "reset", reset)
    lab.clear_faults()  # power back on: the node boots and the run resumes where it stopped
    back(lab, "lab-cp-2")
    again = session(lab, "01-partition", tmp_path, monkeypatch, "node-down-rerun")
    run_01(again)
    outcomes = {(a.step.split()[0], a.target): a.outcome for a in again.record.actions}
    assert outcomes[("patch", "lab-cp-1")] == outcomes[("reset", "lab-cp-1")] == "unchanged"
    # lab-cp-2's patch outlived the power loss, its reset never ran: it is done again, then lab-cp-3
    assert (outcomes[("patch", "lab-cp-2")], outcomes[("reset", "lab-cp-2")]) == ("unchanged", "applied")
    assert outcomes[("reset", "lab-cp-3")] == "applied"
    assert again.record.status == "succeeded" and all(c.ok for c in again.record.checks)


def test_upgrade_stops_at_stuck_node_and_resumes(lab: StorageLab, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run_01(session(lab, "01-partition", tmp_path, monkeypatch, "stuck-reboot-01"))
    lab.add_fault("stuck-reboot", "lab-cp-2")
    # talosctl waits node_timeout real seconds for the stuck node (as the real talosctl counts)
    rb = session(lab, "02-extensions-and-upgrade", tmp_path, monkeypatch, "stuck-reboot")
    error, rec = fails(run_02, rb)
    assert "lab-cp-2" in str(error), error
    assert rec["status"] == "failed"
    upgrades = [(a["target"], a["outcome"]) for a in rec["actions"] if a["step"].startswith("upgrade")]
    assert upgrades == [("lab-cp-1", "applied"), ("lab-cp-2", "failed")]
    first, second = (a for a in rec["actions"] if a["step"].startswith("upgrade"))
    end_first = datetime.fromisoformat(first["started_at"]) + timedelta(seconds=first["duration_s"])
    assert end_first <= datetime.fromisoformat(second["started_at"])  # never two nodes upgrading at once
    assert rec["actions"][-1]["step"] == second["step"]  # nothing after the failing step

    lab.clear_faults()
    back(lab, "lab-cp-2")
    again = session(lab, "02-extensions-and-upgrade", tmp_path, monkeypatch, "stuck-reboot-rerun")
    run_02(again)
    outcome = {a.target: a.outcome for a in again.record.actions if a.step.startswith("upgrade")}
    assert outcome["lab-cp-1"] == "unchanged" and outcome["lab-cp-3"] == "applied"
    assert again.record.status == "succeeded" and all(c.ok for c in again.record.checks)


def test_the_quorum_loss_peers_reboot_in_one_talosctl_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """06's quorum-loss scenario takes both peers down at once: one ``talosctl --nodes a,b reboot`` (apid fans it
    out), not one process per node, which on a busy machine let the first node come back before the second went."""
    s = start_lab(tmp_path / "lab", scale=1.0)  # real time: both nodes stay down for the whole test
    monkeypatch.setenv(RECORD_ENV, str(tmp_path / "record.json"))
    try:
        rb = session(s, "06-failover-drill", tmp_path, monkeypatch, "quorum")
        peers = [n for n in rb.nodes if n.name in ("lab-cp-1", "lab-cp-2")]
        ids: dict[str, list] = {}
        drill_faults.inject_together(rb, "reboot", peers, ids, step="quorum loss", approval="quorum-loss",
                                     approval_target="lab-cp-3")
        [action] = rb.record.actions
        assert action.command[-4:] == ["--nodes", "10.5.0.2,10.5.0.3", "reboot", "--wait=false"]
        assert action.target == "lab-cp-1,lab-cp-2" and action.outcome == "applied"
        assert ids == {}  # nothing to remove: the reboots end by themselves
        with s.lab.lock:
            started = [a["started"] for n in ("lab-cp-1", "lab-cp-2")
                       for a in s.lab.talos.nodes[n].actions.values() if a["kind"] == "reboot"]
        assert len(started) == 2 and abs(started[0] - started[1]) < 1.0, started
        assert not etcd_quorum(s)  # two of three control planes down together (the run's lease goes with the lab)
    finally:
        stop_lab(s)
