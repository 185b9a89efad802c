"""The ``storage`` section: the user volume Talos carves out for LINSTOR and the pool on top of it."""

from __future__ import annotations

from typing import Literal

from ..sizes import parse_size
from .base import StrictModel
from .fields import DiskSelectorText, EphemeralSize, PoolName, PositiveSize, VolumeName


class Storage(StrictModel):
    """Where LINSTOR's data lives: the user volume Talos carves out and the pool on top of it."""

    #: CEL over Talos's DiskSpec; the default pins the system disk (the single-disk layout: the partition is
    #: carved out next to EPHEMERAL). A dedicated data disk: e.g. "!system_disk && disk.transport == 'nvme'"
    disk_selector: DiskSelectorText = "system_disk"
    ephemeral_max_size: EphemeralSize = "100GiB"
    volume_name: VolumeName = "linstor-storage"
    min_size: PositiveSize = "200GiB"
    max_size: PositiveSize | None = None
    filesystem: Literal["xfs", "ext4"] = "xfs"
    pool_name: PoolName = "linstor-pool"
    pool_type: Literal["zfsPool", "zfsThinPool", "lvmThinPool", "lvmPool"] = "zfsPool"
    #: cap on the ZFS ARC (the ``zfs`` module's ``zfs_arc_max``). OpenZFS 2.4 defaults to max(5/8 of RAM,
    #: RAM - 1 GiB), about 15 GiB of a 16 GB node; 4GiB leaves the rest to workloads. null: the OpenZFS default
    zfs_arc_max: PositiveSize | None = "4GiB"

    @property
    def ephemeral_max_bytes(self) -> int:
        return parse_size(self.ephemeral_max_size)

    @property
    def min_bytes(self) -> int:
        return parse_size(self.min_size)

    @property
    def max_bytes(self) -> int | None:
        return None if self.max_size is None else parse_size(self.max_size)

    @property
    def zfs_arc_max_bytes(self) -> int | None:
        return None if self.zfs_arc_max is None else parse_size(self.zfs_arc_max)

    @property
    def partition_label(self) -> str:
        """Talos labels a user volume's partition ``u-<name>`` (the layout before Talos v1.11)."""
        return "u-" + self.volume_name

    @property
    def raw_label(self) -> str:
        """Talos labels a raw volume's partition ``r-<name>`` (``RawVolumePrefix``, Talos v1.11+)."""
        return "r-" + self.volume_name

    @property
    def raw_device_path(self) -> str:
        """The raw volume's stable path: udev's partition-label link, the same on every boot and node."""
        return "/dev/disk/by-partlabel/" + self.raw_label

    @property
    def mount_path(self) -> str:
        """Talos mounts the user volume at ``/var/mnt/<name>``."""
        return "/var/mnt/" + self.volume_name
