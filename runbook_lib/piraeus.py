"""Notebook 03: the Piraeus operator, LINSTOR on the Talos partitions, and its verification.

Order, and why:

1. the namespace, labelled for privileged pods (Talos enforces the *baseline* Pod Security
   level by default, and the satellites, CSI node plugin and wipe pods are privileged);
2. the operator from its official OCI chart with ``installCRDs=true`` (the chart ships no
   CRDs otherwise);
3. wipe each node's ``u-<name>`` partition *before* a pool is configured on it: LINSTOR will
   not create a pool on a device that carries a filesystem, and the operator never retries
   a pool it created in error;
4. ``LinstorCluster``, the official Talos satellite override and one storage configuration
   per node (device paths can differ between nodes);
5. wait for the operator's conditions, then read nodes and pools from LINSTOR itself.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

import pandas as pd

from . import kube, manifests
from .errors import PreconditionFailed, RunbookError
from .linstor import storage_pools_frame
from .services import clients, waits
from .services.objects import apply
from .session import Session
from .waiting import wait_until

WIPE_IMAGE = "docker.io/library/debian:bookworm-slim"  # has umount and wipefs (util-linux)
FILESYSTEMS_TO_WIPE = {"xfs", "ext4", "vfat", "btrfs"}  # what Talos may have put there; pool signatures are kept


def namespace_manifest(namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}


def install_operator(session: Session) -> None:
    """The operator chart; first of all, every ``wipe <node>`` the run will need (nothing changes before)."""
    if session.executor.approve is not None:
        require_wipe_approvals(session, find_partitions(session))
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
    device: str | None
    volume_phase: str
    signature: str  # what Talos probes on the device now ("" when blank)

    @property
    def needs_wipe(self) -> bool:
        return self.signature in FILESYSTEMS_TO_WIPE


def find_partitions(session: Session) -> list[Partition]:
    """Each node's ``u-<name>`` partition from ``VolumeStatus``, and its current signature."""
    label = session.params.storage.partition_label
    nodes = list(session.nodes)
    volumes = session.talos.get_many(nodes, "volumestatus", label)  # one call for every node
    specs = {n.name: (volumes[n.name][0]["spec"] if volumes[n.name] else {}) for n in nodes}
    with_device = [n for n in nodes if specs[n.name].get("location")]
    discovered = session.talos.get_many(with_device, "discoveredvolumes") if with_device else {}
    out = []
    for node in nodes:
        spec = specs[node.name]
        device = spec.get("location")
        signature = ""
        if device:
            for dv in discovered[node.name]:
                if dv["spec"].get("dev_path") == device:
                    signature = dv["spec"].get("name") or ""
        out.append(Partition(node.name, device, spec.get("phase", "absent"), signature))
    return out


def partitions_frame(parts: list[Partition]) -> pd.DataFrame:
    return pd.DataFrame([{"node": p.node, "device": p.device or "", "VolumeStatus": p.volume_phase,
                          "signature": p.signature or "(none)", "wipe": p.needs_wipe} for p in parts])


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
    """Wipe every partition still carrying a filesystem; each is destructive (approval ``wipe <node>``)."""
    missing = [p.node for p in parts if not p.device]
    if missing:
        raise PreconditionFailed(f"no {session.params.storage.partition_label} partition on {', '.join(missing)}: "
                                 "run 01-partition first")
    require_wipe_approvals(session, parts)  # every approval before the first wipe
    api = session.kube()
    ns = session.params.piraeus.namespace
    for p in parts:
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
    storage = session.params.storage
    docs = [manifests.linstor_cluster(), manifests.talos_satellite_configuration()]
    docs += [manifests.storage_satellite_configuration(p.node, p.device or "", storage) for p in parts]
    return docs


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
    for node in session.nodes:
        state = nodes.get(node.name, {}).get("connection_status", "absent")
        session.check(f"LINSTOR node {node.name} online", state == "ONLINE", state, "ONLINE")
    pools = storage_pools_frame(client.storage_pools())
    storage = session.params.storage
    for node in session.nodes:
        row = pools[(pools["node"] == node.name) & (pools["pool"] == storage.pool_name)]
        total = int(row["total_bytes"].iloc[0]) if len(row) and not pd.isna(row["total_bytes"].iloc[0]) else 0
        reports = str(row["reports"].iloc[0]) if len(row) and row["reports"].iloc[0] else ""
        session.check(f"pool {storage.pool_name} on {node.name}", total > 0 and not reports,
                      f"{total / 2**30:.0f} GiB" + (f", {reports}" if reports else "") if len(row) else "absent",
                      "present, with capacity, no error report")
    session.result("pools", pools.astype(object).where(pools.notna(), None).to_dict(orient="records"))
    return pools


def check_after_wipe(session: Session, parts: list[Partition]) -> None:
    """No partition carries a filesystem any more; Talos's ``failed`` VolumeStatus is the expected consequence."""
    if session.dry_run:
        return
    for p in parts:
        session.check(f"{p.node}: {p.device} free of filesystems", not p.needs_wipe, p.signature or "(none)",
                      "no filesystem signature")
        if p.volume_phase == "failed":
            print(f"{p.node}: VolumeStatus {session.params.storage.partition_label} is failed, as expected after the wipe")
