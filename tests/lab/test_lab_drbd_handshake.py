"""A busy machine cannot make the lab's DRBD split-brain: a returning replica takes writes only after the handshake.

DRBD 9 connects two replicas only after comparing their generation UUIDs (LINBIT/drbd drbd_receiver.c
``drbd_uuid_compare``, called by ``drbd_handshake``): a replica that was away becomes SyncTarget of the
newer one before any write reaches it; a split brain needs writes on both sides while they were apart
(DRBD UG9 "Split brain notification and automatic recovery"), which quorum prevents (DRBD UG9 "DRBD
quorum": only a partition with a majority may modify the data).

The lab ticks its controllers in order (node status, DRBD, the record writer, ...), and a busy machine
lets the clock move on between two steps of one tick. The tests reproduce the ordering that broke a
loaded rehearsal at ``lab.time_scale`` 100, deterministically: a copy of the session's storage lab runs
in this process on a clock that moves only when the test says, and a step between DRBD and the record
writer moves it past the moment a booting node's kubelet comes up, so the writer sees the returned
node before DRBD has. The drill's own writer manifest writes the records; the verdicts are read from
the lab's model, never from wall-clock time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook_lib.lab.assembly import load_lab
from runbook_lib.lab.clock import Clock
from runbook_lib.lab.cluster import Lab, Step
from runbook_lib.lab.storage import drbd
from runbook_lib.params import parse_params
from runbook_lib.record import RECORD_ENV
from runbook_lib.session import Session
from runbook_lib.steps.nb06_failover_drill.manifests import (
    RECORDS,
    reader_pod,
    writer_claim,
    writer_deployment,
)
from runbook_lib.steps.nb06_failover_drill.reader_run import run_reader
from tests.storage_lab import NODES, StorageLab, bound_claim, pvc_doc

BUSY_S = 15.0  # how far ahead the busy step looks for a node about to come up (lab seconds)
TICK_S = 5.0  # lab seconds between ticks
SCALE = 100.0  # lab.time_scale of the failed rehearsal: the writer's records are 2 lab seconds apart
WRITER_NODE = "lab-cp-1"


class TestClock(Clock):
    """A lab clock that moves only when the test moves it."""

    __test__ = False

    def __init__(self, at: float, scale: float) -> None:
        super().__init__(scale=scale, origin=at)
        self.at = at

    def now(self) -> float:
        return self.at


@pytest.fixture
def busy_lab(classes: StorageLab) -> Iterator[Lab]:
    """A copy of the storage lab on a test clock, busy inside every tick; the drill's writer running on lab-cp-1."""
    with classes.lab.lock:
        state = json.loads(json.dumps(classes.lab.to_dict()))
    lab = load_lab(state)
    lab.clock = TestClock(lab.clock.now(), SCALE)
    steps = list(lab.controllers)
    after = [c.name for c in steps].index("drbd") + 1
    steps.insert(after, Step("busy machine", _slip_past_a_boot, needs_api=False))
    lab.controllers = tuple(steps)
    claim = writer_claim("hs-data", "default", "csi-replicated", "1Gi")
    deployment = writer_deployment("hs-writer", "default", "hs-data", "busybox:1.37", 2.0, prefer=("In", [WRITER_NODE]),
                                   only=list(NODES))
    with lab.lock:
        lab.kube.create(lab.kube.resolve("", "v1", "persistentvolumeclaims"), "default", claim)
        lab.kube.create(lab.kube.resolve("apps", "v1", "deployments"), "default", deployment)
    advance(lab, 120.0)
    assert _writer_node(lab) == WRITER_NODE and len(_records(lab, WRITER_NODE)) > 5, "the writer is writing"
    yield lab


def _slip_past_a_boot(lab: Lab, now: float) -> None:
    """The machine stalls inside the tick until just after a booting node's kubelet is up (if one is due soon)."""
    due = [t for node in lab.talos.nodes.values() if (t := node.ready_at()) is not None and now < t <= now + BUSY_S]
    if due:
        lab.clock.at = max(due) + 0.5


def advance(lab: Lab, seconds: float) -> None:
    end = lab.clock.at + seconds
    while lab.clock.at < end:
        lab.clock.at += TICK_S
        with lab.lock:
            lab.tick()


def _rd(lab: Lab):
    pvc = lab.kube.objects.get(("", "persistentvolumeclaims", "default", "hs-data"))
    return lab.linstor.rds[pvc["spec"]["volumeName"]]


def _writer_node(lab: Lab) -> str | None:
    return next((w["node"] for w in lab.drbd.writers.values() if w["pod"].startswith("hs-writer")), None)


def _records(lab: Lab, node: str) -> list[str]:
    return drbd.replica_lines(lab, _rd(lab).name, node, RECORDS.removeprefix("/data"))


def _acks(lab: Lab) -> list[str]:
    logs = lab.workloads.state.logs
    return [line.removeprefix("ack ") for key, lines in logs.items() if key.startswith("default/hs-writer")
            for entry in lines for line in entry.split("\n") if line.startswith("ack ")]


def _write_errors(lab: Lab) -> list[str]:
    logs = lab.workloads.state.logs
    return [line for key, lines in logs.items() if key.startswith("default/hs-writer")
            for entry in lines for line in entry.split("\n") if "error" in line]


def assert_one_history(lab: Lab) -> None:
    """No split brain, every replica UpToDate and connected, the same records everywhere, every ack on each."""
    rd = _rd(lab)
    assert lab.drbd.split_brain == [], "a split brain: StandAlone " + ", ".join(lab.drbd.split_brain)
    assert {n: r.disk_state for n, r in rd.replicas.items()} == dict.fromkeys(NODES, "UpToDate")
    assert all(lab.linstor.connected(a, b, rd.name) for a in NODES for b in NODES if a != b)
    copies = {n: _records(lab, n) for n in NODES}
    assert all(c == copies[WRITER_NODE] for c in copies.values()), {n: len(c) for n, c in copies.items()}
    acked = _acks(lab)
    assert acked and set(acked) <= set(copies[WRITER_NODE]), "an acknowledged record is missing"
    assert _write_errors(lab) == []


def test_a_secondary_back_from_a_power_loss_resyncs_before_it_takes_a_write(busy_lab: Lab) -> None:
    """lab-cp-3 loses power while the writer goes on (2 of 3 keep quorum) and boots again inside a busy tick."""
    lab = busy_lab
    fault = lab.faults.add("node-down", "lab-cp-3")
    advance(lab, 60.0)
    lab.faults.remove(fault.id)
    advance(lab, 240.0)
    assert len(_records(lab, "lab-cp-3")) > 30, "lab-cp-3 is back and receiving"
    assert_one_history(lab)


def test_losing_two_of_three_freezes_the_writer_and_both_come_back_without_a_split_brain(busy_lab: Lab) -> None:
    """06's quorum-loss on a busy machine: lab-cp-2 goes, 30 s later lab-cp-3; both return 60 s after that."""
    lab = busy_lab
    first = lab.faults.add("node-down", "lab-cp-2")
    advance(lab, 30.0)
    second = lab.faults.add("node-down", "lab-cp-3")
    advance(lab, 10.0)  # the freeze takes hold
    frozen = len(_acks(lab))
    advance(lab, 50.0)
    assert len(_acks(lab)) == frozen, "no write completes without quorum (on-no-quorum suspend-io)"
    lab.faults.remove(first.id)
    advance(lab, 20.0)
    lab.faults.remove(second.id)
    advance(lab, 300.0)
    assert len(_acks(lab)) > frozen + 30, "the writer resumed"
    assert _writer_node(lab) == WRITER_NODE
    assert_one_history(lab)


def test_a_reader_evicted_for_lack_of_quorum_is_reported_at_once_with_its_reason(
        classes: StorageLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader of a replica that has no quorum (its DRBD links cut) is evicted by the HA controller: 06 says so
    instead of waiting out its timeout for a pod that no longer exists."""
    s = classes
    s.core.create_namespaced_persistent_volume_claim("default", pvc_doc("hs-read", "csi-replicated"))
    bound_claim(s, "hs-read")
    with s.lab.lock:
        cuts = [s.lab.faults.add("replication-down", "lab-cp-3", peer).id for peer in ("lab-cp-1", "lab-cp-2")]
    monkeypatch.setenv(RECORD_ENV, str(tmp_path / "record.json"))
    connection = {"lab_dir": str(s.dir), "url": s.server.url, "kubeconfig": str(s.dir / "kubeconfig"),
                  "talosconfig": str(s.dir / "talosconfig"), "talosctl": str(s.dir / "bin" / "talosctl"),
                  "helm": str(s.dir / "bin" / "helm")}
    session = Session.open("06-failover-drill", parse_params({"backup_dir": str(tmp_path)}), connection, read_only=True)
    pod = reader_pod("hs-reader", "default", "hs-read", "busybox:1.37", "lab-cp-3", "1-9:1", "")
    try:
        s.core.create_namespaced_pod("default", pod)
        run = run_reader(session, pod, what="reader on lab-cp-3", timeout=120.0)
    finally:
        with s.lab.lock:
            for fid in cuts:
                s.lab.faults.remove(fid)
        if any(p.metadata.name == "hs-reader" for p in s.core.list_namespaced_pod("default").items):
            s.core.delete_namespaced_pod("hs-reader", "default")
        s.core.delete_namespaced_persistent_volume_claim("hs-read", "default")
    assert run.log is None
    assert run.reason is not None and run.reason.startswith("pod removed before it finished (VolumeWithoutQuorum: "), run.reason


def test_a_secondary_outdated_by_the_first_cut_resyncs_from_the_other_when_the_primary_ignores_quorum(
        busy_lab: Lab) -> None:
    """06's ``isolate`` with ``quorum-off``: the writer's node is cut from lab-cp-2, a tick later from lab-cp-3.

    The first cut outdates lab-cp-2 (weakly connected: it still reaches the Primary through lab-cp-3). After the
    second cut the Primary goes on writing alone, so lab-cp-3 misses its writes too, but its disk stays UpToDate
    (nobody reachable outdated it) and DRBD 9 makes it lab-cp-2's SyncSource (LINBIT/drbd drbd_receiver.c
    ``drbd_uuid_compare``: the newer generation is the source, whichever role it has). The replacement pod can
    then start on either; the lab once left lab-cp-2 Outdated for good and the pod Pending there (the writes
    lab-cp-3 missed disqualified it as a source).
    """
    lab = busy_lab
    lab.options["workload_write_mib_s"] = 0.5  # parameters/lab.yaml's: a replica away misses writes
    lab.faults.add("quorum-off")
    lab.faults.add("partition", WRITER_NODE, "lab-cp-2")
    lab.clock.at += 0.1  # one tick between the two cuts, too short for a record (the drill's cuts are ms apart)
    with lab.lock:
        lab.tick()
    assert _rd(lab).replicas["lab-cp-2"].disk_state == "Outdated", "weakly connected: outdated by the first cut"
    assert _records(lab, "lab-cp-2") == _records(lab, "lab-cp-3"), "no write between the cuts"
    lab.faults.add("partition", WRITER_NODE, "lab-cp-3")
    advance(lab, 30.0)
    assert len(_records(lab, WRITER_NODE)) > len(_records(lab, "lab-cp-3")), "the cut-off Primary writes alone"
    rd = _rd(lab)
    assert {n: rd.replicas[n].disk_state for n in ("lab-cp-2", "lab-cp-3")} == dict.fromkeys(("lab-cp-2", "lab-cp-3"),
                                                                                          "UpToDate")
    assert _records(lab, "lab-cp-2") == _records(lab, "lab-cp-3")
    advance(lab, 120.0)
    assert {w["node"] for w in lab.drbd.writers.values()} & {"lab-cp-2", "lab-cp-3"}, "the writer failed over"
    moved = len(_records(lab, "lab-cp-2"))
    advance(lab, 30.0)
    assert len(_records(lab, "lab-cp-2")) > moved and _records(lab, "lab-cp-2") == _records(lab, "lab-cp-3"), \
        "the failed-over writer writes to both"
