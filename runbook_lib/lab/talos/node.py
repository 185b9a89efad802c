"""One Talos node's state: stage, disks, configuration, loaded modules, etcd membership."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .constants import T_KUBELET
from .gpt import Disk, Partition
from .releases import drbd_version, kernel_version


@dataclass
class TalosNode:
    name: str
    address: str
    role: str
    talos_version: str
    installer_image: str
    schematic: str | None = None
    extensions: list[str] = field(default_factory=list)  # official names, schematic order
    boot_id: str = ""
    boot_count: int = 1
    upgraded_boot: int = 0  # the boot count of the last boot that started an upgraded system
    down_at: float | None = None  # lab time the node last stopped (its services, DRBD included, went away)
    stage: str = "running"
    power: bool = True
    api: bool = True
    running_at: float | None = -600.0
    booted_at: float = -660.0
    config: list[dict] | None = None  # the active machine configuration
    persisted: list[dict] | None = None  # on STATE, applied at the next boot (staged/reboot modes)
    disks: list[Disk] = field(default_factory=list)
    volumes: dict[str, dict] = field(default_factory=dict)  # VolumeStatus specs by ID
    modules: list[dict] = field(default_factory=list)  # loaded kernel modules, load order
    etcd_member: bool = False
    etcd_member_id: str = ""
    etcd_data: bool = False  # /var/lib/etcd holds this member's data
    cordoned: bool = False
    schedule: list[dict] = field(default_factory=list)  # pending timeline events, time-ordered
    stuck: bool = False  # stuck-reboot fault holds the node down
    fault_down: bool = False  # node-down fault powered it off
    pending_upgrade: dict | None = None
    actions: dict[str, dict] = field(default_factory=dict)  # actor ID -> progress of reboot/reset/upgrade
    node_id: str = ""
    res_meta: dict[str, dict] = field(default_factory=dict)  # resource versions/timestamps since boot
    log: list[str] = field(default_factory=list)  # machined-style log lines (errors the lab reports)

    # -- state queries used by the server
    def is_up(self, now: float) -> bool:
        """The Talos API (apid, or the maintenance service) answers on ``<address>:50000``."""
        return self.power and self.api and not self.fault_down and not self.stuck

    @property
    def maintenance(self) -> bool:
        return self.stage == "maintenance"

    def ready_at(self) -> float | None:
        """Lab time the kubelet (and the services started with it) came up after the last boot."""
        return None if self.running_at is None else self.running_at + T_KUBELET

    def kubelet_ready(self, now: float) -> bool:
        """The kubelet runs and would post Ready: booted, ``running`` and ~15 lab s after reaching it."""
        return (self.is_up(now) and self.stage == "running" and self.running_at is not None
                and now >= self.running_at + T_KUBELET and self.config is not None)

    def etcd_running(self, now: float) -> bool:
        """This control plane's etcd member is running with its data (quorum is a cluster question)."""
        return (self.role == "controlplane" and self.is_up(now) and self.stage == "running"
                and self.etcd_member and self.etcd_data)

    @property
    def kernel_version(self) -> str:
        return kernel_version(self.talos_version)

    @property
    def system_disk(self) -> Disk:
        return self.disks[0]

    def partition_by_path(self, path: str) -> tuple[Disk, Partition] | None:
        for disk in self.disks:
            for p in disk.partitions:
                if disk.part_path(p.index) == path:
                    return disk, p
        return None

    def block_device_filesystem(self, path: str) -> str | None:
        """Probed signature of a disk or partition (``xfs``, ``gpt``, ``""``), None if no such device."""
        for disk in self.disks:
            if disk.dev_path == path:
                return "gpt" if disk.gpt else ""
        found = self.partition_by_path(path)
        return found[1].filesystem if found else None

    def loaded_module(self, name: str) -> dict | None:
        return next((m for m in self.modules if m["name"] == name), None)

    def drbd_version(self) -> str | None:
        """DRBD version of the loaded module (None when drbd is not loaded)."""
        return drbd_version(self.talos_version) if self.loaded_module("drbd") else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TalosNode:
        data = dict(data)
        disks = []
        for dd in data.pop("disks", []):
            dd = dict(dd)
            parts = [Partition(**p) for p in dd.pop("partitions", [])]
            disks.append(Disk(**dd, partitions=parts))
        return cls(**data, disks=disks)
