"""The Piraeus HA controller in the lab (piraeus-ha-controller ``pkg/agent/reconcile_failover.go``).

An agent (the ``ha-controller`` DaemonSet pod) on a node that holds a replica watches DRBD.
When a volume is promotable on its node, quorum is ``majority``, and the pod using the volume
runs on a node this replica cannot reach, it waits the status interval and
``--fail-over-timeout`` (5 s each by default) and then, on the failed node:

1. taints it ``drbd.linbit.com/lost-quorum:NoSchedule`` (Event ``NodeStorageQuorumLost``),
2. evicts the pods using the volume there (Event ``VolumeWithoutQuorum``),
3. deletes the VolumeAttachment so the replacement pod can attach elsewhere.

The taint goes again (``NodeStorageQuorumRegained``) once the node is back and connected to
a majority of every replica set it belongs to. Pods annotated
``drbd.linbit.com/ignore-fail-over`` are left alone; without quorum nothing happens (the
controller's README: no fast fail-over with fewer than 2 replicas + 1 tie-breaker).
"""

from __future__ import annotations

from ..cluster import Lab
from ..kubernetes import objects as ko
from ..kubernetes.objects import pod_ready, record_event
from ..kubernetes.store import now_iso
from ..workloads.node_facts import node_facts
from .csi_attach import pod_volumes, va_name

TAINT = "drbd.linbit.com/lost-quorum"
IGNORE = "drbd.linbit.com/ignore-fail-over"
STATUS_INTERVAL = 5.0  # --drbd-status-interval
FAIL_OVER_TIMEOUT = 5.0  # --fail-over-timeout
COMPONENT = "linstor-ha-controller"


def _agents(lab: Lab) -> set[str]:
    pods = ko.objects(lab, "", "pods")
    return {p["spec"]["nodeName"] for p in pods
            if (p["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "ha-controller"
            and p["spec"].get("nodeName") and pod_ready(p) and lab.node_reachable(p["spec"]["nodeName"])}


def reconcile(lab: Lab, now: float) -> None:
    ctl = lab.linstor
    lost: dict[str, float] = lab.drbd.ha_lost
    agents = _agents(lab)
    if not agents:
        return
    seen = set()
    for pod, node, pv in pod_volumes(lab):
        if pod["metadata"].get("deletionTimestamp") or IGNORE in (pod["metadata"].get("annotations") or {}):
            continue
        rd = ctl.rds.get(pv["spec"]["csi"]["volumeHandle"])
        if rd is None or not rd.drbd or ctl.effective_prop(rd, "DrbdOptions/Resource/quorum", "off") != "majority":
            continue
        survivors = [s for s in rd.replicas if s != node and s in agents and ctl.may_promote(rd, s)
                     and not ctl.connected(s, node, rd.name)]
        key = f"{pv['metadata']['name']}|{node}"
        if not survivors:
            continue
        seen.add(key)
        since = lost.setdefault(key, now)
        if now >= since + STATUS_INTERVAL + FAIL_OVER_TIMEOUT:
            _fail_over(lab, pod, node, pv, va_name(pv["metadata"]["name"], node), rd.name)
    for key in [k for k in lost if k not in seen]:
        del lost[key]
    _untaint_recovered(lab)


def _fail_over(lab: Lab, pod: dict, node: str, pv: dict, va: str, rd_name: str) -> None:
    node_obj = ko.get(lab, "", "nodes", None, node)
    if node_obj is not None and not any(t.get("key") == TAINT for t in node_obj["spec"].get("taints") or []):
        ko.update(lab, node_obj, lambda o: o["spec"].setdefault("taints", []).append({"key": TAINT, "effect": "NoSchedule", "timeAdded": now_iso()}))
        record_event(lab, node_obj, "NodeStorageQuorumLost", f"Resource {rd_name} lost quorum on node {node}",
                        type_="Warning", component=COMPONENT)
    record_event(lab, pod, "VolumeWithoutQuorum", "Pod was evicted because attached volume lost quorum",
                    type_="Warning", component=COMPONENT)
    ko.delete(lab, pod)
    attachment = ko.get(lab, "storage.k8s.io", "volumeattachments", None, va)
    if attachment is not None:
        record_event(lab, attachment, "VolumeWithoutQuorum",
                        f"Volume attachment was force-detached from node {node} because the volume lost quorum",
                        type_="Warning", component=COMPONENT)
        ko.delete(lab, attachment)


def _untaint_recovered(lab: Lab) -> None:
    ctl = lab.linstor
    for node_obj in ko.objects(lab, "", "nodes"):
        name = node_obj["metadata"]["name"]
        if not any(t.get("key") == TAINT for t in node_obj["spec"].get("taints") or []):
            continue
        facts = node_facts(lab, name)
        if facts is None or not facts.ready:
            continue
        if all(ctl.has_quorum(rd, name) for rd in ctl.rds.values() if name in rd.replicas and rd.drbd):
            ko.update(lab, node_obj, lambda o: o["spec"].__setitem__(
                "taints", [t for t in o["spec"].get("taints") or [] if t.get("key") != TAINT]))
            record_event(lab, node_obj, "NodeStorageQuorumRegained", f"Node {name} regained quorum",
                            component=COMPONENT)
