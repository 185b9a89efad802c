"""Storage providers (what each supports), the satellite's device facts, DRBD metadata and rounding sizes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .constants import AL_KIB, DRBD_SUPERBLOCK_KIB, PEER_SLOTS

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
