"""Notebook 03: the Piraeus operator, LINSTOR on the Talos partitions, and its verification.

Order, and why:

1. the namespace, labelled for privileged pods (Talos enforces the *baseline* Pod Security
   level by default, and the satellites and CSI node plugin are privileged);
2. the operator from its official OCI chart with ``installCRDs=true`` (the chart ships no
   CRDs otherwise);
3. each storage node's partition: a raw volume (``r-<name>``, Talos v1.11+) is handed to
   LINSTOR as it is, never wiped (:mod:`..storage_layout`); only a node still on a formatted
   ``u-<name>`` user volume (Talos before v1.11, or the old layout not yet handed over) is wiped
   first (approval ``wipe <node>``): LINSTOR will not create a pool on a device that carries a
   filesystem, and the operator never retries a pool it created in error;
4. ``LinstorCluster`` (satellites on the storage nodes only), the official Talos satellite
   override and one storage configuration per storage node;
5. wait for the operator's conditions, then read nodes and pools from LINSTOR itself, and the
   pool's signature on each partition from Talos.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

import pandas as pd

from .. import kube, manifests, storage_layout
from ..errors import PreconditionFailed, RunbookError
from ..linstor import storage_pools_frame
from ..services import clients, waits
from ..services.objects import apply
from ..session import Session
from ..waiting import wait_until

WIPE_IMAGE = "docker.io/library/debian:bookworm-slim"  # has umount and wipefs (util-linux)
FILESYSTEMS_TO_WIPE = {"xfs", "ext4", "vfat", "btrfs"}  # what Talos may have put there; pool signatures are kept


def namespace_manifest(namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}


def install_operator(session: Session) -> None:
    """The operator chart; first of all, the partitions' state and every ``wipe <node>`` the run will need
    (nothing changes before)."""
    parts = find_partitions(session)
    refuse_foreign_signatures(session, parts)
    if session.executor.approve is not None:
        require_wipe_approvals(session, parts)
    p = session.params.piraeus
    apply(session, namespace_manifest(p.namespace), step="namespace for Piraeus")
    helm = clients.helm(session)
    chart = {"namespace": p.namespace, "version": p.chart_version, "values": {"installCRDs": "true"}}
    if helm.deployed_version(p.release, p.namespace) == p.chart_version:
        session.executor.unchanged(step="install Piraeus operator", target=f"{p.namespace}/{p.release}", kind="helm",
                                   command=helm.upgrade_install_argv(p.release, p.chart, **chart))
    else:
        helm.upgrade_install(p.release, p.chart, **chart, step="install Piraeus operator")
    if not session.dry_run:
        waits.deployments_ready(session, p.namespace, f"app.kubernetes.io/instance={p.release}", "the Piraeus operator")


@dataclass
class Partition:
    node: str
    device: str | None  # the partition's current device (VolumeStatus location)
    volume_phase: str
    signature: str  # what Talos probes on the device now ("" when blank)
    kind: str = storage_layout.USER  # RAW (r-<name>) or USER (u-<name>)
    label: str = ""
    old_layout: bool = False  # a u-<name> partition on a node that could have a raw volume
    size: int = 0

    @property
    def needs_wipe(self) -> bool:
        """Only a formatted user volume is wiped; a raw volume is never wiped (it was never formatted)."""
        return self.kind == storage_layout.USER and self.signature in FILESYSTEMS_TO_WIPE


def find_partitions(session: Session) -> list[Partition]:
    """Each storage node's LINSTOR partition from ``VolumeStatus`` and ``DiscoveredVolume`` (three calls)."""
    storage = session.params.storage
    nodes = list(session.storage_nodes)
    versions = session.talos.versions(nodes)
    volumes = session.talos.get_many(nodes, "volumestatus")
    discovered = session.talos.get_many(nodes, "discoveredvolumes")
    out = []
    for node in nodes:
        vols = {r["metadata"]["id"]: r["spec"] for r in volumes[node.name]}
        parts = [r["spec"] for r in discovered[node.name] if r["spec"].get("type") == "partition"]
        vol = storage_layout.node_volume(node.name, storage, versions[node.name], vols, parts)
        device = vol.status.get("location") or None
        if vol.kind == storage_layout.USER and vol.partition and not device:
            device = vol.partition.get("dev_path")  # old layout: Talos failed the volume once LINSTOR took it
        signature = next((p.get("name") or "" for p in parts if device and p.get("dev_path") == device), "")
        out.append(Partition(node.name, device, vol.status.get("phase", "absent"), signature, vol.kind, vol.label,
                             vol.old_layout, vol.size))
    return out


def refuse_foreign_signatures(session: Session, parts: list[Partition]) -> None:
    """A raw volume must be blank or hold LINSTOR's own pool: anything else is someone else's data."""
    own = storage_layout.pool_signature(session.params.storage)
    foreign = [p for p in parts if p.kind == storage_layout.RAW and p.signature not in ("", own)]
    if foreign:
        raise PreconditionFailed("; ".join(
            f"{p.node}: {p.label} ({p.device}) carries {p.signature}, neither blank nor LINSTOR's {own}: "
            "the runbooks never wipe a raw volume; find out what wrote it, then wipe it yourself "
            f"(`talosctl -n <ip> wipe disk {(p.device or '').removeprefix('/dev/')}`) or remove the RawVolumeConfig"
            for p in foreign))


def partitions_frame(parts: list[Partition]) -> pd.DataFrame:
    return pd.DataFrame([{"node": p.node, "partition": p.label, "device": p.device or "", "VolumeStatus": p.volume_phase,
                          "signature": p.signature or "(none)", "layout": _layout_name(p), "wipe": p.needs_wipe}
                         for p in parts])


def _layout_name(p: Partition) -> str:
    if p.kind == storage_layout.RAW:
        return "raw volume"
    return "old (user volume)" if p.old_layout else "user volume (Talos < v1.11)"


_DEVICE_RE = re.compile(r"/dev/[A-Za-z0-9._/-]+")


def wipe_pod(node: str, device: str, mount: str, namespace: str) -> dict:
    """A privileged one-shot pod that unmounts the user volume and wipes its signatures.

    The device path comes from the node (``VolumeStatus``): it must look like a device path, and
    both paths are shell-quoted, so nothing a node reports can become a command on the host.
    """
    if not _DEVICE_RE.fullmatch(device or ""):
        raise RunbookError(f"{node}: refusing to wipe {device!r}: not a device path like /dev/nvme0n1p5")
    script = f"umount {shlex.quote('/host' + mount)} || true; wipefs --all {shlex.quote(device)}"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"wipe-{node}", "namespace": namespace, "labels": {"app.kubernetes.io/name": "runbook-wipe"}},
        "spec": {
            "nodeName": node, "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "wipe", "image": WIPE_IMAGE, "command": ["sh", "-c", script],
                            "securityContext": {"privileged": True},
                            "volumeMounts": [{"name": "host", "mountPath": "/host", "mountPropagation": "Bidirectional"}]}],
            "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        },
    }


def require_wipe_approvals(session: Session, parts: list[Partition]) -> None:
    """``wipe <node>`` for every partition that still carries a filesystem (the wipe destroys it)."""
    for p in parts:
        if p.needs_wipe:
            session.executor.require_approval("wipe", p.node, f"wipe {p.device} on {p.node}")


def wipe_partitions(session: Session, parts: list[Partition]) -> None:
    """Wipe every user-volume partition still carrying a filesystem (approval ``wipe <node>``).

    A raw volume is never wiped, and needs no pod on the host; a node on the old layout that LINSTOR
    already uses is left alone (and told how to migrate).
    """
    missing = [p for p in parts if not p.device or (p.kind == storage_layout.RAW and p.volume_phase != "ready")]
    if missing:
        raise PreconditionFailed("; ".join(f"{p.node}: {p.label} is {p.volume_phase}" for p in missing)
                                 + ": run 01-partition first")
    require_wipe_approvals(session, parts)  # every approval before the first wipe
    api = session.kube()
    ns = session.params.piraeus.namespace
    for p in parts:
        if p.kind == storage_layout.RAW:
            print(f"{p.node}: {p.label} is a raw volume ({p.signature or 'blank'}): handed to LINSTOR as it is, no wipe")
            continue
        if p.old_layout and not p.needs_wipe:
            print(storage_layout.migration_steps(p.node, session.params.storage))
        pod = wipe_pod(p.node, p.device or "", session.params.storage.mount_path, ns)
        step = f"wipe {p.device} on {p.node}"
        if not p.needs_wipe:
            session.executor.unchanged(step=step, target=p.node, kind="kube", destructive=True,
                                       manifest=manifests.to_yaml([pod]))
            continue
        kube.delete_object(api, pod)  # a pod left by an interrupted run
        done = session.executor.call(lambda pod=pod: kube.server_side_apply(api, pod), step=step, target=p.node,
                                     destructive="wipe", manifest=manifests.to_yaml([pod]),
                                     command=["kubectl", "apply", "-f", "-"])
        if done is None:
            continue
        final = wait_until(lambda pod=pod: _pod_finished(api, pod), what=f"wipe pod on {p.node}",
                           timeout=session.params.node_timeout, describe=lambda o: _pod_phase(o))
        log = kube.pod_log(api, ns, pod["metadata"]["name"]) or ""
        kube.delete_object(api, pod)
        if _pod_phase(final) != "Succeeded":
            raise RunbookError(f"wiping {p.device} on {p.node} failed ({_pod_phase(final)}): {log.strip()[-300:]}")
        print(f"{p.node}: wiped {p.device}: {log.strip() or 'ok'}")


def _pod_phase(obj: dict | None) -> str:
    return ((obj or {}).get("status") or {}).get("phase", "absent")


def _pod_finished(api, pod: dict) -> tuple[bool, dict | None]:
    obj = kube.get_object(api, kube.object_path(pod))
    return _pod_phase(obj) in ("Succeeded", "Failed"), obj


def cluster_manifests(session: Session, parts: list[Partition]) -> list[dict]:
    """``LinstorCluster`` (satellites on the storage nodes), the Talos override, one pool per storage node.

    A raw volume goes in by its stable ``/dev/disk/by-partlabel/r-<name>`` (:func:`.storage_layout.linstor_device`).
    A pool LINSTOR already has keeps the device it was created on: the operator refuses a changed source.
    """
    storage = session.params.storage
    docs = [manifests.linstor_cluster([n.name for n in session.storage_nodes]), manifests.talos_satellite_configuration()]
    for p in parts:
        device = storage.raw_device_path if p.kind == storage_layout.RAW else (p.device or "")
        live = _live_host_devices(session, p.node)
        docs.append(manifests.storage_satellite_configuration(p.node, live[0] if live and p.kind == storage_layout.USER
                                                              else device, storage))
    return docs


def _live_host_devices(session: Session, node: str) -> list[str]:
    """``hostDevices`` of the node's live storage configuration (the old layout keeps what it was given)."""
    obj = kube.get_object(session.kube(), kube.object_path(manifests.storage_satellite_configuration(
        node, "", session.params.storage)))
    pools = ((obj or {}).get("spec") or {}).get("storagePools") or []
    pool = next((p for p in pools if p.get("name") == session.params.storage.pool_name), {})
    return list((pool.get("source") or {}).get("hostDevices") or [])


def apply_cluster(session: Session, docs: list[dict]) -> None:
    for doc in docs:
        apply(session, doc, step=f"apply {doc['kind']} {doc['metadata']['name']}")


def wait_cluster(session: Session) -> dict:
    """Until the ``LinstorCluster`` reports Applied, Available and Configured."""
    api = session.kube()
    path = kube.object_path(manifests.linstor_cluster())
    wanted = ("Applied", "Available", "Configured")

    def probe():
        obj = kube.get_object(api, path)
        return all(kube.condition(obj, c).get("status") == "True" for c in wanted), obj

    def describe(obj):
        return ", ".join(f"{c}={kube.condition(obj, c).get('status', '?')} {kube.condition(obj, c).get('message', '')}".strip()
                         for c in wanted)

    return wait_until(probe, what="LinstorCluster Applied, Available and Configured",
                      timeout=session.params.node_timeout, describe=describe)


def verify(session: Session, cluster: dict | None) -> pd.DataFrame:
    """Checks from both sides: the operator's conditions and LINSTOR's own view of nodes and pools."""
    for c in ("Available", "Configured"):
        cond = kube.condition(cluster, c)
        session.check(f"LinstorCluster {c}", cond.get("status") == "True", cond.get("status", "absent"), "True")
    ns = session.params.piraeus.namespace
    for name in ("linstor-controller", "linstor-csi-controller"):
        ready = waits.deployment_ready(session, ns, name)
        session.check(f"Deployment {name} ready", ready >= 1, ready, ">= 1")
    client = clients.linstor(session)
    version = client.controller_version()
    session.result("linstor_version", version.get("version"))
    print("LINSTOR controller", version.get("version"), "REST API", version.get("rest_api_version"))
    nodes = {n["name"]: n for n in client.nodes()}
    for node in session.storage_nodes:
        state = nodes.get(node.name, {}).get("connection_status", "absent")
        session.check(f"LINSTOR node {node.name} online", state == "ONLINE", state, "ONLINE")
    pools = storage_pools_frame(client.storage_pools())
    storage = session.params.storage
    for node in session.storage_nodes:
        row = pools[(pools["node"] == node.name) & (pools["pool"] == storage.pool_name)]
        total = int(row["total_bytes"].iloc[0]) if len(row) and not pd.isna(row["total_bytes"].iloc[0]) else 0
        reports = str(row["reports"].iloc[0]) if len(row) and row["reports"].iloc[0] else ""
        session.check(f"pool {storage.pool_name} on {node.name}", total > 0 and not reports,
                      f"{total / 2**30:.0f} GiB" + (f", {reports}" if reports else "") if len(row) else "absent",
                      "present, with capacity, no error report")
    session.result("pools", pools.astype(object).where(pools.notna(), None).to_dict(orient="records"))
    return pools


def check_after_wipe(session: Session, parts: list[Partition]) -> None:
    """No partition carries a filesystem any more; a wiped user volume's ``failed`` VolumeStatus is expected."""
    if session.dry_run:
        return
    for p in parts:
        session.check(f"{p.node}: {p.device} free of filesystems", not p.needs_wipe, p.signature or "(none)",
                      "no filesystem signature")
        if p.volume_phase == "failed" and p.kind == storage_layout.USER:
            print(f"{p.node}: VolumeStatus {p.label} is failed, as expected once its filesystem is gone")


def verify_partitions(session: Session, parts: list[Partition]) -> None:
    """After the pools: each partition carries LINSTOR's pool (DiscoveredVolume) and a raw volume stays ready."""
    if session.dry_run:
        return
    own = storage_layout.pool_signature(session.params.storage)
    for p in parts:
        session.check(f"{p.node}: {p.label} holds the pool", p.signature == own, p.signature or "(none)", own)
        if p.kind == storage_layout.RAW:
            session.check(f"{p.node}: {p.label} ready", p.volume_phase == "ready", p.volume_phase, "ready")
