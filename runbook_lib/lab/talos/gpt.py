"""A node's disks and their GPT: partition placement as go-blockdevice does it, and the installed system layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .constants import (
    EFI_SYSTEM_GUID,
    GPT_ALIGN_BYTES,
    GPT_ENTRY_LBAS,
    GPT_FIRST_USABLE_LBA,
    LINUX_FS_DATA_GUID,
    META_SIZE,
    MIB,
    SECTOR,
    STATE_SIZE,
)
from .errors import TalosAPIError
from .releases import parse_version
from .seeded import _Rand


@dataclass
class Partition:
    index: int  # 1-based GPT entry number == kernel partition number
    label: str  # GPT partition name (EFI, META, STATE, EPHEMERAL, u-<name>, ...)
    first_lba: int
    last_lba: int
    part_uuid: str
    type_uuid: str = LINUX_FS_DATA_GUID
    filesystem: str = ""  # probed signature: xfs, vfat, talosmeta, "" (none)
    fs_uuid: str = ""
    fs_label: str = ""

    @property
    def size(self) -> int:
        return (self.last_lba - self.first_lba + 1) * SECTOR


@dataclass
class Disk:
    """A block device with an optional GPT; partition placement mirrors go-blockdevice v2."""

    dev_path: str
    size: int
    model: str
    serial: str
    wwid: str
    bus_path: str
    transport: str
    sub_system: str = "/sys/class/nvme"
    io_size: int = 512
    sector_size: int = SECTOR
    rotational: bool = False
    readonly: bool = False
    cdrom: bool = False
    symlinks: list[str] = field(default_factory=list)
    gpt: bool = False
    disk_guid: str = ""
    partitions: list[Partition] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.dev_path.rsplit("/", 1)[-1]

    def part_name(self, index: int) -> str:
        """Kernel name of partition ``index`` (``nvme0n1p5``, ``sda5``)."""
        sep = "p" if self.name[-1].isdigit() else ""
        return f"{self.name}{sep}{index}"

    def part_path(self, index: int) -> str:
        return "/dev/" + self.part_name(index)

    # GPT geometry (gpt.Table.init)
    @property
    def last_lba(self) -> int:
        return self.size // self.sector_size - 1

    @property
    def last_usable_lba(self) -> int:
        return self.last_lba - GPT_ENTRY_LBAS - 1

    @property
    def alignment(self) -> int:
        return max(self.io_size, GPT_ALIGN_BYTES) // self.sector_size

    def _entries(self) -> list[Partition | None]:
        """Entries indexed by partition number - 1; trailing empty slots are trimmed like ``gpt.Read``."""
        by_index = {p.index: p for p in self.partitions}
        top = max(by_index, default=0)
        return [by_index.get(i) for i in range(1, top + 1)]

    def allocatable_ranges(self) -> list[tuple[int, int, int, int]]:
        """``gpt.Table.allocatableRanges``: (lowLBA, highLBA, partitionIdx, size bytes) of the free areas."""
        entries = self._entries()
        idx, low, ranges = 0, GPT_FIRST_USABLE_LBA, []
        while True:
            # Go skips one empty slot per step; a run of several would dereference nil there,
            # the lab skips them all instead.
            while idx < len(entries) and entries[idx] is None:
                idx += 1
            high = entries[idx].first_lba - 1 if idx < len(entries) else self.last_usable_lba  # type: ignore[union-attr]
            low = (low + self.alignment - 1) // self.alignment * self.alignment
            if high > low:
                ranges.append((low, high, idx, (high - low + 1) * self.sector_size))
            if high == self.last_usable_lba:
                return ranges
            low = entries[idx].last_lba + 1  # type: ignore[union-attr]
            idx += 1

    def largest_free(self) -> int:
        """``LargestContiguousAllocatable`` (0 without a GPT)."""
        if not self.gpt:
            return 0
        return max((r[3] for r in self.allocatable_ranges()), default=0)

    def allocate(self, size: int, label: str, part_uuid: str, type_uuid: str = LINUX_FS_DATA_GUID) -> Partition:
        """``gpt.Table.AllocatePartition``: the smallest free range that fits ``size``."""
        if size < self.sector_size:
            raise TalosAPIError("Unknown", "partition size must be greater than sector size")
        fits = [r for r in self.allocatable_ranges() if r[3] >= size]
        if not fits:
            raise TalosAPIError("Unknown", "no allocatable range found")
        low, _high, idx, _size = min(fits, key=lambda r: r[3])
        entries = self._entries()
        part = Partition(index=0, label=label, first_lba=low, last_lba=low + size // self.sector_size - 1,
                         part_uuid=part_uuid, type_uuid=type_uuid)
        if idx > 0 and idx - 1 < len(entries) and entries[idx - 1] is None:
            part.index = idx  # reuse the empty slot just before the range
        else:
            # slices.Insert: later entries move up by one (Talos renumbers them in the kernel too)
            for p in self.partitions:
                if p.index > idx:
                    p.index += 1
            part.index = idx + 1
        self.partitions.append(part)
        self.partitions.sort(key=lambda p: p.index)
        return part

    def growth_available(self, part: Partition) -> int:
        """``AvailablePartitionGrowth``: the free range that starts right after ``part``."""
        for _low, _high, idx, size in self.allocatable_ranges():
            if idx == part.index:
                return size
        return 0

    def drop(self, part: Partition) -> None:
        self.partitions = [p for p in self.partitions if p is not part]

    def by_label(self, label: str) -> Partition | None:
        return next((p for p in self.partitions if p.label == label), None)

    def by_index(self, index: int) -> Partition | None:
        return next((p for p in self.partitions if p.index == index), None)

    def spec(self) -> dict:
        """``Disks.block.talos.dev`` spec (yaml field names, DiskSpec field order)."""
        from runbook_lib.sizes import format_si

        spec: dict[str, Any] = {
            "dev_path": self.dev_path, "size": self.size, "pretty_size": format_si(self.size),
            "io_size": self.io_size, "sector_size": self.sector_size, "readonly": self.readonly,
            "cdrom": self.cdrom, "model": self.model, "serial": self.serial, "wwid": self.wwid,
            "bus_path": self.bus_path, "sub_system": self.sub_system, "transport": self.transport,
            "rotational": self.rotational,
        }
        if self.symlinks:
            spec["symlinks"] = list(self.symlinks)
        return spec

    def wipe_all(self) -> None:
        """``WipeWithSignatures`` on the whole disk: the GPT and every signature go."""
        self.gpt = False
        self.partitions = []


def _new_disk(name: str, index: int, size: int, transport: str, seed: int) -> Disk:
    r = _Rand(seed, f"disk:{name}")
    serial = "S6B0NX0" + r.alnum(6, "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789")
    if transport == "nvme":
        dev = f"/dev/nvme{index}n1"
        model = f"Samsung SSD 980 PRO {size // 1_000_000_000}GB"
        wwid = "eui.002538b" + r.hex(21)
        pci = f"0000:{0x3d + index:02x}:00.0"
        bus = f"/pci0000:00/0000:00:1d.0/{pci}/nvme"
        links = [f"/dev/disk/by-id/nvme-{model.replace(' ', '_')}_{serial}", f"/dev/disk/by-id/nvme-{wwid}",
                 f"/dev/disk/by-path/pci-{pci}-nvme-1"]
        sub = "/sys/class/nvme"
    else:
        dev = f"/dev/sd{'abcdefgh'[index]}"
        model = f"Samsung SSD 870 EVO {size // 1_000_000_000}GB"
        wwid = "naa.5002538f" + r.hex(8)
        bus = f"/pci0000:00/0000:00:17.0/ata{index + 1}/host{index}/target{index}:0:0/{index}:0:0:0/"
        links = [f"/dev/disk/by-id/ata-{model.replace(' ', '_')}_{serial}", f"/dev/disk/by-id/wwn-0x{wwid[4:]}",
                 f"/dev/disk/by-path/pci-0000:00:17.0-ata-{index + 1}"]
        sub = "/sys/class/block"
    return Disk(dev_path=dev, size=size, model=model, serial=serial, wwid=wwid, bus_path=bus, transport=transport,
                sub_system=sub, symlinks=[f"/dev/disk/by-diskseq/{index + 1}", *links])


def efi_size(talos_tag: str) -> int:
    """UKI EFI partition size of an install made by Talos ``talos_tag`` (imager quirks)."""
    boot = 2000 * MIB if parse_version(talos_tag)[:2] >= (1, 11) else 1000 * MIB
    return 100 * MIB + 1 * MIB + boot


def install_system_partitions(disk: Disk, talos_tag: str, seed: int, salt: str) -> None:
    """What the installer writes: a new GPT with EFI, META and STATE (EPHEMERAL comes at boot)."""
    r = _Rand(seed, f"install:{disk.dev_path}:{salt}")
    disk.gpt, disk.partitions, disk.disk_guid = True, [], r.uuid()
    efi = disk.allocate(efi_size(talos_tag), "EFI", r.uuid(), EFI_SYSTEM_GUID)
    efi.filesystem, efi.fs_uuid, efi.fs_label = "vfat", r.hex(4).upper() + "-" + r.hex(4).upper(), "EFI"
    meta = disk.allocate(META_SIZE, "META", r.uuid())
    meta.filesystem = "talosmeta"
    state = disk.allocate(STATE_SIZE, "STATE", r.uuid())
    state.filesystem, state.fs_uuid, state.fs_label = "xfs", r.uuid(), "STATE"
