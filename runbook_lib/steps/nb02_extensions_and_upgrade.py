"""Notebook 02: Image Factory installers with DRBD (and ZFS), kernel modules, rolling upgrade.

Each storage node's current schematic is merged with the wanted extensions (:mod:`..schematics`:
nothing already there is dropped), its ID predicted offline and checked against the factory's
answer; the node's installer image (``<talos_platform>-installer[-secureboot]``) is built from
that ID. The machine configuration gets only what it lacks (:mod:`..machineconfig`), so a re-run
patches nothing. Storage nodes are upgraded one at a time behind health gates, and each must come
back on the target version, with its schematic and the DRBD modules loaded with
``usermode_helper=disabled``, before the next one starts. Kubernetes health is not
enough: the storage gates (:mod:`..storage_gates`) let a node go only when every
resource keeps a quorum of UpToDate copies elsewhere and no resync runs, and the next
node waits until the upgraded one holds every replica again, diskful and UpToDate
(after Talos v1.12.0 DRBD resources came back Diskless: siderolabs/talos#12478).
etcd is snapshotted before each control-plane node. A node already there is
verified and skipped, so a re-run after a failure resumes where it stopped. Nodes that
are not storage nodes are never read, patched or upgraded.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pandas as pd
import yaml

from .. import machineconfig, schematics, storage_gates
from ..errors import PreconditionFailed, RunbookError, TalosError
from ..etcd_backup import snapshot_before
from ..factory import ImageFactory, installer_image
from ..kube import node_states
from ..params import Storage
from ..services.health import cluster_healthy
from ..session import Session
from ..talos import NodeRef
from ..waiting import wait_until

# Kernel modules Piraeus needs on Talos (piraeus-operator docs/how-to/talos.md): without
# them LINSTOR reports "DRBD version has to be >= 9. Current DRBD version: 0.0.0".
DRBD_MODULES = [
    {"name": "drbd", "parameters": ["usermode_helper=disabled"]},
    {"name": "drbd_transport_tcp"},
]


def kernel_modules(extensions: list[str], storage: Storage | None = None) -> list[dict]:
    """The ``machine.kernel.modules`` entries the extensions and the pool need.

    ``zfs`` (the zfs extension's README asks for it) carries ``zfs_arc_max`` when ``storage.zfs_arc_max``
    is set: OpenZFS 2.4 lets the ARC grow to max(5/8 of RAM, RAM - 1 GiB) otherwise. ``dm_thin_pool``
    (an in-tree module Talos does not load by itself) is what LVM thin pools (``lvmThinPool``) run on.
    """
    modules = [dict(m) for m in DRBD_MODULES] if "siderolabs/drbd" in extensions else []
    if "siderolabs/zfs" in extensions:
        arc = storage.zfs_arc_max_bytes if storage is not None else None
        modules.append({"name": "zfs", "parameters": [f"zfs_arc_max={arc}"]} if arc else {"name": "zfs"})
    if storage is not None and storage.pool_type == "lvmThinPool":
        modules.append({"name": "dm_thin_pool"})
    return modules


def factory_host(factory_url: str) -> str:
    """The registry host of the installer image: never the URL's userinfo (a password must not reach a node)."""
    parts = urlsplit(factory_url)
    host = parts.hostname or "factory.talos.dev"
    return f"{host}:{parts.port}" if parts.port else host


@dataclass
class Installer:
    """One installer image: a merged schematic and its IDs."""

    schematic: dict
    predicted_id: str | None
    factory_id: str
    image: str


@dataclass
class ImagePlan:
    """Each storage node's merged schematic and installer; nodes whose merged schematics differ get their own."""

    nodes: dict[str, schematics.NodeSchematic]

    def installer(self, node: str) -> Installer:
        ns = self.nodes[node]
        return Installer(ns.merged, ns.predicted_id, ns.factory_id, ns.image)

    @property
    def images(self) -> list[str]:
        return list(dict.fromkeys(ns.image for ns in self.nodes.values()))


def prepare_installer(session: Session) -> ImagePlan:
    """Read every storage node's schematic, merge the wanted extensions in, register each merged schematic.

    Nothing on a node changes here; registering a schematic is content-addressed, so plan mode does it too.
    """
    params = session.params
    nodes = session.storage_nodes
    running = session.talos.get_many(nodes, "extensions")
    with ImageFactory(session.connection["factory_url"]) as factory:
        versions = factory.versions()
        if not session.check(f"Image Factory offers Talos {params.talos_version}", params.talos_version in versions,
                             params.talos_version in versions, True):
            raise PreconditionFailed(f"the Image Factory does not list Talos {params.talos_version}: check talos_version")
        offered = {e["name"] for e in factory.official_extensions(params.talos_version)}
        missing = [e for e in params.extensions if e not in offered]
        if not session.check("every extension is offered for that version", not missing, missing or "all offered",
                             "all offered"):
            raise PreconditionFailed(f"extensions not offered for {params.talos_version}: {', '.join(missing)}")
        plan: dict[str, schematics.NodeSchematic] = {}
        registered: dict[str, str] = {}
        for node in nodes:
            sid, exts = _schematic_of(running[node.name])
            current = schematics.current_schematic(factory, node.name, sid, exts)
            merged = schematics.merge(current, params.extensions)
            ns = schematics.NodeSchematic(node.name, sid, current, merged, schematics.predict(merged))
            gone = [e for e in schematics.extensions(merged) if e not in offered]
            if not session.check(f"{node.name}: every extension it keeps is offered for {params.talos_version}",
                                 not gone, gone or "all offered", "all offered"):
                raise PreconditionFailed(f"{node.name} runs {', '.join(gone)}, which the Image Factory does not offer "
                                         f"for {params.talos_version}: the upgrade would fail to pull its installer")
            key = yaml.safe_dump(merged, sort_keys=True)
            if key not in registered:
                registered[key] = factory.create_schematic(merged)
            ns.factory_id = registered[key]
            if ns.predicted_id is not None and not session.check(
                    f"{node.name}: schematic ID matches the offline prediction", ns.factory_id == ns.predicted_id,
                    ns.factory_id, ns.predicted_id):
                raise RunbookError(f"the Image Factory answered schematic ID {ns.factory_id} for {node.name}, "
                                   f"predicted {ns.predicted_id}: stopping")
            ns.image = installer_image(ns.factory_id, params.talos_version, factory_host=factory_host(params.factory_url),
                                       platform=params.talos_platform, secureboot=params.secureboot)
            plan[node.name] = ns
    session.result("schematics", [{"node": ns.node, "current": ns.current_id, "id": ns.factory_id,
                                   "added": ns.added, "kept": ns.kept, "kernel_args": schematics.kernel_args(ns.merged),
                                   "installer": ns.image} for ns in plan.values()])
    return ImagePlan(plan)


def _schematic_of(resources: list[dict]) -> tuple[str | None, dict[str, str]]:
    """(schematic ID or None, {extension name: version}) from a node's ExtensionStatus resources."""
    sid, exts = None, {}
    for r in resources:
        meta = r["spec"].get("metadata", {})
        if meta.get("name") == "schematic":
            sid = str(meta.get("version"))
        elif meta.get("name"):
            exts[meta["name"]] = str(meta.get("version", ""))
    return sid, exts


def schematics_frame(plan: ImagePlan) -> pd.DataFrame:
    """The difference per node, shown before anything is applied."""
    return pd.DataFrame([{"node": ns.node, "now": (ns.current_id or "vanilla")[:12], "after": ns.factory_id[:12],
                          "added": ", ".join(ns.added) or "nothing",
                          "kept": "; ".join(line[2:] for line in ns.difference() if line.startswith("=")) or "nothing",
                          "installer": ns.image} for ns in plan.nodes.values()])


@dataclass
class NodeState:
    node: str
    version: str
    schematic: str | None
    extensions: dict[str, str]  # name -> version
    modules: list[str]
    usermode_helper: str | None
    zfs_arc_max: str | None = None  # /sys/module/zfs/parameters/zfs_arc_max ("0": the OpenZFS default)

    def matches(self, inst: Installer, version: str, extensions: list[str]) -> bool:
        wanted = {e.split("/", 1)[1] for e in extensions}
        return (self.version == version and self.schematic == inst.factory_id and wanted <= set(self.extensions))

    def modules_ok(self, extensions: list[str], storage: Storage | None = None) -> bool:
        needed = {m["name"] for m in kernel_modules(extensions, storage)}
        helper_ok = "drbd" not in needed or self.usermode_helper == "disabled"
        return needed <= set(self.modules) and helper_ok and self.arc_ok(extensions, storage)

    def arc_ok(self, extensions: list[str], storage: Storage | None) -> bool:
        """The ARC cap is in effect (module parameters apply when the module loads, i.e. at a boot)."""
        arc = storage.zfs_arc_max_bytes if storage is not None else None
        return "siderolabs/zfs" not in extensions or arc is None or self.zfs_arc_max == str(arc)


def observe_nodes(session: Session, nodes: list[NodeRef]) -> list[NodeState]:
    """Version and extensions of all nodes in one ``talosctl`` call each; loaded modules and their parameters
    per node (``talosctl read`` takes one node), the nodes side by side."""
    talos = session.talos
    versions = talos.versions(nodes)
    extensions = talos.get_many(nodes, "extensions")
    loaded = talos.read_each(nodes, "/proc/modules")
    modules: dict[str, list[str]] = {}
    for node in nodes:
        text = loaded[node.name]
        if isinstance(text, TalosError):
            raise text
        modules[node.name] = [line.split()[0] for line in text.splitlines() if line.strip()]

    def parameter(module: str, path: str) -> dict[str, str]:
        """The module parameter on each node that has the module loaded and lets it be read."""
        found = talos.read_each([n for n in nodes if module in modules[n.name]], path)
        return {name: text.strip() for name, text in found.items() if isinstance(text, str)}

    helpers = parameter("drbd", "/sys/module/drbd/parameters/usermode_helper")
    arcs = parameter("zfs", "/sys/module/zfs/parameters/zfs_arc_max")
    states = []
    for node in nodes:
        schematic, exts = _schematic_of(extensions[node.name])
        states.append(NodeState(node.name, versions[node.name], schematic, exts, modules[node.name],
                                helpers.get(node.name), arcs.get(node.name)))
    return states


def observe_all(session: Session) -> list[NodeState]:
    """The storage nodes' state; other nodes are never read, patched or upgraded."""
    return observe_nodes(session, list(session.storage_nodes))


def states_frame(states: list[NodeState]) -> pd.DataFrame:
    return pd.DataFrame([{"node": s.node, "talos": s.version, "schematic": (s.schematic or "vanilla")[:12],
                          "extensions": ", ".join(f"{k} {v}" for k, v in sorted(s.extensions.items())) or "none",
                          "drbd modules": ", ".join(m for m in s.modules if m.startswith("drbd")) or "none",
                          "usermode_helper": s.usermode_helper or ""} for s in states])


@dataclass
class Downtime:
    node: str
    start: float
    back: float | None = None
    ready: float | None = None
    events: list[str] = field(default_factory=list)


def config_patches(session: Session, plan: ImagePlan) -> dict[str, list[str]]:
    """Per storage node, the patches its configuration still needs ([]: nothing): the installer image
    (``machine.install.image``, so a later install keeps the extensions) when it differs, and the kernel
    modules whose names are missing (or whose parameters differ; see :func:`machineconfig.modules_patches`).
    Each node's running configuration is read once and never written back."""
    params = session.params
    wanted = kernel_modules(params.extensions, params.storage)
    nodes = session.storage_nodes
    configs = session.talos.machine_configs(nodes)
    out: dict[str, list[str]] = {}
    for node in nodes:
        docs = machineconfig.split_documents(configs[node.name])
        main = next((d for d in docs if "machine" in d), {})
        image = plan.nodes[node.name].image
        patches = []
        if ((main.get("machine") or {}).get("install") or {}).get("image") != image:
            patches.append(yaml.safe_dump({"machine": {"install": {"image": image}}}, sort_keys=False))
        patches += machineconfig.modules_patches(machineconfig.config_modules(docs), wanted)
        out[node.name] = patches
    return out


def apply_config_patch(session: Session, plan: ImagePlan) -> dict[str, list[str]]:
    """Patch each storage node's config with what it lacks (no reboot); a node that lacks nothing is unchanged.

    Every upgrade still to do needs its ``upgrade <node>`` approval; all are checked
    before this first change, so a missing approval leaves no node half done. The record
    keeps only the patches (what was added), never the node's configuration.
    """
    params = session.params
    for node, state in zip(session.storage_nodes, observe_all(session), strict=True):
        if not (state.matches(plan.installer(node.name), params.talos_version, params.extensions)
                and state.modules_ok(params.extensions, params.storage)):
            session.executor.require_approval("upgrade", node.name, f"upgrade {node.name}")
    patches = config_patches(session, plan)
    for node in session.storage_nodes:
        todo = patches[node.name]
        step = f"patch machine config {node.name}"
        if not todo:
            session.executor.unchanged(step=step, target=node.name, kind="talosctl", manifest=None,
                                       command=["talosctl", "--nodes", node.address, "patch", "machineconfig"])
            continue
        # The image patch and a module-list patch go in one call, in order (talosctl --patch ... --patch ...).
        session.talos.patch_machineconfig(node, todo[0], step=step, then=todo[1:])
    return patches


def rolling_upgrade(session: Session, plan: ImagePlan, *, timeout: float) -> list[Downtime]:
    """Upgrade storage node by storage node; a node already on its target is verified and skipped."""
    params = session.params
    timeline: list[Downtime] = []
    # Every node's state read once up front: an upgrade changes only the node it runs on.
    for node, state in zip(session.storage_nodes, observe_all(session), strict=True):
        installer = plan.installer(node.name)
        if (state.matches(installer, params.talos_version, params.extensions)
                and state.modules_ok(params.extensions, params.storage)):
            print(f"{node.name}: already on {params.talos_version} with schematic {installer.factory_id[:12]}; skipped")
            session.executor.unchanged(step=f"upgrade {node.name}", target=node.name, kind="talosctl", destructive=True,
                                       command=["talosctl", "--nodes", node.address, "upgrade", "--image", installer.image])
            continue
        cluster_healthy(session, timeout=timeout, exclude=node.name)
        step = f"upgrade {node.name}"
        held = storage_gates.before_down(session, [node.name], step=step, optional=True)[node.name]
        snapshot_before(session, node, step=step)
        print(f"{node.name}: {'would upgrade' if session.dry_run else 'upgrading'} {state.version} -> {params.talos_version} ({installer.image})")
        down = Downtime(node.name, time.time())
        if session.talos.upgrade(node, installer.image, step=step, timeout=f"{int(timeout)}s"):
            down.back = time.time()
            wait_ready(session, node, timeout=timeout)
            storage_gates.wait_back(session, node.name, held, step=step, timeout=timeout)
            down.ready = time.time()
            timeline.append(down)
    if timeline:
        cluster_healthy(session, timeout=timeout)
    session.result("downtime", [{"node": d.node, "start": _iso(d.start), "back": _iso(d.back), "ready": _iso(d.ready),
                                 "seconds": round((d.ready or d.start) - d.start, 3)} for d in timeline])
    return timeline


def wait_ready(session: Session, node: NodeRef, *, timeout: float) -> None:
    api = session.kube()

    def probe():
        st = node_states(api).get(node.name)
        return (st is not None and st.ready == "True"), st

    wait_until(probe, what=f"{node.name} Ready after its upgrade", timeout=timeout,
               describe=lambda s: f"Ready={s.ready if s else 'not registered'}")


def verify(session: Session, plan: ImagePlan) -> list[NodeState]:
    params = session.params
    states = observe_all(session)
    if session.dry_run:
        print("plan mode: nothing was changed, so the result is not verified")
        return states
    for st in states:
        ns = plan.nodes[st.node]
        session.check(f"{st.node}: Talos version", st.version == params.talos_version, st.version, params.talos_version)
        session.check(f"{st.node}: schematic", st.schematic == ns.factory_id, st.schematic, ns.factory_id)
        for ext in schematics.extensions(ns.merged):
            short = ext.split("/", 1)[1]
            session.check(f"{st.node}: extension {short}", short in st.extensions, st.extensions.get(short, "absent"),
                          f"{short} for {params.talos_version}")
        for mod in kernel_modules(params.extensions, params.storage):
            session.check(f"{st.node}: module {mod['name']} loaded", mod["name"] in st.modules,
                          "loaded" if mod["name"] in st.modules else "not loaded", "loaded")
        arc = params.storage.zfs_arc_max_bytes
        if "siderolabs/zfs" in params.extensions and arc is not None:
            session.check(f"{st.node}: zfs_arc_max", st.zfs_arc_max == str(arc), st.zfs_arc_max, str(arc))
        if "siderolabs/drbd" in params.extensions:
            session.check(f"{st.node}: drbd usermode_helper", st.usermode_helper == "disabled", st.usermode_helper,
                          "disabled")
        args = schematics.kernel_args(ns.merged)
        if args:
            node = next(n for n in session.storage_nodes if n.name == st.node)
            cmdline = session.talos.read(node, "/proc/cmdline").split()
            lost = [a for a in args if a not in cmdline]
            session.check(f"{st.node}: kernel arguments kept", not lost, " ".join(lost) + " missing" if lost else
                          " ".join(args), " ".join(args))
    return states


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds") if ts else None


def downtime_frame(timeline: list[Downtime]) -> pd.DataFrame:
    return pd.DataFrame([{"node": d.node, "start": pd.Timestamp(d.start, unit="s", tz="UTC"),
                          "finish": pd.Timestamp(d.ready or d.back or d.start, unit="s", tz="UTC"),
                          "seconds": round((d.ready or d.back or d.start) - d.start, 2)} for d in timeline],
                        columns=["node", "start", "finish", "seconds"])
