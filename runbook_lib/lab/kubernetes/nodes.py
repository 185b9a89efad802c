"""Node objects: each Talos node's kubelet registers and posts status (Ready, resources, pressure, its Lease).

Capacity is a fixed modest machine (4 CPUs, 16 GiB, 110 pods) with the kubelet reservations Talos
configures by default (``systemReserved``: 50m CPU, 192Mi memory); pressure conditions are False
while the kubelet posts status and Unknown when the node controller stops hearing from it, as in
``kubectl describe node``. The node's Lease in ``kube-node-lease`` is written when its status changes
(a real kubelet renews it every 10 s; renewing at lab speed would flood the event log).
"""

from __future__ import annotations

import copy
from typing import Any

from ..cluster import Lab
from ..talos.constants import KUBERNETES_VERSION, T_KUBELET
from ..talos.node import TalosNode
from ..talos.seeded import rfc3339
from .store import now_iso

CAPACITY = {"cpu": "4", "memory": "16374044Ki", "pods": "110", "ephemeral-storage": "104806400Ki",
            "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
ALLOCATABLE = {"cpu": "3950m", "memory": "16177436Ki", "pods": "110", "ephemeral-storage": "96588591734",
               "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
_PRESSURE = (("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
             ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
             ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"))


_DAEMON = {"kubeletEndpoint": {"Port": 10250}}
_PRESSURE_BY_READY: dict[tuple[str, str, str], list[dict]] = {}


def complete(status: dict, ready: dict) -> dict:
    """Add resources and pressure conditions to a node status whose Ready condition is ``ready``.

    The ticker rebuilds every node's status and compares it with the stored one each tick; the added
    parts are shared, read-only objects (the same for equal Ready conditions), so the comparison stays
    an identity check and a tick does not get slower with them.
    """
    key = (ready["status"], ready["lastHeartbeatTime"], ready["lastTransitionTime"])
    conds = _PRESSURE_BY_READY.get(key)
    if conds is None:
        if len(_PRESSURE_BY_READY) > 4096:
            _PRESSURE_BY_READY.clear()
        unknown = ready["status"] == "Unknown"
        conds = _PRESSURE_BY_READY[key] = [
            {"type": t, "status": "Unknown" if unknown else "False", "reason": "NodeStatusUnknown" if unknown else reason,
             "message": "Kubelet stopped posting node status." if unknown else message,
             "lastHeartbeatTime": key[1], "lastTransitionTime": key[2]} for t, reason, message in _PRESSURE]
    status["conditions"] = [*conds, *(c for c in status["conditions"] if c["type"] == "Ready")]
    status["capacity"], status["allocatable"], status["daemonEndpoints"] = CAPACITY, ALLOCATABLE, _DAEMON
    return status


def lease(node: dict, renew_time: str) -> dict:
    """The node's heartbeat Lease body."""
    meta = node["metadata"]
    return {"metadata": {"name": meta["name"], "namespace": "kube-node-lease",
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": meta["name"],
                                              "uid": meta.get("uid", "")}]},
            "spec": {"holderIdentity": meta["name"], "leaseDurationSeconds": 40, "renewTime": renew_time}}


def write_lease(store: Any, node: dict, renew_time: str) -> None:
    """Create or renew the node's Lease (the store's lock is held)."""
    rt = store.resolve("coordination.k8s.io", "v1", "leases")
    key = ("coordination.k8s.io", "leases", "kube-node-lease", node["metadata"]["name"])
    current = store.objects.get(key)
    body = lease(node, renew_time)
    if current is None:
        if ("", "namespaces", None, "kube-node-lease") in store.objects:
            store.create(rt, "kube-node-lease", body)
        return
    new = {**current, "spec": {**current.get("spec", {}), **body["spec"]}}
    store._store_update(rt, key, current, new)


def sync_nodes(lab: Lab, now: float) -> None:
    """Mirror Talos nodes into Kubernetes Node objects (the kubelet's job on a real node)."""
    nodes_rt = lab.kube.resolve("", "v1", "nodes")
    for node in lab.talos.nodes.values():
        reachable = lab.node_reachable(node.name)
        ready = node.kubelet_ready(now) and reachable
        key = ("", "nodes", None, node.name)
        current = lab.kube.objects.get(key)
        status = "True" if ready else "Unknown" if not (node.is_up(now) and reachable) else "False"
        if current is None:
            if not ready:
                continue  # a node registers itself when its kubelet first starts
            labels = {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
            if node.role == "controlplane":
                labels["node-role.kubernetes.io/control-plane"] = ""
            body = {"metadata": {"name": node.name, "labels": labels}, "spec": {}, "status": _node_status(lab, node, status, None)}
            created = lab.kube.create(nodes_rt, None, body)
            write_lease(lab.kube, created, now_iso())
            lab.dirty = True
            continue
        old_cond = next((c for c in current.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)
        new_status = _node_status(lab, node, status, old_cond)
        if new_status != current.get("status"):
            new = copy.deepcopy(current)
            new["status"] = new_status
            lab.kube._store_update(nodes_rt, key, current, new)
            if status == "True":  # the kubelet renews its Lease while it posts status
                write_lease(lab.kube, new, now_iso())
            lab.dirty = True

def _node_status(lab: Lab, node: TalosNode, ready: str, old_cond: dict | None) -> dict:
    if old_cond and old_cond["status"] == ready:
        cond = old_cond
    else:
        reasons = {"True": ("KubeletReady", "kubelet is posting ready status"),
                   "False": ("KubeletNotReady", "container runtime network not ready"),
                   "Unknown": ("NodeStatusUnknown", "Kubelet stopped posting node status.")}
        reason, message = reasons[ready]
        # the moment the kubelet turned ready, not the tick that noticed it (a tick is seconds of lab time)
        # (unless it was ready all along and only unreachable: then the tick's time is the best there is)
        since = node.running_at + T_KUBELET if ready == "True" and node.running_at is not None else None
        at = now_iso()
        if since is not None and since <= lab.clock.now() and rfc3339(lab.talos.epoch, since) >= (old_cond or {}).get(
                "lastTransitionTime", ""):
            at = rfc3339(lab.talos.epoch, since)
        cond = {"type": "Ready", "status": ready, "reason": reason, "message": message,
                "lastHeartbeatTime": at, "lastTransitionTime": at}
    return complete({
        "conditions": [cond],
        "addresses": [{"type": "InternalIP", "address": node.address}, {"type": "Hostname", "address": node.name}],
        "nodeInfo": {"osImage": f"Talos ({node.talos_version})", "kubeletVersion": KUBERNETES_VERSION,
                     "containerRuntimeVersion": "containerd://2.1.5", "operatingSystem": "linux",
                     "architecture": "amd64", "kernelVersion": node.kernel_version,
                     "bootID": node.boot_id, "machineID": node.node_id, "systemUUID": node.node_id,
                     "kubeProxyVersion": KUBERNETES_VERSION},
    }, cond)
