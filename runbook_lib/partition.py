"""Notebook 01: carve the storage partition out of each node's system disk.

Per node, in order: add the ``VolumeConfig``/``UserVolumeConfig`` documents to the
running machine configuration (``apply-config``), *then* reset EPHEMERAL so Talos
re-creates it at the capped size and gives the freed space to the user volume.
Resetting first would re-create EPHEMERAL from the old configuration and leave no
room for the user volume (the seed article's ordering trap). Nodes go one at a time
and the cluster must be healthy before each one; on a cluster that already runs LINSTOR
the storage gates decide too (:mod:`.storage_gates`), and etcd is snapshotted before a
control-plane node is reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from . import machineconfig, storage_gates
from .errors import PreconditionFailed
from .etcd_backup import snapshot_before
from .kube import node_states
from .layout_fit import layout_misfit
from .manifests import to_yaml, volume_documents
from .params import Params, supports_ephemeral_resize_by_reset
from .services.health import cluster_healthy
from .session import Session
from .sizes import format_iec
from .talos import NodeRef
from .volume_rules import validate_documents
from .waiting import wait_until


@dataclass
class NodeLayout:
    """What a node's disks look like, read from ``VolumeStatus`` and ``DiscoveredVolume``."""

    node: str
    talos_version: str
    volumes: dict[str, dict]  # VolumeStatus spec by ID
    partitions: list[dict]  # DiscoveredVolume specs of type partition
    disks: list[dict]  # DiscoveredVolume specs of type disk
    config_current: bool  # the machine configuration already holds our documents

    def volume(self, vid: str) -> dict | None:
        return self.volumes.get(vid)


@dataclass
class NodePlan:
    node: str
    apply_config: bool
    reset: bool
    reasons: list[str] = field(default_factory=list)
    blocked: str | None = None

    @property
    def changes(self) -> bool:
        return self.apply_config or self.reset


def observe(session: Session, node: NodeRef, docs: list[dict]) -> NodeLayout:
    return observe_nodes(session, [node], docs)[0]


def observe_nodes(session: Session, nodes: list[NodeRef], docs: list[dict]) -> list[NodeLayout]:
    """Read the nodes' layouts: four ``talosctl`` calls for all of them (version, volumes, disks, config)."""
    talos = session.talos
    versions = talos.versions(nodes)
    volumes = talos.get_many(nodes, "volumestatus")
    discovered = talos.get_many(nodes, "discoveredvolumes")
    configs = talos.machine_configs(nodes)
    layouts = []
    for node in nodes:
        found = [r["spec"] for r in discovered[node.name]]
        current = machineconfig.split_documents(configs[node.name])
        layouts.append(NodeLayout(
            node=node.name,
            talos_version=versions[node.name],
            volumes={r["metadata"]["id"]: r["spec"] for r in volumes[node.name]},
            partitions=[d for d in found if d.get("type") == "partition"],
            disks=[d for d in found if d.get("type") == "disk"],
            config_current=not machineconfig.missing_or_different(current, docs),
        ))
    return layouts


def plan_node(layout: NodeLayout, params: Params, node: NodeRef) -> NodePlan:
    """Decide what a node needs. Pure: the same layout always gives the same plan."""
    storage = params.storage
    plan = NodePlan(node=node.name, apply_config=not layout.config_current, reset=False)
    if plan.apply_config:
        plan.reasons.append("machine configuration lacks the volume documents")
    eph = layout.volume("EPHEMERAL")
    user = layout.volume(storage.partition_label)
    eph_size = int(eph.get("size", 0)) if eph else 0
    if eph is None:
        plan.blocked = "no EPHEMERAL volume reported: is this node installed and running?"
        return plan
    if eph_size > storage.ephemeral_max_bytes:
        plan.reset = True
        plan.reasons.append(f"EPHEMERAL is {eph_size / 2**30:.1f} GiB, above the {storage.ephemeral_max_size} cap")
    elif user is None or user.get("phase") != "ready":
        plan.reasons.append("EPHEMERAL is capped; the user volume is created when the configuration is applied")
    if plan.reset:
        if not supports_ephemeral_resize_by_reset(layout.talos_version):
            plan.blocked = (
                f"{node.name} runs Talos {layout.talos_version}: before v1.12 `reset --system-labels-to-wipe EPHEMERAL` "
                "keeps the partition, so the cap would be ignored. Upgrade the node to v1.12+ first (notebook 02), "
                "or reinstall it with the VolumeConfig present at install time."
            )
        elif node.role == "controlplane" and len(params.controlplanes) < 2:
            plan.blocked = (
                f"{node.name} is the only control-plane node: wiping EPHEMERAL would destroy the etcd data of a "
                "single-member cluster. Add control-plane nodes first, or reinstall this node with the VolumeConfig."
            )
    plan.blocked = layout_misfit(node.name, layout.disks, layout.partitions, storage) or plan.blocked
    return plan


def plan_frame(plans: list[NodePlan]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"node": p.node, "apply-config": p.apply_config, "reset EPHEMERAL": p.reset,
          "why": "; ".join(p.reasons) or "already partitioned", "blocked": p.blocked or ""} for p in plans]
    )


def apply_node(session: Session, node: NodeRef, plan: NodePlan, docs: list[dict], *, timeout: float,
               held: dict[str, bool] | None = None) -> None:
    """Carry out a node's plan: apply-config, then reset EPHEMERAL and wait until it is back.

    ``held``: the replicas the node held before (from the storage gate); after the reset it must hold
    them again, diskful, UpToDate and connected.
    """
    manifest = to_yaml(docs)
    talos, ex = session.talos, session.executor
    if plan.blocked:
        raise PreconditionFailed(plan.blocked)
    if plan.apply_config:
        current = machineconfig.split_documents(talos.machine_config(node))
        merged = machineconfig.dump_documents(machineconfig.merge_documents(current, docs))
        talos.apply_config(node, merged, step=f"apply-config {node.name}", manifest=manifest)
    else:
        ex.unchanged(step=f"apply-config {node.name}", target=node.name, kind="talosctl", manifest=manifest,
                     command=["talosctl", "--nodes", node.address, "apply-config"])
    if plan.reset:
        applied = talos.reset(node, step=f"reset EPHEMERAL {node.name}", system_labels=["EPHEMERAL"],
                              graceful=True, reboot=True, timeout=f"{int(timeout)}s")
        if applied:
            wait_node_back(session, node, timeout=timeout)
            storage_gates.wait_back(session, node.name, held or {}, step=f"reset EPHEMERAL {node.name}",
                                    timeout=timeout)
    else:
        ex.unchanged(step=f"reset EPHEMERAL {node.name}", target=node.name, kind="talosctl", destructive=True,
                     command=["talosctl", "--nodes", node.address, "reset", "--system-labels-to-wipe", "EPHEMERAL"])


def wait_node_back(session: Session, node: NodeRef, *, timeout: float) -> None:
    """After a reset: the node Ready in Kubernetes and its user volume ready."""
    api = session.kube()
    label = session.params.storage.partition_label

    def ready():
        state = node_states(api).get(node.name)
        return (state is not None and state.ready == "True"), state

    wait_until(ready, what=f"{node.name} Ready", timeout=timeout,
               describe=lambda s: f"Ready={s.ready if s else 'not registered'}")

    def volume_ready():
        vols = {r["metadata"]["id"]: r["spec"] for r in session.talos.get(node, "volumestatus", label)}
        spec = vols.get(label, {})
        return spec.get("phase") == "ready", spec

    wait_until(volume_ready, what=f"{label} ready on {node.name}", timeout=timeout,
               describe=lambda s: f"phase={s.get('phase', 'absent')} {s.get('errorMessage', '')}".strip())


def verify(session: Session, layouts: list[NodeLayout]) -> None:
    """Record one check per node and property: EPHEMERAL capped, user volume ready and big enough."""
    storage = session.params.storage
    for lay in layouts:
        eph = lay.volume("EPHEMERAL") or {}
        user = lay.volume(storage.partition_label) or {}
        session.check(f"{lay.node}: EPHEMERAL capped", int(eph.get("size", 0)) <= storage.ephemeral_max_bytes,
                      format_iec(int(eph["size"])) if eph.get("size") else "absent", f"<= {storage.ephemeral_max_size}")
        session.check(f"{lay.node}: {storage.partition_label} ready", user.get("phase") == "ready",
                      user.get("phase", "absent") + (f" ({user['errorMessage']})" if user.get("errorMessage") else ""),
                      "ready")
        size = int(user.get("size", 0))
        session.check(f"{lay.node}: {storage.partition_label} size", size >= storage.min_bytes
                      and (storage.max_bytes is None or size <= storage.max_bytes),
                      format_iec(size) if user.get("size") else "absent",
                      f">= {storage.min_size}" + (f" and <= {storage.max_size}" if storage.max_size else ""))
        session.check(f"{lay.node}: {storage.partition_label} device", bool(user.get("location")),
                      user.get("location", "absent"), "a partition device")


def layout_frame(layouts: list[NodeLayout]) -> pd.DataFrame:
    """One row per partition of each node's disks, in disk order, plus unallocated space."""
    rows = []
    for lay in layouts:
        for disk in lay.disks:
            parts = sorted((p for p in lay.partitions if p.get("parent") == disk.get("dev_path", "").removeprefix("/dev/")
                            or p.get("parent_dev_path") == disk.get("dev_path")), key=lambda p: int(p.get("offset", 0)))
            used = 0
            for p in parts:
                size = int(p.get("size", 0))
                used += size
                rows.append({"node": lay.node, "disk": disk.get("dev_path"), "device": p.get("dev_path"),
                             "label": p.get("partition_label") or "", "filesystem": p.get("name") or "",
                             "size_bytes": size, "size_gib": round(size / 2**30, 2)})
            free = int(disk.get("size", 0)) - used
            if free > 2**20:
                rows.append({"node": lay.node, "disk": disk.get("dev_path"), "device": "", "label": "(free)",
                             "filesystem": "", "size_bytes": free, "size_gib": round(free / 2**30, 2)})
    return pd.DataFrame(rows, columns=["node", "disk", "device", "label", "filesystem", "size_bytes", "size_gib"])


def documents(params: Params) -> list[dict]:
    return volume_documents(params.storage)


__all__ = ["documents", "to_yaml", "validate_documents", "observe_all", "plan_all", "apply_all", "verify_all",
           "layout_frame", "plan_frame", "volumes_frame"]


def observe_all(session: Session, docs: list[dict]) -> list[NodeLayout]:
    return observe_nodes(session, list(session.nodes), docs)


def plan_all(session: Session, layouts: list[NodeLayout]) -> list[NodePlan]:
    plans = [plan_node(lay, session.params, node) for lay, node in zip(layouts, session.nodes, strict=True)]
    blocked = [p for p in plans if p.blocked]
    session.check("every node can be partitioned", not blocked,
                  "; ".join(f"{p.node}: {p.blocked}" for p in blocked) or "no node blocked", "no node blocked")
    session.result("plan", [{"node": p.node, "apply_config": p.apply_config, "reset": p.reset,
                             "reasons": p.reasons, "blocked": p.blocked} for p in plans])
    return plans


def apply_all(session: Session, plans: list[NodePlan], docs: list[dict], *, timeout: float) -> None:
    """Apply node by node. A blocked node stops everything before the first change."""
    blocked = [p for p in plans if p.blocked]
    if blocked:
        raise PreconditionFailed("; ".join(f"{p.node}: {p.blocked}" for p in blocked))
    # Every approval is checked before the first change, so a missing one leaves no node half done.
    for plan in plans:
        if plan.reset:
            session.executor.require_approval("reset", plan.node, f"reset EPHEMERAL {plan.node}")
    nodes = {n.name: n for n in session.nodes}
    for plan in plans:
        node = nodes[plan.node]
        held: dict[str, bool] = {}
        if plan.changes:
            print(f"{node.name}: {'; '.join(plan.reasons)}")
            cluster_healthy(session, timeout=timeout, exclude=node.name)
        else:
            print(f"{node.name}: already partitioned, nothing to do")
        if plan.reset:
            step = f"reset EPHEMERAL {node.name}"
            held = storage_gates.before_down(session, [node.name], step=step, optional=True)[node.name]
            snapshot_before(session, node, step=step)
        apply_node(session, node, plan, docs, timeout=timeout, held=held)
    if not session.dry_run and any(p.changes for p in plans):
        cluster_healthy(session, timeout=timeout)


def verify_all(session: Session, docs: list[dict]) -> list[NodeLayout]:
    """Re-read every node and record the checks (plan mode: the layout is only shown)."""
    layouts = observe_all(session, docs)
    if session.dry_run:
        print("plan mode: nothing was changed, so the result is not verified")
        return layouts
    verify(session, layouts)
    session.result("volumes", volumes_frame(session, layouts).to_dict(orient="records"))
    return layouts


def volumes_frame(session: Session, layouts: list[NodeLayout]) -> pd.DataFrame:
    """EPHEMERAL and the user volume per node: phase, device, size."""
    label = session.params.storage.partition_label
    rows = []
    for lay in layouts:
        for vid in ("EPHEMERAL", label):
            spec = lay.volume(vid) or {}
            rows.append({"node": lay.node, "volume": vid, "phase": spec.get("phase", "absent"),
                         "device": spec.get("location", ""), "size": spec.get("prettySize", ""),
                         "size_bytes": int(spec.get("size", 0) or 0), "talos": lay.talos_version})
    return pd.DataFrame(rows)
