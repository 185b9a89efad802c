"""Notebook 05: CSI snapshots for LINSTOR, proven by a snapshot-and-restore round trip.

What a snapshot needs, and where each part comes from:

- the ``snapshot.storage.k8s.io`` CRDs and the snapshot-controller (external-snapshotter v8):
  neither Kubernetes nor Piraeus installs them. We use Piraeus's ``snapshot-controller`` chart
  (OCI ``ghcr.io/piraeusdatastore/helm-charts``; chart 5.2.0 = controller v8.6.0): one versioned
  Helm release installs the CRDs and the controller together and upgrades/uninstalls cleanly,
  where upstream's ``kubectl apply -k`` of two kustomizations leaves no release to audit;
- the ``csi-snapshotter`` sidecar: the Piraeus operator already runs it in the linstor-csi
  controller pod;
- a pool that can snapshot: LINSTOR refuses thick LVM (``lvmPool``); ZFS, LVM-thin and
  file-thin pools can (``supports_snapshots`` in ``/v1/view/storage-pools``);
- a ``VolumeSnapshotClass`` for ``linstor.csi.linbit.com``. We keep snapshots when their
  VolumeSnapshot is deleted (``deletionPolicy: Retain``) and label the class for Velero.

The round trip writes a marker and a larger file, syncs, hashes both; snapshots the volume;
restores it into a new claim (``dataSource`` VolumeSnapshot); hashes again in a reader pod and
compares. This is what kubestr's csicheck does, with checksums of real content instead of
"the pod started".
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field

import pandas as pd

from .. import kinds, kube, manifests
from ..csi import PROVISIONER
from ..errors import PreconditionFailed, RunbookError
from ..linstor import storage_pools_frame
from ..services.clients import helm as helm_client
from ..services.clients import linstor
from ..services.objects import apply, create, delete
from ..services.pods import wait_finished
from ..session import Session
from ..waiting import wait_until

GROUP = "snapshot.storage.k8s.io"
KINDS_NEEDED = ("VolumeSnapshot", "VolumeSnapshotClass", "VolumeSnapshotContent")
VELERO_LABEL = "velero.io/csi-volumesnapshot-class"
MOUNT = "/data"
FILES = (f"{MOUNT}/marker", f"{MOUNT}/blob")


def snapshot_class(name: str, deletion_policy: str = "Retain") -> dict:
    return {"apiVersion": f"{GROUP}/v1", "kind": "VolumeSnapshotClass",
            "metadata": {"name": name, "labels": {VELERO_LABEL: "true"}},
            "driver": PROVISIONER, "deletionPolicy": deletion_policy}


def volume_snapshot(name: str, namespace: str, claim: str, class_name: str) -> dict:
    return {"apiVersion": f"{GROUP}/v1", "kind": "VolumeSnapshot", "metadata": {"name": name, "namespace": namespace},
            "spec": {"volumeSnapshotClassName": class_name, "source": {"persistentVolumeClaimName": claim}}}


def claim(name: str, namespace: str, storage_class: str, size: str, snapshot: str | None = None) -> dict:
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace},
           "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                    "resources": {"requests": {"storage": size}}}}
    if snapshot:
        pvc["spec"]["dataSource"] = {"name": snapshot, "kind": "VolumeSnapshot", "apiGroup": GROUP}
    return pvc


def script(marker: str | None, mib: int) -> str:
    """The writer's script when ``marker`` is given, the reader's otherwise: both end by hashing the files."""
    steps = ["set -e"]
    if marker is not None:
        steps += [f"echo {marker} > {FILES[0]}", f"dd if=/dev/urandom of={FILES[1]} bs=1M count={mib} status=none", "sync"]
    return "; ".join(steps + [f"sha256sum {' '.join(FILES)}"])


def pod(name: str, namespace: str, claim_name: str, image: str, command: str, nodes: list[str] | None = None) -> dict:
    """A check pod on the claim; ``nodes``: it runs on one of them (the storage nodes)."""
    out = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
           "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "check", "image": image, "command": ["sh", "-c", command],
                                    "volumeMounts": [{"name": "data", "mountPath": MOUNT}]}],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}]}}
    if nodes:
        out["spec"]["affinity"] = manifests.on_nodes(nodes)
    return out


@dataclass
class TestObjects:
    """Everything the round trip creates, in creation order."""

    source: dict
    writer: dict
    snapshot: dict
    restored: dict
    reader: dict
    marker: str

    @classmethod
    def render(cls, session: Session, run: str | None = None) -> TestObjects:
        p = session.params.snapshots
        ns, base = p.namespace_test, "runbook-snap"
        marker = f"runbook-05-{run or uuid.uuid4().hex[:8]}"
        nodes = [n.name for n in session.storage_nodes]
        return cls(
            source=claim(f"{base}-source", ns, p.storage_class, p.test_size),
            writer=pod(f"{base}-writer", ns, f"{base}-source", p.image, script(marker, p.test_file_mib), nodes),
            snapshot=volume_snapshot(f"{base}-1", ns, f"{base}-source", p.class_name),
            restored=claim(f"{base}-restored", ns, p.storage_class, p.test_size, snapshot=f"{base}-1"),
            reader=pod(f"{base}-reader", ns, f"{base}-restored", p.image, script(None, p.test_file_mib), nodes),
            marker=marker,
        )

    def all(self) -> list[dict]:
        return [self.source, self.writer, self.snapshot, self.restored, self.reader]


@dataclass
class Prerequisites:
    kinds: list[str] = field(default_factory=list)  # snapshot kinds the API serves
    controllers: list[str] = field(default_factory=list)  # ready snapshot-controller Deployments (ns/name)
    snapshotter: bool = False  # csi-snapshotter sidecar in the linstor-csi controller

    @property
    def missing(self) -> list[str]:
        out = [f"CRD {k}" for k in KINDS_NEEDED if k not in self.kinds]
        if not self.controllers:
            out.append("snapshot-controller")
        if not self.snapshotter:
            out.append("csi-snapshotter sidecar in linstor-csi-controller")
        return out


def prerequisites(session: Session) -> Prerequisites:
    """What the cluster has: snapshot API kinds (discovery), a ready controller, the CSI sidecar."""
    api = session.kube()
    found = Prerequisites()
    try:
        found.kinds = sorted(r["kind"] for r in (kube.request(api, "GET", kinds.VOLUME_SNAPSHOT.group_version_path) or {}).get("resources", []) if "/" not in r["name"])
    except kube.ApiCallError as err:
        if err.status != 404:
            raise
    for dep in kube.list_objects(api, kinds.DEPLOYMENT.collection()):
        images = [c.get("image", "") for c in dep["spec"]["template"]["spec"].get("containers", [])]
        ready = int((dep.get("status") or {}).get("readyReplicas") or 0) >= 1
        if any("/snapshot-controller:" in i for i in images) and ready:
            found.controllers.append(f"{dep['metadata']['namespace']}/{dep['metadata']['name']}")
        if dep["metadata"]["name"] == "linstor-csi-controller":
            names = [c.get("name") for c in dep["spec"]["template"]["spec"].get("containers", [])]
            found.snapshotter = "csi-snapshotter" in names
    return found


def preflight(session: Session) -> Prerequisites:
    """Report what is there; stop early, saying what to do, when something cannot be fixed here."""
    found = prerequisites(session)
    p = session.params.snapshots
    print("snapshot API kinds served:", ", ".join(found.kinds) or "none (no snapshot.storage.k8s.io CRDs)")
    print("snapshot-controller:", ", ".join(found.controllers) or "none running")
    print("csi-snapshotter sidecar:", "present" if found.snapshotter else "absent")
    if not found.snapshotter:
        raise PreconditionFailed("the linstor-csi controller has no csi-snapshotter sidecar: run 03-piraeus-install "
                                 "(the Piraeus operator adds it) before taking snapshots")
    missing = [m for m in found.missing if not m.startswith("csi-")]
    if missing and not p.install_controller:
        raise PreconditionFailed(
            f"missing: {', '.join(missing)}. VolumeSnapshots would be rejected (no such API) or never become ready. "
            f"Install them: `helm upgrade --install {p.release} {p.chart} --version {p.chart_version} -n {p.namespace}` "
            "(or set snapshots.install_controller: true and run this notebook again)")
    if missing:
        print(f"missing: {', '.join(missing)}: the next step installs chart {p.chart} {p.chart_version}")
    return found


def check_pool(session: Session, storage_class: str | None = None) -> pd.DataFrame:
    """The pools behind the tested StorageClass, from LINSTOR; stop when any cannot snapshot."""
    cls_name = storage_class or session.params.snapshots.storage_class
    sc = kube.get_object(session.kube(), kinds.STORAGE_CLASS.path(cls_name))
    if sc is None and session.dry_run:  # a plan of the whole suite: 04 is planned, not applied
        print(f"plan mode: StorageClass {cls_name} does not exist; its pool is checked as if 04-storage-classes had run")
        sc = {"parameters": {}}
    if sc is None:
        raise PreconditionFailed(f"StorageClass {cls_name} does not exist: run 04-storage-classes first")
    params = {k.lower(): v for k, v in (sc.get("parameters") or {}).items()}
    names = (params.get(f"{PROVISIONER}/storagepool") or session.params.storage.pool_name).split()
    frame = storage_pools_frame(linstor(session).storage_pools())
    pools = frame[frame["pool"].isin(names)]
    if pools.empty:
        raise PreconditionFailed(f"LINSTOR has no storage pool {' '.join(names)} (StorageClass {cls_name}): run 03 first")
    cannot = pools[~pools["supports_snapshots"].fillna(False).astype(bool)]
    if not cannot.empty:
        providers = ", ".join(sorted(set(cannot["provider_kind"].astype(str))))
        raise PreconditionFailed(
            f"StorageClass {cls_name} uses pool {' '.join(names)}, which cannot snapshot on "
            f"{', '.join(sorted(cannot['node']))} (LINSTOR provider {providers}: supports_snapshots is false). Thick LVM "
            "(lvmPool) has no snapshots; use a zfsPool or lvmThinPool pool for volumes you want to snapshot")
    return pools[["node", "pool", "provider_kind", "supports_snapshots", "total_bytes", "free_bytes", "used_bytes"]]


def install_controller(session: Session, found: Prerequisites) -> None:
    """The snapshot-controller chart (CRDs + controller), then wait until the API serves the kinds."""
    p = session.params.snapshots
    helm = helm_client(session)
    chart = {"namespace": p.namespace, "version": p.chart_version, "values": {}}
    current = helm.deployed_version(p.release, p.namespace)
    if not found.missing and current in (None, p.chart_version):
        # present and either ours at this version, or installed by someone else (a distribution's own)
        session.executor.unchanged(step="install snapshot-controller", target=f"{p.namespace}/{p.release}", kind="helm",
                                   command=helm.upgrade_install_argv(p.release, p.chart, **chart))
        return
    helm.upgrade_install(p.release, p.chart, **chart, step="install snapshot-controller")
    if session.dry_run:
        return

    def probe():
        now = prerequisites(session)
        return not now.missing, now

    wait_until(probe, what="snapshot CRDs served and snapshot-controller ready", timeout=session.params.node_timeout,
               describe=lambda s: "missing: " + ", ".join(s.missing))


def apply_class(session: Session) -> dict:
    p = session.params.snapshots
    vsc = snapshot_class(p.class_name, p.deletion_policy)
    live = kube.get_object(session.kube(), kube.object_path(vsc))
    if live is not None and (live.get("driver") != vsc["driver"] or live.get("deletionPolicy") != vsc["deletionPolicy"]):
        raise PreconditionFailed(f"VolumeSnapshotClass {p.class_name} exists with another driver or deletionPolicy; its "
                                 "driver and parameters are immutable: delete it and run again")
    apply(session, vsc, step=f"VolumeSnapshotClass {p.class_name}")
    return vsc


def parse_sha256(log: str) -> dict[str, str]:
    """``sha256sum`` output lines -> {path: hex digest}."""
    return {m.group(2): m.group(1) for m in re.finditer(r"^([0-9a-f]{64})\s+\*?(\S+)\s*$", log, re.MULTILINE)}


def _run_pod(session: Session, p: dict) -> dict[str, str]:
    """Wait for a checksum pod to finish; its sha256 lines (RunbookError with its log when it failed)."""
    run = wait_finished(session, p, what=f"pod {p['metadata']['name']} finished")
    print(f"{p['metadata']['name']}: {run.phase}\n{run.text()}")
    if not run.succeeded:
        raise RunbookError(f"pod {p['metadata']['name']} {run.phase}: {run.text()[-400:]}")
    return parse_sha256(run.text())


def wait_ready(session: Session, vs: dict) -> dict:
    """Until ``status.readyToUse`` is true; an error the controller reports stops the wait at once."""
    api = session.kube()
    path = kube.object_path(vs)

    def probe():
        obj = kube.get_object(api, path)
        status = (obj or {}).get("status") or {}
        if status.get("error") and not status.get("readyToUse"):
            raise RunbookError(f"VolumeSnapshot {vs['metadata']['name']}: {status['error'].get('message')}")
        return bool(status.get("readyToUse")), obj

    return wait_until(probe, what=f"VolumeSnapshot {vs['metadata']['name']} readyToUse",
                      timeout=session.params.node_timeout,
                      describe=lambda o: json.dumps((o or {}).get("status") or {}) or "no status")


def pool_usage(session: Session) -> pd.DataFrame:
    frame = storage_pools_frame(linstor(session).storage_pools())
    return frame[frame["pool"] == session.params.storage.pool_name][["node", "pool", "used_bytes", "free_bytes"]]


def snapshots_frame(snaps: list[dict]) -> pd.DataFrame:
    """One row per (snapshot, node) from LINSTOR's ``/v1/view/snapshots``."""
    rows = []
    for s in snaps:
        size = sum(int(v.get("size_kib") or 0) for v in s.get("volume_definitions") or []) * 1024
        for per in s.get("snapshots") or [{"node_name": n} for n in s.get("nodes") or []]:
            rows.append({"snapshot": s.get("name"), "resource": s.get("resource_name"), "node": per.get("node_name"),
                         "flags": ",".join(s.get("flags") or []), "size_bytes": size,
                         "state": ",".join(sorted({v.get("state", "") for v in per.get("snapshot_volumes") or []})),
                         "created_ms": per.get("create_timestamp")})
    return pd.DataFrame(rows, columns=["snapshot", "resource", "node", "flags", "size_bytes", "state", "created_ms"])


@dataclass
class RoundTrip:
    written: dict[str, str] = field(default_factory=dict)
    restored: dict[str, str] = field(default_factory=dict)
    snapshot: dict = field(default_factory=dict)
    content: dict = field(default_factory=dict)
    linstor_snapshots: pd.DataFrame = field(default_factory=pd.DataFrame)
    pool_space: pd.DataFrame = field(default_factory=pd.DataFrame)

    def checksums(self) -> pd.DataFrame:
        return pd.DataFrame([{"file": f, "written": self.written.get(f), "restored": self.restored.get(f),
                              "match": self.written.get(f) is not None and self.written.get(f) == self.restored.get(f)}
                             for f in FILES])


def round_trip(session: Session, objs: TestObjects) -> RoundTrip | None:
    """Write, snapshot, restore, read back; checks recorded. Cleans up unless ``keep_test_objects``."""
    api = session.kube()
    out = RoundTrip()
    try:
        create(session, objs.source, "test PVC (source)")
        create(session, objs.writer, "writer pod")
        if session.dry_run:
            for obj, what in ((objs.snapshot, "VolumeSnapshot"), (objs.restored, "restored PVC"), (objs.reader, "reader pod")):
                create(session, obj, what)
            return None
        out.written = _run_pod(session, objs.writer)
        session.check("writer hashed both files", sorted(out.written) == sorted(FILES), sorted(out.written), list(FILES))
        before = pool_usage(session).assign(moment="before snapshot")
        create(session, objs.snapshot, "VolumeSnapshot")
        out.snapshot = wait_ready(session, objs.snapshot)
        st = out.snapshot["status"]
        session.check("VolumeSnapshot readyToUse", st.get("readyToUse") is True, st.get("readyToUse"), True)
        session.check("VolumeSnapshot has creationTime and restoreSize", bool(st.get("creationTime") and st.get("restoreSize")),
                      f"{st.get('creationTime')}, {st.get('restoreSize')}", "both set")
        out.content = kube.get_object(api, kinds.VOLUME_SNAPSHOT_CONTENT.path(st.get("boundVolumeSnapshotContentName") or "")) or {}
        handle = (out.content.get("status") or {}).get("snapshotHandle")
        snaps = linstor(session).snapshots()
        out.linstor_snapshots = snapshots_frame(snaps)
        ours = out.linstor_snapshots[out.linstor_snapshots["snapshot"] == handle]
        session.check("LINSTOR holds the snapshot", not ours.empty and all("SUCCESSFUL" in f for f in ours["flags"]),
                      f"{handle}: {sorted(set(ours['flags']))} on {sorted(ours['node'])}", "SUCCESSFUL on the replicas' nodes")
        after = pool_usage(session).assign(moment="after snapshot")
        create(session, objs.restored, "restored PVC (dataSource VolumeSnapshot)")
        create(session, objs.reader, "reader pod")
        out.restored = _run_pod(session, objs.reader)
        restored = pool_usage(session).assign(moment="after restore")
        out.pool_space = pd.concat([before, after, restored], ignore_index=True)
        for f in FILES:
            session.check(f"checksum of {f} after restore", out.written.get(f) is not None and out.restored.get(f) == out.written.get(f),
                          out.restored.get(f), out.written.get(f))
        session.result("snapshot", {"name": objs.snapshot["metadata"]["name"], "content": out.content.get("metadata", {}).get("name"),
                                    "linstor_snapshot": handle, "restore_size": st.get("restoreSize"),
                                    "creation_time": st.get("creationTime")})
        session.result("checksums", out.checksums().to_dict(orient="records"))
        session.result("pool_space", out.pool_space.astype(object).where(out.pool_space.notna(), None).to_dict(orient="records"))
        return out
    finally:
        if not session.params.snapshots.keep_test_objects:
            cleanup(session, objs)


def cleanup(session: Session, objs: TestObjects) -> None:
    """Pods, the restored claim, the snapshot (its content set to Delete first, so LINSTOR's goes too), the source."""
    api = session.kube()
    ex = session.executor
    for obj in (objs.reader, objs.writer, objs.restored):
        delete(session, obj, f"delete test {obj['kind']} {obj['metadata']['name']}")
    vs = kube.get_object(api, kube.object_path(objs.snapshot)) if not session.dry_run else None
    content = ((vs or {}).get("status") or {}).get("boundVolumeSnapshotContentName")
    if content:
        patch = {"spec": {"deletionPolicy": "Delete"}}
        ex.call(lambda: kube.request(api, "PATCH", kinds.VOLUME_SNAPSHOT_CONTENT.path(content), body=patch,
                                     content_type="application/merge-patch+json"),
                step="set the test snapshot's content to deletionPolicy Delete", target=f"VolumeSnapshotContent/{content}",
                manifest=json.dumps(patch), command=["kubectl", "patch", "volumesnapshotcontent", content, "--type=merge"])
    delete(session, objs.snapshot, "delete test VolumeSnapshot")
    if content and not session.dry_run:
        wait_until(lambda: (kube.get_object(api, kinds.VOLUME_SNAPSHOT_CONTENT.path(content)) is None, content),
                   what=f"VolumeSnapshotContent {content} deleted", timeout=session.params.node_timeout)
    delete(session, objs.source, "delete test PVC (source)")
