"""The lab's Talos cluster: every node's state, advanced in lab time, and the operations the Talos API calls.

A pure, JSON-serializable model (no I/O, no threads, no wall clock): the lab server
owns one :class:`TalosCluster`, calls :meth:`TalosCluster.advance` with lab time
before each request, and :mod:`.api` turns requests into the operations below.

What is modelled, and where the behaviour comes from (the Talos sources are cited in
the comments next to each rule; "notes" means the project's reference notes on Talos):

- One system disk per node with a real GPT. Partition placement follows
  go-blockdevice v2 ``partitioning/gpt`` (``allocatableRanges``: first usable LBA 34,
  1 MiB alignment, backup entries at the end; ``AllocatePartition`` picks the smallest
  fitting free range). The installed layout is the UEFI (sd-boot) one: EFI, META,
  STATE, EPHEMERAL = ``p1..p4``.
- The volume manager (talos ``controllers/block/internal/volumes``): system volumes
  first, then user volumes ordered like ``CompareVolumeConfigs``; a volume whose
  partition label already exists is located and reused; otherwise a disk is chosen
  (``CheckDiskForProvisioning``) and ``CreatePartition`` takes ``maxSize`` or *all*
  of the largest free range; a located volume with ``grow`` grows into free space
  right after it (``grow.go``). Errors leave the volume ``failed`` with
  ``errorMessage`` (``volume_manager.go``: ``PreFailPhase = Phase; Phase = failed``).
- ``reset`` per ``v1alpha1_server.go`` ``Reset`` and the sequencer: graceful leaves
  etcd on control planes; system labels wipe volumes, and from v1.12.0 the wiped
  partition is dropped (notes §1.7); no labels wipes the whole system disk and the
  node comes back in maintenance mode.
- Timing: reboots take lab seconds, ``stuck-reboot`` and ``node-down`` faults hold
  nodes down, etcd quorum is computed from control-plane members.
- Upgrades swap the installer image, the schematic and its extension set; kernel
  modules from ``machine.kernel.modules`` load at boot only when present.

Not modelled: networking, services other than etcd/kubelet, encryption, multiple disks
per node (the code handles lists of disks, the cluster creates one), A/B rollback.
"""

from __future__ import annotations

import base64
import copy

from .config_apply import ConfigApplication
from .constants import DEFAULT_TALOS_VERSION, VANILLA_INSTALLER
from .errors import TalosAPIError
from .etcd import Etcd
from .gpt import _new_disk, install_system_partitions
from .lifecycle import NodeLifecycle
from .machine_config import SECRET_KEYS, generate_secrets, generate_v1alpha1
from .node import TalosNode
from .node_views import NodeViews
from .releases import parse_version
from .seeded import _Rand, rfc3339
from .volume_manager import VolumeManager


class TalosCluster(NodeLifecycle, VolumeManager, Etcd, NodeViews, ConfigApplication):
    """All Talos nodes of the lab. Every method is given lab time ``now`` (seconds)."""

    def __init__(self, nodes: dict[str, TalosNode], *, seed: int, cluster_name: str, epoch: float,
                 secrets: dict[str, str], talosctl_version: str, counter: int = 0) -> None:
        self.nodes = nodes
        self.seed = seed
        self.cluster_name = cluster_name
        self.epoch = epoch
        self.secrets = secrets
        self.talosctl_version = talosctl_version
        self.counter = counter  # feeds deterministic IDs (boot IDs, actor IDs, partition GUIDs)
        # Transient (not persisted): talosctl-fail bookkeeping per (invocation, node), see talos_api.
        self.api_calls: dict[tuple[str, str], bool] = {}

    # -- construction and persistence
    @classmethod
    def create(cls, nodes: list[dict], *, talos_version: str = DEFAULT_TALOS_VERSION,
               disk_size: int = 500_000_000_000, disk_transport: str = "nvme", seed: int = 1,
               cluster_name: str = "lab", epoch: float = 1767225600.0) -> TalosCluster:
        """A running cluster installed before the runbooks: default layout, EPHEMERAL over the whole disk."""
        parse_version(talos_version)
        secrets = generate_secrets(seed)
        cps = [n for n in nodes if n["role"] == "controlplane"]
        endpoint_ip = (cps or nodes)[0]["address"]
        cluster = cls({}, seed=seed, cluster_name=cluster_name, epoch=epoch, secrets=secrets,
                      talosctl_version=talos_version)
        for spec in nodes:
            disk = _new_disk(spec["name"], 0, disk_size, disk_transport, seed)
            image = f"{VANILLA_INSTALLER}:{talos_version}"
            node = TalosNode(name=spec["name"], address=spec["address"], role=spec["role"],
                             talos_version=talos_version, installer_image=image, disks=[disk],
                             node_id=_Rand(seed, f"nodeid:{spec['name']}").alnum(
                                 43, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))
            node.config = [generate_v1alpha1(spec["role"], hostname=spec["name"], install_disk=disk.dev_path,
                                             installer_image=image, endpoint_ip=endpoint_ip,
                                             cluster_name=cluster_name, secrets=secrets)]
            node.persisted = copy.deepcopy(node.config)
            install_system_partitions(disk, talos_version, seed, "initial")
            node.boot_id = cluster._uuid(f"boot:{node.name}")
            if node.role == "controlplane":
                node.etcd_member, node.etcd_data = True, True
                node.etcd_member_id = cluster._hex(16, f"etcd:{node.name}")
            cluster.nodes[node.name] = node
            cluster._reconcile(node, -660.0)  # first boot provisioned EPHEMERAL over the rest of the disk
            cluster._load_modules(node)
            cluster._touch(node, -660.0)
        return cluster

    def to_dict(self) -> dict:
        return {"seed": self.seed, "cluster_name": self.cluster_name, "epoch": self.epoch, "secrets": self.secrets,
                "talosctl_version": self.talosctl_version, "counter": self.counter,
                "nodes": [n.to_dict() for n in self.nodes.values()]}

    @classmethod
    def from_dict(cls, data: dict) -> TalosCluster:
        nodes = {n["name"]: TalosNode.from_dict(n) for n in data["nodes"]}
        return cls(nodes, seed=data["seed"], cluster_name=data["cluster_name"], epoch=data["epoch"],
                   secrets=data["secrets"], talosctl_version=data["talosctl_version"], counter=data["counter"])

    # -- identifiers
    def _next(self, purpose: str) -> _Rand:
        self.counter += 1
        return _Rand(self.seed, f"{purpose}:{self.counter}")

    def _uuid(self, purpose: str) -> str:
        return self._next(purpose).uuid()

    def _hex(self, n: int, purpose: str) -> str:
        return self._next(purpose).hex(n)

    # -- lookups
    def node_by_address(self, addr_or_name: str) -> TalosNode:
        for node in self.nodes.values():
            if addr_or_name in (node.address, node.name):
                return node
        raise KeyError(addr_or_name)

    def secret_values(self) -> list[str]:
        """Every secret string the lab's machine configs and talosconfig carry (outputs must not contain them)."""
        values = [self.secrets[k] for k in SECRET_KEYS]
        for value in list(values):
            if value.startswith("LS0t"):  # also the decoded PEM body, in case a tool prints it decoded
                values.append(base64.b64decode(value).decode())
        return values

    @property
    def client_key(self) -> str:
        """The talosconfig client key; talos_api accepts it as the bearer credential."""
        return self.secrets["client_key"]

    def talosconfig(self, endpoint: str, context: str = "lab") -> dict:
        cps = [n.address for n in self.nodes.values() if n.role == "controlplane"]
        return {"context": context, "contexts": {context: {
            "endpoints": [endpoint], "nodes": cps[:1], "ca": self.secrets["client_ca"],
            "crt": self.secrets["client_crt"], "key": self.secrets["client_key"]}}}

    def ts(self, now: float) -> str:
        return rfc3339(self.epoch, now)

    # -- API helpers
    def require_up(self, node: TalosNode, now: float, *, insecure: bool = False) -> None:
        """Raise the error talosctl sees when the node's API does not answer (or answers another TLS mode)."""
        if not node.is_up(now):
            raise TalosAPIError("Unavailable", 'connection error: desc = "transport: Error while dialing: '
                                f'dial tcp {node.address}:50000: connect: connection refused"')
        if node.maintenance and not insecure:
            raise TalosAPIError("Unavailable", 'connection error: desc = "transport: authentication handshake failed: '
                                "tls: failed to verify certificate: x509: certificate signed by unknown authority\"")
        if insecure and not node.maintenance:
            raise TalosAPIError("Unavailable", 'connection error: desc = "error reading server preface: remote error: '
                                'tls: certificate required"')

    def _new_action(self, node: TalosNode, kind: str, now: float) -> str:
        actor = self._uuid(f"actor:{node.name}")
        node.actions = {k: v for k, v in node.actions.items() if now - v["started"] < 7200}
        node.actions[actor] = {"kind": kind, "started": now, "boot_count": node.boot_count, "error": None}
        return actor

    def action_status(self, node: TalosNode, actor: str | None, now: float) -> dict:
        """What ``--wait`` observes: stage, readiness, boot ID and the action's error (node must be up)."""
        self.require_up(node, now, insecure=node.maintenance)
        ready, unmet = self._machine_ready(node, now)
        act = node.actions.get(actor or "", {})
        return {"stage": node.stage, "ready": ready, "unmet": unmet, "boot_id": node.boot_id,
                "boot_count": node.boot_count, "maintenance": node.maintenance, "error": act.get("error"),
                "action_boot_count": act.get("boot_count")}
