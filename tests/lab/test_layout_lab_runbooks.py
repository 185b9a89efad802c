"""01 and 03's steps on an in-process lab with a compute-only worker: the storage nodes get a RawVolumeConfig by
``talosctl patch machineconfig`` (the record holds only the added documents), a re-run patches and resets nothing,
LINSTOR's pools are created on ``/dev/disk/by-partlabel/r-linstor-storage`` without a wipe, and the worker
(``storage: false``) is never read, patched, reset or given a satellite or a pool.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from runbook_lib.lab import control
from runbook_lib.lab import server as lab_server
from runbook_lib.lab.assembly import create_lab
from runbook_lib.params import parse_params
from runbook_lib.record import RECORD_ENV
from runbook_lib.session import RUN_ID_ENV, Session
from runbook_lib.steps import nb01_partition as partition
from runbook_lib.steps import nb03_piraeus_install as piraeus
from tests.storage_lab import (
    StorageLab,
    _write_connection_files,
    install_operator,
    prepare_node,
    stop_lab,
    wait_for,
)

STORAGE_NODES = ("lab-cp-1", "lab-cp-2", "lab-cp-3")
WORKER = {"name": "lab-w-9", "address": "10.5.0.5", "role": "worker", "storage": False}
NODES = [*({**n, "storage": True} for n in control.default_options()["nodes"]), WORKER]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageLab]:
    import httpx
    from kubernetes import config as k8s_config

    d = tmp_path_factory.mktemp("layout") / "lab"
    d.mkdir(parents=True)
    srv_lab = create_lab({**control.default_options(), "nodes": NODES, "time_scale": 2000.0})
    srv = lab_server.LabHTTPServer(srv_lab, None)
    _write_connection_files(d, srv.url, srv_lab)
    srv.start_background()
    api = k8s_config.new_client_from_config(str(d / "kubeconfig"))
    http = httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {srv_lab.token}"}, timeout=10)
    s = StorageLab(srv_lab, srv, d, api, http)
    env = pytest.MonkeyPatch()
    env.setenv(RUN_ID_ENV, "test-layout")
    env.setenv(RECORD_ENV, str(d / "record.json"))
    try:
        yield s
    finally:
        env.undo()
        stop_lab(s)


def session(s: StorageLab, notebook: str, tmp: Path) -> Session:
    connection = s.connection
    data = {"backup_dir": str(tmp / "etcd-backups"), "node_timeout": 120, "nodes": NODES,
            "lab": {"time_scale": 2000.0}}
    return Session.open(notebook, parse_params(data), connection)


def run_01(rb: Session) -> list[partition.NodeLayout]:
    layouts = partition.observe_all(rb)
    partition.apply_all(rb, partition.plan_all(rb, layouts), layouts, timeout=rb.params.node_timeout)
    return partition.verify_all(rb)


def test_01_then_03_on_raw_volumes_and_a_rerun_changes_nothing(lab: StorageLab, tmp_path: Path) -> None:
    worker_config = copy.deepcopy(lab.lab.talos.nodes["lab-w-9"].config)
    rb = session(lab, "01-partition", tmp_path)
    after = run_01(rb)
    assert not [c for c in rb.record.checks if not c.ok]
    assert [lay.node for lay in after] == list(STORAGE_NODES)
    assert {lay.storage.label: lay.storage.status["phase"] for lay in after} == {"r-linstor-storage": "ready"}
    applied = [a for a in rb.record.actions if a.outcome == "applied"]
    assert sorted({a.target for a in applied}) == list(STORAGE_NODES)
    patches = [a for a in applied if a.step.startswith("patch machineconfig")]
    assert len(patches) == 3 and all(a.command[-4:-2] == ["--patch", "@<manifest>"] for a in patches)
    for a in patches:  # the record keeps only what was added: no machine section, no key, no certificate
        assert [(d["kind"], d["name"]) for d in yaml.safe_load_all(a.manifest)] == [
            ("VolumeConfig", "EPHEMERAL"), ("RawVolumeConfig", "linstor-storage")]
    assert lab.lab.talos.nodes["lab-w-9"].config == worker_config

    # a re-run after a reboot: nothing to patch, nothing to reset
    node = lab.lab.talos.nodes["lab-cp-2"]
    with lab.lab.lock:
        lab.lab.talos.reboot(node, lab.lab.clock.now())
    wait_for(lambda: node.volumes.get("r-linstor-storage", {}).get("phase") == "ready"
             and node.kubelet_ready(lab.lab.clock.now()), "lab-cp-2 back", timeout=60)
    rb = session(lab, "01-partition", tmp_path)
    run_01(rb)
    assert not [c for c in rb.record.checks if not c.ok]
    assert [a.step for a in rb.record.actions if a.outcome != "unchanged"] == []

    # 03's pool step: modules as 02 leaves them, then the pools on the by-partlabel path, no wipe pod
    for name in STORAGE_NODES:
        prepare_node(lab, name, volume=False)
    install_operator(lab)
    rb = session(lab, "03-piraeus-install", tmp_path)
    parts = piraeus.find_partitions(rb)
    assert [(p.node, p.kind, p.needs_wipe) for p in parts] == [(n, "raw", False) for n in STORAGE_NODES]
    piraeus.wipe_partitions(rb, parts)
    docs = piraeus.cluster_manifests(rb, parts)
    pools = [d for d in docs if d["metadata"]["name"].startswith("storage-")]
    assert [p["spec"]["storagePools"][0]["source"]["hostDevices"] for p in pools] == \
        [["/dev/disk/by-partlabel/r-linstor-storage"]] * 3
    piraeus.apply_cluster(rb, docs)
    wait_for(lambda: all(lab.lab.linstor.pools.get(n, {}).get("linstor-pool") for n in STORAGE_NODES),
             "a pool on every storage node", timeout=60)
    assert "lab-w-9" not in lab.lab.linstor.pools or not lab.lab.linstor.pools["lab-w-9"].get("linstor-pool")
    wait_for(lambda: all(p.signature == "zfs_member" for p in piraeus.find_partitions(rb)), "the pool's signature")
    piraeus.verify_partitions(rb, piraeus.find_partitions(rb))
    assert not [c for c in rb.record.checks if not c.ok]
    assert not [a for a in rb.record.actions if "wipe" in a.step]
    assert not [p for p in lab.core.list_namespaced_pod("piraeus-datastore").items if p.spec.node_name == "lab-w-9"]
