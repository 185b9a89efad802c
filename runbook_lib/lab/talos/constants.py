"""Facts of the lab's Talos model: sizes, GPT type GUIDs, volume labels, lab-time durations, the extension catalog."""

from __future__ import annotations

TYPE_CHECKING = False  # no typing import: the lab's talosctl imports this module at every call
if TYPE_CHECKING:
    from typing import Any

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
