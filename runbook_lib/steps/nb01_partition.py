"""Notebook 01: carve the storage partition out of each storage node's system disk.

Per storage node, in order: add the ``VolumeConfig`` and ``RawVolumeConfig`` documents
(``UserVolumeConfig`` before Talos v1.11, :mod:`..storage_layout`) to the running machine
configuration (``talosctl patch machineconfig``: only the missing documents, so a re-run
patches nothing), *then* reset EPHEMERAL so Talos re-creates it at the capped size and
gives the freed space to the new partition.
Resetting first would re-create EPHEMERAL from the old configuration and leave no
room for the user volume (the seed article's ordering trap). Nodes go one at a time
and the cluster must be healthy before each one; on a cluster that already runs LINSTOR
the storage gates decide too (:mod:`..storage_gates`), and etcd is snapshotted before a
control-plane node is reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .. import machineconfig, storage_gates, storage_layout
from ..errors import PreconditionFailed
from ..etcd_backup import snapshot_before
from ..kube import node_states
from ..layout_fit import layout_misfit
from ..manifests import to_yaml, volume_documents
from ..params import Params, Storage, supports_ephemeral_resize_by_reset
from ..services.health import cluster_healthy
from ..session import Session
from ..sizes import format_iec
from ..talos import NodeRef
from ..volume_rules import validate_documents
from ..waiting import wait_until


@dataclass
class NodeLayout:
    """What a node's disks look like, read from ``VolumeStatus`` and ``DiscoveredVolume``."""

    node: str
    talos_version: str
    volumes: dict[str, dict]  # VolumeStatus spec by ID
    partitions: list[dict]  # DiscoveredVolume specs of type partition
    disks: list[dict]  # DiscoveredVolume specs of type disk
    disk_specs: list[dict]  # Disk specs (transport, model, ...: what the disk selector sees)
    config: list[dict] = field(repr=False)  # the running configuration (read only, never written back; holds secrets)
    storage: storage_layout.NodeVolume  # LINSTOR's partition: raw volume, or the old user volume

    @property
    def docs(self) -> list[dict]:
        """The documents this node needs: none on the old layout (it is left alone)."""
        if self.storage.old_layout:
            return []
        return volume_documents(self.storage_params, self.talos_version)

    @property
    def patch(self) -> str | None:
        """The ``talosctl patch machineconfig`` text: only what the node lacks (None: nothing)."""
        return machineconfig.documents_patch(self.config, self.docs)

    storage_params: Storage = field(default_factory=Storage, repr=False)

    def volume(self, vid: str) -> dict | None:
        return self.volumes.get(vid)


@dataclass
class NodePlan:
    node: str
    apply_config: bool  # patch the machine configuration with the missing volume documents
    reset: bool
    reasons: list[str] = field(default_factory=list)
    blocked: str | None = None

    @property
    def changes(self) -> bool:
        return self.apply_config or self.reset


def observe(session: Session, node: NodeRef) -> NodeLayout:
    return observe_nodes(session, [node])[0]


def observe_nodes(session: Session, nodes: list[NodeRef]) -> list[NodeLayout]:
    """Read the nodes' layouts: five ``talosctl`` calls for all of them (version, volumes, discovered volumes,
    disks, config)."""
    talos = session.talos
    storage = session.params.storage
    versions = talos.versions(nodes)
    volumes = talos.get_many(nodes, "volumestatus")
    discovered = talos.get_many(nodes, "discoveredvolumes")
    disk_specs = talos.get_many(nodes, "disks")
    configs = talos.machine_configs(nodes)
    layouts = []
    for node in nodes:
        found = [r["spec"] for r in discovered[node.name]]
        current = machineconfig.split_documents(configs[node.name])
        vols = {r["metadata"]["id"]: r["spec"] for r in volumes[node.name]}
        parts = [d for d in found if d.get("type") == "partition"]
        layouts.append(NodeLayout(
            node=node.name,
            talos_version=versions[node.name],
            volumes=vols,
            partitions=parts,
            disks=[d for d in found if d.get("type") == "disk"],
            disk_specs=[r["spec"] for r in disk_specs[node.name]],
            config=current,
            storage=storage_layout.node_volume(node.name, storage, versions[node.name], vols, parts, current),
            storage_params=storage,
        ))
    return layouts


def plan_node(layout: NodeLayout, params: Params, node: NodeRef) -> NodePlan:
    """Decide what a node needs. Pure: the same layout always gives the same plan."""
    storage = params.storage
    if layout.storage.old_layout:
        return NodePlan(node=node.name, apply_config=False, reset=False,
                        reasons=[f"old layout ({storage.partition_label} handed to LINSTOR): left alone"])
    plan = NodePlan(node=node.name, apply_config=layout.patch is not None, reset=False)
    if plan.apply_config:
        plan.reasons.append("machine configuration lacks " + ", ".join(
            f"{d['kind']} {d['name']}" for d in machineconfig.documents_to_patch(layout.config, layout.docs)))
    eph = layout.volume("EPHEMERAL")
    user = layout.volume(layout.storage.label)
    eph_size = int(eph.get("size", 0)) if eph else 0
    if eph is None:
        plan.blocked = "no EPHEMERAL volume reported: is this node installed and running?"
        return plan
    if eph_size > storage.ephemeral_max_bytes:
        plan.reset = True
        plan.reasons.append(f"EPHEMERAL is {eph_size / 2**30:.1f} GiB, above the {storage.ephemeral_max_size} cap")
    elif user is None or user.get("phase") != "ready":
        plan.reasons.append(f"EPHEMERAL is capped; {layout.storage.label} is created when the configuration is applied")
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
    plan.blocked = layout_misfit(node.name, layout.disks, layout.partitions, storage, layout.storage.label,
                                  layout.disk_specs) or plan.blocked
    return plan


def plan_frame(plans: list[NodePlan]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"node": p.node, "apply-config": p.apply_config, "reset EPHEMERAL": p.reset,
          "why": "; ".join(p.reasons) or "already partitioned", "blocked": p.blocked or ""} for p in plans]
    )


def apply_node(session: Session, node: NodeRef, plan: NodePlan, layout: NodeLayout, *, timeout: float,
               held: dict[str, bool] | None = None) -> None:
    """Carry out a node's plan: patch in the missing documents, then reset EPHEMERAL and wait until it is back.

    ``held``: the replicas the node held before (from the storage gate); after the reset it must hold
    them again, diskful, UpToDate and connected.
    """
    talos, ex = session.talos, session.executor
    if plan.blocked:
        raise PreconditionFailed(plan.blocked)
    patch = layout.patch
    if plan.apply_config and patch:
        talos.patch_machineconfig(node, patch, step=f"patch machineconfig {node.name}")
    else:
        ex.unchanged(step=f"patch machineconfig {node.name}", target=node.name, kind="talosctl",
                     command=["talosctl", "--nodes", node.address, "patch", "machineconfig"])
    if plan.reset:
        applied = talos.reset(node, step=f"reset EPHEMERAL {node.name}", system_labels=["EPHEMERAL"],
                              graceful=True, reboot=True, timeout=f"{int(timeout)}s")
        if applied:
            wait_node_back(session, node, layout.storage.label, timeout=timeout)
            storage_gates.wait_back(session, node.name, held or {}, step=f"reset EPHEMERAL {node.name}",
                                    timeout=timeout)
    else:
        ex.unchanged(step=f"reset EPHEMERAL {node.name}", target=node.name, kind="talosctl", destructive=True,
                     command=["talosctl", "--nodes", node.address, "reset", "--system-labels-to-wipe", "EPHEMERAL"])


def wait_node_back(session: Session, node: NodeRef, label: str, *, timeout: float) -> None:
    """After a reset: the node Ready in Kubernetes and its LINSTOR partition (``label``) ready."""
    api = session.kube()

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
    """Record one check per node and property: EPHEMERAL capped, LINSTOR's partition ready and big enough.

    A node on the old layout is verified by its partition (present, big enough, holding xfs or LINSTOR's
    pool): its ``VolumeStatus`` is ``failed`` once LINSTOR has overwritten the filesystem, as expected.
    """
    storage = session.params.storage
    for lay in layouts:
        eph = lay.volume("EPHEMERAL") or {}
        vol = lay.storage
        session.check(f"{lay.node}: EPHEMERAL capped", int(eph.get("size", 0)) <= storage.ephemeral_max_bytes,
                      format_iec(int(eph["size"])) if eph.get("size") else "absent", f"<= {storage.ephemeral_max_size}")
        size = vol.size
        size_ok = size >= storage.min_bytes and (storage.max_bytes is None or size <= storage.max_bytes)
        wanted_size = f">= {storage.min_size}" + (f" and <= {storage.max_size}" if storage.max_size else "")
        if vol.old_layout:
            expected = {"xfs", storage_layout.pool_signature(storage)}
            phase = vol.status.get("phase", "absent")
            session.check(f"{lay.node}: {vol.label} (old layout) present", vol.partition is not None
                          and vol.signature in expected,
                          f"{vol.device or 'absent'}, {vol.signature or 'blank'}, VolumeStatus {phase}"
                          + (f" ({vol.status['errorMessage']})" if vol.status.get("errorMessage") else ""),
                          f"a partition holding {' or '.join(sorted(expected))}")
            session.check(f"{lay.node}: {vol.label} size", size_ok, format_iec(size) if size else "absent", wanted_size)
            print(storage_layout.migration_steps(lay.node, storage))
            continue
        spec = vol.status
        session.check(f"{lay.node}: {vol.label} ready", spec.get("phase") == "ready",
                      spec.get("phase", "absent") + (f" ({spec['errorMessage']})" if spec.get("errorMessage") else ""),
                      "ready")
        session.check(f"{lay.node}: {vol.label} size", size_ok, format_iec(size) if spec.get("size") else "absent",
                      wanted_size)
        session.check(f"{lay.node}: {vol.label} device", bool(spec.get("location")),
                      spec.get("location", "absent"), "a partition device")


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
    """The documents for the target Talos version (each node gets the ones for the version it runs)."""
    return volume_documents(params.storage, params.talos_version)


__all__ = ["documents", "to_yaml", "validate_documents", "observe_all", "plan_all", "apply_all", "verify_all",
           "layout_frame", "plan_frame", "volumes_frame"]


def observe_all(session: Session) -> list[NodeLayout]:
    """The storage nodes' layouts; no other node is read or touched."""
    return observe_nodes(session, list(session.storage_nodes))


def plan_all(session: Session, layouts: list[NodeLayout]) -> list[NodePlan]:
    plans = [plan_node(lay, session.params, node) for lay, node in zip(layouts, session.storage_nodes, strict=True)]
    blocked = [p for p in plans if p.blocked]
    session.check("every node can be partitioned", not blocked,
                  "; ".join(f"{p.node}: {p.blocked}" for p in blocked) or "no node blocked", "no node blocked")
    session.result("plan", [{"node": p.node, "apply_config": p.apply_config, "reset": p.reset,
                             "reasons": p.reasons, "blocked": p.blocked} for p in plans])
    skipped = [n.name for n in session.nodes if n not in session.storage_nodes]
    if skipped:
        print(f"not storage nodes (storage: false), left alone: {', '.join(skipped)}")
    return plans


def apply_all(session: Session, plans: list[NodePlan], layouts: list[NodeLayout], *, timeout: float) -> None:
    """Apply node by node. A blocked node stops everything before the first change."""
    blocked = [p for p in plans if p.blocked]
    if blocked:
        raise PreconditionFailed("; ".join(f"{p.node}: {p.blocked}" for p in blocked))
    # Every approval is checked before the first change, so a missing one leaves no node half done.
    for plan in plans:
        if plan.reset:
            session.executor.require_approval("reset", plan.node, f"reset EPHEMERAL {plan.node}")
    nodes = {n.name: n for n in session.storage_nodes}
    by_node = {lay.node: lay for lay in layouts}
    for plan in plans:
        node = nodes[plan.node]
        held: dict[str, bool] = {}
        if plan.changes:
            print(f"{node.name}: {'; '.join(plan.reasons)}")
            cluster_healthy(session, timeout=timeout, exclude=node.name)
        else:
            print(f"{node.name}: {'; '.join(plan.reasons) or 'already partitioned'}, nothing to do")
        if plan.reset:
            step = f"reset EPHEMERAL {node.name}"
            held = storage_gates.before_down(session, [node.name], step=step, optional=True)[node.name]
            snapshot_before(session, node, step=step)
        apply_node(session, node, plan, by_node[plan.node], timeout=timeout, held=held)
    if not session.dry_run and any(p.changes for p in plans):
        cluster_healthy(session, timeout=timeout)


def verify_all(session: Session) -> list[NodeLayout]:
    """Re-read every storage node and record the checks (plan mode: the layout is only shown)."""
    layouts = observe_all(session)
    if session.dry_run:
        print("plan mode: nothing was changed, so the result is not verified")
        return layouts
    verify(session, layouts)
    session.result("volumes", volumes_frame(session, layouts).to_dict(orient="records"))
    return layouts


def volumes_frame(session: Session, layouts: list[NodeLayout]) -> pd.DataFrame:
    """EPHEMERAL and LINSTOR's partition per node: phase, device, size, signature."""
    rows = []
    for lay in layouts:
        for vid in ("EPHEMERAL", lay.storage.label):
            spec = lay.volume(vid) or {}
            rows.append({"node": lay.node, "volume": vid, "phase": spec.get("phase", "absent"),
                         "device": spec.get("location", ""), "size": spec.get("prettySize", ""),
                         "size_bytes": int(spec.get("size", 0) or 0), "talos": lay.talos_version,
                         "layout": "old (user volume)" if vid != "EPHEMERAL" and lay.storage.old_layout else ""})
    return pd.DataFrame(rows)
