"""Which partition holds a node's LINSTOR data: a raw volume (Talos v1.11+) or the old user volume.

Talos v1.11 added ``RawVolumeConfig``: a partition labelled ``r-<name>`` that Talos never formats
or mounts ("intended to be used with CSI provisioners", talos ``block.RawVolumeConfigV1Alpha1``),
reachable at ``/dev/disk/by-partlabel/r-<name>`` on every boot. It is the layout on v1.11+.
Before v1.11 only ``UserVolumeConfig`` exists (``u-<name>``, formatted and mounted by Talos);
a node set up that way (the seed article's layout) keeps it: 01 and 03 leave the partition to
LINSTOR, verify it and say how to migrate. Pure: specs in, decisions out.
"""

from __future__ import annotations

from dataclasses import dataclass

from .params import Storage, version_tuple

RAW = "raw"
USER = "user"
#: what LINSTOR's backing store leaves on the device (blkid names, as Talos's DiscoveredVolume ``name``)
POOL_SIGNATURES = {"zfsPool": "zfs_member", "zfsThinPool": "zfs_member", "lvmPool": "LVM2_member",
                   "lvmThinPool": "LVM2_member"}


def supports_raw_volumes(talos_version: str) -> bool:
    """``RawVolumeConfig`` arrived in Talos v1.11.0 (config schema v1.11.6 has it, v1.10.9 does not)."""
    return version_tuple(talos_version) >= (1, 11, 0)


def pool_signature(storage: Storage) -> str:
    return POOL_SIGNATURES[storage.pool_type]


@dataclass
class NodeVolume:
    """The LINSTOR partition of one node, as Talos reports it."""

    node: str
    kind: str  # RAW or USER
    label: str  # r-<name> or u-<name>
    old_layout: bool  # a u-<name> partition on a node that could use a raw volume
    status: dict  # VolumeStatus spec of ``label`` ({} when absent)
    partition: dict | None  # DiscoveredVolume spec of the partition carrying ``label``

    @property
    def device(self) -> str:
        """The partition's current device (``/dev/nvme0n1p5``), "" when there is none yet."""
        return str(self.status.get("location") or (self.partition or {}).get("dev_path") or "")

    @property
    def signature(self) -> str:
        """What Talos probes on the partition now: "" (blank), ``xfs``, ``zfs_member``, ..."""
        return str((self.partition or {}).get("name") or "")

    @property
    def size(self) -> int:
        return int(self.status.get("size") or (self.partition or {}).get("size") or 0)


def node_volume(node: str, storage: Storage, talos_version: str, volumes: dict[str, dict],
                partitions: list[dict], config_docs: list[dict] | None = None) -> NodeVolume:
    """Classify a node from its ``VolumeStatus`` (by ID), partitions and (when read) machine configuration."""
    by_label = {p.get("partition_label"): p for p in partitions if p.get("partition_label")}
    user_doc = any(d.get("kind") == "UserVolumeConfig" and d.get("name") == storage.volume_name
                   for d in config_docs or [])
    has_user = storage.partition_label in by_label or storage.partition_label in volumes or user_doc
    if supports_raw_volumes(talos_version) and not has_user:
        kind, label, old = RAW, storage.raw_label, False
    else:
        kind, label, old = USER, storage.partition_label, supports_raw_volumes(talos_version)
    return NodeVolume(node, kind, label, old, volumes.get(label) or {}, by_label.get(label))


def linstor_device(storage: Storage, vol: NodeVolume) -> str:
    """The device path 03 gives LINSTOR (``source.hostDevices``).

    A raw volume: ``/dev/disk/by-partlabel/r-<name>``. The operator passes ``hostDevices`` unchanged to
    LINSTOR's create-device-pool (piraeus-operator ``internal/controller/linstorsatellite_controller.go``,
    ``DevicePaths: pool.Source.HostDevices``; the only rule is a clean path under /dev, ``api/v1/storagepool.go``)
    and the satellite runs ``zpool create`` / ``pvcreate`` on it (linstor-server ``DevicePoolHandler``), which
    accept a symlink. The label path is the same on every boot, whereas ``nvme0n1p5`` depends on enumeration
    and the operator refuses a changed pool source ("Cannot change source"). The old layout keeps the device
    it was handed (its ``u-`` partition).
    """
    return storage.raw_device_path if vol.kind == RAW else vol.device


def migration_steps(node: str, storage: Storage) -> str:
    """The per-node procedure from the old ``u-<name>`` layout to a raw volume (manual, approved per node)."""
    return (f"{node} uses the old layout ({storage.partition_label}: a formatted UserVolumeConfig whose filesystem "
            f"LINSTOR overwrote). It keeps working and the runbooks leave it alone. To migrate it to a raw volume "
            f"({storage.raw_label}), one node at a time: evacuate it (`linstor node evacuate {node}`, wait until every "
            f"resource is UpToDate elsewhere), delete its pool and LinstorSatelliteConfiguration storage-{node}, "
            f"remove the UserVolumeConfig {storage.volume_name!r} (a `$patch: delete` document), "
            f"`talosctl -n <ip> wipe disk <partition> --drop-partition`, then re-run 01 and 03 (they create "
            f"{storage.raw_label} and the pool on it) and let LINSTOR place the replicas back.")
