"""CSI snapshots: the snapshot-controller and linstor-csi's snapshotter (the chart: :mod:`.snapshot_chart`).

What is modelled (external-snapshotter v8 split controller + csi-snapshotter sidecar, linstor-csi):

- The chart ``snapshot-controller`` of the Piraeus chart repository (OCI
  ``oci://ghcr.io/piraeusdatastore/helm-charts/snapshot-controller``), rendered with the three
  ``snapshot.storage.k8s.io`` CRDs (only ``v1`` served) and the controller Deployment. Until it
  is installed the API has no ``snapshot.storage.k8s.io`` group: creating a VolumeSnapshot is a
  404, which is what a runbook must detect first.
- snapshot-controller (once its pod is Ready): a VolumeSnapshot whose source PVC is Bound gets a
  VolumeSnapshotContent ``snapcontent-<VolumeSnapshot uid>`` and the bound-protection finalizers;
  a missing class or an unbound claim is reported in ``status.error`` and retried.
- csi-snapshotter in the linstor-csi controller pod: CreateSnapshot takes LINSTOR snapshot
  ``snapshot-<VolumeSnapshot uid>`` of the PV's resource definition; LINSTOR refuses pools that
  cannot snapshot (thick LVM), and the refusal lands in both objects' ``status.error``. On
  success: ``snapshotHandle``, ``creationTime`` (ns), ``restoreSize`` (bytes) and
  ``readyToUse``; the VolumeSnapshot mirrors them (``restoreSize`` as a quantity).
- Deleting a VolumeSnapshot: with ``deletionPolicy: Delete`` the content and the LINSTOR
  snapshot go too; with ``Retain`` both stay (the content keeps the handle).
- A thick ZFS volume's snapshot pins the data written so far (the zvol's refreservation must
  stay guaranteed), so the pool's free space drops by that much; thin pools pin nothing at first.
- Restore (linstor-csi CreateVolume with a VolumeSnapshot ``dataSource``): the snapshot must be
  ready and no larger than the claim; the new volume starts with the snapshot's content.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..cluster import Lab
from ..kubernetes import objects as ko
from ..kubernetes.objects import rtype
from ..kubernetes.store import now_iso
from ..linstor.return_codes import FAIL_UNKNOWN_ERROR, MASK_ERROR, LinstorError, api_rc, ret_code
from ..workloads.volume_data import copy_volume_data, snapshot_key
from .facts import DRIVER, csi_controller_pod
from .snapshot_chart import GROUP

VS_FINALIZERS = ["snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection",
                 "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"]
CONTENT_FINALIZER = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
DEFAULT_CLASS = "snapshot.storage.kubernetes.io/is-default-class"


def _served(lab: Lab) -> bool:
    return rtype(lab, GROUP, "v1", "volumesnapshots") is not None and \
        rtype(lab, GROUP, "v1", "volumesnapshotcontents") is not None


def _controller_ready(lab: Lab) -> bool:
    for dep in ko.objects(lab, "apps", "deployments"):
        image = ((dep["spec"].get("template") or {}).get("spec") or {}).get("containers", [{}])[0].get("image", "")
        if "/snapshot-controller:" in image and int((dep.get("status") or {}).get("readyReplicas") or 0) >= 1:
            return True
    return False


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quantity(n: int) -> str:
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n % size == 0 and n >= size:
            return f"{n // size}{unit}"
    return str(n)


def _error(lab: Lab, obj: dict, message: str) -> None:
    status = dict(obj.get("status") or {})
    if (status.get("error") or {}).get("message") == message:
        return
    status.update({"readyToUse": False, "error": {"message": message, "time": now_iso()}})
    ko.set_status(lab, obj, status)


def _class(lab: Lab, vs: dict) -> dict | None:
    name = vs["spec"].get("volumeSnapshotClassName")
    classes = ko.objects(lab, GROUP, "volumesnapshotclasses")
    if name:
        return next((c for c in classes if c["metadata"]["name"] == name), None)
    defaults = [c for c in classes if (c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"]
    return defaults[0] if len(defaults) == 1 else None


def reconcile(lab: Lab, now: float) -> None:
    """snapshot-controller and csi-snapshotter, one pass (while the snapshot CRDs are served)."""
    if _served(lab):
        _reconcile(lab)


def _forget_data(lab: Lab) -> None:
    """Content of volumes and snapshots LINSTOR no longer has goes with them."""
    ctl, data = lab.linstor, lab.workloads.state.volume_data
    for key in list(data):
        rd, _, snap = key.removeprefix("snapshot:").partition("/")
        gone = snap not in ctl.snapshots.get(rd, {}) if key.startswith("snapshot:") else key not in ctl.rds
        if gone:
            del data[key]


def _reconcile(lab: Lab) -> None:
    _forget_data(lab)
    if _controller_ready(lab):
        for vs in ko.objects(lab, GROUP, "volumesnapshots"):
            _reconcile_snapshot(lab, vs)
    if csi_controller_pod(lab) is not None:
        for vsc in ko.objects(lab, GROUP, "volumesnapshotcontents"):
            _reconcile_content(lab, vsc)
    if _controller_ready(lab):
        for vs in ko.objects(lab, GROUP, "volumesnapshots"):
            _mirror_status(lab, vs)


def _content_name(vs: dict) -> str:
    return f"snapcontent-{vs['metadata']['uid']}"


def _reconcile_snapshot(lab: Lab, vs: dict) -> None:
    meta = vs["metadata"]
    ns = meta["namespace"]
    vsc = ko.get(lab, GROUP, "volumesnapshotcontents", None, _content_name(vs))
    if meta.get("deletionTimestamp"):
        if vsc is not None and vsc["spec"].get("deletionPolicy") == "Delete":
            if not vsc["metadata"].get("deletionTimestamp"):
                ko.delete(lab, vsc)
            return  # csi-snapshotter deletes the LINSTOR snapshot, then the content goes
        ko.update(lab, vs, lambda o: o["metadata"].__setitem__(
            "finalizers", [f for f in o["metadata"].get("finalizers") or [] if f not in VS_FINALIZERS]))
        return
    if vsc is not None:
        return
    source = vs["spec"].get("source") or {}
    claim_name = source.get("persistentVolumeClaimName")
    if not claim_name:
        return  # pre-provisioned content: not modelled
    cls = _class(lab, vs)
    if cls is None:
        name = vs["spec"].get("volumeSnapshotClassName")
        _error(lab, vs, f'Failed to get snapshot class with error volumesnapshotclass.snapshot.storage.k8s.io "{name}" not found'
               if name else "Failed to set default snapshot class with error cannot find default snapshot class")
        return
    pvc = ko.get(lab, "", "persistentvolumeclaims", ns, claim_name)
    if pvc is None:
        _error(lab, vs, f'Failed to create snapshot content with error snapshot controller failed to update {ns}/{meta["name"]} '
               f'on API server: cannot get claim from snapshot: persistentvolumeclaim "{claim_name}" not found')
        return
    pv_name = (pvc.get("spec") or {}).get("volumeName")
    if (pvc.get("status") or {}).get("phase") != "Bound" or not pv_name:
        _error(lab, vs, f"the PVC {claim_name} is not yet bound to a PV, will not attempt to take a snapshot")
        return
    pv = ko.get(lab, "", "persistentvolumes", None, pv_name) or {}
    handle = ((pv.get("spec") or {}).get("csi") or {}).get("volumeHandle", pv_name)
    if cls.get("driver") != ((pv.get("spec") or {}).get("csi") or {}).get("driver"):
        _error(lab, vs, f"Failed to create snapshot content with error snapshot controller failed to update {ns}/{meta['name']} "
               f"on API server: the driver of VolumeSnapshotClass {cls['metadata']['name']} does not match the PV's driver")
        return
    ko.update(lab, vs, lambda o: o["metadata"].__setitem__(
        "finalizers", list(dict.fromkeys((o["metadata"].get("finalizers") or []) + VS_FINALIZERS))))
    ko.apply(lab, GROUP, "v1", "volumesnapshotcontents", {
        "apiVersion": f"{GROUP}/v1", "kind": "VolumeSnapshotContent",
        "metadata": {"name": _content_name(vs), "finalizers": [CONTENT_FINALIZER]},
        "spec": {"deletionPolicy": cls.get("deletionPolicy", "Delete"), "driver": cls["driver"],
                 "source": {"volumeHandle": handle}, "sourceVolumeMode": pv["spec"].get("volumeMode", "Filesystem"),
                 "volumeSnapshotClassName": cls["metadata"]["name"],
                 "volumeSnapshotRef": {"apiVersion": f"{GROUP}/v1", "kind": "VolumeSnapshot", "name": meta["name"],
                                       "namespace": ns, "uid": meta["uid"], "resourceVersion": meta["resourceVersion"]}}})


def _snapshot_name(vsc: dict) -> str:
    return "snapshot-" + vsc["metadata"]["name"].removeprefix("snapcontent-")


def _reconcile_content(lab: Lab, vsc: dict) -> None:
    spec = vsc["spec"]
    if spec.get("driver") != DRIVER:
        return
    ctl = lab.linstor
    rd_name = (spec.get("source") or {}).get("volumeHandle")
    snap_name = _snapshot_name(vsc)
    if vsc["metadata"].get("deletionTimestamp") or (spec.get("deletionPolicy") == "Delete" and _orphaned(lab, vsc)):
        if rd_name in ctl.snapshots and snap_name in ctl.snapshots[rd_name]:
            ctl.delete_snapshot(rd_name, snap_name)
        lab.workloads.state.volume_data.pop(snapshot_key(rd_name, snap_name), None)
        ko.update(lab, vsc, lambda o: o["metadata"].__setitem__("finalizers", []))
        if not vsc["metadata"].get("deletionTimestamp"):
            ko.delete(lab, vsc)
        return
    if (vsc.get("status") or {}).get("snapshotHandle") or not rd_name:
        return
    try:
        if rd_name not in ctl.rds:
            raise LinstorError([api_rc(ret_code(FAIL_UNKNOWN_ERROR, MASK_ERROR), f"Resource definition '{rd_name}' not found.")], 404)
        if snap_name not in ctl.snapshots.get(rd_name, {}):
            ctl.create_snapshot(rd_name, snap_name)
    except LinstorError as exc:
        text = "; ".join(rc["message"] + (f" {rc['cause']}" if rc.get("cause") else "") for rc in exc.rcs)
        msg = f"Failed to check and update snapshot content: failed to take snapshot of the volume {rd_name}: " \
              f"\"rpc error: code = Internal desc = failed to create snapshot: {text}\""
        _error(lab, vsc, msg)
        return
    snap = ctl.snapshots[rd_name][snap_name]
    rd = ctl.rds[rd_name]
    for node in snap.nodes:  # a thick ZFS zvol's snapshot pins what was written (refreservation)
        pool = ctl.pools[node][rd.replicas[node].pool]
        snap.held_kib[node] = 0 if pool.traits.thin else rd.replicas[node].written_kib
    copy_volume_data(lab, rd_name, snapshot_key(rd_name, snap_name))
    size = snap.sizes_kib[0] * 1024 if snap.sizes_kib else 0
    ko.set_status(lab, vsc, {"creationTime": snap.create_ms * 1_000_000, "readyToUse": True, "restoreSize": size,
                             "snapshotHandle": snap_name})


def _orphaned(lab: Lab, vsc: dict) -> bool:
    ref = vsc["spec"].get("volumeSnapshotRef") or {}
    vs = ko.get(lab, GROUP, "volumesnapshots", ref.get("namespace"), ref.get("name", ""))
    return vs is None or vs["metadata"].get("uid") != ref.get("uid")


def _mirror_status(lab: Lab, vs: dict) -> None:
    if vs["metadata"].get("deletionTimestamp"):
        return
    vsc = ko.get(lab, GROUP, "volumesnapshotcontents", None, _content_name(vs))
    if vsc is None:
        return
    cst = vsc.get("status") or {}
    status: dict[str, Any] = {"boundVolumeSnapshotContentName": vsc["metadata"]["name"], "readyToUse": bool(cst.get("readyToUse"))}
    if cst.get("creationTime"):
        status["creationTime"] = _stamp(int(cst["creationTime"]) // 1_000_000)
    if cst.get("restoreSize") is not None:
        status["restoreSize"] = _quantity(int(cst["restoreSize"]))
    if cst.get("error"):
        status["error"] = cst["error"]
    ko.set_status(lab, vs, status)


def restore_source(lab: Lab, pvc: dict, size_bytes: int) -> tuple[str, str] | None:
    """(resource, LINSTOR snapshot) a claim restores from, or None; ValueError when it cannot be used yet."""
    src = (pvc.get("spec") or {}).get("dataSourceRef") or (pvc.get("spec") or {}).get("dataSource") or {}
    if src.get("kind") != "VolumeSnapshot" or src.get("apiGroup") != GROUP:
        return None
    ns = pvc["metadata"]["namespace"]
    vs = ko.get(lab, GROUP, "volumesnapshots", ns, src.get("name", "")) if _served(lab) else None
    if vs is None:
        raise ValueError(f'error getting handle for DataSource Type VolumeSnapshot by Name {src.get("name")}: error getting '
                         f'snapshot {src.get("name")} from api server: volumesnapshots.snapshot.storage.k8s.io '
                         f'"{src.get("name")}" not found')
    status = vs.get("status") or {}
    vsc = ko.get(lab, GROUP, "volumesnapshotcontents", None, status.get("boundVolumeSnapshotContentName") or "")
    if not status.get("readyToUse") or vsc is None:
        raise ValueError(f"error getting handle for DataSource Type VolumeSnapshot by Name {src['name']}: "
                         f"snapshot {src['name']} is not Ready")
    restore = int((vsc.get("status") or {}).get("restoreSize") or 0)
    if size_bytes < restore:
        raise ValueError(f"requested volume size {size_bytes} is less than the size {restore} for the source snapshot {src['name']}")
    return vsc["spec"]["source"]["volumeHandle"], vsc["status"]["snapshotHandle"]


def restored(lab: Lab, source: tuple[str, str], rd_name: str) -> None:
    """The new volume's content is the snapshot's."""
    rd, snap = source
    copy_volume_data(lab, snapshot_key(rd, snap), rd_name)
