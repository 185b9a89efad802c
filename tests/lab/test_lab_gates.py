"""The safety gates against the lab: storage faults stop 01, 02 and 06 where they must; approvals before changes.

One in-process lab (Piraeus up, a replicated volume in use on lab-cp-3) is driven through the
runbooks' own step functions (``partition.apply_all``, ``upgrade.rolling_upgrade``, 06's fault
preflight, 03's wipe, 07's matrix), with the lab's storage faults: ``diskless-after-upgrade``
(siderolabs/talos#12478), ``replication-down`` (a storage network down between two nodes) and
``slow-resync``. The tests run in order and share the lab; each leaves it healthy for the next.
A monitor thread reads the lab's own model throughout, so "02 never takes a node down while
another node's replica is not UpToDate" is checked against the simulated DRBD, not the runbook's word.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook_lib import kube, storage_gates
from runbook_lib.errors import ApprovalRequired, GateRefused, PreconditionFailed
from runbook_lib.lab.storage import drbd
from runbook_lib.lab.talos import factory_api
from runbook_lib.params import parse_params
from runbook_lib.record import RECORD_ENV
from runbook_lib.session import RUN_ID_ENV, Session
from runbook_lib.steps import nb01_partition as partition
from runbook_lib.steps import nb02_extensions_and_upgrade as upgrade
from runbook_lib.steps import nb03_piraeus_install as piraeus
from runbook_lib.steps import nb04_storage_classes as storage_classes
from runbook_lib.steps import nb06_failover_drill as failover
from runbook_lib.steps import nb07_benchmarks as benchmarks
from runbook_lib.steps import nb08_storage_health as health
from tests.storage_lab import (
    NODES,
    StorageLab,
    bootstrap,
    cluster_ready,
    start_lab,
    stop_lab,
    wait_for,
)

SCALE = 100.0  # lab seconds per second: a 1 MiB/s resync of what a node missed outlasts the next node's health check


def _rescale(s: StorageLab, scale: float) -> None:
    with s.lab.lock:
        clock = s.lab.clock
        clock.origin, clock._real_origin, clock.scale = clock.now(), time.monotonic(), scale


def _consumer(name: str, claim: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                     "containers": [{"name": "app", "image": "busybox", "command": ["sleep", "1d"],
                                     "volumeMounts": [{"name": "d", "mountPath": "/d"}]}],
                     "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageLab]:
    s = start_lab(tmp_path_factory.mktemp("gates") / "lab")
    s.server.factory_handler = factory_api.handle  # 02 registers its schematic at the lab's Image Factory
    env = pytest.MonkeyPatch()
    env.setenv(RUN_ID_ENV, "test-lab-gates")  # one run: its sessions share the cluster lock, as under `runbook run`
    env.setenv(RECORD_ENV, str(s.dir / "record.json"))  # and keep their record where `runbook run` points them
    try:
        bootstrap(s)
        wait_for(lambda: cluster_ready(s), "LinstorCluster ready with 3/3 satellites", timeout=60)
        for name, replicas in (("local", 1), ("replicated", 3)):
            kube.server_side_apply(s.api, storage_classes.storage_class(
                name, "linstor-pool", replicas=replicas, layers="drbd storage", binding="WaitForFirstConsumer",
                default=False))
        kube.server_side_apply(s.api, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                       "metadata": {"name": "data", "namespace": "default"},
                                       "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "replicated",
                                                "resources": {"requests": {"storage": "1Gi"}}}})
        kube.server_side_apply(s.api, _consumer("app", "data", "lab-cp-3"))
        wait_for(lambda: s.core.read_namespaced_pod("app", "default").status.phase == "Running", "the volume in use")
        with s.lab.lock:
            s.lab.options["workload_write_mib_s"] = 2.0  # what a replica misses while its node is away
        _rescale(s, SCALE)
        yield s
    finally:
        env.undo()
        stop_lab(s)


def session(s: StorageLab, notebook: str, tmp: Path, *, read_only: bool = False, **params) -> Session:
    """A session on the in-process lab, exactly what ``Session.begin`` builds from the lab's connection files."""
    connection = s.connection
    data = {"backup_dir": str(tmp / "etcd-backups"), "node_timeout": 120, **params}
    data["lab"] = {"time_scale": SCALE, **data.get("lab", {})}
    return Session.open(notebook, parse_params(data), connection, read_only=read_only)


def versions(s: StorageLab) -> dict[str, str]:
    with s.lab.lock:
        return {n: s.lab.talos.nodes[n].talos_version for n in NODES}


def all_up_to_date(s: StorageLab) -> bool:
    with s.lab.lock:
        s.lab.tick()
        return all(r.disk_state == "UpToDate" for rd in s.lab.linstor.rds.values() for r in rd.replicas.values()
                   if not r.diskless) and all(drbd.node_up(s.lab, n) for n in NODES)


class Monitor:
    """Samples the lab's model: every moment a node goes down, is any other node's replica not UpToDate?"""

    def __init__(self, s: StorageLab) -> None:
        self.s, self.violations, self.downs, self.behind_seen = s, [], [], set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        was_up = dict.fromkeys(NODES, True)
        while not self._stop.is_set():
            with self.s.lab.lock:
                up = {n: drbd.node_up(self.s.lab, n) for n in NODES}
                behind = {(rd.name, r.node, r.disk_state) for rd in self.s.lab.linstor.rds.values()
                          for r in rd.replicas.values() if not r.diskless and r.disk_state != "UpToDate"}
            self.behind_seen |= {b[1] for b in behind}
            for n in NODES:
                if was_up[n] and not up[n]:
                    self.downs.append(n)
                    others = sorted(b for b in behind if b[1] != n)
                    if others:
                        self.violations.append((n, others))
            was_up = up
            time.sleep(0.003)


def installer(rb: Session) -> upgrade.Installer:
    return upgrade.prepare_installer(rb)


# ----------------------------------------------------------------------------- 02 and the storage faults


def test_diskless_after_upgrade_stops_02_after_the_first_node(lab: StorageLab, tmp_path: Path) -> None:
    before = versions(lab)
    lab.add_fault("diskless-after-upgrade", "lab-cp-1")
    rb = session(lab, "02-extensions-and-upgrade", tmp_path)
    inst = installer(rb)
    with pytest.raises(GateRefused) as info:
        upgrade.rolling_upgrade(rb, inst, timeout=rb.params.node_timeout)
    text = str(info.value)
    pv = [r for r in info.value.resources if r.startswith("pvc-")]
    assert pv and "the rollout stops at lab-cp-1" in text and "was diskful before, Diskless now" in text, text
    after = versions(lab)
    assert after["lab-cp-1"] == rb.params.talos_version
    assert {n: after[n] for n in ("lab-cp-2", "lab-cp-3")} == {n: before[n] for n in ("lab-cp-2", "lab-cp-3")}
    assert [a.step for a in rb.record.actions if a.outcome == "applied"] == ["upgrade lab-cp-1"]
    failed = [c for c in rb.record.checks if not c.ok]
    assert [c.name for c in failed] == ["storage gate after upgrade lab-cp-1: lab-cp-1 is back"]
    # heal: the fault removed, the next boot attaches the disks and they resync
    lab.clear_faults()
    with lab.lab.lock:
        lab.lab.talos.reboot(lab.lab.talos.nodes["lab-cp-1"], lab.lab.clock.now())
    wait_for(lambda: all_up_to_date(lab), "lab-cp-1's replicas diskful and UpToDate again", timeout=60)


def test_replication_down_refuses_01_02_and_06_before_they_change_anything(lab: StorageLab, tmp_path: Path) -> None:
    lab.add_fault("replication-down", "lab-cp-2", "lab-cp-3")
    try:
        rb = session(lab, "02-extensions-and-upgrade", tmp_path)
        with pytest.raises(GateRefused) as info:
            upgrade.rolling_upgrade(rb, installer(rb), timeout=rb.params.node_timeout)
        first = next(n for n in NODES if versions(lab)[n] != rb.params.talos_version)  # lab-cp-1 may be done already
        assert f"upgrade {first} refused, nothing was changed on {first}" in str(info.value)
        assert "not connected to lab-cp-3" in str(info.value)
        assert not [a for a in rb.record.actions if a.outcome == "applied"]

        rb = session(lab, "01-partition", tmp_path)
        plans = [partition.NodePlan(n, apply_config=False, reset=True, reasons=["EPHEMERAL above the cap"]) for n in NODES]
        with pytest.raises(GateRefused, match="reset EPHEMERAL lab-cp-1 refused"):
            partition.apply_all(rb, plans, partition.observe_all(rb), timeout=rb.params.node_timeout)
        assert not rb.record.actions

        rb = session(lab, "06-failover-drill", tmp_path)
        with pytest.raises(GateRefused, match="lab-cp-3 may go down: no"):
            failover.before_fault(rb, "failover", "node-down", [failover.node_ref(rb, "lab-cp-3")], home="lab-cp-3",
                                  exempt=[])
        assert not rb.record.actions
    finally:
        lab.clear_faults()
    wait_for(lambda: all_up_to_date(lab), "replication back", timeout=30)


def test_slow_resync_02_never_takes_a_node_down_while_a_replica_is_behind(lab: StorageLab, tmp_path: Path) -> None:
    lab.add_fault("slow-resync")
    confirm = [f"upgrade {n}" for n in NODES]
    rb = session(lab, "02-extensions-and-upgrade", tmp_path, confirm=confirm, lab={"enforce_safety": True})
    inst = installer(rb)
    try:
        with Monitor(lab) as mon:
            timeline = upgrade.rolling_upgrade(rb, inst, timeout=rb.params.node_timeout)
    finally:
        lab.clear_faults()
    assert [d.node for d in timeline] == ["lab-cp-2", "lab-cp-3"]  # lab-cp-1 is already there
    assert mon.downs[:2] == ["lab-cp-2", "lab-cp-3"] and not mon.violations, mon.violations
    assert "lab-cp-2" in mon.behind_seen  # its replica really resynced, and lab-cp-3 waited for it
    gates = [c for c in rb.record.checks if c.name.startswith("storage gate")]
    assert [c.name.split(":")[0] for c in gates] == [
        "storage gate before upgrade lab-cp-2", "storage gate after upgrade lab-cp-2",
        "storage gate before upgrade lab-cp-3", "storage gate after upgrade lab-cp-3"] and all(c.ok for c in gates)
    # etcd was snapshotted before each control-plane upgrade: recorded by path, size and hash, outside outputs/
    snaps = rb.record.results["etcd_snapshots"]
    assert [s["before"] for s in snaps] == ["upgrade lab-cp-2", "upgrade lab-cp-3"]
    for snap in snaps:
        path = Path(snap["path"])
        assert path.is_relative_to(tmp_path / "etcd-backups") and "outputs" not in path.parts
        assert path.stat().st_size == snap["size_bytes"] > 0 and path.stat().st_mode & 0o077 == 0
        assert hashlib.sha256(path.read_bytes()).hexdigest() == snap["sha256"]
        assert set(snap) == {"before", "node", "taken_via", "path", "size_bytes", "sha256"}
    assert versions(lab) == dict.fromkeys(NODES, rb.params.talos_version)


def test_a_gate_that_cannot_read_linstor_refuses(lab: StorageLab, tmp_path: Path) -> None:
    rb = session(lab, "01-partition", tmp_path)
    lab.add_fault("api-errors", None)  # the next Kubernetes API request (the service proxy to LINSTOR) answers 500
    try:
        with pytest.raises(GateRefused, match="a storage gate does not pass without it"):
            storage_gates.before_down(rb, ["lab-cp-1"], step="reset EPHEMERAL lab-cp-1")
    finally:
        lab.clear_faults()


def test_a_wrong_piraeus_namespace_does_not_skip_the_gates(lab: StorageLab, tmp_path: Path) -> None:
    rb = session(lab, "01-partition", tmp_path, piraeus={"namespace": "storage-elsewhere"})
    with pytest.raises(GateRefused, match="LinstorCluster .* exists but there is no Service storage-elsewhere/"):
        storage_gates.before_down(rb, ["lab-cp-1"], step="reset EPHEMERAL lab-cp-1", optional=True)
    assert not rb.record.actions


def test_08_shows_the_difference_a_fault_makes(lab: StorageLab, tmp_path: Path) -> None:
    """08's own functions on the lab, healthy and then with the replication link lab-cp-1 - lab-cp-2 down."""
    rb = session(lab, "08-storage-health", tmp_path, read_only=True)
    assert rb.lock is None and rb.executor.dry_run  # no cluster lock; a change could only be planned
    before = health.observe(rb)
    assert before is not None and health.red_flags(rb, before).empty
    table = health.replicas_table(before)
    assert set(table["condition"]) == {"healthy"} and set(table["node"]) == set(NODES)
    lab.add_fault("replication-down", "lab-cp-1", "lab-cp-2")
    try:
        after = health.observe(rb)
    finally:
        lab.clear_faults()
    flags = health.red_flags(rb, after)
    assert set(flags["node"]) >= {"lab-cp-1", "lab-cp-2"} and flags["what to do"].str.contains("replication network").any()
    conditions = health.replicas_table(after).set_index("node")["condition"]
    assert conditions["lab-cp-3"] == "healthy" and {conditions["lab-cp-1"], conditions["lab-cp-2"]} != {"healthy"}
    assert [c.ok for c in rb.record.checks] == [True, False]  # the summary would fail the second run
    fig = health.replicas_figure(after)
    assert list(fig.data[0].x) == list(NODES) and len(fig.data[0].y) == len(after.resources())
    assert not rb.record.actions  # read-only: nothing recorded as a change
    wait_for(lambda: all_up_to_date(lab), "replication back", timeout=30)


# ----------------------------------------------------------------------------- approvals with lab.enforce_safety


def test_enforce_safety_stops_each_destructive_step_without_its_approval(lab: StorageLab, tmp_path: Path) -> None:
    strict = {"lab": {"enforce_safety": True}}
    rb = session(lab, "01-partition", tmp_path, **strict)
    plans = [partition.NodePlan("lab-cp-1", apply_config=True, reset=True)]
    with pytest.raises(ApprovalRequired, match="'reset lab-cp-1' .*wipes all of /var"):
        partition.apply_all(rb, plans, partition.observe_all(rb), timeout=1)
    assert not rb.record.actions  # checked before apply-config, the first change

    # a version no node runs yet, so every node's upgrade is still to do
    rb = session(lab, "02-extensions-and-upgrade", tmp_path, **strict, talos_version="v1.12.11",
                 confirm=["upgrade lab-cp-1"])
    with pytest.raises(ApprovalRequired, match="'upgrade lab-cp-2'"):
        upgrade.apply_config_patch(rb, installer(rb))
    assert not rb.record.actions  # checked before the first machine-config patch

    rb = session(lab, "03-piraeus-install", tmp_path, **strict)
    with pytest.raises(ApprovalRequired, match="'wipe lab-cp-2'"):
        piraeus.wipe_partitions(rb, [piraeus.Partition("lab-cp-2", "/dev/nvme0n1p5", "ready", "xfs")])
    assert [a.outcome for a in rb.record.actions] == []

    rb = session(lab, "07-benchmarks", tmp_path, **strict, confirm=["benchmark local"])
    with pytest.raises(ApprovalRequired, match="'benchmark replicated'"):
        benchmarks.run_matrix(rb)
    assert not rb.record.actions  # both classes checked before the first PVC

    rb = session(lab, "06-failover-drill", tmp_path, **strict)
    with pytest.raises(PreconditionFailed, match="failover.node"):
        failover.check_setup(rb)
    rb = session(lab, "06-failover-drill", tmp_path, **strict, failover={"node": "lab-cp-3", "quorum_loss": False})
    with pytest.raises(ApprovalRequired, match="'drill lab-cp-3'"):
        failover.check_setup(rb)
    rb = session(lab, "06-failover-drill", tmp_path, **strict, failover={"node": "lab-cp-3"},
                 confirm=["drill lab-cp-3"])
    with pytest.raises(ApprovalRequired, match="'quorum-loss lab-cp-3'"):
        failover.check_setup(rb)
    assert not rb.record.actions


def test_quorum_loss_refuses_to_take_down_two_of_three_etcd_members(lab: StorageLab, tmp_path: Path) -> None:
    rb = session(lab, "06-failover-drill", tmp_path, lab={"enforce_safety": True},
                 failover={"node": "lab-cp-3", "quorum_loss": True}, confirm=["drill lab-cp-3", "quorum-loss lab-cp-3"])
    with pytest.raises(PreconditionFailed) as info:
        failover.check_setup(rb)
    assert "2 of 3 etcd members (lab-cp-1, lab-cp-2" in str(info.value)
    assert not rb.record.actions
    # the same scenario without the preflight (its own check right before the faults) refuses as well
    with pytest.raises(PreconditionFailed, match="etcd members"):
        failover.before_fault(rb, "quorum-loss", "reboot", [failover.node_ref(rb, n) for n in ("lab-cp-1", "lab-cp-2")],
                              home="lab-cp-3", exempt=[])
    assert not rb.record.actions
