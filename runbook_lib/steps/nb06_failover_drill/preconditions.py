"""What must hold before the drill changes anything, and right before each scenario's faults."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ... import kinds, kube, storage_gates
from ...csi import PROVISIONER
from ...errors import PreconditionFailed
from ...etcd_backup import snapshot_before
from ...services.clients import linstor
from ...session import Session
from ...talos import NodeRef
from .observe import Snapshot
from .writer import Writer, control_nodes


@dataclass
class Preconditions:
    storage_class: dict
    ha_ready: dict[str, bool]  # node -> an HA controller agent runs there


def check_setup(session: Session) -> Preconditions:
    """The class, the HA controller and the approvals, before anything is created.

    On a real cluster (or with ``lab.enforce_safety``) ``failover.node`` must name the node to fault,
    so ``drill <node>`` and ``quorum-loss <node>`` are checked here, before the first change.
    """
    api = session.kube()
    p = session.params
    if p.enforces_safety and p.failover.node is None:
        raise PreconditionFailed("failover.node: set the node to fault (the writer starts there); on a real cluster "
                                 "the drill's approvals must name a known node before anything starts")
    if p.failover.node:
        _approvals(session, "failover", p.failover.node, "failover drill")
        if p.failover.quorum_loss:
            _approvals(session, "quorum-loss", p.failover.node, "quorum-loss drill")
    sc = kube.get_object(api, kinds.STORAGE_CLASS.path(p.failover.storage_class))
    if sc is None:
        raise PreconditionFailed(f"StorageClass {p.failover.storage_class!r} does not exist: run 04-storage-classes first "
                                 "(or set failover.storage_class)")
    params = sc.get("parameters") or {}
    replicas = int(params.get(f"{PROVISIONER}/placementCount", params.get(f"{PROVISIONER}/autoPlace", "1")))
    session.check(f"class {p.failover.storage_class} places at least 2 diskful replicas", replicas >= 2 and sc.get("provisioner") == PROVISIONER,
                  f"{sc.get('provisioner')}, placementCount {replicas}", f"{PROVISIONER}, 3 (or 2 + a tie-breaker)")
    if replicas < 2:
        raise PreconditionFailed(f"StorageClass {p.failover.storage_class!r} keeps {replicas} replica: there is nothing to fail over to")
    if p.failover.quorum_loss:
        _refuse_certain_etcd_loss(session, replicas)
    pods = kube.list_objects(api, kinds.POD.collection(p.piraeus.namespace), "app.kubernetes.io/component=ha-controller")
    ready = {pod["spec"].get("nodeName"): kube.condition(pod, "Ready").get("status") == "True" for pod in pods}
    storage_nodes = [n.name for n in session.storage_nodes]
    ok = all(ready.get(n) for n in storage_nodes)
    session.check("HA controller runs on every node", ok, {n: ready.get(n, False) for n in storage_nodes}, "Ready everywhere")
    if not ok:
        raise PreconditionFailed("the Piraeus HA controller (DaemonSet ha-controller) is not ready on every node: without it a "
                                 "crashed node's pod waits ~15 minutes for Kubernetes to give up its volume. Check "
                                 "LinstorCluster.spec.highAvailabilityController and the ha-controller pods.")
    return Preconditions(sc, ready)


def linstor_property(session: Session, resource: str, key: str) -> tuple[str | None, str]:
    """A DRBD option as the resource gets it: its definition, its group, or the controller (value, where)."""
    client = linstor(session)
    rd = client.resource_definition(resource)
    if key in (rd.get("props") or {}):
        return rd["props"][key], "resource definition"
    group = rd.get("resource_group_name")
    if group:
        rg = client.resource_group(group)
        if key in (rg.get("props") or {}):
            return rg["props"][key], f"resource group {group}"
    ctrl = client.controller_properties()
    return (ctrl.get(key), "controller") if key in ctrl else (None, "unset")


def check_resource(session: Session, writer: Writer, snap: Snapshot, target: str) -> None:
    """Replica layout, quorum and sync state of the writer's volume; the target is not the last healthy node."""
    replicas = snap.replicas if snap.replicas is not None else pd.DataFrame()
    diskful = snap.diskful()
    tiebreakers = int(replicas["tiebreaker"].astype(bool).sum()) if not replicas.empty else 0
    layout_ok = len(diskful) >= 3 or (len(diskful) == 2 and tiebreakers >= 1)
    session.check("three diskful replicas, or two and a tie-breaker", layout_ok,
                  f"{len(diskful)} diskful ({', '.join(diskful['node']) if not diskful.empty else '-'}), {tiebreakers} tie-breaker",
                  ">= 3 diskful, or 2 + 1 tie-breaker")
    quorum, where = linstor_property(session, writer.pv or "", "DrbdOptions/Resource/quorum")
    session.check("quorum majority on the resource", quorum == "majority", f"{quorum} ({where})", "majority")
    policy, where = linstor_property(session, writer.pv or "", "DrbdOptions/Resource/on-no-quorum")
    session.check("a primary without quorum suspends I/O", policy == "suspend-io", f"{policy} ({where})", "suspend-io")
    session.check("every diskful replica UpToDate and connected", snap.in_sync(),
                  ", ".join(f"{r['node']}={r['disk_state']}" for r in snap.sync_progress()), "all UpToDate")
    if target in control_nodes(session):
        print(f"note: {target} runs the LINSTOR or CSI controller; a replacement pod can only attach once Kubernetes "
              "has rescheduled them (about 5 minutes after the node goes NotReady by default)")
    healthy = [n for n in diskful["node"] if n != target and snap.ready(n)] if not diskful.empty else []
    session.check(f"{target} is not the last healthy replica", bool(healthy), healthy, "another Ready node with an UpToDate replica")
    if not (layout_ok and quorum == "majority" and policy == "suspend-io" and snap.in_sync() and healthy):
        raise PreconditionFailed("the drill would not prove anything (or would risk data) with this setup: see the failed "
                                 "checks above. Quorum comes from the class (04-storage-classes); wait for resyncs to finish.")


#: what each fault tests (Talos's shutdown cordons and drains first: maintenance, not a failure)
FAULT_LABELS = {
    "reboot": "failure test: talosctl reboot takes the node away without draining it",
    "shutdown": "planned-maintenance test, not a failure test: Talos cordons and drains the node, then powers it off",
    "node-down": "failure test (lab): the node loses power",
    "isolate": "failure test (lab): the node is cut off from every peer",
}


def _approvals(session: Session, scenario: str, home: str, step: str) -> None:
    """``drill <node>`` for the failover scenario, ``quorum-loss <writer's node>`` for the quorum-loss one."""
    session.executor.require_approval("drill" if scenario == "failover" else "quorum-loss", home, step)


def etcd_members_lost(session: Session, down: list[str]) -> list[str]:
    """The control-plane nodes among ``down`` when they are a majority of the etcd members (else [])."""
    members = [n.name for n in session.nodes if n.role == "controlplane"]
    lost = [n for n in down if n in members]
    # etcd keeps quorum while a majority (n // 2 + 1) of its n members is up: it tolerates (n - 1) // 2 down
    return lost if members and len(lost) > (len(members) - 1) // 2 else []


def refuse_etcd_majority(session: Session, down: list[str], step: str) -> None:
    """A drill never takes down a majority of etcd (on a real cluster or with ``lab.enforce_safety``)."""
    lost = etcd_members_lost(session, down)
    if not lost:
        return
    members = [n.name for n in session.nodes if n.role == "controlplane"]
    text = (f"{step} would take down {len(lost)} of {len(members)} etcd members ({', '.join(lost)}; members: "
            f"{', '.join(members)}): etcd and the Kubernetes API stop and every replicated volume freezes")
    if not session.params.enforces_safety:
        print(f"note: {text}. The relaxed lab rehearses it; a real cluster (or lab.enforce_safety) refuses it.")
        return
    session.check(f"{step} keeps an etcd majority", False, ", ".join(lost) + " down", "a majority of etcd members up")
    raise PreconditionFailed(f"{text}. Set failover.quorum_loss: false, or run the drill where its replicas' nodes "
                             "are not an etcd majority (more control-plane nodes, or volumes on workers).")


def before_fault(session: Session, scenario: str, fault: str, nodes: list[NodeRef], *, home: str,
                  exempt: list[str]) -> None:
    """Right before a scenario's first fault: its approval, etcd, the cluster-wide storage gate, etcd snapshots."""
    step = f"{scenario} drill ({fault} {', '.join(n.name for n in nodes)})"
    print(f"{scenario}: {fault} is a {FAULT_LABELS[fault]}")
    _approvals(session, scenario, home, step)
    refuse_etcd_majority(session, [n.name for n in nodes], step)
    storage_gates.before_down(session, [n.name for n in nodes], step=step, exempt=exempt)
    snapshot_before(session, nodes, step=step)


def _refuse_certain_etcd_loss(session: Session, replicas: int) -> None:
    """Before anything is created: the quorum-loss scenario takes ``replicas - 1`` other nodes down; when too few
    of the candidates are workers, that is an etcd majority wherever the replicas land."""
    home = session.params.failover.node or ""
    others = [n for n in session.storage_nodes if n.name != home]  # replicas live on storage nodes only
    workers = [n for n in others if n.role != "controlplane"]
    certain = max(0, min(replicas - 1, len(others)) - len(workers))
    cps = [n.name for n in others if n.role == "controlplane"]
    if certain and etcd_members_lost(session, cps[:certain]):
        refuse_etcd_majority(session, cps if certain == len(cps) else cps[:certain], "the quorum-loss drill")


def check_scenarios(session: Session, writer: Writer, before: Snapshot) -> list[str]:
    """Preflight of the scenarios, before the first fault: approvals, etcd majority, the storage gate.

    Returns the scenarios that will run (``failover``, and ``quorum-loss`` when enabled).
    """
    f = session.params.failover
    target = f.node or before.writer_node() or session.storage_nodes[0].name
    _approvals(session, "failover", target, "failover drill")
    refuse_etcd_majority(session, [target], "the failover drill")
    scenarios = ["failover"]
    if f.quorum_loss:
        home = before.writer_node() or target
        peers = [n for n in before.diskful()["node"] if n != home]
        _approvals(session, "quorum-loss", home, "quorum-loss drill")
        refuse_etcd_majority(session, peers, "the quorum-loss drill")
        scenarios.append("quorum-loss")
    if not session.dry_run:
        storage_gates.before_down(session, [target], step="the failover drill", exempt=[writer.pv] if writer.pv else [])
    for name in scenarios:
        fault = f.fault if name == "failover" else f.quorum_loss_fault
        print(f"{name}: {fault}, a {FAULT_LABELS[fault]}")
    return scenarios


def node_ref(session: Session, name: str) -> NodeRef:
    return next(n for n in session.nodes if n.name == name)
