"""Notebook 02: Image Factory installer with DRBD (and ZFS), kernel modules, rolling upgrade.

The schematic is rendered from the parameters, its ID predicted offline and checked
against the factory's answer; the installer image is built from that ID. Nodes are
upgraded one at a time behind health gates, and each must come back on the target
version, with the expected schematic and the DRBD modules loaded with
``usermode_helper=disabled``, before the next one starts. Kubernetes health is not
enough: the storage gates (:mod:`.storage_gates`) let a node go only when every
resource keeps a quorum of UpToDate copies elsewhere and no resync runs, and the next
node waits until the upgraded one holds every replica again, diskful and UpToDate
(after Talos v1.12.0 DRBD resources came back Diskless: siderolabs/talos#12478).
etcd is snapshotted before each control-plane node. A node already there is
verified and skipped, so a re-run after a failure resumes where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pandas as pd
import yaml

from . import storage_gates
from .errors import PreconditionFailed, RunbookError, TalosError
from .etcd_backup import snapshot_before
from .factory import ImageFactory, installer_image, schematic_id
from .kube import node_states
from .services.health import cluster_healthy
from .session import Session
from .talos import NodeRef
from .waiting import wait_until

# Kernel modules Piraeus needs on Talos (piraeus-operator docs/how-to/talos.md): without
# them LINSTOR reports "DRBD version has to be >= 9. Current DRBD version: 0.0.0".
DRBD_MODULES = [
    {"name": "drbd", "parameters": ["usermode_helper=disabled"]},
    {"name": "drbd_transport_tcp"},
]


def render_schematic(extensions: list[str]) -> dict:
    return {"customization": {"systemExtensions": {"officialExtensions": list(extensions)}}}


def kernel_modules(extensions: list[str]) -> list[dict]:
    modules = list(DRBD_MODULES) if "siderolabs/drbd" in extensions else []
    if "siderolabs/zfs" in extensions:
        modules.append({"name": "zfs"})  # the zfs extension's README asks for it explicitly
    return modules


def machine_config_patch(image: str, extensions: list[str]) -> str:
    """``machine.install.image`` (so later installs keep the extensions) and the kernel modules."""
    patch = {"machine": {"install": {"image": image}, "kernel": {"modules": kernel_modules(extensions)}}}
    return yaml.safe_dump(patch, sort_keys=False)


def factory_host(factory_url: str) -> str:
    """The registry host of the installer image: never the URL's userinfo (a password must not reach a node)."""
    parts = urlsplit(factory_url)
    host = parts.hostname or "factory.talos.dev"
    return f"{host}:{parts.port}" if parts.port else host


@dataclass
class Installer:
    schematic: dict
    predicted_id: str
    factory_id: str
    image: str


def prepare_installer(session: Session) -> Installer:
    """Check the version and extensions at the factory, register the schematic, compare IDs."""
    params = session.params
    schematic = render_schematic(params.extensions)
    predicted = schematic_id(schematic)
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
        # Registering a schematic is content-addressed and changes no cluster, so plan mode does it too.
        actual = factory.create_schematic(schematic)
    if not session.check("schematic ID matches the offline prediction", actual == predicted, actual, predicted):
        raise RunbookError(f"the Image Factory answered schematic ID {actual}, predicted {predicted}: stopping")
    image = installer_image(actual, params.talos_version, factory_host=factory_host(params.factory_url))
    session.result("schematic", {"id": actual, "extensions": params.extensions, "installer": image})
    return Installer(schematic, predicted, actual, image)


@dataclass
class NodeState:
    node: str
    version: str
    schematic: str | None
    extensions: dict[str, str]  # name -> version
    modules: list[str]
    usermode_helper: str | None

    def matches(self, inst: Installer, version: str, extensions: list[str]) -> bool:
        wanted = {e.split("/", 1)[1] for e in extensions}
        return (self.version == version and self.schematic == inst.factory_id and wanted <= set(self.extensions))

    def modules_ok(self, extensions: list[str]) -> bool:
        needed = {m["name"] for m in kernel_modules(extensions)}
        helper_ok = "drbd" not in needed or self.usermode_helper == "disabled"
        return needed <= set(self.modules) and helper_ok


def observe_nodes(session: Session, nodes: list[NodeRef]) -> list[NodeState]:
    """Version and extensions of all nodes in one ``talosctl`` call each; loaded modules per node
    (``talosctl read`` takes one node)."""
    talos = session.talos
    versions = talos.versions(nodes)
    extensions = talos.get_many(nodes, "extensions")
    states = []
    for node in nodes:
        exts = {}
        schematic = None
        for r in extensions[node.name]:
            meta = r["spec"].get("metadata", {})
            if meta.get("name") == "schematic":
                schematic = str(meta.get("version"))
            elif meta.get("name"):
                exts[meta["name"]] = str(meta.get("version", ""))
        modules = [line.split()[0] for line in talos.read(node, "/proc/modules").splitlines() if line.strip()]
        helper = None
        if "drbd" in modules:
            try:
                helper = talos.read(node, "/sys/module/drbd/parameters/usermode_helper").strip()
            except TalosError:
                helper = None
        states.append(NodeState(node.name, versions[node.name], schematic, exts, modules, helper))
    return states


def observe_all(session: Session) -> list[NodeState]:
    return observe_nodes(session, list(session.nodes))


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


def apply_config_patch(session: Session, installer: Installer) -> None:
    """Patch every node's config with the installer image and kernel modules (no reboot).

    Every upgrade still to do needs its ``upgrade <node>`` approval; all are checked
    before this first change, so a missing approval leaves no node half done.
    """
    params = session.params
    for node, state in zip(session.nodes, observe_all(session), strict=True):
        if not (state.matches(installer, params.talos_version, params.extensions) and state.modules_ok(params.extensions)):
            session.executor.require_approval("upgrade", node.name, f"upgrade {node.name}")
    patch = machine_config_patch(installer.image, session.params.extensions)
    wanted = yaml.safe_load(patch)["machine"]
    # One read for every node: a patch changes only its own node's configuration.
    configs = session.talos.machine_configs(list(session.nodes))
    for node in session.nodes:
        current = yaml.safe_load(configs[node.name].split("\n---", 1)[0]) or {}
        machine = current.get("machine", {})
        have = {"install": {"image": machine.get("install", {}).get("image")},
                "kernel": {"modules": machine.get("kernel", {}).get("modules", [])}}
        if have == wanted:
            session.executor.unchanged(step=f"patch machine config {node.name}", target=node.name, kind="talosctl",
                                       manifest=patch, command=["talosctl", "--nodes", node.address, "patch", "machineconfig"])
        else:
            session.talos.patch_machineconfig(node, patch, step=f"patch machine config {node.name}")


def rolling_upgrade(session: Session, installer: Installer, *, timeout: float) -> list[Downtime]:
    """Upgrade node by node; a node already on the target is verified and skipped."""
    params = session.params
    timeline: list[Downtime] = []
    # Every node's state read once up front: an upgrade changes only the node it runs on.
    for node, state in zip(session.nodes, observe_all(session), strict=True):
        if state.matches(installer, params.talos_version, params.extensions) and state.modules_ok(params.extensions):
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


def verify(session: Session, installer: Installer) -> list[NodeState]:
    params = session.params
    states = observe_all(session)
    if session.dry_run:
        print("plan mode: nothing was changed, so the result is not verified")
        return states
    for st in states:
        session.check(f"{st.node}: Talos version", st.version == params.talos_version, st.version, params.talos_version)
        session.check(f"{st.node}: schematic", st.schematic == installer.factory_id, st.schematic, installer.factory_id)
        for ext in params.extensions:
            short = ext.split("/", 1)[1]
            session.check(f"{st.node}: extension {short}", short in st.extensions, st.extensions.get(short, "absent"),
                          f"{short} for {params.talos_version}")
        for mod in kernel_modules(params.extensions):
            session.check(f"{st.node}: module {mod['name']} loaded", mod["name"] in st.modules,
                          "loaded" if mod["name"] in st.modules else "not loaded", "loaded")
        if "siderolabs/drbd" in params.extensions:
            session.check(f"{st.node}: drbd usermode_helper", st.usermode_helper == "disabled", st.usermode_helper,
                          "disabled")
    return states


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds") if ts else None


def downtime_frame(timeline: list[Downtime]) -> pd.DataFrame:
    return pd.DataFrame([{"node": d.node, "start": pd.Timestamp(d.start, unit="s", tz="UTC"),
                          "finish": pd.Timestamp(d.ready or d.back or d.start, unit="s", tz="UTC"),
                          "seconds": round((d.ready or d.back or d.start) - d.start, 2)} for d in timeline],
                        columns=["node", "start", "finish", "seconds"])
