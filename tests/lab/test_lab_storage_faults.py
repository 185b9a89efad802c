"""The lab's storage faults the safety gates must catch, seen through LINSTOR's REST API.

A volume in use (a pod on lab-cp-1 writing to a 3-replica DRBD volume) keeps changing while a
replica's node is away (``lab.workload_write_mib_s``), so the returning replica must resync at the
link's rate (DRBD UG9 "Resynchronization"); ``slow-resync``, ``diskless-after-upgrade``
(siderolabs/talos#12478) and ``replication-down`` (one storage link cut) change what the gates see.
Durations are compared in lab time and as ratios, never in wall-clock time.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runbook_lib.lab import control
from runbook_lib.lab.faults import FaultBook
from runbook_lib.lab.storage import drbd
from runbook_lib.lab.talos import etcd_snapshot
from runbook_lib.lab.talos.talosctl.main import main as talosctl_main
from runbook_lib.params import ParamsError, parse_params
from tests.lab_helpers import serve_lab
from tests.linstor_checks import validate
from tests.reference import REFERENCE
from tests.storage_lab import NODES, StorageLab, bound_claim, pod_doc, pvc_doc, running_pod, wait_for

RD_OPTIONS = ("workload_write_mib_s", "drbd_resync_mib_s")
MIB = 1024  # KiB
AWAY = "lab-cp-3"  # the node whose replica goes away; the writer runs on lab-cp-1


# ----------------------------------------------------------------------------- fault validation


@pytest.mark.parametrize(("args", "message"), [
    (("replication-down", "lab-cp-1", None), "a replication-down fault needs --node and --peer"),
    (("replication-down", "lab-cp-1", "lab-cp-1"), "needs two different nodes"),
    (("diskless-after-upgrade", None, None), "a diskless-after-upgrade fault needs --node"),
    (("slow-resync", "lab-cp-1", "lab-cp-2"), "a slow-resync fault takes no --peer"),
])
def test_storage_fault_flags_are_checked(args: tuple, message: str) -> None:
    book = FaultBook()
    with pytest.raises(ValueError, match=message):
        book.add(*args)
    with pytest.raises(ValueError, match="holds until cleared and takes no --count"):
        book.add("slow-resync", count=2)
    assert book.faults == []
    assert book.add("slow-resync").describe() == "#1 slow-resync"
    book.add("replication-down", "lab-cp-1", "lab-cp-2")
    assert book.replication_down("lab-cp-2", "lab-cp-1") and not book.replication_down("lab-cp-1", "lab-cp-3")
    assert not book.partitioned("lab-cp-1", "lab-cp-2")  # only DRBD's links, not the node network


def test_storage_faults_and_lab_options_in_the_parameter_file() -> None:
    nodes = [{"name": n, "address": f"10.5.0.{i + 2}", "role": "controlplane"} for i, n in enumerate(NODES)]
    ok = parse_params({"nodes": nodes, "lab": {"enforce_safety": True, "workload_write_mib_s": 2,
                                               "faults": [{"kind": "replication-down", "node": "lab-cp-1", "peer": "lab-cp-2"},
                                                          {"kind": "diskless-after-upgrade", "node": "lab-cp-1"},
                                                          {"kind": "slow-resync"}]}})
    assert ok.lab.enforce_safety is True and ok.lab.workload_write_mib_s == 2.0
    assert 0 < parse_params({"nodes": nodes}).lab.workload_write_mib_s < 10
    with pytest.raises(ParamsError) as err:
        parse_params({"nodes": nodes, "lab": {"workload_write_mib_s": -1, "faults": [
            {"kind": "replication-down", "node": "lab-cp-1"}, {"kind": "diskless-after-upgrade"},
            {"kind": "slow-resync", "count": 3}]}})
    text = str(err.value)
    assert "lab.workload_write_mib_s" in text and "lab.faults[0]: a replication-down fault needs both node and peer" in text
    assert "lab.faults[1].node: a diskless-after-upgrade fault needs" in text
    assert "lab.faults[2].count: a slow-resync fault holds until cleared" in text


# ----------------------------------------------------------------------------- a volume in use


@pytest.fixture(scope="module")
def in_use(classes: StorageLab) -> Iterator[tuple[StorageLab, str]]:
    """A 4 GiB 3-replica volume opened by a pod on lab-cp-1: (lab, resource name)."""
    s = classes
    s.core.create_namespaced_persistent_volume_claim("default", pvc_doc("sf-data", "csi-replicated", "4Gi"))
    s.core.create_namespaced_pod("default", pod_doc("sf-writer", "sf-data", node="lab-cp-1"))
    rd = bound_claim(s, "sf-data").spec.volume_name
    running_pod(s, "sf-writer")
    wait_for(lambda: _replica(s, rd, "lab-cp-1")["state"]["in_use"], "the writer's replica Primary")
    saved = {k: s.lab.options.get(k) for k in RD_OPTIONS}
    yield s, rd
    with s.lab.lock:
        s.lab.faults.clear()
        s.lab.options.update({k: v for k, v in saved.items() if v is not None})
        for k in [k for k, v in saved.items() if v is None]:
            s.lab.options.pop(k, None)
    s.core.delete_namespaced_pod("sf-writer", "default")
    wait_for(lambda: not [p for p in s.core.list_namespaced_pod("default").items if p.metadata.name == "sf-writer"], "pod gone")
    s.core.delete_namespaced_persistent_volume_claim("sf-data", "default")


@pytest.fixture
def options(in_use: tuple[StorageLab, str]) -> Iterator[Any]:
    """Set lab options (MiB/s) for one test; faults are cleared and every replica is UpToDate afterwards."""
    s, rd = in_use

    def set_options(**values: float) -> None:
        with s.lab.lock:
            s.lab.options.update(values)

    yield set_options
    with s.lab.lock:
        s.lab.faults.clear()
        s.lab.options.update({"workload_write_mib_s": 0.5, "drbd_resync_mib_s": 110.0})
    wait_for(lambda: all(_volume(s, rd, n)["state"]["disk_state"] == "UpToDate" for n in NODES), "every replica UpToDate", 30)


def _spec_valid(s: StorageLab, rd: str) -> None:
    """The views the gates read, as they are now, against LINSTOR's OpenAPI spec (when ../shared is there)."""
    if not (REFERENCE / "linstor").exists():
        return
    validate(s.rest("v1/view/resources", params={"resources": rd}).json(), "ResourceWithVolumes", array=True)
    validate(s.rest(f"v1/resource-definitions/{rd}/resources").json(), "Resource", array=True)
    validate(s.rest("v1/nodes").json(), "Node", array=True)


def _view(s: StorageLab, rd: str) -> dict[str, dict]:
    return {r["node_name"]: r for r in s.rest("v1/view/resources", params={"resources": rd}).json()}


def _replica(s: StorageLab, rd: str, node: str) -> dict:
    return next(r for r in s.rest(f"v1/resource-definitions/{rd}/resources").json() if r["node_name"] == node)


def _volume(s: StorageLab, rd: str, node: str) -> dict:
    return _view(s, rd)[node]["volumes"][0]


def _reboot(s: StorageLab, node: str) -> None:
    """``talosctl reboot`` and wait until the node booted again (the reboot takes ~60 lab seconds)."""
    with s.lab.lock:
        n = s.lab.talos.nodes[node]
        boots = n.boot_count
        s.lab.talos.reboot(n, s.lab.clock.now())
    wait_for(lambda: n.boot_count > boots, f"{node} booted again", 30)


def _upgrade(s: StorageLab, node: str) -> None:
    """``talosctl upgrade`` to a factory installer with the same extensions (what 02 rolls out), until it booted."""
    schematic = "a" * 64
    with s.lab.lock:
        n = s.lab.talos.nodes[node]
        boots = n.boot_count
        s.lab.talos.upgrade(n, f"factory.talos.dev/metal-installer/{schematic}:{n.talos_version}", s.lab.clock.now(),
                            schematic_lookup=lambda _id: list(n.extensions))
    wait_for(lambda: n.boot_count > boots, f"{node} booted the upgraded system", 30)


def _sync(s: StorageLab, rd: str, node: str) -> dict | None:
    with s.lab.lock:
        sync = s.lab.linstor.rds[rd].replicas[node].sync
        return dict(sync) if sync else None


def _resync_rate_mib_s(s: StorageLab, rd: str, node: str) -> float:
    """Resync progress per lab second between two ticks (lab time, whatever the machine's load)."""
    with s.lab.lock:  # the ticker waits: only these two ticks move the resync
        s.lab.tick()
        first, t0 = s.lab.linstor.rds[rd].replicas[node].sync["done_kib"], s.lab.drbd.last  # the tick's lab time
        while s.lab.clock.now() < t0 + 10:
            time.sleep(0.001)
        s.lab.tick()
        sync, t1 = s.lab.linstor.rds[rd].replicas[node].sync, s.lab.drbd.last
        assert sync is not None and sync["done_kib"] < sync["total_kib"], "the resync ended within the measurement"
        return (sync["done_kib"] - first) / MIB / (t1 - t0)


def test_a_returning_replica_resyncs_what_it_missed_at_the_link_rate(in_use, options) -> None:
    s, rd = in_use
    # 4 GiB volume written at 256 MiB/s: while the node is away every block changes (bounded by the volume size)
    options(workload_write_mib_s=256.0, drbd_resync_mib_s=0.5)
    s.lab.faults.add("node-down", AWAY)  # power lost until the fault is removed
    away = wait_for(lambda: (v := _view(s, rd))[AWAY].get("volumes") and "state" not in v[AWAY]["volumes"][0] and v,
                    "satellite offline: no state for its volume")
    writer = away["lab-cp-1"]["layer_object"]["drbd"]["connections"]
    assert writer[AWAY] == {"connected": False, "message": "Connecting"} and writer["lab-cp-2"]["connected"]
    assert {n["name"]: n["connection_status"] for n in s.rest("v1/nodes").json()}[AWAY] == "OFFLINE"
    assert _volume(s, rd, "lab-cp-1")["state"]["replication_states"][AWAY] == {"replication_state": "Off"}
    _spec_valid(s, rd)
    gone_at = s.lab.clock.now()
    wait_for(lambda: s.lab.clock.now() > gone_at + 20, "20 lab seconds away")
    with s.lab.lock:
        s.lab.faults.clear()
    sync = wait_for(lambda: _sync(s, rd, AWAY), f"{AWAY} resyncing", 30)
    assert sync["total_kib"] == 4096 * MIB  # every block of the 4 GiB volume changed while it was away
    seen = wait_for(lambda: (v := _volume(s, rd, AWAY)).get("state", {}).get("disk_state") == "Inconsistent" and v, "Inconsistent")
    target = seen["state"]["replication_states"][sync["source"]]
    assert target["replication_state"] == "SyncTarget" and 0 <= target["done_percentage"] < 100
    source = _volume(s, rd, sync["source"])["state"]
    assert source["disk_state"] == "UpToDate" and source["replication_states"][AWAY]["replication_state"] == "SyncSource"
    assert _replica(s, rd, AWAY)["layer_object"]["drbd"]["connections"][sync["source"]] == {"connected": True, "message": "Connected"}
    assert {n["name"]: n["connection_status"] for n in s.rest("v1/nodes").json()}[AWAY] == "ONLINE"
    _spec_valid(s, rd)
    assert _resync_rate_mib_s(s, rd, AWAY) == pytest.approx(0.5, rel=0.02)
    with s.lab.lock:  # speed the link up to 110 MiB/s; the rest still takes its modelled lab time
        s.lab.tick()
        switched, done = s.lab.drbd.last, s.lab.linstor.rds[rd].replicas[AWAY].sync["done_kib"]
        s.lab.options["drbd_resync_mib_s"] = 110.0
    wait_for(lambda: _volume(s, rd, AWAY)["state"]["disk_state"] == "UpToDate", "UpToDate", 30)
    assert s.lab.clock.now() >= switched + (sync["total_kib"] - done) / (110.0 * MIB)
    with s.lab.lock:
        assert s.lab.drbd.missed.get(f"{rd}|{AWAY}", 0) == 0
    states = _volume(s, rd, AWAY)["state"]["replication_states"]
    assert {p: st["replication_state"] for p, st in states.items()} == {"lab-cp-1": "Established", "lab-cp-2": "Established"}


def test_slow_resync_slows_only_its_nodes_replicas(in_use, options) -> None:
    s, rd = in_use
    options(workload_write_mib_s=256.0, drbd_resync_mib_s=2.0)
    s.lab.faults.add("slow-resync")  # no --node: every returning replica
    _reboot(s, AWAY)
    wait_for(lambda: _sync(s, rd, AWAY), f"{AWAY} resyncing", 30)
    everywhere = _resync_rate_mib_s(s, rd, AWAY)
    with s.lab.lock:
        s.lab.faults.clear()
        s.lab.faults.add("slow-resync", AWAY)
    on_its_node = _resync_rate_mib_s(s, rd, AWAY)
    with s.lab.lock:
        s.lab.faults.clear()
        s.lab.faults.add("slow-resync", "lab-cp-2")  # another node's replicas: lab-cp-3 resyncs at the link's rate
    elsewhere = _resync_rate_mib_s(s, rd, AWAY)
    assert elsewhere / everywhere == pytest.approx(2.0, rel=0.05)
    assert on_its_node == pytest.approx(everywhere, rel=0.05)


def test_an_idle_volume_comes_back_without_resync(in_use, options) -> None:
    s, rd = in_use
    options(workload_write_mib_s=0.0)  # nothing written while the node is away: same generation, no resync
    _reboot(s, AWAY)
    wait_for(lambda: _volume(s, rd, AWAY).get("state", {}).get("replication_states", {}).get("lab-cp-1", {})
             .get("replication_state") == "Established", "reconnected")
    assert _sync(s, rd, AWAY) is None and _volume(s, rd, AWAY)["state"]["disk_state"] == "UpToDate"


def test_diskless_after_upgrade_hits_the_upgrade_not_a_plain_reboot(in_use, options) -> None:
    s, rd = in_use
    options(workload_write_mib_s=8.0)
    s.lab.faults.add("diskless-after-upgrade", AWAY)
    _reboot(s, AWAY)  # a plain reboot: the disks attach
    wait_for(lambda: _volume(s, rd, AWAY).get("state", {}).get("disk_state") == "UpToDate", "UpToDate after reboot", 30)
    _upgrade(s, AWAY)
    vol = wait_for(lambda: (v := _volume(s, rd, AWAY)).get("state", {}).get("disk_state") == "Diskless" and v, "Diskless", 30)
    replica = _replica(s, rd, AWAY)
    assert "DISKLESS" not in replica.get("flags", []) and vol["provider_kind"] == "ZFS"  # LINSTOR still expects a disk
    assert "DISKLESS" not in replica["layer_object"]["drbd"]["flags"]
    assert all(c["connected"] for c in replica["layer_object"]["drbd"]["connections"].values())
    assert _volume(s, rd, "lab-cp-2")["state"]["disk_state"] == "UpToDate"
    _spec_valid(s, rd)
    _reboot(s, AWAY)  # the broken kernel is still installed
    wait_for(lambda: s.lab.talos.nodes[AWAY].kubelet_ready(s.lab.clock.now()), "back")
    assert wait_for(lambda: _volume(s, rd, AWAY).get("state", {}).get("disk_state"), "state") == "Diskless"
    with s.lab.lock:
        s.lab.faults.clear()  # the fixed release: the next boot attaches the disks and resyncs what they missed
    _reboot(s, AWAY)
    wait_for(lambda: _sync(s, rd, AWAY), "resync after re-attach", 30)
    wait_for(lambda: _volume(s, rd, AWAY).get("state", {}).get("disk_state") == "UpToDate", "UpToDate", 30)


def test_replication_down_cuts_only_the_drbd_links_between_two_nodes(in_use, options) -> None:
    s, rd = in_use
    options(workload_write_mib_s=8.0)
    s.lab.faults.add("replication-down", "lab-cp-1", AWAY)
    view = wait_for(lambda: (v := _view(s, rd))["lab-cp-1"]["layer_object"]["drbd"]["connections"][AWAY]["connected"] is False
                    and v, "the link down")
    conns = {n: r["layer_object"]["drbd"]["connections"] for n, r in view.items()}
    assert conns["lab-cp-1"][AWAY] == {"connected": False, "message": "Connecting"}
    assert conns[AWAY]["lab-cp-1"] == {"connected": False, "message": "Connecting"}
    assert conns["lab-cp-1"]["lab-cp-2"]["connected"] and conns[AWAY]["lab-cp-2"]["connected"]
    # lab-cp-3 still talks to lab-cp-2 but not to the Primary: DRBD outdates such a weakly connected node
    away = wait_for(lambda: (v := _volume(s, rd, AWAY))["state"]["disk_state"] == "Outdated" and v, "Outdated")
    assert away["state"]["replication_states"]["lab-cp-1"] == {"replication_state": "Off"}
    _spec_valid(s, rd)
    assert {n["name"]: n["connection_status"] for n in s.rest("v1/nodes").json()} == dict.fromkeys(NODES, "ONLINE")
    ready = {n.metadata.name: next(c.status for c in n.status.conditions if c.type == "Ready") for n in s.core.list_node().items}
    assert ready == dict.fromkeys(NODES, "True")  # Kubernetes and Talos keep working
    with s.lab.lock:
        s.lab.faults.clear()
    wait_for(lambda: _sync(s, rd, AWAY) or _volume(s, rd, AWAY)["state"]["disk_state"] == "UpToDate", "resync on reconnect")


def test_an_isolated_primary_freezes_and_leaves_its_peers_up_to_date_and_promotable(in_use, options) -> None:
    """The drill's ``isolate``: the Primary is cut off from every peer, the two Secondaries still talk.

    They are not weakly connected (no Primary reaches them through a peer; LINBIT/drbd drbd_state.c
    ``do_twopc_after_lost_peer`` outdates a node only for a Primary it reaches that way), so they keep
    UpToDate disks and quorum (2 of 3); the isolated Primary loses quorum and freezes its writes.
    """
    s, rd = in_use
    options(workload_write_mib_s=8.0)
    with s.lab.lock:  # only DRBD's ticks run meanwhile: no controller reacts to the cut
        for peer in ("lab-cp-2", "lab-cp-3"):
            s.lab.faults.add("partition", "lab-cp-1", peer)
        drbd.tick(s.lab, s.lab.clock.now())
        drbd.tick(s.lab, s.lab.clock.now())
        ctl, res = s.lab.linstor, s.lab.linstor.rds[rd]
        states = {n: (r.role, r.disk_state) for n, r in res.replicas.items()}
        assert states == {"lab-cp-1": ("Primary", "UpToDate"), "lab-cp-2": ("Secondary", "UpToDate"),
                          "lab-cp-3": ("Secondary", "UpToDate")}
        assert not ctl.has_quorum(res, "lab-cp-1") and ctl.has_quorum(res, "lab-cp-2")
        assert drbd.append(s.lab, rd, "lab-cp-1", "/data/probe.log", "frozen") == "blocked"  # on-no-quorum suspend-io
        assert ctl.may_promote(res, "lab-cp-2") and ctl.may_promote(res, "lab-cp-3")
        # the contrast: one link cut, the Primary still reaches lab-cp-3 through lab-cp-2
        s.lab.faults.clear()
        s.lab.faults.add("replication-down", "lab-cp-1", "lab-cp-3")
        drbd.tick(s.lab, s.lab.clock.now())
        assert res.replicas["lab-cp-3"].disk_state == "Outdated" and not ctl.may_promote(res, "lab-cp-3")
        s.lab.faults.clear()


# ----------------------------------------------------------------------------- talosctl etcd snapshot


SNAP_NODES = [{"name": "cp-1", "address": "10.5.0.2", "role": "controlplane"},
              {"name": "cp-2", "address": "10.5.0.3", "role": "controlplane"},
              {"name": "cp-3", "address": "10.5.0.4", "role": "controlplane"},
              {"name": "w-1", "address": "10.5.0.5", "role": "worker"}]


@pytest.fixture(scope="module")
def talos_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path, Any]]:
    lab, server, cfg = serve_lab(SNAP_NODES, tmp_path_factory.mktemp("etcd"))
    with lab.lock:
        secrets = lab.kube.resolve("", "v1", "secrets")
        lab.kube.create(secrets, "default", {"metadata": {"name": "db-password"}, "data": {"password": "aHVudGVyMg=="}})
    yield lab, cfg, server
    server.stop()
    server.server_close()


def _talosctl(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runbook_lib.lab.talos.talosctl", "--talosconfig", str(cfg), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_etcd_snapshot_writes_the_cluster_state_like_talosctl(talos_lab, tmp_path: Path) -> None:
    lab, cfg, _server = talos_lab
    path = tmp_path / "etcd.snapshot"
    res = _talosctl(cfg, "-n", "10.5.0.2", "etcd", "snapshot", str(path))
    assert res.returncode == 0, res.stderr
    data = path.read_bytes()
    saved, info = res.stdout.splitlines()
    assert saved == f'etcd snapshot saved to "{path}" ({len(data)} bytes)'  # talosctl cmd/talos/etcd.go
    assert len(data) % 512 == 32 and hashlib.sha256(data[:-32]).digest() == data[-32:]  # etcd's sha256 trailer
    assert (path.stat().st_mode & 0o777) == 0o600 and not (tmp_path / "etcd.snapshot.part").exists()
    st = etcd_snapshot.status(data)
    assert info == (f"snapshot info: hash {st['hash']:08x}, revision {st['revision']}, total keys {st['total_keys']}, "
                    f"total size {st['total_size']}")
    with lab.lock:
        assert st["total_keys"] == len(lab.kube.objects) and st["revision"] <= lab.kube.rv
    assert b"/registry/secrets/default/db-password" in data and b"aHVudGVyMg==" in data  # every Secret: keep it safe
    with pytest.raises(ValueError, match="sha256 checksum not found"):
        etcd_snapshot.status(data[:-1])


def test_etcd_snapshot_fails_the_talos_way(talos_lab, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lab, cfg, _server = talos_lab
    path = tmp_path / "snap.db"

    def snapshot(node: str, target: Path = path) -> str:  # the shim's main, in this process (no interpreter start-up)
        code = talosctl_main(["--talosconfig", str(cfg), "-n", node, "etcd", "snapshot", str(target)])
        err = capsys.readouterr().err
        assert code == 1, err
        return err

    assert ("error reading: rpc error: code = Unimplemented desc = etcd snapshot is only available on control plane "
            "nodes") in snapshot("10.5.0.5")
    assert 'command "etcd snapshot" is not supported with multiple nodes' in snapshot("10.5.0.2,10.5.0.3")
    assert f"error creating temporary file: open {tmp_path}/missing/snap.db.part" in snapshot("10.5.0.2",
                                                                                               tmp_path / "missing" / "snap.db")
    with lab.lock:
        lab.faults.add("talosctl-fail", "cp-2", count=1)
        cp3 = lab.talos.nodes["cp-3"]
        cp3.etcd_data = False  # its member's data directory is gone: etcd does not run
    try:
        assert "error reading file: rpc error: code = Unavailable" in snapshot("10.5.0.3")
        assert "failed to create etcd client: etcd service is not running" in snapshot("10.5.0.4")
        with lab.lock:
            lab.faults.add("node-down", "cp-2")
        wait_for(lambda: not lab.talos.nodes["cp-2"].is_up(lab.clock.now()), "cp-2 down")
        assert "error reading file: rpc error: code = Unavailable" in snapshot("10.5.0.3")
    finally:
        with lab.lock:
            lab.faults.clear()
            cp3.etcd_data = True
    assert not list(tmp_path.iterdir())  # no snapshot, no .part left behind


def test_a_running_lab_takes_the_live_options_of_new_parameters(talos_lab, tmp_path: Path) -> None:
    lab, _cfg, server = talos_lab
    (tmp_path / "server.json").write_text(json.dumps({"pid": os.getpid(), "url": server.url}))
    options = {"nodes": SNAP_NODES, "enforce_safety": True, "workload_write_mib_s": 3.0}
    control.ensure(options, tmp_path)
    with lab.lock:
        assert (lab.options["enforce_safety"], lab.options["workload_write_mib_s"]) == (True, 3.0)
    assert control.status(tmp_path)["options"] == {"enforce_safety": True, "workload_write_mib_s": 3.0}
    resp = httpx.patch(f"{server.url}/lab/v1/options", json={"time_scale": 1.0})
    assert resp.status_code == 400 and "runbook lab reset -f <params>" in resp.json()["error"]
