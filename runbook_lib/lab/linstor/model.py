"""The lab's LINSTOR controller: nodes, storage pools, resources with DRBD state, snapshots.

A pure, JSON-serializable model (no I/O, no Kubernetes). The Piraeus operator model
(:mod:`.piraeus`) registers nodes and creates pools through it, linstor-csi (:mod:`.csi`)
places and attaches volumes through it, and :mod:`.linstor_api` renders it as LINSTOR REST
JSON (REST API 1.27, linstor-server v1.33 ``docs/rest_v1_openapi.yaml``).

Behaviour and where it comes from:

- Return codes are LINSTOR's masked ``ApiCallRc`` codes (golinstor ``apiconsts.go``,
  generated from ``ApiConsts.java``): error/warn/info mask | operation mask | object mask | code.
- Storage providers: ``supports_snapshots`` per ``DeviceProviderKind.isSnapshotSupported``
  (thick LVM false; LVM_THIN, ZFS, ZFS_THIN true). Pool capacities are KiB; DISKLESS pools
  report ``Long.MAX_VALUE``. A pool whose backing store does not exist stays in the pool
  list with zero capacity and a "Failed to query free space from storage pool" report, as a
  real satellite reports it.
- Device pools (``linstor physical-storage create-device-pool``, used by Piraeus for
  ``source.hostDevices``): ZFS runs ``zpool create -f`` (linstor-server ``ZfsCommands``), so
  a mounted device is busy and fails; LVM's ``pvcreate`` refuses a device with a signature.
  Sizes: ZFS reserves slop space (1/32 of the pool, OpenZFS ``spa_slop_shift``), LVM uses
  4 MiB extents after a 1 MiB metadata area, thin pools keep metadata + spare metadata LVs.
- DRBD: internal metadata per volume (activity log 32 KiB + bitmap per peer slot, 7 slots by
  default, matching the captured ``view/resources`` samples: 1 GiB usable -> 1048840 KiB),
  node ids per resource, TCP ports from 7000, minors from 1000; connections follow the
  satellites' reachability; ``may_promote``/``promotion_score`` as the samples show them.
- Auto-placement: storage pool, free space (thin: times ``MaxOversubscriptionRatio``),
  ``replicas_on_same``/``replicas_on_different``, a preferred node first; a DRBD resource
  with 2 diskful replicas gets a diskless ``TIE_BREAKER`` on a third node and LINSTOR sets
  ``DrbdOptions/Resource/quorum`` to ``majority`` when quorum is feasible, else ``off``
  (reference notes §6, ``CtrlRscAutoQuorumHelper``).

Later features extend :class:`Replica` (disk states, resync, suspended IO) and
:class:`Snapshot` (space held as data diverges); the JSON builders already show them.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

LONG_MAX = 2**63 - 1
MIB_KIB = 1024
GIB_KIB = 1024 * 1024
DISKLESS_POOL = "DfltDisklessStorPool"
DEFAULT_RG = "DfltRscGrp"
PEER_SLOTS = 7
AL_KIB = 32
DRBD_SUPERBLOCK_KIB = 8
LVM_EXTENT_KIB = 4 * MIB_KIB
ZFS_VOLBLOCK_KIB = 16
THIN_CHUNK_KIB = 64
MAX_OVERSUBSCRIPTION = 20.0  # LINSTOR's default MaxOversubscriptionRatio for thin pools

CONTROLLER_VERSION = {"version": "1.33.3", "git_hash": "1ff3a1ea5cb5c77100265ec442bb9a492b225145",
                      "build_time": "2026-05-11T08:12:41+00:00", "rest_api_version": "1.27.0"}

# ---------------------------------------------------------------------------- return codes
# golinstor apiconsts.go (generated from LINSTOR's ApiConsts).
MASK_ERROR, MASK_WARN, MASK_INFO = 0xC000000000000000, 0x8000000000000000, 0x4000000000000000
MASK_CRT, MASK_MOD, MASK_DEL = 0x01000000, 0x02000000, 0x03000000
MASK_NODE, MASK_RSC_DFN, MASK_RSC, MASK_VLM_DFN = 0x3C0000, 0x380000, 0x340000, 0x300000
MASK_STOR_POOL, MASK_CTRL_CONF, MASK_SNAPSHOT, MASK_RSC_GRP = 0x140000, 0x100000, 0x0C0000, 0x440000
MASK_PHYS_DEV = 0x4C0000
CREATED, DELETED, MODIFIED = 1, 2, 3
FAIL_INVLD_PROP = 213
FAIL_NOT_FOUND_NODE, FAIL_NOT_FOUND_RSC_DFN, FAIL_NOT_FOUND_RSC = 300, 301, 302
FAIL_NOT_FOUND_STOR_POOL, FAIL_NOT_FOUND_SNAPSHOT, FAIL_NOT_FOUND_RSC_GRP = 310, 315, 317
FAIL_EXISTS_NODE, FAIL_EXISTS_RSC_DFN, FAIL_EXISTS_RSC, FAIL_EXISTS_STOR_POOL = 500, 501, 502, 510
FAIL_EXISTS_SNAPSHOT, FAIL_EXISTS_RSC_GRP = 516, 522
FAIL_NOT_ENOUGH_FREE_SPACE, FAIL_STLT_NO_LAYER, FAIL_STLT_NO_PROVIDER = 980, 988, 989
FAIL_SNAPSHOTS_NOT_SUPPORTED, FAIL_NOT_CONNECTED, FAIL_NOT_ENOUGH_NODES = 994, 995, 996
FAIL_IN_USE, FAIL_UNKNOWN_ERROR = 997, 998
WARN_NOT_ENOUGH_NODES_FOR_TIE_BREAKER, WARN_NOT_CONNECTED = 1013, 1002
INFO_TIE_BREAKER_CREATED, INFO_TIE_BREAKER_DELETING, INFO_TIE_BREAKER_TAKEOVER = 10003, 10004, 10006


def ret_code(code: int, *masks: int) -> int:
    """The masked return code as Java's signed ``long`` (what the JSON carries)."""
    value = code
    for m in masks:
        value |= m
    return value - 2**64 if value >= 2**63 else value


def api_rc(code: int, message: str, *, cause: str | None = None, details: str | None = None,
           correction: str | None = None, obj_refs: dict | None = None, error_ids: list[str] | None = None) -> dict:
    rc: dict[str, Any] = {"ret_code": code, "message": message}
    if cause:
        rc["cause"] = cause
    if details:
        rc["details"] = details
    if correction:
        rc["correction"] = correction
    if error_ids:
        rc["error_report_ids"] = error_ids
    if obj_refs:
        rc["obj_refs"] = obj_refs
    return rc


class LinstorError(Exception):
    """A failed API call: the ApiCallRc list LINSTOR answers with, and the HTTP status."""

    def __init__(self, rcs: list[dict], http_status: int = 500) -> None:
        super().__init__("; ".join(rc["message"] for rc in rcs))
        self.rcs = rcs
        self.http_status = http_status


def not_found(code: int, mask: int, what: str, http: int = 404) -> LinstorError:
    return LinstorError([api_rc(ret_code(code, MASK_ERROR, mask), f"{what} not found.")], http)


# ---------------------------------------------------------------------------- providers


#: the ZFS userland in the satellite image (piraeus-server); the module comes from the node's zfs extension,
#: and a mismatch breaks ``zfs create`` (piraeus-operator#635)
SATELLITE_ZFS_USERLAND = "2.3.4"


@dataclass(frozen=True)
class ProviderTraits:
    snapshots: bool
    thin: bool


# DeviceProviderKind.java (isSnapshotSupported, first constructor argument) and the provisioning kind.
PROVIDERS = {
    "DISKLESS": ProviderTraits(False, False),
    "LVM": ProviderTraits(False, False),
    "LVM_THIN": ProviderTraits(True, True),
    "ZFS": ProviderTraits(True, False),
    "ZFS_THIN": ProviderTraits(True, True),
    "FILE": ProviderTraits(True, False),
    "FILE_THIN": ProviderTraits(True, True),
}


@dataclass
class DeviceInfo:
    """A host block device as the satellite sees it."""

    path: str
    size_bytes: int
    signature: str | None  # probed filesystem/label signature, None when blank
    mounted_at: str | None = None


@dataclass
class SatelliteFacts:
    """What a connected satellite reports about its host."""

    drbd_version: str | None  # loaded DRBD 9 module version, None when DRBD is unusable
    zfs: bool
    devices: dict[str, DeviceInfo] = field(default_factory=dict)


def drbd_md_kib(size_kib: int, peers: int = PEER_SLOTS) -> int:
    """DRBD internal metadata for a volume: superblock + activity log + one bitmap per peer slot."""
    per_peer = math.ceil(size_kib / 32768 / 4) * 4
    return DRBD_SUPERBLOCK_KIB + AL_KIB + peers * per_peer


def round_up(value: int, step: int) -> int:
    return -(-value // step) * step


# ---------------------------------------------------------------------------- objects


@dataclass
class Node:
    name: str
    uuid: str
    address: str
    props: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    online: bool = False
    facts: dict | None = None  # last SatelliteFacts reported (asdict), kept while offline
    net_name: str = "default"

    def drbd_ok(self) -> bool:
        return bool(self.facts and self.facts.get("drbd_version"))

    def supports(self, kind: str) -> bool:
        if kind in ("ZFS", "ZFS_THIN"):
            return bool(self.facts and self.facts.get("zfs"))
        return kind in PROVIDERS


@dataclass
class StoragePool:
    node: str
    name: str
    kind: str
    uuid: str
    backing: str = ""  # zpool, VG or "VG/thinpool"
    props: dict[str, str] = field(default_factory=dict)
    total_kib: int = 0
    devices: list[str] = field(default_factory=list)
    error: dict | None = None  # ApiCallRc while the backing store cannot be queried
    full: bool = False  # set by the lab's pool-full fault

    @property
    def traits(self) -> ProviderTraits:
        return PROVIDERS.get(self.kind, ProviderTraits(False, False))


@dataclass
class VolumeDefinition:
    number: int
    size_kib: int
    minor: int
    uuid: str
    props: dict[str, str] = field(default_factory=dict)


@dataclass
class Replica:
    """One resource (an RD deployed on a node) with its DRBD state."""

    node: str
    uuid: str
    node_id: int
    pool: str
    flags: list[str] = field(default_factory=list)
    props: dict[str, str] = field(default_factory=dict)
    create_ms: int = 0
    disk_state: str = "UpToDate"  # diskful: UpToDate/Inconsistent/Outdated/...; diskless: Diskless
    role: str = "Secondary"
    written_kib: int = 0  # data written through this replica's backing device (thin accounting)
    sync: dict | None = None  # {"source": node, "done_kib": n, "total_kib": n} while resyncing
    via_attach: bool = False  # diskless replica created by linstor-csi for a remote consumer

    @property
    def diskless(self) -> bool:
        return "DISKLESS" in self.flags

    @property
    def tiebreaker(self) -> bool:
        return "TIE_BREAKER" in self.flags


@dataclass
class ResourceDefinition:
    name: str
    uuid: str
    resource_group: str
    port: int
    secret: str
    layers: list[str]
    props: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    volumes: list[VolumeDefinition] = field(default_factory=list)
    replicas: dict[str, Replica] = field(default_factory=dict)
    external_name: str = ""

    @property
    def drbd(self) -> bool:
        return "DRBD" in self.layers


@dataclass
class ResourceGroup:
    name: str
    uuid: str
    description: str = ""
    props: dict[str, str] = field(default_factory=dict)
    select_filter: dict = field(default_factory=dict)


@dataclass
class Snapshot:
    resource: str
    name: str
    uuid: str
    nodes: list[str]
    create_ms: int
    sizes_kib: list[int]
    flags: list[str] = field(default_factory=lambda: ["SUCCESSFUL"])
    props: dict[str, str] = field(default_factory=dict)
    held_kib: dict[str, int] = field(default_factory=dict)  # node -> space the snapshot pins


# ---------------------------------------------------------------------------- the controller


class LinstorController:
    """LINSTOR's data model and the operations the lab's operator, CSI driver and REST use."""

    def __init__(self, *, seed: int = 1, counter: int = 0) -> None:
        self.seed = seed
        self.counter = counter
        self.props: dict[str, str] = {}
        self.nodes: dict[str, Node] = {}
        self.pools: dict[str, dict[str, StoragePool]] = {}  # node -> name -> pool
        self.groups: dict[str, ResourceGroup] = {}
        self.rds: dict[str, ResourceDefinition] = {}
        self.snapshots: dict[str, dict[str, Snapshot]] = {}  # rd -> name -> snapshot
        self.next_port = 7000
        self.next_minor = 1000
        self.reports: list[dict] = []  # error reports (GET /v1/error-reports), oldest first
        # Set by the lab before each use (not persisted): network partitions and the wall clock.
        self.partitioned: Callable[[str, str], bool] = lambda a, b: False
        # The lab's DRBD data plane (:mod:`.drbd`) answers these once it is attached.
        self.link: Callable[[str, str, str], bool] | None = None  # (resource, node, peer) -> connected
        self.quorum_enforced: Callable[[], bool] = lambda: True
        self.alive: Callable[[str], bool] | None = None  # DRBD runs on the node (with or without the controller)
        self.split_brain: Callable[[str, str, str], bool] = lambda rd, a, b: False  # (resource, node, peer)
        self.now_ms: Callable[[], int] = lambda: 0
        self.ensure_defaults()

    # -- persistence
    def to_dict(self) -> dict:
        return {"seed": self.seed, "counter": self.counter, "props": self.props,
                "nodes": [asdict(n) for n in self.nodes.values()],
                "pools": [asdict(p) for ps in self.pools.values() for p in ps.values()],
                "groups": [asdict(g) for g in self.groups.values()],
                "rds": [asdict(r) for r in self.rds.values()],
                "snapshots": [asdict(s) for ss in self.snapshots.values() for s in ss.values()],
                "next_port": self.next_port, "next_minor": self.next_minor, "reports": self.reports}

    @classmethod
    def from_dict(cls, data: dict | None) -> LinstorController:
        data = data or {}
        ctl = cls(seed=int(data.get("seed", 1)), counter=int(data.get("counter", 0)))
        ctl.props = dict(data.get("props", ctl.props))
        ctl.nodes = {n["name"]: Node(**n) for n in data.get("nodes", [])}
        ctl.pools = {}
        for p in data.get("pools", []):
            ctl.pools.setdefault(p["node"], {})[p["name"]] = StoragePool(**p)
        ctl.groups = {g["name"]: ResourceGroup(**g) for g in data.get("groups", [])} or ctl.groups
        for r in data.get("rds", []):
            r = dict(r)
            vols = [VolumeDefinition(**v) for v in r.pop("volumes", [])]
            reps = {k: Replica(**v) for k, v in r.pop("replicas", {}).items()}
            ctl.rds[r["name"]] = ResourceDefinition(**r, volumes=vols, replicas=reps)
        for s in data.get("snapshots", []):
            ctl.snapshots.setdefault(s["resource"], {})[s["name"]] = Snapshot(**s)
        ctl.next_port = int(data.get("next_port", 7000))
        ctl.next_minor = int(data.get("next_minor", 1000))
        ctl.reports = list(data.get("reports", []))
        ctl.ensure_defaults()
        ctl.counter = int(data.get("counter", ctl.counter))  # the constructor's defaults drew ids already
        return ctl

    def ensure_defaults(self) -> None:
        """What a fresh LINSTOR database holds (DB init migration)."""
        if DEFAULT_RG not in self.groups:
            self.groups[DEFAULT_RG] = ResourceGroup(DEFAULT_RG, self._uuid("rg:" + DEFAULT_RG))
        self.props.setdefault("DrbdOptions/auto-add-quorum-tiebreaker", "True")

    # -- ids
    def _uuid(self, purpose: str) -> str:
        self.counter += 1
        digest = hashlib.sha256(f"{self.seed}:{purpose}:{self.counter}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    def _secret(self, name: str) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        digest = hashlib.sha256(f"{self.seed}:secret:{name}:{self.counter}".encode()).digest()
        return "".join(alphabet[b % len(alphabet)] for b in digest[:20])

    # -- controller properties
    def modify_props(self, override: dict[str, str], delete: list[str] | None = None) -> list[dict]:
        rcs = []
        for key, value in override.items():
            if not isinstance(value, str):
                raise LinstorError([api_rc(ret_code(FAIL_INVLD_PROP, MASK_ERROR, MASK_CTRL_CONF),
                                           f"Invalid value for property '{key}'")], 400)
            self.props[key] = value
            if key.endswith("/auto-quorum"):
                # LINSTOR >= 1.31 (CtrlPropsHelper): deprecated, no effect (reference notes §6)
                rcs.append(api_rc(ret_code(0, MASK_WARN, MASK_CTRL_CONF),
                                  f"The property '{key}' is deprecated, please use DrbdOptions/Resource/quorum"))
        for key in delete or []:
            self.props.pop(key, None)
        rcs.append(api_rc(ret_code(MODIFIED, MASK_MOD, MASK_CTRL_CONF), "Successfully set property key(s)" if override
                          else "Successfully deleted property key(s)"))
        return rcs

    # -- nodes
    def create_or_update_node(self, name: str, address: str, props: dict[str, str], net_name: str = "default") -> Node:
        node = self.nodes.get(name)
        if node is None:
            node = self.nodes[name] = Node(name, self._uuid("node:" + name), address,
                                           props={"CurStltConnName": net_name, "NodeUname": name}, net_name=net_name)
        node.address, node.net_name = address, net_name
        node.props.update(props)
        node.props["CurStltConnName"] = net_name
        pools = self.pools.setdefault(name, {})
        if DISKLESS_POOL not in pools:
            pools[DISKLESS_POOL] = StoragePool(name, DISKLESS_POOL, "DISKLESS", self._uuid("sp:" + name))
        return node

    def delete_node(self, name: str) -> None:
        if name not in self.nodes:
            raise not_found(FAIL_NOT_FOUND_NODE, MASK_NODE, f"Node '{name}'")
        if any(name in rd.replicas for rd in self.rds.values()):
            raise LinstorError([api_rc(ret_code(FAIL_IN_USE, MASK_ERROR, MASK_DEL, MASK_NODE),
                                       f"Node '{name}' can not be deleted as it has resources deployed")], 400)
        del self.nodes[name]
        self.pools.pop(name, None)

    def set_online(self, name: str, online: bool, facts: SatelliteFacts | None) -> None:
        node = self.nodes.get(name)
        if node is None:
            return
        node.online = online
        if online and facts is not None:
            node.facts = asdict(facts)

    # -- storage pools
    def create_device_pool(self, node_name: str, kind: str, pool_name: str, devices: list[str], sp_name: str,
                           props: dict[str, str]) -> tuple[list[dict], dict[str, str]]:
        """``POST /v1/physical-storage/{node}``: build the backing store from raw devices and, on
        success, the storage pool. Returns (ApiCallRcs, {device: new signature})."""
        node = self._online_node(node_name)
        where = f"(Node: '{node_name}')"
        if not node.supports(kind):
            raise LinstorError([api_rc(ret_code(FAIL_STLT_NO_PROVIDER, MASK_ERROR, MASK_CRT, MASK_PHYS_DEV),
                                       f"The satellite does not support the device provider {kind}")], 500)
        devs = (node.facts or {}).get("devices", {})
        signature = "zfs_member" if kind.startswith("ZFS") else "LVM2_member"
        for path in devices:
            dev = devs.get(path)
            if kind.startswith("ZFS"):
                cmd = f"zpool create -f {pool_name} {' '.join(devices)}"
                stderr = None
                if dev is None:
                    stderr = f"cannot open '{path}': No such device or address\ncannot create '{pool_name}': one or more devices is currently unavailable"
                elif dev.get("mounted_at"):
                    stderr = (f"cannot open '{path}': Device or resource busy\ncannot create '{pool_name}': one or more vdevs refer "
                              "to the same device, or one of the devices is part of an active md or lvm device")
                if stderr:
                    raise LinstorError([api_rc(ret_code(FAIL_UNKNOWN_ERROR, MASK_ERROR, MASK_CRT, MASK_PHYS_DEV),
                                               f"{where} Failed to create zpool: {pool_name}",
                                               details=f"Command '{cmd}' returned with exitcode 1. \n\nStandard out: \n\n\nError message: \n{stderr}\n",
                                               error_ids=[self._report_id(node_name, f"Failed to create zpool: {pool_name}", stderr)])], 500)
            else:
                vg = pool_name.split("/", 1)[0]
                stderr = None
                if dev is None:
                    stderr = f"  No device found for {path}."
                elif dev.get("mounted_at"):
                    stderr = f"  Can't open {path} exclusively.  Mounted filesystem?"
                elif dev.get("signature"):
                    sig = dev["signature"]
                    stderr = (f"WARNING: {sig} signature detected on {path} at offset 0. Wipe it? [y/n]: [n]\n"
                              f"  Aborted wiping of {sig}.\n  1 existing signature left on the device.")
                if stderr:
                    raise LinstorError([api_rc(ret_code(FAIL_UNKNOWN_ERROR, MASK_ERROR, MASK_CRT, MASK_PHYS_DEV),
                                               f"{where} Failed to pvcreate on device(s): {' '.join(devices)} (volume group '{vg}')",
                                               details=f"Command 'pvcreate {' '.join(devices)}' returned with exitcode 5. \n\nStandard out: \n\n\nError message: \n{stderr}\n",
                                               error_ids=[self._report_id(node_name, f"Failed to pvcreate on device(s): {' '.join(devices)}", stderr)])], 500)
        size_kib = sum(int(devs[p]["size_bytes"]) // 1024 for p in devices)
        backing = pool_name if kind != "LVM_THIN" or "/" in pool_name else f"linstor_{pool_name}/{pool_name}"
        rcs = self.create_storage_pool(node_name, sp_name, kind, {**props, "StorDriver/StorPoolName": backing},
                                       backing_kib=self._backing_capacity(kind, size_kib), devices=devices)
        return rcs, {p: signature for p in devices}

    @staticmethod
    def _backing_capacity(kind: str, device_kib: int) -> int:
        """Usable capacity of a freshly built backing store on ``device_kib`` of raw device."""
        if kind.startswith("ZFS"):
            return max(0, (device_kib - 4608) // MIB_KIB * MIB_KIB)  # 4 labels + boot block area
        vg = max(0, (device_kib - MIB_KIB) // LVM_EXTENT_KIB * LVM_EXTENT_KIB)
        if kind == "LVM_THIN":
            meta = round_up(min(max(vg // 1000, 4 * MIB_KIB), 16 * GIB_KIB), LVM_EXTENT_KIB)
            return max(0, vg - 2 * meta)  # pool metadata + spare metadata LVs
        return vg

    def create_storage_pool(self, node_name: str, name: str, kind: str, props: dict[str, str], *,
                            backing_kib: int | None = None, devices: list[str] | None = None) -> list[dict]:
        """``POST /v1/nodes/{node}/storage-pools``. Without a backing store (``backing_kib`` None)
        the pool is created but the satellite cannot query it: it reports an error and no space."""
        node = self.nodes.get(node_name)
        if node is None:
            raise not_found(FAIL_NOT_FOUND_NODE, MASK_NODE, f"Node '{node_name}'")
        pools = self.pools.setdefault(node_name, {})
        if name in pools:
            raise LinstorError([api_rc(ret_code(FAIL_EXISTS_STOR_POOL, MASK_ERROR, MASK_CRT, MASK_STOR_POOL),
                                       f"A storage pool with the name '{name}' already exists on node '{node_name}'.")], 400)
        if kind not in PROVIDERS:
            raise LinstorError([api_rc(ret_code(FAIL_STLT_NO_PROVIDER, MASK_ERROR, MASK_CRT, MASK_STOR_POOL),
                                       f"Invalid provider kind '{kind}'")], 400)
        if node.online and not node.supports(kind):
            raise LinstorError([api_rc(ret_code(FAIL_STLT_NO_PROVIDER, MASK_ERROR, MASK_CRT, MASK_STOR_POOL),
                                       f"The satellite does not support the device provider {kind}")], 500)
        backing = props.get("StorDriver/StorPoolName", name)
        pool = StoragePool(node_name, name, kind, self._uuid(f"sp:{node_name}:{name}"), backing=backing, props=dict(props),
                           devices=list(devices or []))
        rcs = [api_rc(ret_code(CREATED, MASK_CRT, MASK_STOR_POOL), f"New storage pool '{name}' on node '{node_name}' registered.",
                      obj_refs={"StorPool": name, "Node": node_name})]
        if backing_kib is None:
            cause = {"ZFS": f"Failed to query free size of zPool(s) [{backing}]", "ZFS_THIN": f"Failed to query free size of zPool(s) [{backing}]",
                     "LVM": f"Volume group '{backing}' not found", "LVM_THIN": f"Volume group '{backing.split('/')[0]}' not found"}
            pool.error = api_rc(ret_code(FAIL_UNKNOWN_ERROR, MASK_ERROR), "Failed to query free space from storage pool",
                                cause=cause.get(kind, f"Storage pool backing '{backing}' not found"),
                                error_ids=[self._report_id(node_name, "Failed to query free space from storage pool", cause.get(kind, ""))])
            rcs.append(api_rc(ret_code(FAIL_UNKNOWN_ERROR, MASK_ERROR), f"(Node: '{node_name}') Failed to query free space from storage pool",
                              cause=pool.error["cause"]))
        else:
            pool.total_kib = backing_kib
        pools[name] = pool
        return rcs

    def delete_storage_pool(self, node_name: str, name: str) -> list[dict]:
        pool = self.pools.get(node_name, {}).get(name)
        if pool is None or name == DISKLESS_POOL and node_name not in self.nodes:
            raise not_found(FAIL_NOT_FOUND_STOR_POOL, MASK_STOR_POOL, f"Storage pool '{name}' on node '{node_name}'")
        users = [rd.name for rd in self.rds.values() if node_name in rd.replicas and rd.replicas[node_name].pool == name]
        if users:
            raise LinstorError([api_rc(ret_code(FAIL_IN_USE, MASK_ERROR, MASK_DEL, MASK_STOR_POOL),
                                       f"The specified storage pool '{name}' on node '{node_name}' can not be deleted as volumes "
                                       f"are still using it.", details="Volumes that are still using the storage pool: "
                                       + ", ".join(users))], 400)
        del self.pools[node_name][name]
        return [api_rc(ret_code(DELETED, MASK_DEL, MASK_STOR_POOL), f"Storage pool definition '{name}' on node '{node_name}' deleted.")]

    def modify_storage_pool(self, node_name: str, name: str, override: dict[str, str], delete: list[str]) -> list[dict]:
        pool = self.pools.get(node_name, {}).get(name)
        if pool is None:
            raise not_found(FAIL_NOT_FOUND_STOR_POOL, MASK_STOR_POOL, f"Storage pool '{name}' on node '{node_name}'")
        pool.props.update(override)
        for k in delete:
            pool.props.pop(k, None)
        return [api_rc(ret_code(MODIFIED, MASK_MOD, MASK_STOR_POOL), f"Storage pool '{name}' on node '{node_name}' modified.")]

    # -- capacity
    def _allocated_kib(self, rd: ResourceDefinition, rep: Replica, vd: VolumeDefinition, pool: StoragePool) -> int:
        """Space one volume takes in its pool (thick: all of it; thin: what was written)."""
        gross = vd.size_kib + (drbd_md_kib(vd.size_kib) if rd.drbd else 0)
        if pool.traits.thin:
            return min(round_up(gross, LVM_EXTENT_KIB if pool.kind == "LVM_THIN" else ZFS_VOLBLOCK_KIB),
                       round_up((drbd_md_kib(vd.size_kib) if rd.drbd else 0) + rep.written_kib, THIN_CHUNK_KIB))
        step = ZFS_VOLBLOCK_KIB if pool.kind.startswith("ZFS") else LVM_EXTENT_KIB if pool.kind.startswith("LVM") else 4
        return round_up(gross, step)

    def pool_used_kib(self, pool: StoragePool) -> int:
        used = 0
        for rd in self.rds.values():
            rep = rd.replicas.get(pool.node)
            if rep is None or rep.pool != pool.name or rep.diskless:
                continue
            used += sum(self._allocated_kib(rd, rep, vd, pool) for vd in rd.volumes)
        for snaps in self.snapshots.values():
            for snap in snaps.values():
                used += snap.held_kib.get(pool.node, 0) if snap.props.get("StorPoolName", pool.name) == pool.name else 0
        return used

    def pool_space(self, pool: StoragePool) -> tuple[int, int]:
        """(total, free) KiB as the satellite reports them."""
        if pool.kind == "DISKLESS":
            return LONG_MAX, LONG_MAX
        if pool.error is not None:
            return 0, 0
        total = pool.total_kib
        reserve = 0
        if pool.kind.startswith("ZFS"):  # `zfs get available` excludes the slop space
            reserve = min(max(total // 32, 128 * MIB_KIB), 128 * GIB_KIB, total)
        free = max(0, total - reserve - self.pool_used_kib(pool))
        return total, 0 if pool.full else free

    # -- resource groups
    def create_resource_group(self, name: str, select_filter: dict, props: dict[str, str], description: str = "") -> list[dict]:
        if name in self.groups:
            raise LinstorError([api_rc(ret_code(FAIL_EXISTS_RSC_GRP, MASK_ERROR, MASK_CRT, MASK_RSC_GRP),
                                       f"A resource group with the name '{name}' already exists.")], 400)
        self.groups[name] = ResourceGroup(name, self._uuid("rg:" + name), description, dict(props), dict(select_filter))
        return [api_rc(ret_code(CREATED, MASK_CRT, MASK_RSC_GRP), f"New resource group '{name}' created.")]

    def modify_resource_group(self, name: str, select_filter: dict, override: dict[str, str]) -> list[dict]:
        rg = self.groups.get(name)
        if rg is None:
            raise not_found(FAIL_NOT_FOUND_RSC_GRP, MASK_RSC_GRP, f"Resource group '{name}'")
        rg.select_filter.update({k: v for k, v in select_filter.items() if v not in (None, [], "")})
        rg.props.update(override)
        return [api_rc(ret_code(MODIFIED, MASK_MOD, MASK_RSC_GRP), f"Resource group '{name}' modified.")]

    # -- resource definitions
    def create_resource_definition(self, name: str, group: str, size_kib: int, layers: list[str],
                                   props: dict[str, str] | None = None) -> ResourceDefinition:
        if name in self.rds:
            raise LinstorError([api_rc(ret_code(FAIL_EXISTS_RSC_DFN, MASK_ERROR, MASK_CRT, MASK_RSC_DFN),
                                       f"A resource definition with the name '{name}' already exists.")], 409)
        if group not in self.groups:
            raise not_found(FAIL_NOT_FOUND_RSC_GRP, MASK_RSC_GRP, f"Resource group '{group}'")
        rd = ResourceDefinition(name, self._uuid("rd:" + name), group, self.next_port, self._secret(name), list(layers),
                                props=dict(props or {}))
        self.next_port += 1
        rd.volumes.append(VolumeDefinition(0, int(size_kib), self.next_minor, self._uuid(f"vd:{name}:0")))
        self.next_minor += 1
        self.rds[name] = rd
        return rd

    def delete_resource_definition(self, name: str) -> list[dict]:
        rd = self.rds.get(name)
        if rd is None:
            raise not_found(FAIL_NOT_FOUND_RSC_DFN, MASK_RSC_DFN, f"Resource definition '{name}'")
        if any(r.role == "Primary" for r in rd.replicas.values()):
            node = next(n for n, r in rd.replicas.items() if r.role == "Primary")
            raise LinstorError([api_rc(ret_code(FAIL_IN_USE, MASK_ERROR, MASK_DEL, MASK_RSC_DFN),
                                       f"Resource '{name}' is still in use.",
                                       cause=f"Resource is mounted/in use on node '{node}'.")], 400)
        if self.snapshots.get(name):
            raise LinstorError([api_rc(ret_code(FAIL_EXISTS_SNAPSHOT, MASK_ERROR, MASK_DEL, MASK_RSC_DFN),
                                       f"Cannot delete resource definition '{name}' because it has snapshots.")], 400)
        del self.rds[name]
        return [api_rc(ret_code(DELETED, MASK_DEL, MASK_RSC_DFN), f"Resource definition '{name}' deleted.")]

    def _rd(self, name: str) -> ResourceDefinition:
        rd = self.rds.get(name)
        if rd is None:
            raise not_found(FAIL_NOT_FOUND_RSC_DFN, MASK_RSC_DFN, f"Resource definition '{name}'")
        return rd

    def _online_node(self, name: str) -> Node:
        node = self.nodes.get(name)
        if node is None:
            raise not_found(FAIL_NOT_FOUND_NODE, MASK_NODE, f"Node '{name}'")
        if not node.online:
            raise LinstorError([api_rc(ret_code(FAIL_NOT_CONNECTED, MASK_ERROR), f"No active connection to satellite '{name}'",
                                       correction="Check whether the satellite is running and reachable.")], 500)
        return node

    def _report_id(self, node: str = "", message: str = "", details: str = "") -> str:
        """A new error report's id, the report kept for ``GET /v1/error-reports`` (as the satellite writes it)."""
        self.counter += 1
        rid = f"{hashlib.sha1(str(self.seed).encode()).hexdigest()[:8].upper()}-00000-{self.counter:06d}"
        self.reports.append({"id": rid, "node": node or "Controller", "time_ms": self.now_ms(), "message": message,
                             "details": details})
        return rid

    # -- resources
    def create_resource(self, rd_name: str, node_name: str, *, pool: str | None = None, diskless: bool = False,
                        tiebreaker: bool = False, via_attach: bool = False, initial: bool = False,
                        adjust: bool = True) -> list[dict]:
        rd = self._rd(rd_name)
        node = self._online_node(node_name)
        if node_name in rd.replicas:
            rep = rd.replicas[node_name]
            if rep.tiebreaker and not tiebreaker:  # a real user takes over the tie-breaker
                rep.flags = ["DISKLESS", "DRBD_DISKLESS"]
                rep.via_attach = via_attach
                return [api_rc(ret_code(INFO_TIE_BREAKER_TAKEOVER, MASK_INFO, MASK_RSC),
                               f"Tie breaker resource '{rd_name}' on node '{node_name}' converted to diskless resource")]
            raise LinstorError([api_rc(ret_code(FAIL_EXISTS_RSC, MASK_ERROR, MASK_CRT, MASK_RSC),
                                       f"A resource with the name '{rd_name}' on node '{node_name}' already exists.")], 409)
        if rd.drbd and not node.drbd_ok():
            raise LinstorError([api_rc(ret_code(FAIL_STLT_NO_LAYER, MASK_ERROR, MASK_CRT, MASK_RSC),
                                       f"(Node: '{node_name}') The satellite does not support the device layer DRBD",
                                       cause=self._drbd_unsupported_reason())], 500)
        if diskless:
            if not rd.drbd:
                raise LinstorError([api_rc(ret_code(FAIL_STLT_NO_LAYER, MASK_ERROR, MASK_CRT, MASK_RSC),
                                           "Diskless resources need a DRBD or NVMe layer in the layer stack")], 400)
            pool_name = DISKLESS_POOL
            flags = ["DISKLESS", "DRBD_DISKLESS"] + (["TIE_BREAKER"] if tiebreaker else [])
        else:
            pool_name = pool or self.groups.get(rd.resource_group, ResourceGroup("", "")).select_filter.get("storage_pool") or ""
            sp = self.pools.get(node_name, {}).get(pool_name)
            if sp is None or sp.kind == "DISKLESS":
                raise not_found(FAIL_NOT_FOUND_STOR_POOL, MASK_STOR_POOL, f"Storage pool '{pool_name}' on node '{node_name}'")
            need = sum(self._need_kib(rd, vd, sp) for vd in rd.volumes)
            if not self._fits(sp, need):
                raise LinstorError([api_rc(ret_code(FAIL_NOT_ENOUGH_FREE_SPACE, MASK_ERROR, MASK_CRT, MASK_RSC),
                                           f"(Node: '{node_name}') Not enough free space in storage pool '{pool_name}'",
                                           details=f"Required: {need} KiB, free: {self.pool_space(sp)[1]} KiB")], 500)
            flags = []
        used_ids = {r.node_id for r in rd.replicas.values()}
        node_id = next(i for i in range(32) if i not in used_ids)
        peers_synced = [r for r in rd.replicas.values() if not r.diskless and r.disk_state == "UpToDate"]
        state = "Diskless" if diskless else ("UpToDate" if initial or not peers_synced or not rd.drbd else "Inconsistent")
        rep = Replica(node_name, self._uuid(f"rsc:{rd_name}:{node_name}"), node_id, pool_name, flags,
                      {"StorPoolName": pool_name}, create_ms=self.now_ms(), disk_state=state, via_attach=via_attach)
        if state == "Inconsistent":
            source = peers_synced[0].node
            total = sum(vd.size_kib for vd in rd.volumes)
            rep.sync = {"source": source, "done_kib": 0, "total_kib": max(peers_synced[0].written_kib, 0) or total}
        rd.replicas[node_name] = rep
        rcs = [api_rc(ret_code(CREATED, MASK_CRT, MASK_RSC), f"Resource '{rd_name}' on node '{node_name}' successfully created.")]
        if adjust and not tiebreaker:
            rcs += self.adjust_quorum(rd_name)
        return rcs

    def _drbd_unsupported_reason(self) -> str:
        return "DRBD version has to be >= 9. Current DRBD version: 0.0.0"

    def _need_kib(self, rd: ResourceDefinition, vd: VolumeDefinition, pool: StoragePool) -> int:
        gross = vd.size_kib + (drbd_md_kib(vd.size_kib) if rd.drbd else 0)
        step = ZFS_VOLBLOCK_KIB if pool.kind.startswith("ZFS") else LVM_EXTENT_KIB
        return round_up(gross, step)

    def _fits(self, pool: StoragePool, need_kib: int) -> bool:
        total, free = self.pool_space(pool)
        if pool.error is not None or pool.full:
            return False
        if pool.traits.thin:
            ratio = float(pool.props.get("MaxOversubscriptionRatio", self.props.get("MaxOversubscriptionRatio", MAX_OVERSUBSCRIPTION)))
            committed = sum(vd.size_kib for rd in self.rds.values() for vd in rd.volumes
                            if pool.node in rd.replicas and rd.replicas[pool.node].pool == pool.name)
            return need_kib <= free and committed + need_kib <= total * ratio
        return need_kib <= free

    def delete_resource(self, rd_name: str, node_name: str) -> list[dict]:
        rd = self._rd(rd_name)
        rep = rd.replicas.get(node_name)
        if rep is None:
            raise not_found(FAIL_NOT_FOUND_RSC, MASK_RSC, f"Resource '{rd_name}' on node '{node_name}'")
        if rep.role == "Primary":
            raise LinstorError([api_rc(ret_code(FAIL_IN_USE, MASK_ERROR, MASK_DEL, MASK_RSC),
                                       f"Resource '{rd_name}' on node '{node_name}' is still in use.")], 400)
        del rd.replicas[node_name]
        return [api_rc(ret_code(DELETED, MASK_DEL, MASK_RSC), f"Resource '{rd_name}' on node '{node_name}' deleted.")] + \
            self.adjust_quorum(rd_name)

    def autoplace(self, rd_name: str, place_count: int, *, storage_pools: list[str] | None = None,
                  replicas_on_same: list[str] | None = None, replicas_on_different: list[str] | None = None,
                  preferred: list[str] | None = None, diskless_on_remaining: bool = False) -> list[dict]:
        """``POST /v1/resource-definitions/{rd}/autoplace``: add diskful replicas until ``place_count``."""
        rd = self._rd(rd_name)
        have = [r for r in rd.replicas.values() if not r.diskless]
        missing = place_count - len(have)
        rcs: list[dict] = []
        if missing > 0:
            chosen = self._select(rd, missing, storage_pools or [], replicas_on_same or [], replicas_on_different or [],
                                  preferred or [], [r.node for r in have])
            if chosen is None:
                raise self._not_enough_nodes(rd, place_count, storage_pools or [])
            initial = not rd.replicas
            for node, pool in chosen:
                if node in rd.replicas and rd.replicas[node].tiebreaker:
                    del rd.replicas[node]  # a diskful replica replaces the tie-breaker on its node
                rcs += self.create_resource(rd_name, node, pool=pool, initial=initial, adjust=False)
        if diskless_on_remaining:
            for name, node in sorted(self.nodes.items()):
                if name not in rd.replicas and node.online and (not rd.drbd or node.drbd_ok()):
                    rcs += self.create_resource(rd_name, name, diskless=True, adjust=False)
        rcs += self.adjust_quorum(rd_name)
        return rcs

    def _not_enough_nodes(self, rd: ResourceDefinition, count: int, pools: list[str]) -> LinstorError:
        size = sum(vd.size_kib for vd in rd.volumes)
        crit = ["has a deployed storage pool named " + (str(pools) if pools else "[any]"),
                f"the storage pools have to have at least '{size}' free space",
                "the current access context has enough privileges to use the node and the storage pool",
                "the node is online"]
        details = ("Not enough nodes fulfilling the following auto-place criteria:\n" + "".join(f" * {c}\n" for c in crit)
                   + f"\nAuto-place configuration details:\n   Replica count: {count}\n"
                   + ("   Storage pool name:\n" + "".join(f"      {p}\n" for p in pools) if pools else "")
                   + "   Layer stack:\n" + "".join(f"      {layer}\n" for layer in rd.layers)
                   + f"\nAuto-placing resource: {rd.name}")
        return LinstorError([api_rc(ret_code(FAIL_NOT_ENOUGH_NODES, MASK_ERROR, MASK_CRT, MASK_RSC), "Not enough available nodes",
                                    details=details)], 500)

    def _select(self, rd: ResourceDefinition, count: int, pools: list[str], same: list[str], different: list[str],
                preferred: list[str], existing: list[str]) -> list[tuple[str, str]] | None:
        """LINSTOR's autoplacer, simplified: eligible (node, pool) pairs by free space, constraints honoured."""
        candidates: list[tuple[str, str, int]] = []
        for name, node in self.nodes.items():
            if (name in rd.replicas and not rd.replicas[name].tiebreaker) or not node.online \
                    or node.props.get("AutoplaceTarget", "yes") == "no":
                continue
            if rd.drbd and not node.drbd_ok():
                continue
            for pool in self.pools.get(name, {}).values():
                if pool.kind == "DISKLESS" or (pools and pool.name not in pools) or not node.supports(pool.kind):
                    continue
                need = sum(self._need_kib(rd, vd, pool) for vd in rd.volumes)
                if self._fits(pool, need):
                    candidates.append((name, pool.name, self.pool_space(pool)[1]))
        order = {n: i for i, n in enumerate(preferred)}
        candidates.sort(key=lambda c: (order.get(c[0], len(order)), -c[2], c[0]))

        def aux(node: str, key: str) -> str | None:
            props = self.nodes[node].props
            for k in (key, f"Aux/{key.removeprefix('Aux/')}", f"Aux/topology/{key.removeprefix('Aux/')}"):
                if k.split("=")[0] in props:
                    return props[k.split("=")[0]]
            return None

        def ok(selection: list[str]) -> bool:
            for key in same:
                k, _, v = key.partition("=")
                values = {aux(n, k) for n in selection}
                if len(values) > 1 or (v and values != {v}) or None in values:
                    return False
            for key in different:
                k = key.partition("=")[0]
                values = [aux(n, k) for n in selection]
                if len(set(values)) != len(values):
                    return False
            return True

        chosen: list[tuple[str, str]] = []
        nodes_taken = list(existing)
        for node, pool, _free in candidates:
            if node in nodes_taken:
                continue
            if not ok(nodes_taken + [node]):
                continue
            chosen.append((node, pool))
            nodes_taken.append(node)
            if len(chosen) == count:
                return chosen
        return None

    def adjust_quorum(self, rd_name: str) -> list[dict]:
        """Tie-breaker and automatic quorum (CtrlRscAutoTieBreakerHelper / CtrlRscAutoQuorumHelper)."""
        rd = self.rds.get(rd_name)
        if rd is None or not rd.drbd:
            return []
        rcs: list[dict] = []
        diskful = [r for r in rd.replicas.values() if not r.diskless]
        tbs = [r for r in rd.replicas.values() if r.tiebreaker]
        others = [r for r in rd.replicas.values() if r.diskless and not r.tiebreaker]
        auto_tb = self.props.get("DrbdOptions/auto-add-quorum-tiebreaker", "True").lower() == "true"
        if auto_tb and len(diskful) == 2 and not others and not tbs:
            node = self._tiebreaker_node(rd)
            if node is None:
                rcs.append(api_rc(ret_code(WARN_NOT_ENOUGH_NODES_FOR_TIE_BREAKER, MASK_WARN, MASK_RSC),
                                  f"Could not find suitable node to automatically create a tie breaking resource for '{rd_name}'."))
            else:
                self.create_resource(rd_name, node, diskless=True, tiebreaker=True)
                rcs.append(api_rc(ret_code(INFO_TIE_BREAKER_CREATED, MASK_INFO, MASK_RSC),
                                  f"Tie breaker resource '{rd_name}' created on {node}"))
        elif tbs and (len(diskful) != 2 or others):
            for tb in tbs:
                del rd.replicas[tb.node]
                rcs.append(api_rc(ret_code(INFO_TIE_BREAKER_DELETING, MASK_INFO, MASK_RSC),
                                  f"Tie breaker resource '{rd_name}' on node '{tb.node}' deleted"))
        rg = self.groups.get(rd.resource_group)
        user_set = rd.props.get("Internal/Drbd/QuorumSetBy") == "user" or "DrbdOptions/Resource/quorum" in (rg.props if rg else {})
        if not user_set:
            diskful = [r for r in rd.replicas.values() if not r.diskless]
            diskless = [r for r in rd.replicas.values() if r.diskless]
            feasible = len(diskful) >= 3 or (len(diskful) == 2 and len(diskless) >= 1)
            rd.props["DrbdOptions/Resource/quorum"] = "majority" if feasible else "off"
        return rcs

    def _tiebreaker_node(self, rd: ResourceDefinition) -> str | None:
        load = {n: sum(1 for r in self.rds.values() if n in r.replicas) for n in self.nodes}
        options = [n for n, node in self.nodes.items()
                   if n not in rd.replicas and node.online and node.drbd_ok() and node.props.get("AutoplaceTarget", "yes") != "no"]
        return min(options, key=lambda n: (load[n], n)) if options else None

    # -- DRBD roles and state
    def connected(self, a: str, b: str, rd_name: str = "") -> bool:
        if self.link is not None and rd_name:
            return self.link(rd_name, a, b)
        na, nb = self.nodes.get(a), self.nodes.get(b)
        return bool(na and nb and na.online and nb.online and not self.partitioned(a, b))

    def effective_prop(self, rd: ResourceDefinition, key: str, default: str | None = None) -> str | None:
        """A property as the satellite sees it: resource definition, then group, then controller."""
        rg = self.groups.get(rd.resource_group)
        for props in (rd.props, rg.props if rg else {}, self.props):
            if key in props:
                return props[key]
        return default

    def has_quorum(self, rd: ResourceDefinition, node: str) -> bool:
        if self.effective_prop(rd, "DrbdOptions/Resource/quorum", "off") == "off" or not self.quorum_enforced():
            return True
        voters = list(rd.replicas)
        reach = sum(1 for n in voters if n == node or self.connected(node, n, rd.name))
        return reach * 2 > len(voters)

    def data_accessible(self, rd: ResourceDefinition, node: str) -> bool:
        rep = rd.replicas[node]
        if not rd.drbd:
            return True
        if not rep.diskless and rep.disk_state == "UpToDate":
            return True
        if not rep.diskless and rep.disk_state == "Outdated":
            return False  # an Outdated disk must resync before it may serve (DRBD refuses to promote it)
        return any(not r.diskless and r.disk_state == "UpToDate" and self.connected(node, r.node, rd.name)
                   for r in rd.replicas.values() if r.node != node)

    def may_promote(self, rd: ResourceDefinition, node: str) -> bool:
        """DRBD's answer, which does not need the LINSTOR controller once the data plane is modelled."""
        up = self.alive(node) if self.alive is not None else bool(self.nodes.get(node) and self.nodes[node].online)
        if not up or node not in rd.replicas:
            return False
        other_primary = any(r.role == "Primary" and r.node != node and self.connected(node, r.node, rd.name)
                            for r in rd.replicas.values())
        return (rd.replicas[node].role != "Primary" and not other_primary and self.data_accessible(rd, node)
                and self.has_quorum(rd, node) and not rd.replicas[node].tiebreaker)

    def promotion_score(self, rd: ResourceDefinition, node: str) -> int:
        rep = rd.replicas[node]
        uptodate = sum(1 for r in rd.replicas.values() if not r.diskless and r.disk_state == "UpToDate"
                       and (r.node == node or self.connected(node, r.node, rd.name)))
        return (10000 if not rep.diskless and rep.disk_state == "UpToDate" else 0) + (100 if self.has_quorum(rd, node) else 0) + uptodate

    def set_primary(self, rd_name: str, node: str, primary: bool) -> None:
        """A consumer opened (Primary) or closed (Secondary) the device on ``node``."""
        rd = self._rd(rd_name)
        rep = rd.replicas.get(node)
        if rep is None:
            raise not_found(FAIL_NOT_FOUND_RSC, MASK_RSC, f"Resource '{rd_name}' on node '{node}'")
        if primary and rep.role != "Primary":
            if rd.drbd and not self.may_promote(rd, node):
                raise LinstorError([api_rc(ret_code(FAIL_UNKNOWN_ERROR, MASK_ERROR, MASK_RSC),
                                           f"Resource '{rd_name}' cannot be promoted on node '{node}'",
                                           cause="State change failed: (-2) Need access to UpToDate data")], 500)
            rep.role = "Primary"
            rd.props.setdefault("DrbdPrimarySetOn", node.upper())
        elif not primary:
            rep.role = "Secondary"

    # -- snapshots
    def create_snapshot(self, rd_name: str, name: str) -> list[dict]:
        rd = self._rd(rd_name)
        if name in self.snapshots.get(rd_name, {}):
            raise LinstorError([api_rc(ret_code(FAIL_EXISTS_SNAPSHOT, MASK_ERROR, MASK_CRT, MASK_SNAPSHOT),
                                       f"A snapshot with the name '{name}' of the resource '{rd_name}' already exists.")], 409)
        nodes = [r.node for r in rd.replicas.values() if not r.diskless]
        for node in nodes:
            pool = self.pools[node][rd.replicas[node].pool]
            if not pool.traits.snapshots:
                raise LinstorError([api_rc(ret_code(FAIL_SNAPSHOTS_NOT_SUPPORTED, MASK_ERROR, MASK_CRT, MASK_SNAPSHOT),
                                           f"Storage pool '{pool.name}' on node '{node}' does not support snapshots.",
                                           cause=f"The storage pool driver {pool.kind} cannot take snapshots.")], 400)
            self._online_node(node)
        snap = Snapshot(rd_name, name, self._uuid(f"snap:{rd_name}:{name}"), nodes, self.now_ms(), [vd.size_kib for vd in rd.volumes],
                        props={"StorPoolName": rd.replicas[nodes[0]].pool} if nodes else {})
        self.snapshots.setdefault(rd_name, {})[name] = snap
        return [api_rc(ret_code(CREATED, MASK_CRT, MASK_SNAPSHOT), f"New snapshot '{name}' of resource '{rd_name}' registered.")]

    def delete_snapshot(self, rd_name: str, name: str) -> list[dict]:
        if name not in self.snapshots.get(rd_name, {}):
            raise not_found(FAIL_NOT_FOUND_SNAPSHOT, MASK_SNAPSHOT, f"Snapshot '{name}' of resource '{rd_name}'")
        del self.snapshots[rd_name][name]
        if not self.snapshots[rd_name]:
            del self.snapshots[rd_name]
        return [api_rc(ret_code(DELETED, MASK_DEL, MASK_SNAPSHOT), f"Snapshot '{name}' of resource '{rd_name}' deleted.")]

    # -- JSON views (REST API 1.27 shapes)
    def node_json(self, node: Node) -> dict:
        facts = node.facts or {}
        providers = ["DISKLESS", "LVM", "LVM_THIN", "FILE", "FILE_THIN"] + (["ZFS", "ZFS_THIN"] if facts.get("zfs") else [])
        unsupported_providers = {"SPDK": ["IO exception occured when running 'rpc.py spdk_get_version': Cannot run program "
                                          "\"rpc.py\": error=2, No such file or directory"]}
        if not facts.get("zfs"):
            unsupported_providers.update({k: ["'cat /sys/module/zfs/version' returned with exit code 1"] for k in ("ZFS", "ZFS_THIN")})
        layers = ["LUKS", "WRITECACHE", "CACHE", "STORAGE"]
        unsupported_layers: dict[str, list[str]] = {}
        if facts.get("drbd_version"):
            layers.insert(0, "DRBD")
        else:
            unsupported_layers["DRBD"] = [self._drbd_unsupported_reason()]
        out: dict[str, Any] = {
            "name": node.name, "type": "SATELLITE", "props": dict(node.props), "flags": list(node.flags),
            "net_interfaces": [{"name": node.net_name, "address": node.address, "satellite_port": 3366,
                                "satellite_encryption_type": "PLAIN", "is_active": True,
                                "uuid": str(uuid.uuid5(uuid.UUID(node.uuid), "netif"))}],
            "connection_status": "ONLINE" if node.online else "OFFLINE", "uuid": node.uuid,
        }
        if node.facts is not None:
            out.update({"storage_providers": providers, "resource_layers": layers,
                        "unsupported_providers": unsupported_providers, "unsupported_layers": unsupported_layers})
        return out

    def pool_json(self, pool: StoragePool) -> dict:
        total, free = self.pool_space(pool)
        traits = {"SupportsSnapshots": "true" if pool.traits.snapshots else "false"}
        if pool.kind != "DISKLESS":
            traits["Provisioning"] = "Thin" if pool.traits.thin else "Fat"
        props = dict(pool.props)
        if pool.kind != "DISKLESS":
            props.setdefault("StorDriver/StorPoolName", pool.backing or pool.name)
        out: dict[str, Any] = {
            "storage_pool_name": pool.name, "node_name": pool.node, "provider_kind": pool.kind, "props": props,
            "static_traits": traits, "free_space_mgr_name": f"{pool.node};{pool.name}", "uuid": pool.uuid,
            "supports_snapshots": pool.traits.snapshots, "external_locking": False,
        }
        node = self.nodes.get(pool.node)
        if node is not None and node.online:
            out.update({"free_capacity": free, "total_capacity": total})
        if pool.error is not None:
            out["reports"] = [pool.error]
        return out

    def _storage_dev(self, rd: ResourceDefinition, rep: Replica, vd: VolumeDefinition) -> str:
        pool = self.pools.get(rep.node, {}).get(rep.pool)
        backing = (pool.backing if pool else rep.pool) or rep.pool
        suffix = f"{rd.name}_{vd.number:05d}"
        if pool is not None and pool.kind.startswith("ZFS"):
            return f"/dev/zvol/{backing}/{suffix}"
        return f"/dev/{backing.split('/')[0]}/{suffix}"

    def resource_json(self, rd: ResourceDefinition, rep: Replica, *, with_volumes: bool) -> dict:
        node = self.nodes.get(rep.node)
        online = bool(node and node.online)
        pool = self.pools.get(rep.node, {}).get(rep.pool)
        storage_vols, drbd_vols, volumes = [], [], []
        for vd in rd.volumes:
            md = drbd_md_kib(vd.size_kib) if rd.drbd else 0
            alloc = self._allocated_kib(rd, rep, vd, pool) if pool is not None and not rep.diskless else 0
            gross_storage = round_up(vd.size_kib + md, LVM_EXTENT_KIB if pool and pool.kind.startswith("LVM") else ZFS_VOLBLOCK_KIB)
            sdev = self._storage_dev(rd, rep, vd) if not rep.diskless else None
            svol = {"volume_number": vd.number, "allocated_size_kib": gross_storage if not rep.diskless else 0,
                    "usable_size_kib": gross_storage if not rep.diskless else 0, "disk_state": "[]"}
            if sdev:
                svol["device_path"] = sdev
            storage_vols.append(svol)
            dvol = {"drbd_volume_definition": {"volume_number": vd.number, "minor_number": vd.minor},
                    "device_path": f"/dev/drbd{vd.minor}", "allocated_size_kib": vd.size_kib + md if not rep.diskless else 0,
                    "usable_size_kib": vd.size_kib}
            if sdev:
                dvol["backing_device"] = sdev
            else:
                dvol["backing_device"] = "none"
            drbd_vols.append(dvol)
            vol: dict[str, Any] = {
                "volume_number": vd.number, "storage_pool_name": rep.pool,
                "provider_kind": "DISKLESS" if rep.diskless else (pool.kind if pool else "DISKLESS"),
                "device_path": f"/dev/drbd{vd.minor}" if rd.drbd else (sdev or ""),
                "allocated_size_kib": alloc, "usable_size_kib": vd.size_kib,
                "props": ({f"Satellite/Device/Symlinks/{i}": s for i, s in enumerate(
                    ([f"/dev/drbd/by-disk/{sdev.removeprefix('/dev/')}"] if sdev else []) + [f"/dev/drbd/by-res/{rd.name}/{vd.number}"])}
                          if rd.drbd else {}),
                "flags": [],
                "layer_data_list": ([{"type": "DRBD", "data": dvol}] if rd.drbd else []) + ([{"type": "STORAGE", "data": svol}]),
                "uuid": str(uuid.uuid5(uuid.UUID(rep.uuid), f"vlm{vd.number}")),
            }
            if online:
                state: dict[str, Any] = {"disk_state": self._disk_state(rd, rep)}
                reps = self._replication_states(rd, rep)
                if reps:
                    state["replication_states"] = reps
                vol["state"] = state
            volumes.append(vol)
        storage_layer = {"type": "STORAGE", "storage": {"storage_volumes": storage_vols}}
        if rd.drbd:
            drbd: dict[str, Any] = {
                "drbd_resource_definition": {"peer_slots": PEER_SLOTS, "al_stripes": 1, "al_stripe_size_kib": AL_KIB,
                                             "port": rd.port, "transport_type": "IP", "secret": rd.secret, "down": False},
                "node_id": rep.node_id, "peer_slots": PEER_SLOTS, "al_stripes": 1, "al_size": AL_KIB,
                "flags": (["DISKLESS"] if rep.diskless else []) + (["INITIALIZED"] if online else []),
                "drbd_volumes": drbd_vols,
            }
            if online:
                drbd["connections"] = {p: self._connection(rd, rep.node, p) for p in rd.replicas if p != rep.node}
                drbd["promotion_score"] = self.promotion_score(rd, rep.node)
                drbd["may_promote"] = self.may_promote(rd, rep.node)
            layer = {"type": "DRBD", "drbd": drbd, "children": [storage_layer] if not rep.diskless else []}
        else:
            layer = storage_layer
        out: dict[str, Any] = {"name": rd.name, "node_name": rep.node, "props": dict(rep.props), "layer_object": layer,
                               "uuid": rep.uuid, "create_timestamp": rep.create_ms}
        if rep.flags:
            out["flags"] = list(rep.flags)
        if online:
            out["state"] = {"in_use": rep.role == "Primary"}
        if with_volumes:
            out["volumes"] = volumes
        return out

    def _connection(self, rd: ResourceDefinition, node: str, peer: str) -> dict:
        if self.connected(node, peer, rd.name):
            return {"connected": True, "message": "Connected"}
        # StandAlone: the pair refused each other's data (split brain); any other cut keeps retrying
        standalone = self.split_brain(rd.name, node, peer)
        return {"connected": False, "message": "StandAlone" if standalone else "Connecting"}

    def _disk_state(self, rd: ResourceDefinition, rep: Replica) -> str:
        if not rd.drbd:
            return "Created"
        if rep.diskless:
            return "Diskless"
        return rep.disk_state

    def _replication_states(self, rd: ResourceDefinition, rep: Replica) -> dict:
        if not rd.drbd:
            return {}
        out = {}
        for peer, other in rd.replicas.items():
            if peer == rep.node:
                continue
            if not self.connected(rep.node, peer, rd.name):
                out[peer] = {"replication_state": "Off"}
            elif rep.sync and rep.sync["source"] == peer:
                pct = 100.0 * rep.sync["done_kib"] / max(1, rep.sync["total_kib"])
                out[peer] = {"replication_state": "SyncTarget", "done_percentage": round(pct, 2)}
            elif other.sync and other.sync["source"] == rep.node:
                pct = 100.0 * other.sync["done_kib"] / max(1, other.sync["total_kib"])
                out[peer] = {"replication_state": "SyncSource", "done_percentage": round(pct, 2)}
            else:
                out[peer] = {"replication_state": "Established"}
        return out

    def rd_json(self, rd: ResourceDefinition, *, with_volume_definitions: bool) -> dict:
        out: dict[str, Any] = {"name": rd.name, "props": dict(rd.props), "flags": list(rd.flags), "uuid": rd.uuid,
                               "resource_group_name": rd.resource_group,
                               "layer_data": [{"type": "DRBD", "data": {"peer_slots": PEER_SLOTS, "al_stripes": 1,
                                                                        "al_stripe_size_kib": AL_KIB, "port": rd.port,
                                                                        "transport_type": "IP", "secret": rd.secret,
                                                                        "down": False}}] if rd.drbd else []}
        out["layer_data"].append({"type": "STORAGE"})
        if rd.external_name:
            out["external_name"] = rd.external_name
        if with_volume_definitions:
            out["volume_definitions"] = [{"volume_number": vd.number, "size_kib": vd.size_kib, "props": dict(vd.props),
                                          "flags": [], "uuid": vd.uuid,
                                          "layer_data": ([{"type": "DRBD", "data": {"volume_number": vd.number, "minor_number": vd.minor}}]
                                                         if rd.drbd else []) + [{"type": "STORAGE"}]}
                                         for vd in rd.volumes]
        return out

    def rg_json(self, rg: ResourceGroup) -> dict:
        return {"name": rg.name, "description": rg.description, "props": dict(rg.props),
                "select_filter": dict(rg.select_filter), "uuid": rg.uuid}

    def snapshot_json(self, snap: Snapshot) -> dict:
        return {"name": snap.name, "resource_name": snap.resource, "nodes": list(snap.nodes), "props": dict(snap.props),
                "snapshot_definition_props": dict(snap.props), "resource_definition_props": {},
                "flags": list(snap.flags),
                "volume_definitions": [{"volume_number": i, "size_kib": s} for i, s in enumerate(snap.sizes_kib)],
                "uuid": snap.uuid,
                "snapshots": [{"snapshot_name": snap.name, "node_name": n, "create_timestamp": snap.create_ms, "flags": [],
                               "uuid": str(uuid.uuid5(uuid.UUID(snap.uuid), n)),
                               "snapshot_volumes": [{"uuid": str(uuid.uuid5(uuid.UUID(snap.uuid), f"{n}/{i}")), "vlm_nr": i,
                                                     "state": "Successful"} for i in range(len(snap.sizes_kib))]}
                              for n in snap.nodes]}


def parse_layers(text: str) -> list[str]:
    """A layer list as LINSTOR writes it (``DRBD,STORAGE``), from ``drbd storage`` or ``drbd,storage``."""
    return [p.upper() for p in re.split(r"[\s,]+", text.strip()) if p]
