"""What a kubelet reports about its node beyond Ready: resources, pressure conditions, its Lease.

Capacity is a fixed modest machine (4 CPUs, 16 GiB, 110 pods) with the kubelet reservations Talos
configures by default (``systemReserved``: 50m CPU, 192Mi memory); pressure conditions are False
while the kubelet posts status and Unknown when the node controller stops hearing from it, as in
``kubectl describe node``. The node's Lease in ``kube-node-lease`` is written when its status changes
(a real kubelet renews it every 10 s; renewing at lab speed would flood the event log).
"""

from __future__ import annotations

from typing import Any

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
