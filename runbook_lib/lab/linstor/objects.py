"""LINSTOR's objects: nodes, storage pools, resource and volume definitions, replicas, groups, snapshots."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .providers import PROVIDERS, ProviderTraits


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


def parse_layers(text: str) -> list[str]:
    """A layer list as LINSTOR writes it (``DRBD,STORAGE``), from ``drbd storage`` or ``drbd,storage``."""
    return [p.upper() for p in re.split(r"[\s,]+", text.strip()) if p]
