"""The lab's Talos Linux model: nodes, disks, GPT partitions, volumes, machine config.

A pure, JSON-serializable model (no I/O, no threads, no wall clock): the lab server
owns one :class:`TalosCluster`, calls :meth:`TalosCluster.advance` with lab time
before each request, and :mod:`.talos_api` turns requests into the operations below.

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
import difflib
import functools
import hashlib
import json
import random
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from .errors import TalosAPIError
from .releases import drbd_version, kernel_version, parse_version, zfs_version

# ----------------------------------------------------------------------------- constants

MIB = 1024 * 1024
GIB = 1024 * MIB
SECTOR = 512

# go-blockdevice v2 gpt.Table.init: 128 entries x 128 bytes = 32 LBAs of entries on each side,
# first usable LBA = 2 + 32 = 34, last usable = lastLBA - 33; alignment = max(ioSize, 1 MiB).
GPT_ENTRY_LBAS = 32
GPT_FIRST_USABLE_LBA = 2 + GPT_ENTRY_LBAS
GPT_ALIGN_BYTES = 2048 * 512

# Partition type GUIDs (UEFI spec; Talos internal/pkg/partition constants).
EFI_SYSTEM_GUID = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
LINUX_FS_DATA_GUID = "0fc63daf-8483-4772-8e79-3d69d8477de4"

# Talos pkg/imager/quirks PartitionSizes: UKI EFI = GrubEFI 100 MiB + BIOS 1 MiB + BOOT,
# BOOT is 2000 MiB from v1.11.0 (minVersionBoot2G) and 1000 MiB before; META 1 MiB,
# STATE 100 MiB, EPHEMERAL min 2 GiB.
META_SIZE = 1 * MIB
STATE_SIZE = 100 * MIB
EPHEMERAL_MIN_SIZE = 2 * GIB
# talos volumeconfig/user_volumes.go MinUserVolumeSize.
MIN_USER_VOLUME_SIZE = 100 * MIB

USER_VOLUME_MOUNT_POINT = "/var/mnt"  # constants.UserVolumeMountPoint
EPHEMERAL_SELINUX_LABEL = "system_u:object_r:ephemeral_t:s0"  # constants.EphemeralSelinuxLabel

# Volume labels (pkg/machinery/resources/block/block.go).
LABEL_SYSTEM_VOLUME = "talos.dev/system-volume"
LABEL_USER_VOLUME = "talos.dev/user-volume"
LABEL_RAW_VOLUME = "talos.dev/raw-volume"

KUBERNETES_VERSION = "v1.35.0"
DEFAULT_TALOS_VERSION = "v1.12.6"

# Lab-second durations of the boot/reboot sequence. A plain reboot reaches ``running``
# after ~45 s, a reset with reboot after ~45-55 s and the kubelet reports Ready ~15 s later.
T_SHUTDOWN = 5.0  # services stop after a reboot/shutdown request; the API still answers
T_DRAIN = 10.0  # cordon + drain of a graceful reset/upgrade
T_INSTALL = 20.0  # installer pull + write during an upgrade or an install
T_POWER_CYCLE = 25.0  # firmware + kernel until apid answers again
T_BOOT = 15.0  # booting -> running (boot sequence)
T_KUBELET = 15.0  # running -> kubelet Ready
T_ETCD_JOIN = 5.0  # a control plane that left etcd joins again this long after running
T_TRY_DEFAULT = 60.0  # apply-config --mode try default timeout (constants.ConfigTryTimeout, 1m)

STAGES = ("unknown", "booting", "installing", "maintenance", "running", "rebooting", "shutting down",
          "resetting", "upgrading")  # runtime/machinestage.go

# Go toolchains of the talosctl/machined builds shown by `talosctl version` (approximation).
GO_VERSIONS = {(1, 10): "go1.24.4", (1, 11): "go1.24.6", (1, 12): "go1.25.5", (1, 13): "go1.25.7"}

# Official extensions the lab knows: which kernel modules each one ships (extensions repo:
# storage/drbd copies /usr/lib/modules/* with drbd + transports; storage/zfs ships zfs + spl).
EXTENSION_CATALOG: dict[str, dict[str, Any]] = {
    "siderolabs/drbd": {
        "name": "drbd",
        "author": "Alexander Prentki",
        "description": "DRBD kernel modules (storage/drbd)",
        "modules": ("drbd", "drbd_transport_tcp", "drbd_transport_rdma", "drbd_transport_lb_tcp"),
    },
    "siderolabs/zfs": {
        "name": "zfs",
        "author": "Sidero Labs",
        "description": "ZFS kernel modules and tools (storage/zfs)",
        "modules": ("zfs", "spl"),
    },
}
# Loadable in-tree modules the lab accepts in machine.kernel.modules (everything else is
# "module not found", as on a node without the extension that ships it).
IN_TREE_MODULES = frozenset({
    "br_netfilter", "nvme_tcp", "nvme_fabrics", "dm_thin_pool", "dm_snapshot", "dm_mirror", "dm_multipath",
    "dm_crypt", "iscsi_tcp", "vfio_pci", "vfio_iommu_type1", "uio", "uio_pci_generic", "rbd", "ceph", "nbd",
    "openvswitch", "wireguard", "bonding", "8021q", "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "xt_socket",
    "nf_conntrack", "overlay", "loop", "sctp",
})
MODULE_SIZES = {"drbd": 643072, "drbd_transport_tcp": 28672, "drbd_transport_rdma": 45056, "zfs": 6049792,
                "spl": 135168}

VANILLA_INSTALLER = "ghcr.io/siderolabs/installer"
FACTORY_HOST = "factory.talos.dev"
VANILLA_SCHEMATIC = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"

# v1alpha1 fields CanApplyImmediate ignores (talos internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_runtime.go):
# a change anywhere else in the v1alpha1 document needs a reboot; other documents never do.
IMMEDIATE_TOP = ("debug", "cluster")
IMMEDIATE_MACHINE = ("ca", "acceptedCAs", "time", "certSANs", "install", "network", "sysfs", "sysctls", "logging",
                     "controlPlane", "kubelet", "kernel", "registries", "pods", "seccompProfiles",
                     "nodeAnnotations", "nodeLabels", "nodeTaints")
IMMEDIATE_FEATURES = ("kubernetesTalosAPIAccess", "kubePrism", "hostDNS", "imageCache", "nodeAddressSortAlgorithm")




# ----------------------------------------------------------------------------- small helpers


def extension_version(official_name: str, tag: str) -> str:
    """Version string of an official extension built for Talos ``tag``.

    drbd: ``<drbd>-<talos tag>`` (extensions storage/drbd/vars.yaml ``VERSION``).
    """
    if official_name == "siderolabs/drbd":
        return f"{drbd_version(tag)}-{tag}"
    if official_name == "siderolabs/zfs":
        return f"{zfs_version(tag)}-{tag}"
    return tag


def parse_installer_image(image: str) -> tuple[str, str | None]:
    """Installer reference -> (Talos version, schematic ID or None for the vanilla installer).

    Factory references are ``factory.talos.dev/<installer|metal-installer|...-installer>[-secureboot]/<id>:<ver>``
    (image-factory docs/api.md); ``ghcr.io/siderolabs/installer:<ver>`` is the vanilla installer,
    which carries no extensions at all (talos#8467).
    """
    if ":" not in image.rsplit("/", 1)[-1]:
        raise ValueError(f"installer image {image!r} has no tag")
    repo, tag = image.rsplit(":", 1)
    parse_version(tag)
    if repo == VANILLA_INSTALLER:
        return tag, None
    parts = repo.split("/")
    if len(parts) == 3 and parts[0] == FACTORY_HOST and parts[1].split("-secureboot")[0].endswith("installer"):
        if not re.fullmatch(r"[0-9a-f]{64}", parts[2]):
            raise ValueError(f"installer image {image!r}: {parts[2]!r} is not a schematic ID")
        return tag, parts[2]
    raise ValueError(f"installer image {image!r} is neither the vanilla installer nor an Image Factory installer")


class _Rand:
    """Deterministic identifiers derived from the lab seed and a purpose string."""

    def __init__(self, seed: int, purpose: str) -> None:
        self._r = random.Random(f"{seed}:{purpose}")

    def hex(self, n: int) -> str:
        return "".join(self._r.choice("0123456789abcdef") for _ in range(n))

    def alnum(self, n: int, alphabet: str = "abcdefghijklmnopqrstuvwxyz0123456789") -> str:
        return "".join(self._r.choice(alphabet) for _ in range(n))

    def bytes(self, n: int) -> bytes:
        return bytes(self._r.getrandbits(8) for _ in range(n))

    def uuid(self) -> str:
        return str(uuid.UUID(bytes=self.bytes(16), version=4))

    def b64(self, n: int) -> str:
        return base64.b64encode(self.bytes(n)).decode()

    def pem(self, kind: str, n: int) -> str:
        """A fake PEM block, base64-encoded as Talos stores certificates and keys in its config."""
        body = base64.b64encode(self.bytes(n)).decode()
        lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
        return base64.b64encode(f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----\n".encode()).decode()


def rfc3339(epoch: float, lab_seconds: float) -> str:
    return datetime.fromtimestamp(epoch + max(lab_seconds, 0.0), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------- go-yaml style emitter

class Raw(str):
    """A scalar emitted as-is (cosi writes metadata values as plain nodes, so ``id: 0`` is unquoted)."""


class _Empty:
    """A mapping value that prints nothing after the colon (cosi's empty labels/owner)."""

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY = _Empty()

_YAML_WORDS = frozenset({"true", "false", "null", "~", "yes", "no", "on", "off", "y", "n", ""})
_YAML_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)|0o[0-7]+|0x[0-9a-fA-F]+|0b[01]+")
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")
_YAML_BASE60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_YAML_TIMESTAMP = re.compile(r"\d{4}-\d\d?-\d\d?([Tt ]|$)")


def _resolves_non_string(s: str) -> bool:
    """Would a plain ``s`` read back as something other than a string (go-yaml v3 resolve + isOldBool)?"""
    return (s.lower() in _YAML_WORDS or bool(_YAML_INT.fullmatch(s)) or bool(_YAML_FLOAT.fullmatch(s))
            or bool(_YAML_BASE60.fullmatch(s)) or bool(_YAML_TIMESTAMP.match(s)))


def _plain_allowed(s: str) -> bool:
    """libyaml ``analyze_scalar`` for block context, reduced to the cases our strings hit."""
    if not s or s != s.strip() or s.startswith(("---", "...")):
        return False
    if s[0] in "!&*|>'\"%@`#,[]{}":
        return False
    if s[0] in "-?:" and (len(s) == 1 or s[1] == " "):
        return False
    if ": " in s or " #" in s or s.endswith(":") or "\t" in s:
        return False
    return all(c.isprintable() for c in s)


def yaml_scalar(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    s = str(value)
    if _resolves_non_string(s):
        return json.dumps(s)
    if _plain_allowed(s):
        return s
    if all(c.isprintable() for c in s):
        return "'" + s.replace("'", "''") + "'"
    return json.dumps(s)


def _child_indent(indent: int) -> int:
    """go-yaml v3 ``increase_indent``: everything but the first level in a sequence item aligns to 4."""
    return 4 * ((indent + 4) // 4)


def _emit_value(head: str, value: Any, indent: int, out: list[str]) -> None:
    if isinstance(value, dict):
        if not value:
            out.append(head + " {}")
        else:
            out.append(head)
            _emit_mapping(value, _child_indent(indent), out)
    elif isinstance(value, list | tuple):
        if not value:
            out.append(head + " []")
        else:
            out.append(head)
            _emit_sequence(list(value), _child_indent(indent), out)
    elif value is EMPTY:
        out.append(head)
    elif isinstance(value, str) and not isinstance(value, Raw) and "\n" in value:
        trailing = len(value) - len(value.rstrip("\n"))
        chomp = "-" if trailing == 0 else ("" if trailing == 1 else "+")
        out.append(f"{head} |{chomp}")
        pad = " " * _child_indent(indent)
        body = value[:-trailing] if trailing else value
        for line in body.split("\n"):
            out.append(pad + line if line else "")
        out.extend("" for _ in range(max(trailing - 1, 0)))
    else:
        out.append(f"{head} {yaml_scalar(value)}")


def _emit_mapping(mapping: dict, indent: int, out: list[str], first_prefix: str | None = None) -> None:
    for i, (key, value) in enumerate(mapping.items()):
        prefix = first_prefix if (i == 0 and first_prefix is not None) else " " * indent
        _emit_value(f"{prefix}{yaml_scalar(str(key))}:", value, indent, out)


def _emit_sequence(items: list, indent: int, out: list[str]) -> None:
    for item in items:
        if isinstance(item, dict) and item:
            _emit_mapping(item, indent + 2, out, first_prefix=" " * indent + "- ")
        else:
            _emit_value(" " * indent + "-", item, indent, out)


def go_yaml_dump(value: dict) -> str:
    """Marshal a mapping like go-yaml v3 with a 4-space indent (Talos config and talosctl output)."""
    out: list[str] = []
    _emit_mapping(value, 0, out)
    return "\n".join(out) + "\n"


def dump_config(docs: list[dict]) -> str:
    """A multi-document machine configuration as Talos writes it (``---`` between documents)."""
    return "---\n".join(go_yaml_dump(d) for d in docs)


# ----------------------------------------------------------------------------- disks and GPT


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


# ----------------------------------------------------------------------------- machine configuration


def generate_v1alpha1(role: str, *, hostname: str, install_disk: str, installer_image: str, endpoint_ip: str,
                      cluster_name: str, secrets: dict[str, str]) -> dict:
    """A realistic ``talosctl gen config`` style v1alpha1 document (secrets come from ``secrets``)."""
    cp = role == "controlplane"
    machine: dict[str, Any] = {
        "type": role,
        "token": secrets["machine_token"],
        "ca": {"crt": secrets["machine_ca_crt"], "key": secrets["machine_ca_key"] if cp else ""},
        "certSANs": [],
        "kubelet": {"image": f"ghcr.io/siderolabs/kubelet:{KUBERNETES_VERSION}",
                    "defaultRuntimeSeccompProfileEnabled": True, "disableManifestsDirectory": True},
        "network": {"hostname": hostname},
        "install": {"disk": install_disk, "image": installer_image, "wipe": False},
        "features": {"rbac": True, "stableHostname": True, "apidCheckExtKeyUsage": True, "diskQuotaSupport": True,
                     "kubePrism": {"enabled": True, "port": 7445},
                     "hostDNS": {"enabled": True, "forwardKubeDNSToHost": True}},
    }
    if cp:
        machine["nodeLabels"] = {"node.kubernetes.io/exclude-from-external-load-balancers": ""}
    cluster: dict[str, Any] = {
        "id": secrets["cluster_id"],
        "secret": secrets["cluster_secret"],
        "controlPlane": {"endpoint": f"https://{endpoint_ip}:6443"},
        "clusterName": cluster_name,
        "network": {"dnsDomain": "cluster.local", "podSubnets": ["10.244.0.0/16"], "serviceSubnets": ["10.96.0.0/12"]},
        "token": secrets["cluster_token"],
    }
    if cp:
        cluster.update({
            "secretboxEncryptionSecret": secrets["secretbox"],
            "ca": {"crt": secrets["k8s_ca_crt"], "key": secrets["k8s_ca_key"]},
            "aggregatorCA": {"crt": secrets["aggregator_crt"], "key": secrets["aggregator_key"]},
            "serviceAccount": {"key": secrets["service_account_key"]},
            "apiServer": {"image": f"registry.k8s.io/kube-apiserver:{KUBERNETES_VERSION}", "certSANs": [endpoint_ip]},
            "controllerManager": {"image": f"registry.k8s.io/kube-controller-manager:{KUBERNETES_VERSION}"},
            "proxy": {"image": f"registry.k8s.io/kube-proxy:{KUBERNETES_VERSION}"},
            "scheduler": {"image": f"registry.k8s.io/kube-scheduler:{KUBERNETES_VERSION}"},
            "discovery": {"enabled": True, "registries": {"kubernetes": {"disabled": True}, "service": {}}},
            "etcd": {"ca": {"crt": secrets["etcd_ca_crt"], "key": secrets["etcd_ca_key"]}},
        })
    else:
        cluster.update({
            "ca": {"crt": secrets["k8s_ca_crt"], "key": ""},
            "discovery": {"enabled": True, "registries": {"kubernetes": {"disabled": True}, "service": {}}},
        })
    return {"version": "v1alpha1", "debug": False, "persist": True, "machine": machine, "cluster": cluster}


def generate_secrets(seed: int) -> dict[str, str]:
    r = _Rand(seed, "secrets")
    tok = "abcdefghijklmnopqrstuvwxyz0123456789"
    return {
        "machine_token": f"{r.alnum(6, tok)}.{r.alnum(16, tok)}",
        "machine_ca_crt": r.pem("CERTIFICATE", 300),
        "machine_ca_key": r.pem("ED25519 PRIVATE KEY", 48),
        "cluster_id": r.b64(32),
        "cluster_secret": r.b64(32),
        "cluster_token": f"{r.alnum(6, tok)}.{r.alnum(16, tok)}",
        "secretbox": r.b64(32),
        "k8s_ca_crt": r.pem("CERTIFICATE", 420),
        "k8s_ca_key": r.pem("EC PRIVATE KEY", 121),
        "aggregator_crt": r.pem("CERTIFICATE", 300),
        "aggregator_key": r.pem("EC PRIVATE KEY", 121),
        "service_account_key": r.pem("EC PRIVATE KEY", 121),
        "etcd_ca_crt": r.pem("CERTIFICATE", 330),
        "etcd_ca_key": r.pem("EC PRIVATE KEY", 121),
        "client_ca": r.pem("CERTIFICATE", 300),
        "client_crt": r.pem("CERTIFICATE", 330),
        "client_key": r.pem("ED25519 PRIVATE KEY", 48),
    }


# Which generated values are secret (certificates are public; keys, tokens and secrets are not).
SECRET_KEYS = ("machine_token", "machine_ca_key", "cluster_secret", "cluster_token", "secretbox", "k8s_ca_key",
               "aggregator_key", "service_account_key", "etcd_ca_key", "client_key")


def parse_config(text: str) -> list[dict]:
    """Split a machine configuration into its documents; a bad YAML is an InvalidArgument error."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise TalosAPIError("InvalidArgument", f"failed to parse config: {exc}") from None
    for d in docs:
        if not isinstance(d, dict):
            raise TalosAPIError("InvalidArgument", "failed to parse config: document is not a mapping")
    return docs


def doc_key(doc: dict) -> tuple[str, str, str]:
    """Identity of a document for merging: (apiVersion, kind, name); the v1alpha1 document is special."""
    if "kind" not in doc and doc.get("version") == "v1alpha1":
        return ("v1alpha1", "v1alpha1", "")
    return (str(doc.get("apiVersion", "")), str(doc.get("kind", "")), str(doc.get("name", "")))


def v1alpha1_doc(docs: list[dict]) -> dict | None:
    return next((d for d in docs if doc_key(d)[1] == "v1alpha1"), None)


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as Talos ``configpatcher``: maps merge, lists are concatenated (an entry already there
    is appended again: ``pkg/machinery/config/merge`` Merge), ``$patch: delete`` removes a key."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if isinstance(value, dict) and value.get("$patch") == "delete":
                out.pop(key, None)
            elif key in out:
                out[key] = _merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list):
        return base + [copy.deepcopy(v) for v in patch]  # concatenated, duplicates kept (talos config/merge)
    return copy.deepcopy(patch)


def _json_pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def _apply_json6902(doc: dict, ops: list[dict]) -> dict:
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = _json_pointer(op.get("path", ""))
        if not parts:
            raise ValueError("JSON patch path is empty")
        parent: Any = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = parts[-1]
        kind = op.get("op")
        if kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op.get("value"))
                elif kind == "add":
                    parent.insert(int(last), op.get("value"))
                else:
                    parent[int(last)] = op.get("value")
            else:
                if kind == "replace" and last not in parent:
                    raise ValueError(f"replace operation does not apply: doc is missing path: {op.get('path')}")
                parent[last] = op.get("value")
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            elif last in parent:
                del parent[last]
            else:
                raise ValueError(f"remove operation does not apply: doc is missing path: {op.get('path')}")
        else:
            raise ValueError(f"unsupported JSON patch operation {kind!r}")
    return doc


def apply_config_patches(docs: list[dict], patches: Iterable[str]) -> list[dict]:
    """Apply ``talosctl patch machineconfig -p`` patches (client side, like Talos ``configpatcher``).

    Strategic merge patches may hold several documents; each merges into the document with the
    same apiVersion, kind and name, or is appended (notes §3 "Config patch semantics"). A document
    that is only ``$patch: delete`` removes its match; the v1alpha1 document cannot be deleted.
    A patch that starts with ``[`` is a JSON (RFC 6902) patch for the v1alpha1 document.
    """
    result = copy.deepcopy(docs)
    for text in patches:
        stripped = text.strip()
        if stripped.startswith("["):
            ops = json.loads(stripped) if stripped.startswith("[{") or stripped == "[]" else yaml.safe_load(stripped)
            if len(result) != 1:
                raise ValueError("JSON6902 patches are not supported for multi-document machine configuration")
            result = [_apply_json6902(result[0], ops)]
            continue
        try:
            patch_docs = [d for d in yaml.safe_load_all(stripped) if d is not None]
        except yaml.YAMLError as exc:
            raise ValueError(f"failed to parse patch: {exc}") from None
        for pd in patch_docs:
            if not isinstance(pd, dict):
                raise ValueError("failed to parse patch: document is not a mapping")
            key = doc_key(pd) if ("kind" in pd or "version" in pd) else ("v1alpha1", "v1alpha1", "")
            target = next((i for i, d in enumerate(result) if doc_key(d) == key), None)
            if pd.get("$patch") == "delete":
                if key[1] == "v1alpha1":
                    raise ValueError("cannot delete the v1alpha1 document")
                if target is not None:
                    result.pop(target)
                continue
            if target is None:
                result.append(copy.deepcopy(pd))
            else:
                result[target] = _merge(result[target], pd)
    return result


def strip_immediate(doc: dict) -> dict:
    """The v1alpha1 document without the fields ``CanApplyImmediate`` lets change live."""
    d = copy.deepcopy(doc)
    for k in IMMEDIATE_TOP:
        d.pop(k, None)
    machine = d.get("machine") or {}
    for k in IMMEDIATE_MACHINE:
        machine.pop(k, None)
    feats = machine.get("features") or {}
    for k in IMMEDIATE_FEATURES:
        feats.pop(k, None)
    return d


def config_diff(old: list[dict], new: list[dict]) -> str:
    """Unified diff of the encoded configurations (``configdiff.DiffToString``), "" when equal."""
    a, b = dump_config(old).splitlines(keepends=True), dump_config(new).splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, fromfile="a", tofile="b"))


def _parse_size_field(text: Any, what: str) -> int:
    from runbook_lib.sizes import parse_size

    try:
        return parse_size(text if isinstance(text, int) else str(text))
    except ValueError as exc:
        raise TalosAPIError("InvalidArgument", f"{what}: {exc}") from None


def validate_config(docs: list[dict], talos_tag: str) -> list[str]:
    """Validate the non-v1alpha1 documents as Talos does (notes §1.1, §1.4). Returns warnings."""
    from runbook_lib.disk_selector import check_disk_selector

    ver = parse_version(talos_tag)[:2]
    errors: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for doc in docs:
        key = doc_key(doc)
        if key in seen:
            errors.append(f"duplicate document: {key[1]}/{key[2]}")
        seen.add(key)
        kind = key[1]
        if kind == "v1alpha1":
            continue
        known = {"VolumeConfig": (1, 8), "UserVolumeConfig": (1, 10), "RawVolumeConfig": (1, 11),
                 "KubeSpanConfig": (1, 7), "HostnameConfig": (1, 12), "ExtensionServiceConfig": (1, 7)}
        if kind not in known or ver < known[kind]:
            errors.append(f"unknown document type {doc.get('apiVersion')}/{kind}")
            continue
        name = str(doc.get("name", ""))
        prov = doc.get("provisioning") or {}
        if kind == "VolumeConfig":
            allowed = ["EPHEMERAL", "IMAGECACHE"] if ver < (1, 11) else ["STATE", "EPHEMERAL", "IMAGECACHE"]
            if name not in allowed:
                errors.append(f"only {json.dumps(allowed).replace(',', ' ')} volumes are supported")
            if name == "STATE" and prov:
                errors.append('provisioning config is not allowed for the "STATE" volume')
        if kind in ("UserVolumeConfig", "RawVolumeConfig"):
            if not name:
                errors.append("name is required")
            elif not 1 <= len(name) <= 34:
                errors.append("name must be between 1 and 34 characters long")
            elif not re.fullmatch(r"[A-Za-z0-9-]+", name):
                errors.append("name can only contain lowercase and uppercase ASCII letters, digits, and hyphens")
            vtype = doc.get("volumeType")
            if vtype is not None and (ver < (1, 12) or kind == "RawVolumeConfig"):
                errors.append("unknown keys found during decoding:\nvolumeType: " + str(vtype))
            vtype = vtype or "partition"
            if vtype not in ("partition", "disk", "directory"):
                errors.append(f'unsupported volume type "{vtype}"')
            if vtype == "directory":
                if prov:
                    errors.append("provisioning spec is invalid for volumeType directory")
                continue
            selector = (prov.get("diskSelector") or {}).get("match")
            if not selector:
                errors.append("disk selector is required")
            else:
                problems = check_disk_selector(str(selector))
                if problems:
                    errors.append("disk selector is invalid: " + "; ".join(problems))
            if vtype == "disk" and any(k in prov for k in ("minSize", "maxSize", "grow")):
                errors.append("min size, max size and grow are not supported")
            if vtype == "partition" and not prov.get("minSize") and not prov.get("maxSize"):
                errors.append("min size or max size is required")
            fs = (doc.get("filesystem") or {}).get("type", "xfs")
            if fs not in ("xfs", "ext4"):
                errors.append(f"unsupported filesystem type: {fs}")
        for key_name in ("minSize", "maxSize"):
            value = prov.get(key_name)
            if value is None:
                continue
            if isinstance(value, str) and value.strip().endswith("%"):
                if ver < (1, 12) or key_name == "minSize":
                    errors.append(f"{key_name}: percentage sizes are not supported: {value}")
                continue
            try:
                _parse_size_field(value, key_name)
            except TalosAPIError as exc:
                errors.append(exc.message)
        mn, mx = prov.get("minSize"), prov.get("maxSize")
        if mn and mx and not str(mx).strip().endswith("%"):
            try:
                if _parse_size_field(mn, "minSize") > _parse_size_field(mx, "maxSize"):
                    errors.append("min size is greater than max size")
            except TalosAPIError:
                pass
    if errors:
        # hashicorp/go-multierror default format, as Talos's config Validate returns it
        word = "error" if len(errors) == 1 else "errors"
        raise TalosAPIError("InvalidArgument", f"{len(errors)} {word} occurred:\n\t* " + "\n\t* ".join(errors) + "\n\n")
    return []


# ----------------------------------------------------------------------------- volume configs


@dataclass
class VolumeCfg:
    """The part of a Talos ``VolumeConfig`` resource the lab's volume manager uses."""

    id: str
    label: str  # resource label key (talos.dev/system-volume, talos.dev/user-volume, ...)
    vtype: str = "partition"  # partition | disk | directory
    locate: str | None = None  # partition label that locates the volume
    provision: bool = False
    selector: str = ""
    min_size: int = 0
    max_size: int = 0
    max_percent: float = 0.0
    grow: bool = False
    filesystem: str = "xfs"
    fs_label: str = ""
    mount: dict | None = None
    wave: int = 0


def _user_mount(name: str, doc: dict) -> dict:
    """MountSpec of a user volume (user_volumes.go: ParentID /var/mnt, TargetPath name, mode 0755)."""
    return {"targetPath": name, "selinuxLabel": EPHEMERAL_SELINUX_LABEL,
            "projectQuotaSupport": bool((doc.get("filesystem") or {}).get("projectQuotaSupport", False)),
            "parentId": USER_VOLUME_MOUNT_POINT, "fileMode": 0o755}


def _sizes(prov: dict) -> tuple[int, int, float]:
    mn = _parse_size_field(prov["minSize"], "minSize") if prov.get("minSize") else 0
    mx_raw = prov.get("maxSize")
    if isinstance(mx_raw, str) and mx_raw.strip().endswith("%"):
        return mn, 0, float(mx_raw.strip()[:-1])
    return mn, (_parse_size_field(mx_raw, "maxSize") if mx_raw else 0), 0.0


def volume_configs(docs: list[dict]) -> list[VolumeCfg]:
    """Volume configs in provisioning order: system volumes, then user volumes (``CompareVolumeConfigs``)."""
    eph = next((d for d in docs if doc_key(d)[1] == "VolumeConfig" and d.get("name") == "EPHEMERAL"), None)
    eprov = (eph or {}).get("provisioning") or {}
    emin, emax, epct = _sizes(eprov) if eprov else (0, 0, 0.0)
    system = [
        VolumeCfg("META", LABEL_SYSTEM_VOLUME, locate="META", filesystem="none"),
        VolumeCfg("STATE", LABEL_SYSTEM_VOLUME, locate="STATE", filesystem="xfs", fs_label="STATE",
                  mount={"targetPath": "/system/state", "selinuxLabel": "system_u:object_r:system_state_t:s0",
                         "fileMode": 0o700}),
        # EPHEMERAL defaults (disk-management/system.md, volumeconfig): system_disk, min 2 GiB, grow true.
        VolumeCfg("EPHEMERAL", LABEL_SYSTEM_VOLUME, locate="EPHEMERAL", provision=True,
                  selector=str((eprov.get("diskSelector") or {}).get("match") or "system_disk"),
                  min_size=emin or EPHEMERAL_MIN_SIZE, max_size=emax, max_percent=epct,
                  grow=bool(eprov.get("grow", True)), filesystem="xfs", fs_label="EPHEMERAL",
                  mount={"targetPath": "/var", "selinuxLabel": EPHEMERAL_SELINUX_LABEL,
                         "projectQuotaSupport": True, "fileMode": 0o755}),
    ]
    user: list[VolumeCfg] = []
    for d in docs:
        kind = doc_key(d)[1]
        if kind not in ("UserVolumeConfig", "RawVolumeConfig"):
            continue
        name = str(d.get("name"))
        prov = d.get("provisioning") or {}
        raw = kind == "RawVolumeConfig"
        vid = ("r-" if raw else "u-") + name
        vtype = d.get("volumeType", "partition")
        mn, mx, pct = _sizes(prov) if vtype == "partition" else (0, 0, 0.0)
        user.append(VolumeCfg(
            vid, LABEL_RAW_VOLUME if raw else LABEL_USER_VOLUME, vtype=vtype,
            locate=vid if vtype == "partition" else None, provision=vtype != "directory",
            selector=str((prov.get("diskSelector") or {}).get("match", "")),
            min_size=mn or (MIN_USER_VOLUME_SIZE if vtype == "partition" else 0), max_size=mx, max_percent=pct,
            grow=bool(prov.get("grow", False)),
            filesystem="none" if raw else str((d.get("filesystem") or {}).get("type", "xfs")),
            mount=None if raw else _user_mount(name, d), wave=1))
    # CompareVolumeConfigs: non-growing first, then by max size (0 = unlimited) ascending; stable.
    user.sort(key=lambda v: (v.grow, v.max_size or 2**64))
    return system + user


# ----------------------------------------------------------------------------- nodes


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


# ----------------------------------------------------------------------------- resources

# type -> (namespace, aliases, print columns (name, jsonpath on spec), owner)
RESOURCE_DEFS: dict[str, dict[str, Any]] = {
    "VolumeStatuses.block.talos.dev": {
        "namespace": "runtime", "aliases": ["volumestatus", "volumestatuses"],
        "columns": [("Type", "{.type}"), ("Phase", "{.phase}"), ("Location", "{.location}"),
                    ("Size", "{.prettySize}")],
        "owner": "block.VolumeManagerController"},
    "DiscoveredVolumes.block.talos.dev": {
        "namespace": "runtime", "aliases": ["discoveredvolume", "discoveredvolumes", "dv"],
        "columns": [("Type", "{.type}"), ("Size", "{.pretty_size}"), ("Discovered", "{.name}"),
                    ("Label", "{.label}"), ("PartitionLabel", "{.partition_label}")],
        "owner": "block.DiscoveryController"},
    "Disks.block.talos.dev": {
        "namespace": "runtime", "aliases": ["disk", "disks"],
        "columns": [("Size", "{.pretty_size}"), ("Read Only", "{.readonly}"), ("Transport", "{.transport}"),
                    ("Rotational", "{.rotational}"), ("WWID", "{.wwid}"), ("Model", "{.model}"),
                    ("Serial", "{.serial}")],
        "owner": "block.DisksController"},
    "SystemDisks.block.talos.dev": {
        "namespace": "runtime", "aliases": ["systemdisk", "systemdisks"],
        "columns": [("Disk", "{.devPath}")], "owner": "block.SystemDiskController"},
    "MountStatuses.block.talos.dev": {
        "namespace": "runtime", "aliases": ["mountstatus", "mountstatuses"],
        "columns": [("Source", "{.source}"), ("Target", "{.target}"), ("Filesystem", "{.filesystem}"),
                    ("Volume", "{.volumeID}")],
        "owner": "block.MountController"},
    "MachineStatuses.runtime.talos.dev": {
        "namespace": "runtime", "aliases": ["machinestatus", "machinestatuses"],
        "columns": [("Stage", "{.stage}"), ("Ready", "{.status.ready}")],
        "owner": "runtime.MachineStatusController"},
    "ExtensionStatuses.runtime.talos.dev": {
        "namespace": "runtime", "aliases": ["extensionstatus", "extensionstatuses", "extension", "extensions"],
        "columns": [("Name", "{.metadata.name}"), ("Version", "{.metadata.version}")],
        "owner": "runtime.ExtensionStatusController"},
    "KernelModuleSpecs.runtime.talos.dev": {
        "namespace": "runtime", "aliases": ["kernelmodulespec", "kernelmodulespecs"],
        "columns": [], "owner": "runtime.KernelModuleConfigController"},
    "Members.cluster.talos.dev": {
        "namespace": "cluster", "aliases": ["member", "members"],
        "columns": [("Hostname", "{.hostname}"), ("Machine Type", "{.machineType}"), ("OS", "{.operatingSystem}"),
                    ("Addresses", "{.addresses}")],
        "owner": "cluster.MemberController"},
    "MachineConfigs.config.talos.dev": {
        "namespace": "config", "aliases": ["machineconfig", "machineconfigs", "mc"], "columns": [], "owner": ""},
}


def resolve_resource_type(name: str) -> str | None:
    """talosctl type resolution: full type, its singular/plural, or an alias, case-insensitively."""
    low = name.lower()
    for rtype, d in RESOURCE_DEFS.items():
        plural = rtype.split(".", 1)[0].lower()
        if low in (rtype.lower(), plural, plural.rstrip("s"), *d["aliases"]):
            return rtype
    return None


# ----------------------------------------------------------------------------- the cluster


class TalosCluster:
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

    # -- etcd
    def etcd_members(self) -> list[TalosNode]:
        return [n for n in self.nodes.values() if n.role == "controlplane" and n.etcd_member]

    def etcd_quorum(self, now: float) -> bool:
        """More than half of the etcd members run with their data (else etcd, and the Kubernetes API, is down)."""
        members = self.etcd_members()
        if not members:
            return False
        healthy = sum(1 for n in members if n.etcd_running(now))
        return healthy > len(members) / 2

    def etcd_healthy(self, node: TalosNode, now: float) -> bool:
        return node.etcd_running(now) and self.etcd_quorum(now)

    # -- time
    def advance(self, now: float, faults: Any) -> bool:
        """Apply faults and every scheduled event due by ``now``. Returns True when anything changed."""
        changed = False
        for node in self.nodes.values():
            changed |= self._apply_faults(node, now, faults)
        # Due events of every node in time order (not node by node): one tick may span several lab
        # seconds, and an event on one node (etcd leaving) must not be seen after a later one elsewhere.
        while due := [n for n in self.nodes.values() if n.schedule and n.schedule[0]["at"] <= now]:
            node = min(due, key=lambda n: n.schedule[0]["at"])
            self._run_event(node, node.schedule.pop(0), faults)
            changed = True
        for node in self.nodes.values():
            changed |= self._etcd_rejoin(node, now)
        return changed

    def _apply_faults(self, node: TalosNode, now: float, faults: Any) -> bool:
        down = faults.has("node-down", node.name) if faults is not None else False
        if down and not node.fault_down:
            node.fault_down, node.power, node.api, node.schedule = True, False, False, []
            node.down_at = now
            node.stuck = False
            node.log.append(f"{self.ts(now)} power lost (node-down fault)")
            return True
        if not down and node.fault_down:
            node.fault_down, node.power = False, True
            node.stage = "booting"
            self._schedule(node, now + 10.0, "boot")
            return True
        stuck_fault = faults.has("stuck-reboot", node.name) if faults is not None else False
        if node.stuck and not stuck_fault:
            node.stuck = False
            self._schedule(node, now, "boot")
            return True
        return False

    def _schedule(self, node: TalosNode, at: float, event: str, **args: Any) -> None:
        node.schedule.append({"at": at, "event": event, **args})
        node.schedule.sort(key=lambda e: e["at"])

    def _run_event(self, node: TalosNode, ev: dict, faults: Any) -> None:
        at = ev["at"]
        kind = ev["event"]
        if kind == "leave_etcd":
            node.etcd_member, node.etcd_data = False, False
        elif kind == "go_down":
            self._go_down(node, ev, at)
        elif kind == "boot":
            if faults is not None and faults.has("stuck-reboot", node.name):
                node.stuck, node.stage, node.api = True, "rebooting", False
                node.log.append(f"{self.ts(at)} reboot did not complete (stuck-reboot fault)")
                return
            self._boot(node, at)
        elif kind == "running":
            node.stage, node.running_at = "running", at
            node.cordoned = False  # Talos uncordons the node it cordoned once it is back
            self._touch(node, at)
        elif kind == "install":
            disk = node.system_disk
            install_system_partitions(disk, ev["version"], self.seed, f"{node.name}:{self.counter}")
            self.counter += 1
            node.persisted = ev["config"]
            node.talos_version, node.installer_image = ev["version"], ev["image"]
            node.schematic, node.extensions = ev["schematic"], ev["extensions"]
            self._schedule(node, at, "go_down", then="boot")
        elif kind == "rollback_config" and node.config is not None and dump_config(node.config) == ev["expect"]:
            node.config = ev["config"]
            node.persisted = copy.deepcopy(ev["config"])
            self._reconcile(node, at)
            self._load_modules(node)
        self._touch(node, at)

    def _go_down(self, node: TalosNode, ev: dict, at: float) -> None:
        wipe = ev.get("wipe")
        if wipe:
            self._perform_wipe(node, wipe)
        node.api = False
        node.down_at = at
        if ev.get("then") == "off":
            node.power = False
            return
        self._schedule(node, at + T_POWER_CYCLE, "boot")

    def _boot(self, node: TalosNode, at: float) -> None:
        node.power, node.api, node.stuck = True, True, False
        node.boot_id = self._uuid(f"boot:{node.name}")
        node.boot_count += 1
        node.booted_at, node.running_at = at, None
        node.res_meta = {}
        node.volumes = {}
        if node.pending_upgrade:
            up = node.pending_upgrade
            node.upgraded_boot = node.boot_count
            node.talos_version, node.installer_image = up["version"], up["image"]
            node.schematic, node.extensions = up["schematic"], list(up["extensions"])
            node.pending_upgrade = None
        state = node.system_disk.by_label("STATE")
        if state is None or state.filesystem != "xfs" or node.persisted is None:
            # no installed system (or its STATE is gone): the node boots the ISO/PXE image into maintenance
            node.config, node.persisted = None, None
            node.stage, node.modules = "maintenance", []
            node.log.append(f"{self.ts(at)} entering maintenance mode: no machine configuration")
            return
        node.config = copy.deepcopy(node.persisted)
        node.stage = "booting"
        node.modules = []
        self._load_modules(node)
        self._reconcile(node, at)
        if node.role == "controlplane" and node.etcd_member and not node.etcd_data:
            node.log.append(f"{self.ts(at)} etcd: failed to start: member {node.etcd_member_id} is still part of "
                            "the cluster but its data directory /var/lib/etcd is empty")
        self._schedule(node, at + T_BOOT, "running")
        self._touch(node, at)

    def _etcd_rejoin(self, node: TalosNode, now: float) -> bool:
        """A running control plane that is not an etcd member joins again (Talos etcd service retries)."""
        if (node.role != "controlplane" or node.etcd_member or node.stage != "running" or not node.is_up(now)
                or node.running_at is None or now < node.running_at + T_ETCD_JOIN or not self.etcd_quorum(now)):
            return False
        node.etcd_member, node.etcd_data = True, True
        node.etcd_member_id = self._hex(16, f"etcd:{node.name}")
        self._touch(node, now)
        return True

    # -- module loading (KernelModuleSpecController: modprobe at boot and when the config changes)
    def _load_modules(self, node: TalosNode) -> None:
        if node.config is None:
            return
        machine = (v1alpha1_doc(node.config) or {}).get("machine") or {}
        wanted = ((machine.get("kernel") or {}).get("modules")) or []
        shipped = {m: ext for ext in node.extensions for m in EXTENSION_CATALOG.get(ext, {}).get("modules", ())}
        for entry in wanted:
            name = str(entry.get("name", ""))
            if not name or node.loaded_module(name):
                continue  # parameters of a loaded module only change at the next boot
            if name not in shipped and name not in IN_TREE_MODULES:
                node.log.append(f'error loading module "{name}": module not found')
                continue
            r = _Rand(self.seed, f"module:{node.name}:{name}:{node.boot_count}")
            node.modules.append({"name": name, "parameters": [str(p) for p in entry.get("parameters") or []],
                                 "size": MODULE_SIZES.get(name, 16384), "address": "0xffffffffc0" + r.hex(3) + "000",
                                 "out_of_tree": name in shipped})

    # -- the volume manager
    def _disk_context(self, node: TalosNode, disk: Disk) -> dict:
        return disk.spec()

    def _reconcile(self, node: TalosNode, now: float) -> None:
        """Locate or provision every configured volume (talos controllers/block VolumeManagerController)."""
        if node.config is None:
            node.volumes = {}
            return
        statuses: dict[str, dict] = {}
        wave_ok = True
        for cfg in volume_configs(node.config):
            if cfg.wave == 1 and not wave_ok:
                statuses[cfg.id] = self._status_base(cfg) | {"phase": "waiting"}
                continue
            statuses[cfg.id] = self._process_volume(node, cfg, now)
            if cfg.wave == 0 and statuses[cfg.id]["phase"] != "ready":
                wave_ok = False
        node.volumes = statuses

    def _status_base(self, cfg: VolumeCfg) -> dict:
        return {"phase": "waiting", "type": cfg.vtype, "_label": cfg.label, "_mount": cfg.mount}

    def _process_volume(self, node: TalosNode, cfg: VolumeCfg, now: float) -> dict:
        from runbook_lib.sizes import format_si

        st = self._status_base(cfg)
        if cfg.vtype == "directory":
            return st | {"phase": "ready"}
        try:
            found = self._locate(node, cfg)
            if found is None:
                if not cfg.provision:
                    return st | {"phase": "missing"}
                found = self._provision(node, cfg)
            disk, part = found
            self._grow(disk, part, cfg)
            if cfg.filesystem != "none":
                if part.filesystem == "":
                    r = self._next(f"mkfs:{node.name}")
                    part.filesystem, part.fs_uuid, part.fs_label = cfg.filesystem, r.uuid(), cfg.fs_label
                elif part.filesystem != cfg.filesystem:
                    raise TalosAPIError("Unknown", f"filesystem type mismatch: {part.filesystem} != {cfg.filesystem}")
        except TalosAPIError as err:
            return st | {"phase": "failed", "preFailPhase": "waiting", "errorMessage": err.message}
        location = disk.part_path(part.index)
        st.update({"phase": "ready", "location": location, "mountLocation": location, "partitionIndex": part.index,
                   "parentLocation": disk.dev_path, "uuid": part.fs_uuid, "partitionUUID": part.part_uuid,
                   "size": part.size, "prettySize": format_si(part.size)})
        if cfg.filesystem != "none":
            st["filesystem"] = cfg.filesystem
        elif cfg.id == "META":
            st["filesystem"] = "none"
        return st

    def _locate(self, node: TalosNode, cfg: VolumeCfg) -> tuple[Disk, Partition] | None:
        """``labelVolumeMatch``: a partition carrying the volume's label is reused as is."""
        for disk in node.disks:
            part = disk.by_label(cfg.locate or "")
            if part is not None:
                return disk, part
        return None

    def _provision(self, node: TalosNode, cfg: VolumeCfg) -> tuple[Disk, Partition]:
        """``provisionNewVolume``: pick a disk by selector and space, then ``CreatePartition``."""
        from runbook_lib.disk_selector import DiskSelectorError

        candidates = []
        for i, disk in enumerate(node.disks):
            if disk.readonly:
                continue
            try:
                ok = _selector(cfg.selector).matches(self._disk_context(node, disk), i == 0)
            except DiskSelectorError as exc:
                raise TalosAPIError("Unknown", f"error evaluating disk locator: {'; '.join(exc.problems)}") from None
            if ok:
                candidates.append(disk)
        if not candidates:
            raise TalosAPIError("Unknown", "no disks matched selector for volume")
        not_enough = wrong_format = 0
        picked = None
        for disk in candidates:
            if cfg.vtype == "disk":
                if not disk.gpt and not disk.partitions:
                    picked = disk
                    break
                wrong_format += 1
                continue
            if not disk.gpt:
                # no signature at all: usable if size >= minSize + 67 sectors (GPT + MBR overhead)
                if disk.size >= cfg.min_size + 67 * disk.sector_size:
                    picked = disk
                    break
                not_enough += 1
            elif disk.largest_free() >= cfg.min_size:
                picked = disk
                break
            else:
                not_enough += 1
        if picked is None:
            if parse_version(node.talos_version)[:2] >= (1, 12):
                raise TalosAPIError("Unknown", f"no disks matched for volume ({len(candidates)} matched selector): "
                                               f"{not_enough} have not enough space, {wrong_format} have wrong format, "
                                               "0 have other issues")
            raise TalosAPIError("Unknown", "no disks matched for volume")
        if cfg.vtype == "disk":
            raise TalosAPIError("Unknown", "disk volumes are not modelled by the lab")
        if not picked.gpt:
            picked.gpt, picked.partitions, picked.disk_guid = True, [], self._uuid("diskguid")
        available = picked.largest_free()
        if available < cfg.min_size:
            raise TalosAPIError("Unknown", "error creating partition: not enough space on disk")
        max_size = cfg.max_size or (int(picked.size * cfg.max_percent / 100) if cfg.max_percent else 0)
        size = available if (max_size == 0 or max_size >= available) else max_size
        try:
            part = picked.allocate(size, cfg.locate or cfg.id, self._uuid("partguid"))
        except TalosAPIError as err:
            raise TalosAPIError("Unknown", f"error creating partition: error allocating partition: {err.message}") from None
        return picked, part

    def _grow(self, disk: Disk, part: Partition, cfg: VolumeCfg) -> None:
        """``volumes.Grow``: with grow set, take the free space right after the partition (up to maxSize)."""
        if not cfg.grow:
            return
        max_size = cfg.max_size or (int(disk.size * cfg.max_percent / 100) if cfg.max_percent else 0)
        if max_size and part.size >= max_size:
            return
        growth = disk.growth_available(part)
        if growth <= MIB:
            return
        if max_size and growth > max_size - part.size:
            growth = max_size - part.size
        part.last_lba += growth // disk.sector_size

    # -- resource bookkeeping
    def _touch(self, node: TalosNode, now: float) -> None:
        """Bump versions of resources whose spec changed (so ``metadata.version`` moves like on Talos)."""
        for rtype in RESOURCE_DEFS:
            for rid, spec, _labels in self._specs(node, rtype, now):
                key = f"{rtype}/{rid}"
                digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
                meta = node.res_meta.get(key)
                if meta is None:
                    node.res_meta[key] = {"version": 1, "created": now, "updated": now, "digest": digest}
                elif meta["digest"] != digest:
                    meta.update(version=meta["version"] + 1, updated=now, digest=digest)

    def resources(self, node: TalosNode, rtype: str, now: float) -> list[dict]:
        """Resources of type ``rtype`` on ``node`` in Talos's envelope (metadata + spec), sorted by ID."""
        self._touch(node, now)
        d = RESOURCE_DEFS[rtype]
        out = []
        for rid, spec, labels in sorted(self._specs(node, rtype, now), key=lambda x: x[0]):
            meta = node.res_meta[f"{rtype}/{rid}"]
            md: dict[str, Any] = {"namespace": d["namespace"], "type": rtype, "id": rid, "version": meta["version"],
                                  "owner": d["owner"], "phase": "running", "created": self.ts(meta["created"]),
                                  "updated": self.ts(meta["updated"])}
            if labels:
                md["labels"] = labels
            out.append({"metadata": md, "spec": spec})
        return out

    def _specs(self, node: TalosNode, rtype: str, now: float) -> list[tuple[str, Any, dict]]:
        maint = node.maintenance
        if rtype == "Disks.block.talos.dev":
            return [(d.name, d.spec(), {}) for d in node.disks]
        if rtype == "DiscoveredVolumes.block.talos.dev":
            return self._discovered(node)
        if rtype == "SystemDisks.block.talos.dev":
            if maint:
                return []
            d = node.system_disk
            return [("system-disk", {"diskID": d.name, "devPath": d.dev_path}, {})]
        if rtype == "MachineStatuses.runtime.talos.dev":
            ready, unmet = self._machine_ready(node, now)
            return [("machine", {"stage": node.stage, "status": {"ready": ready, "unmetConditions": unmet}}, {})]
        if maint:
            return []
        if rtype == "VolumeStatuses.block.talos.dev":
            return [(vid, _volume_status_spec(st), {st["_label"]: ""}) for vid, st in node.volumes.items()]
        if rtype == "MountStatuses.block.talos.dev":
            out = []
            for vid, st in node.volumes.items():
                mount = st.get("_mount")
                if st.get("phase") != "ready" or not mount or "location" not in st:
                    continue
                target = mount["targetPath"]
                if not target.startswith("/"):
                    target = f"{mount.get('parentId', '')}/{target}"
                out.append((vid, {"source": st["location"], "target": target, "filesystem": st.get("filesystem", "xfs"),
                                  "volumeID": vid, "projectQuotaSupport": bool(mount.get("projectQuotaSupport"))}, {}))
            return out
        if rtype == "ExtensionStatuses.runtime.talos.dev":
            return self._extension_specs(node)
        if rtype == "KernelModuleSpecs.runtime.talos.dev":
            machine = (v1alpha1_doc(node.config or []) or {}).get("machine") or {}
            mods = ((machine.get("kernel") or {}).get("modules")) or []
            return [(str(m.get("name")), {"name": str(m.get("name")), "parameters": list(m.get("parameters") or [])},
                     {}) for m in mods]
        if rtype == "Members.cluster.talos.dev":
            out = []
            for n in self.nodes.values():
                if n.maintenance:
                    continue
                spec: dict[str, Any] = {"nodeId": n.node_id, "addresses": [n.address], "hostname": n.name,
                                        "machineType": n.role, "operatingSystem": f"Talos ({n.talos_version})"}
                if n.role == "controlplane":
                    spec["controlPlane"] = {"port": 6443}
                out.append((n.name, spec, {}))
            return out
        if rtype == "MachineConfigs.config.talos.dev":
            return [("v1alpha1", dump_config(node.config or []), {})]
        return []

    def _machine_ready(self, node: TalosNode, now: float) -> tuple[bool, list[dict]]:
        if node.stage != "running":
            return False, [{"name": "services", "reason": "boot sequence is not complete"}] \
                if node.stage == "booting" else []
        unmet = []
        if node.role == "controlplane" and not self.etcd_healthy(node, now):
            unmet.append({"name": "services", "reason": "etcd is not healthy"})
        if node.running_at is not None and now < node.running_at + T_KUBELET:
            unmet.append({"name": "staticPods", "reason": "static pods are not running"})
        return not unmet, unmet

    def _discovered(self, node: TalosNode) -> list[tuple[str, Any, dict]]:
        from runbook_lib.sizes import format_si

        out = []
        for disk in node.disks:
            dspec: dict[str, Any] = {"dev_path": disk.dev_path, "type": "disk",
                                     "device_path": f"/sys/devices{disk.bus_path}/{disk.name}",
                                     "size": disk.size, "pretty_size": format_si(disk.size),
                                     "sector_size": disk.sector_size, "io_size": disk.io_size}
            if disk.gpt:
                dspec.update({"name": "gpt", "uuid": disk.disk_guid})
            out.append((disk.name, dspec, {}))
            for p in disk.partitions:
                pname = disk.part_name(p.index)
                spec: dict[str, Any] = {
                    "dev_path": "/dev/" + pname, "type": "partition",
                    "device_path": f"/sys/devices{disk.bus_path}/{disk.name}/{pname}", "parent": disk.name,
                    "parent_dev_path": disk.dev_path, "offset": p.first_lba * SECTOR, "size": p.size,
                    "pretty_size": format_si(p.size), "sector_size": disk.sector_size, "io_size": disk.io_size}
                if p.filesystem:
                    spec["name"] = p.filesystem
                    if p.fs_uuid:
                        spec["uuid"] = p.fs_uuid
                    if p.fs_label:
                        spec["label"] = p.fs_label
                    if p.filesystem in ("xfs", "vfat"):
                        spec.update({"block_size": 4096 if p.filesystem == "xfs" else 512,
                                     "filesystem_block_size": 4096, "probed_size": p.size})
                spec.update({"partition_uuid": p.part_uuid, "partition_type": p.type_uuid,
                             "partition_label": p.label, "partition_index": p.index})
                out.append((pname, spec, {}))
        return out

    def _extension_specs(self, node: TalosNode) -> list[tuple[str, Any, dict]]:
        out = []
        tag = node.talos_version
        for i, ext in enumerate(node.extensions):
            cat = EXTENSION_CATALOG.get(ext, {"name": ext.rsplit("/", 1)[-1], "author": "Sidero Labs",
                                              "description": f"{ext} extension"})
            out.append((str(i), {"image": f"{i}.sqsh", "metadata": {
                "name": cat["name"], "version": extension_version(ext, tag), "author": cat["author"],
                "description": cat["description"], "compatibility": {"talos": {"version": ">= v1.2.0"}}}}, {}))
        if node.schematic:
            i = len(node.extensions)
            out.append((str(i), {"image": "", "metadata": {
                "name": "schematic", "version": node.schematic, "author": f"Image Factory (https://{FACTORY_HOST})",
                "description": "This is a virtual extension which identifies the schematic ID used to build the image."}},
                {}))
        return out

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

    # -- operations
    def apply_config(self, node: TalosNode, text: str, mode: str, now: float, *, dry_run: bool = False,
                     insecure: bool = False, try_timeout: float = T_TRY_DEFAULT,
                     schematic_lookup: Callable[[str], list[str] | None] | None = None) -> dict:
        """``ApplyConfiguration`` (v1alpha1_server.go). Returns {mode, mode_details, warnings}."""
        self.require_up(node, now, insecure=insecure)
        docs = parse_config(text)
        if node.maintenance:
            return self._install(node, docs, now, dry_run=dry_run, schematic_lookup=schematic_lookup)
        if v1alpha1_doc(docs) is None:
            raise TalosAPIError("InvalidArgument", "the applied machine configuration doesn't contain v1alpha1 config, "
                                "did you mean to patch the machine config instead?")
        warnings = validate_config(docs, node.talos_version)
        current = node.config or []
        immediate_err = None
        if strip_immediate(v1alpha1_doc(current) or {}) != strip_immediate(v1alpha1_doc(docs) or {}):
            immediate_err = "this config change can't be applied in immediate mode\ndiff: " + config_diff(
                [strip_immediate(v1alpha1_doc(current) or {})], [strip_immediate(v1alpha1_doc(docs) or {})])
        details, suffix = "Applied configuration with a reboot", ""
        effective = mode
        if mode in ("try", "no-reboot"):
            if immediate_err:
                raise TalosAPIError("InvalidArgument", immediate_err)
            details = "Applied configuration without a reboot"
        elif mode == "staged":
            details = "Staged configuration to be applied after the next reboot"
        elif mode == "auto":
            if immediate_err:
                effective, suffix = "reboot", ": " + immediate_err
            else:
                effective, details = "no-reboot", "Applied configuration without a reboot"
        elif mode != "reboot":
            raise TalosAPIError("InvalidArgument", f"incorrect mode '{mode}' specified for the apply config call")
        if dry_run:
            diff = config_diff(current, docs) or "No changes."
            return {"mode": effective, "warnings": warnings,
                    "mode_details": f"Dry run summary:\n{details} (skipped in dry-run).\nConfig diff:\n\n{diff}"}
        if effective == "try":
            details += f"\nThe config is applied in 'try' mode and will be automatically reverted back in {go_duration(try_timeout)}"
            self._schedule(node, now + try_timeout, "rollback_config", config=copy.deepcopy(current),
                           expect=dump_config(docs))
            node.config = copy.deepcopy(docs)
            self._reconcile(node, now)
            self._load_modules(node)
        elif effective == "no-reboot":
            node.persisted = copy.deepcopy(docs)
            node.config = copy.deepcopy(docs)
            self._reconcile(node, now)
            self._load_modules(node)
        elif effective == "staged":
            node.persisted = copy.deepcopy(docs)
        else:
            node.persisted = copy.deepcopy(docs)
            self._start_reboot(node, now, "rebooting")
        self._touch(node, now)
        return {"mode": effective, "mode_details": details + suffix, "warnings": warnings}

    def _install(self, node: TalosNode, docs: list[dict], now: float, *, dry_run: bool,
                 schematic_lookup: Callable[[str], list[str] | None] | None) -> dict:
        """Maintenance mode: applying a config installs Talos to ``machine.install.disk`` and reboots."""
        machine = (v1alpha1_doc(docs) or {}).get("machine") or {}
        install = machine.get("install") or {}
        disk_path = install.get("disk")
        if v1alpha1_doc(docs) is None:
            raise TalosAPIError("InvalidArgument", "the applied machine configuration doesn't contain v1alpha1 config")
        if disk_path != node.system_disk.dev_path:
            raise TalosAPIError("InvalidArgument", f"install disk {disk_path!r} does not exist on this machine")
        image = str(install.get("image") or f"{VANILLA_INSTALLER}:{node.talos_version}")
        version, schematic, extensions = self._resolve_installer(image, schematic_lookup)
        validate_config(docs, version)
        if dry_run:
            return {"mode": "reboot", "warnings": [], "mode_details": "Dry run summary:\nApplied configuration "
                    "with a reboot (skipped in dry-run)."}
        node.stage = "installing"
        self._schedule(node, now + T_INSTALL, "install", config=copy.deepcopy(docs), version=version, image=image,
                       schematic=schematic, extensions=extensions)
        self._touch(node, now)
        return {"mode": "reboot", "warnings": [], "mode_details": "Applied configuration with a reboot"}

    def _start_reboot(self, node: TalosNode, now: float, stage: str, *, delay: float = T_SHUTDOWN,
                      wipe: dict | None = None, then: str = "boot") -> None:
        node.stage = stage
        node.schedule = [e for e in node.schedule if e["event"] == "rollback_config"]
        self._schedule(node, now + delay, "go_down", wipe=wipe, then=then)

    def reboot(self, node: TalosNode, now: float, mode: str = "default") -> str:
        self.require_up(node, now)
        if mode not in ("default", "powercycle", "force"):
            raise TalosAPIError("InvalidArgument", f"unknown reboot mode {mode!r}")
        actor = self._new_action(node, "reboot", now)
        self._start_reboot(node, now, "rebooting")
        self._touch(node, now)
        return actor

    def shutdown(self, node: TalosNode, now: float, force: bool = False) -> str:
        self.require_up(node, now)
        actor = self._new_action(node, "shutdown", now)
        self._start_reboot(node, now, "shutting down", then="off")
        self._touch(node, now)
        return actor

    def power_on(self, node: TalosNode, now: float) -> None:
        """Press the power button of a node that was shut down (lab control, not a Talos API)."""
        if node.power or node.fault_down:
            return
        node.power = True
        node.stage = "booting"
        self._schedule(node, now + 10.0, "boot")

    def reset(self, node: TalosNode, graceful: bool, reboot: bool, wipe_mode: str, system_labels: list[str],
              user_disks: list[str], now: float) -> str:
        """``MachineService.Reset`` validation, then the reset sequence on the timeline. Returns the actor ID."""
        self.require_up(node, now)
        mode = {"all": "ALL", "system-disk": "SYSTEM_DISK", "user-disks": "USER_DISKS"}.get(wipe_mode, wipe_mode)
        if mode not in ("ALL", "SYSTEM_DISK", "USER_DISKS"):
            raise TalosAPIError("InvalidArgument", f"unknown wipe mode {wipe_mode!r}")
        disks = {d.dev_path: d for d in node.disks}
        if user_disks:
            if mode == "SYSTEM_DISK":
                raise TalosAPIError("Unknown", "reset failed: invalid input, wipe mode SYSTEM_DISK doesn't support "
                                    "UserDisksToWipe parameter")
            for dev in user_disks:
                if dev not in disks:
                    raise TalosAPIError("Unknown", f"reset user disk failed: device {dev} wasn't found")
                if disks[dev].readonly:
                    raise TalosAPIError("Unknown", f"reset user disk failed: device {dev} is readonly")
                if dev == node.system_disk.dev_path:
                    raise TalosAPIError("Unknown", f"reset user disk failed: device {dev} is the system disk")
        targets = []
        if system_labels:
            if mode == "USER_DISKS":
                raise TalosAPIError("Unknown", "reset failed: invalid input, wipe mode USER_DISKS doesn't support "
                                    "SystemPartitionsToWipe parameter")
            for label in system_labels:
                st = node.volumes.get(label)
                if st is None:
                    raise TalosAPIError("Unknown", f'failed to get volume status with label "{label}": resource '
                                        f"VolumeStatuses.block.talos.dev(runtime/{label}@undefined) doesn't exist")
                if not st.get("location"):
                    raise TalosAPIError("Unknown", f'failed to reset: volume "{label}" is not located')
                targets.append({"label": label, "location": st["location"]})
        wipe = {"labels": targets, "system_disk": mode != "USER_DISKS" and not system_labels,
                "user_disks": list(user_disks), "drop": parse_version(node.talos_version)[:2] >= (1, 12)}
        actor = self._new_action(node, "reset", now)
        node.stage = "resetting"
        node.schedule = []
        delay = T_SHUTDOWN
        if graceful:
            node.cordoned = True
            delay += T_DRAIN
            if node.role != "worker" and node.etcd_member and len(self.etcd_members()) == 1:
                # the sequencer's LeaveEtcd task fails: a single member cannot leave its own cluster
                node.actions[actor]["error"] = ("sequence: reset error: task 2/3: failed, failed to leave etcd: "
                                                "cannot leave etcd cluster: it has only one member")
                node.stage = "running"
                node.cordoned = False
                self._touch(node, now)
                return actor
        self._start_reboot(node, now, "resetting", delay=delay, wipe=wipe, then="boot" if reboot else "off")
        if graceful and node.role != "worker" and node.etcd_member:
            self._schedule(node, now + T_DRAIN, "leave_etcd")
        self._touch(node, now)
        return actor

    def _perform_wipe(self, node: TalosNode, wipe: dict) -> None:
        sysdisk = node.system_disk
        for target in wipe.get("labels", []):
            found = node.partition_by_path(target["location"])
            if found is None:
                continue
            disk, part = found
            if target["label"] == "EPHEMERAL":
                node.etcd_data = False  # /var/lib/etcd lives on EPHEMERAL
            if target["label"] == "STATE":
                node.persisted = None
            if wipe.get("drop"):
                disk.drop(part)  # v1.12+: WipeWithSignatures, then dropWithParentLocked
            else:
                part.filesystem, part.fs_uuid, part.fs_label = "", "", ""  # v1.10/v1.11: FastWipe only
        if wipe.get("system_disk"):
            sysdisk.wipe_all()
            node.persisted, node.etcd_data = None, False
        for dev in wipe.get("user_disks", []):
            for disk in node.disks:
                if disk.dev_path == dev:
                    disk.wipe_all()

    def _resolve_installer(self, image: str, lookup: Callable[[str], list[str] | None] | None
                           ) -> tuple[str, str | None, list[str]]:
        try:
            version, schematic = parse_installer_image(image)
        except ValueError as exc:
            raise TalosAPIError("Unknown", f'error validating installer image "{image}": {exc}') from None
        from .releases import TALOS_VERSIONS

        not_found = TalosAPIError("Unknown", f'error validating installer image "{image}": failed to resolve '
                                  f'reference "{image}": {image}: not found')
        if version not in TALOS_VERSIONS:
            raise not_found  # no such release: neither ghcr.io nor the factory has that tag
        if schematic is None:
            return version, None, []
        extensions = lookup(schematic) if lookup else None
        if extensions is None:
            raise not_found
        return version, schematic, list(extensions)

    def upgrade(self, node: TalosNode, image: str, now: float, *, stage: bool = False, force: bool = False,
                schematic_lookup: Callable[[str], list[str] | None] | None = None) -> str:
        """``MachineService.Upgrade``: validate the image and etcd, then install to the other slot and reboot."""
        self.require_up(node, now)
        version, schematic, extensions = self._resolve_installer(image, schematic_lookup)
        if node.role != "worker" and not force:
            for other in self.etcd_members():
                if not other.etcd_running(now):
                    raise TalosAPIError("Unknown", f"error validating etcd for upgrade: etcd member "
                                        f"{other.etcd_member_id} is not healthy; all members must be healthy to "
                                        "perform an upgrade")
        actor = self._new_action(node, "upgrade", now)
        node.pending_upgrade = {"version": version, "image": image, "schematic": schematic, "extensions": extensions,
                                "staged": stage}
        node.cordoned = True
        self._start_reboot(node, now, "upgrading", delay=T_DRAIN + T_INSTALL)
        self._touch(node, now)
        return actor

    def wipe_disk(self, node: TalosNode, devices: list[str], method: str, drop_partition: bool, now: float) -> None:
        """``StorageService.BlockDeviceWipe`` (storaged server.go): validate every device, then wipe."""
        self.require_up(node, now, insecure=node.maintenance)
        if method not in ("FAST", "ZEROES"):
            raise TalosAPIError("InvalidArgument", f"unsupported wipe method {method}")
        resolved = []
        for raw in devices:
            name = raw.removeprefix("/dev/")
            disk = next((d for d in node.disks if d.name == name), None)
            part = None
            parent = ""
            if disk is None:
                for d in node.disks:
                    for p in d.partitions:
                        if d.part_name(p.index) == name:
                            disk, part, parent = d, p, d.name
            if disk is None:
                raise TalosAPIError("NotFound", f'blockdevice "{name}" not found')
            if disk.readonly:
                raise TalosAPIError("FailedPrecondition", f'blockdevice "{name}" is read-only')
            if disk.cdrom:
                raise TalosAPIError("FailedPrecondition", f'blockdevice "{name}" is a CD-ROM')
            for vid, st in sorted(node.volumes.items()):
                for location in (st.get("location", ""), st.get("mountLocation", "")):
                    base = location.rsplit("/", 1)[-1]
                    for dev in (name, parent):
                        if dev and base and base == dev:
                            raise TalosAPIError("FailedPrecondition", f'blockdevice "{dev}" is in use by volume "{vid}"')
                if st.get("parentLocation", "").rsplit("/", 1)[-1] == name:
                    raise TalosAPIError("FailedPrecondition", f'blockdevice "{name}" is in use by volume "{vid}"')
            resolved.append((disk, part))
        for disk, part in resolved:
            if part is None:
                disk.wipe_all()
            else:
                part.filesystem, part.fs_uuid, part.fs_label = "", "", ""
                if drop_partition:
                    disk.drop(part)
        self._reconcile(node, now)
        self._touch(node, now)

    def read(self, node: TalosNode, path: str, now: float) -> str:
        """``MachineService.Read`` for the few files the runbooks read."""
        self.require_up(node, now)
        missing = TalosAPIError("Unknown", f"stat {path}: no such file or directory")
        if path == "/proc/sys/kernel/random/boot_id":
            return node.boot_id + "\n"
        if path == "/proc/modules":
            return "".join(f"{m['name']} {m['size']} - - Live {m['address']}{' (O)' if m['out_of_tree'] else ''}\n"
                           for m in reversed(node.modules))
        if path == "/proc/version":
            return (f"Linux version {node.kernel_version} (@buildkitsandbox) (gcc (GCC) 14.2.0, GNU ld (GNU Binutils) "
                    "2.44) #1 SMP PREEMPT_DYNAMIC\n")
        if path == "/etc/os-release":
            return (f'NAME="Talos"\nID=talos\nVERSION_ID={node.talos_version}\nPRETTY_NAME="Talos ({node.talos_version})"\n'
                    'HOME_URL="https://www.talos.dev/"\nBUG_REPORT_URL="https://github.com/siderolabs/talos/issues"\n')
        m = re.fullmatch(r"/sys/module/([^/]+)/(parameters/([^/]+)|version)", path)
        if m:
            mod = node.loaded_module(m.group(1))
            if mod is None:
                raise missing
            if m.group(2) == "version":
                if mod["name"] != "drbd":
                    raise missing
                return drbd_version(node.talos_version) + "\n"
            params = dict(p.split("=", 1) for p in mod["parameters"] if "=" in p)
            defaults = {"drbd": {"usermode_helper": "/sbin/drbdadm", "enable_faults": "0", "minor_count": "32"},
                        "zfs": {"zfs_arc_max": "0"}}  # 0: the OpenZFS default
            value = params.get(m.group(3), defaults.get(mod["name"], {}).get(m.group(3)))
            if value is None:
                raise missing
            return value + "\n"
        if path == "/proc/drbd":
            if node.loaded_module("drbd") is None:
                raise missing
            v = drbd_version(node.talos_version)
            transports = " tcp (" + v + ")" if node.loaded_module("drbd_transport_tcp") else ""
            return (f"version: {v} (api:2/proto:86-122)\nGIT-hash: {hashlib.sha1(v.encode()).hexdigest()} build by "
                    f"@buildkitsandbox\nTransports (api:21):{transports}\n")
        raise missing

    def version_info(self, node: TalosNode, now: float, *, insecure: bool = False) -> dict:
        self.require_up(node, now, insecure=insecure)
        return {"tag": node.talos_version, "sha": hashlib.sha1(node.talos_version.encode()).hexdigest()[:8],
                "built": "", "go_version": GO_VERSIONS.get(parse_version(node.talos_version)[:2], "go1.25.5"),
                "os": "linux", "arch": "amd64", "platform": {"name": "metal", "mode": "metal"},
                "features": {"rbac": True}, "maintenance": node.maintenance}

    def etcd_member_list(self, node: TalosNode, now: float) -> list[dict]:
        self.require_up(node, now)
        self._require_etcd(node, now)
        return [{"id": n.etcd_member_id, "hostname": n.name, "peer_urls": [f"https://{n.address}:2380"],
                 "client_urls": [f"https://{n.address}:2379"], "learner": False} for n in self.etcd_members()]

    def _require_etcd(self, node: TalosNode, now: float) -> None:
        if node.role != "controlplane":
            raise TalosAPIError("Unknown", "etcd is not running on worker nodes")
        if not node.etcd_running(now):
            raise TalosAPIError("Unknown", "failed to create etcd client: etcd service is not running")
        if not self.etcd_quorum(now):
            raise TalosAPIError("Unknown", "etcdserver: request timed out (etcd has lost quorum)")

    def etcd_status(self, node: TalosNode, now: float) -> dict:
        self.require_up(node, now)
        self._require_etcd(node, now)
        leader = min(self.etcd_members(), key=lambda n: n.name)
        r = _Rand(self.seed, f"etcdstatus:{node.name}")
        raft = 10000 + int(now)
        return {"member_id": node.etcd_member_id, "db_size": 18_000_000 + r._r.randrange(1_000_000),
                "db_size_in_use": 9_000_000 + r._r.randrange(1_000_000), "leader": leader.etcd_member_id,
                "raft_index": raft, "raft_term": 2 + node.boot_count, "raft_applied_index": raft, "learner": False,
                "errors": []}

    def require_etcd_snapshot(self, node: TalosNode, now: float) -> None:
        """``MachineService.EtcdSnapshot``'s preconditions (machined ``server.go``): a control plane whose member runs.

        The snapshot is read from the local member's database, so it needs no quorum.
        """
        self.require_up(node, now)
        if node.role != "controlplane":
            raise TalosAPIError("Unimplemented", "etcd snapshot is only available on control plane nodes")
        if not node.etcd_running(now):
            raise TalosAPIError("Unknown", "failed to create etcd client: etcd service is not running")

    def etcd_remove_member(self, node: TalosNode, member: str, now: float) -> None:
        self.require_up(node, now)
        self._require_etcd(node, now)
        target = next((n for n in self.etcd_members() if member in (n.etcd_member_id, n.name)), None)
        if target is None:
            raise TalosAPIError("Unknown", f"etcdserver: member not found: {member}")
        if target is node:
            raise TalosAPIError("Unknown", "cannot remove the member this request runs on; run it from another "
                                "control plane node")
        target.etcd_member = False
        target.etcd_data = False
        self._touch(target, now)

    def health_checks(self, node: TalosNode, now: float, control_planes: list[str] | None = None,
                      workers: list[str] | None = None) -> list[tuple[str, str | None]]:
        """The server-side ``talosctl health`` checks, in order, with the error each one sees now."""
        self.require_up(node, now)
        cps = [self.node_by_address(a) for a in control_planes] if control_planes else \
            [n for n in self.nodes.values() if n.role == "controlplane"]
        wks = [self.node_by_address(a) for a in workers] if workers else \
            [n for n in self.nodes.values() if n.role == "worker"]
        everyone = cps + wks

        def errs(items: list[str]) -> str | None:
            if not items:
                return None
            word = "error" if len(items) == 1 else "errors"
            return f"{len(items)} {word} occurred:\n\t* " + "\n\t* ".join(items) + "\n\n"

        def unreachable(n: TalosNode) -> str:
            return (f'{n.address}: rpc error: code = Unavailable desc = connection error: desc = "transport: '
                    f'Error while dialing: dial tcp {n.address}:50000: connect: connection refused"')

        etcd_errs = []
        for n in cps:
            if not n.is_up(now) or n.maintenance:
                etcd_errs.append(unreachable(n))
            elif not n.etcd_running(now):
                state = "Preparing" if n.stage != "running" else "Failed"
                etcd_errs.append(f'{n.address}: service "etcd" not in expected state "Running": current state [{state}]')
            elif not self.etcd_quorum(now):
                etcd_errs.append(f"{n.address}: etcd member is not healthy: etcdserver: request timed out")
        member_ips = sorted(n.address for n in self.etcd_members())
        cp_ips = sorted(n.address for n in cps)
        members_err = None if set(member_ips) <= set(cp_ips) and member_ips == cp_ips else \
            f"etcd member ips {member_ips} are not equal to control plane node ips {cp_ips}"
        apid = errs([unreachable(n) for n in everyone if not n.is_up(now) or n.maintenance])
        kubelet = errs([f'{n.address}: service "kubelet" not in expected state "Running"' for n in everyone
                        if n.is_up(now) and not n.maintenance and not n.kubelet_ready(now)])
        boot = errs([f"{n.address}: node is not in running stage: {n.stage}" for n in everyone
                     if n.is_up(now) and n.stage != "running"])
        k8s = None if self.etcd_quorum(now) else "Get \"https://127.0.0.1:7445/api/v1/nodes\": dial tcp: connection refused"
        not_ready = [n.name for n in everyone if not n.kubelet_ready(now)]
        ready = f"some nodes are not ready: {not_ready}" if not_ready else None
        cordoned = [n.name for n in everyone if n.cordoned]
        sched = f"some nodes are not schedulable: {cordoned}" if cordoned else None
        return [
            ("etcd to be healthy", errs(etcd_errs)),
            ("etcd members to be consistent across nodes", None if not etcd_errs else "etcd is not healthy"),
            ("etcd members to be control plane nodes", members_err),
            ("apid to be ready", apid),
            ("all nodes memory sizes", None),
            ("all nodes disk sizes", None),
            ("no diagnostics", None),
            ("kubelet to be healthy", kubelet),
            ("all nodes to finish boot sequence", boot),
            ("all k8s nodes to report", k8s),
            ("all control plane static pods to be running", k8s),
            ("all control plane components to be ready", k8s),
            ("all k8s nodes to report ready", k8s or ready),
            ("kube-proxy to report ready", k8s),
            ("coredns to report ready", k8s),
            ("all k8s nodes to report schedulable", k8s or sched),
        ]

    def action_status(self, node: TalosNode, actor: str | None, now: float) -> dict:
        """What ``--wait`` observes: stage, readiness, boot ID and the action's error (node must be up)."""
        self.require_up(node, now, insecure=node.maintenance)
        ready, unmet = self._machine_ready(node, now)
        act = node.actions.get(actor or "", {})
        return {"stage": node.stage, "ready": ready, "unmet": unmet, "boot_id": node.boot_id,
                "boot_count": node.boot_count, "maintenance": node.maintenance, "error": act.get("error"),
                "action_boot_count": act.get("boot_count")}


# VolumeStatusSpec field order (pkg/machinery/resources/block/volume_status.go); mountSpec sits right
# before errorMessage. Zero values are omitted (omitempty), and preFailPhase "waiting" is the zero phase.
_VOLUME_STATUS_ORDER = ("phase", "preFailPhase", "type", "parentID", "location", "mountLocation", "partitionIndex",
                        "parentLocation", "uuid", "partitionUUID", "size", "prettySize", "filesystem")


def _volume_status_spec(st: dict) -> dict:
    spec = {k: st[k] for k in _VOLUME_STATUS_ORDER if st.get(k) not in (None, "", 0)}
    spec["phase"] = st["phase"]
    spec["type"] = st["type"]
    if spec.get("preFailPhase") == "waiting":
        del spec["preFailPhase"]
    spec = {k: spec[k] for k in _VOLUME_STATUS_ORDER if k in spec}
    if st.get("_mount"):
        spec["mountSpec"] = dict(st["_mount"])
    if st.get("errorMessage"):
        spec["errorMessage"] = st["errorMessage"]
    return spec


@functools.lru_cache(maxsize=64)
def _selector(expression: str) -> Any:
    """A compiled ``DiskSelector`` (cel-python builds its parser once; compiling per call is slow)."""
    from runbook_lib.disk_selector import DiskSelector

    return DiskSelector(expression)


def go_duration(seconds: float) -> str:
    """Go ``time.Duration.String`` for whole seconds: ``1m0s``, ``30m0s``, ``1h0m0s``."""
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m}m{sec}s"
    if m:
        return f"{m}m{sec}s"
    return f"{sec}s"
