"""CSI snapshots in the lab (05): controller chart, VolumeSnapshot -> LINSTOR snapshot, restore with checksums,
pools that cannot snapshot, and 05's manifests against the external-snapshotter CRD schemas."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import yaml
from kubernetes import client as k8s

from runbook_lib.errors import PreconditionFailed
from runbook_lib.params import parse_params
from runbook_lib.steps import nb05_snapshots as snap
from tests.reference import reference_path
from tests.storage_lab import StorageLab, helm_inproc, wait_for

GROUP, V = "snapshot.storage.k8s.io", "v1"
P = "linstor.csi.linbit.com/"


def _sc(name: str, pool: str) -> dict:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
            "provisioner": "linstor.csi.linbit.com", "volumeBindingMode": "Immediate", "reclaimPolicy": "Delete",
            "parameters": {f"{P}storagePool": pool, f"{P}placementCount": "2", f"{P}layerList": "drbd storage"}}


def _create(s: StorageLab, obj: dict) -> None:
    ns = obj["metadata"].get("namespace")
    if obj["kind"] in ("VolumeSnapshot", "VolumeSnapshotClass"):
        plural = obj["kind"].lower() + ("es" if obj["kind"].endswith("Class") else "s")
        if ns:
            s.crd.create_namespaced_custom_object(GROUP, V, ns, plural, obj)
        else:
            s.crd.create_cluster_custom_object(GROUP, V, plural, obj)
    elif obj["kind"] == "StorageClass":
        k8s.StorageV1Api(s.api).create_storage_class(obj)
    elif obj["kind"] == "PersistentVolumeClaim":
        s.core.create_namespaced_persistent_volume_claim(ns, obj)
    else:
        s.core.create_namespaced_pod(ns, obj)


def _finished(s: StorageLab, name: str) -> str:
    wait_for(lambda: s.core.read_namespaced_pod(name, "default").status.phase in ("Succeeded", "Failed"), f"{name} finished",
             timeout=30)
    return s.core.read_namespaced_pod_log(name, "default")


def _vs(s: StorageLab, name: str) -> dict:
    return s.crd.get_namespaced_custom_object(GROUP, V, "default", "volumesnapshots", name)


def _session(s: StorageLab, storage_class: str, **extra):
    params = parse_params({"snapshots": {"storage_class": storage_class, **extra}})
    return SimpleNamespace(params=params, kube=lambda: s.api)


@pytest.fixture(scope="module")
def snaplab(ready_lab: StorageLab) -> StorageLab:
    s = ready_lab
    with pytest.raises(k8s.ApiException) as missing:  # before the chart: no such API
        s.crd.list_namespaced_custom_object(GROUP, V, "default", "volumesnapshots")
    assert missing.value.status == 404
    # 05's preflight names what is missing and how to install it when it may not install it itself
    session = _session(s, "replicated", install_controller=False)
    with pytest.raises(PreconditionFailed, match=r"missing: CRD VolumeSnapshot.*snapshot-controller.*helm upgrade --install"):
        snap.preflight(session)
    code, _out, err = helm_inproc(s, "upgrade", "--install", "--namespace", "kube-system", "snapshot-controller",
                                  "oci://ghcr.io/piraeusdatastore/helm-charts/snapshot-controller",
                                  "--version", "5.2.0", "--wait")
    assert code == 0, err
    _create(s, snap.snapshot_class("lab-snaps", "Delete"))
    _create(s, _sc("snap-zfs", "linstor-pool"))
    return s


def test_snapshot_restore_round_trip_keeps_the_checksums(snaplab: StorageLab) -> None:
    s = snaplab
    _create(s, snap.claim("rt-src", "default", "snap-zfs", "1Gi"))
    _create(s, snap.pod("rt-writer", "default", "rt-src", "busybox", snap.script("marker-1", 8)))
    written = snap.parse_sha256(_finished(s, "rt-writer"))
    assert sorted(written) == sorted(snap.FILES)
    _create(s, snap.volume_snapshot("rt-snap", "default", "rt-src", "lab-snaps"))
    ready = wait_for(lambda: (_vs(s, "rt-snap").get("status") or {}).get("readyToUse") and _vs(s, "rt-snap"), "readyToUse",
                     timeout=20)
    st = ready["status"]
    assert st["restoreSize"] == "1Gi" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", st["creationTime"])
    content = s.crd.get_cluster_custom_object(GROUP, V, "volumesnapshotcontents", st["boundVolumeSnapshotContentName"])
    assert content["status"]["readyToUse"] is True and content["spec"]["driver"] == "linstor.csi.linbit.com"
    linstor = s.rest("v1/view/snapshots").json()
    ours = [x for x in linstor if x["name"] == content["status"]["snapshotHandle"]]
    assert ours and "SUCCESSFUL" in ours[0]["flags"] and len(ours[0]["nodes"]) == 2
    # data written after the snapshot must not reach the restored volume
    _create(s, snap.pod("rt-overwrite", "default", "rt-src", "busybox", "dd if=/dev/zero of=/data/blob bs=1M count=8"))
    _finished(s, "rt-overwrite")
    _create(s, snap.claim("rt-restored", "default", "snap-zfs", "1Gi", snapshot="rt-snap"))
    _create(s, snap.pod("rt-reader", "default", "rt-restored", "busybox", snap.script(None, 8)))
    assert snap.parse_sha256(_finished(s, "rt-reader")) == written
    # an empty volume of the same class hashes differently (no files at all)
    _create(s, snap.claim("rt-empty", "default", "snap-zfs", "1Gi"))
    _create(s, snap.pod("rt-empty-reader", "default", "rt-empty", "busybox", snap.script(None, 8)))
    log = _finished(s, "rt-empty-reader")
    assert "No such file or directory" in log and snap.parse_sha256(log) != written
    # deletionPolicy Delete: the LINSTOR snapshot goes with the VolumeSnapshot
    s.crd.delete_namespaced_custom_object(GROUP, V, "default", "volumesnapshots", "rt-snap")
    wait_for(lambda: not [x for x in s.rest("v1/view/snapshots").json() if x["name"] == content["status"]["snapshotHandle"]],
             "LINSTOR snapshot deleted", timeout=20)


def test_restore_too_small_or_from_a_missing_snapshot_stays_pending(snaplab: StorageLab) -> None:
    s = snaplab
    _create(s, snap.claim("rt-nosnap", "default", "snap-zfs", "1Gi", snapshot="does-not-exist"))
    wait_for(lambda: any("does-not-exist" in e.message for e in s.events("default", "ProvisioningFailed")),
             "ProvisioningFailed for a missing snapshot", timeout=20)
    assert s.core.read_namespaced_persistent_volume_claim("rt-nosnap", "default").status.phase == "Pending"


def test_thick_lvm_pool_cannot_snapshot(snaplab: StorageLab) -> None:
    s = snaplab
    with s.lab.lock:
        for node in ("lab-cp-1", "lab-cp-2"):
            s.lab.linstor.create_storage_pool(node, "thick", "LVM", {"StorDriver/LvmVg": "thick"}, backing_kib=50 * 2**20)
        s.lab.mark_dirty()
    _create(s, _sc("snap-thick", "thick"))
    # 05's library reads LINSTOR's pools and stops before creating anything
    with pytest.raises(PreconditionFailed, match=r"cannot snapshot.*LVM.*lvmPool"):
        snap.check_pool(_session(s, "snap-thick"))
    # and LINSTOR itself refuses, which the VolumeSnapshot reports
    _create(s, snap.claim("thick-src", "default", "snap-thick", "1Gi"))
    wait_for(lambda: s.core.read_namespaced_persistent_volume_claim("thick-src", "default").status.phase == "Bound", "Bound",
             timeout=20)
    _create(s, snap.volume_snapshot("thick-snap", "default", "thick-src", "lab-snaps"))
    err = wait_for(lambda: ((_vs(s, "thick-snap").get("status") or {}).get("error") or {}).get("message"), "snapshot error",
                   timeout=20)
    assert "does not support snapshots" in err and _vs(s, "thick-snap")["status"]["readyToUse"] is False
    # the zfs class passes the same check
    assert bool(snap.check_pool(_session(s, "snap-zfs"))["supports_snapshots"].all())


def _validate(doc: dict, crd_file: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    crd = yaml.safe_load(reference_path("crds", "snapshot", crd_file).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    assert version["served"] and doc["apiVersion"] == f"{crd['spec']['group']}/v1" and doc["kind"] == crd["spec"]["names"]["kind"]
    schema = version["schema"]["openAPIV3Schema"]
    jsonschema.validate({k: v for k, v in doc.items() if k != "metadata"}, _strip_k8s(schema))
    assert not (set(doc) - set(schema["properties"])), "fields the CRD does not know"


def _strip_k8s(schema):
    if isinstance(schema, dict):
        return {k: _strip_k8s(v) for k, v in schema.items() if not k.startswith("x-kubernetes")}
    if isinstance(schema, list):
        return [_strip_k8s(v) for v in schema]
    return schema


def test_rendered_manifests_validate_against_the_snapshot_crds() -> None:
    params = parse_params({})
    cls = snap.snapshot_class(params.snapshots.class_name, params.snapshots.deletion_policy)
    assert cls["metadata"]["labels"] == {"velero.io/csi-volumesnapshot-class": "true"}
    assert cls["driver"] == "linstor.csi.linbit.com" and cls["deletionPolicy"] == "Retain"
    _validate(cls, "snapshot.storage.k8s.io_volumesnapshotclasses.yaml")
    session = SimpleNamespace(params=params, storage_nodes=params.storage_nodes)
    objs = snap.TestObjects.render(session, "t")
    _validate(objs.snapshot, "snapshot.storage.k8s.io_volumesnapshots.yaml")
    assert objs.restored["spec"]["dataSource"] == {"name": objs.snapshot["metadata"]["name"], "kind": "VolumeSnapshot",
                                                   "apiGroup": "snapshot.storage.k8s.io"}
    # the CRD's CEL rule (not JSON Schema): exactly one of the two sources
    assert len(objs.snapshot["spec"]["source"]) == 1
