"""Pure renderers: parameters in, documents out. Nothing here touches a cluster."""

from __future__ import annotations

import yaml

from .params import Storage, version_tuple


def ephemeral_volume_config(storage: Storage) -> dict:
    """``VolumeConfig`` capping EPHEMERAL (``/var``) so the rest of the system disk stays free.

    Talos allocates a new partition at exactly ``maxSize`` when that much space is free
    (``CreatePartition`` in talos ``internal/.../volumes/partition.go``). The cap only applies
    when EPHEMERAL is (re)created, which is why notebook 01 resets EPHEMERAL afterwards.
    """
    return {
        "apiVersion": "v1alpha1",
        "kind": "VolumeConfig",
        "name": "EPHEMERAL",
        "provisioning": {"maxSize": storage.ephemeral_max_size},
    }


def user_volume_config(storage: Storage) -> dict:
    """``UserVolumeConfig`` for the partition LINSTOR will take over (``u-<name>``).

    Without ``maxSize`` Talos gives the partition all contiguous free space that is left,
    which is what a storage pool wants; ``minSize`` makes Talos refuse a disk that is too small.
    """
    provisioning: dict = {
        "diskSelector": {"match": storage.disk_selector},
        "minSize": storage.min_size,
    }
    if storage.max_size:
        provisioning["maxSize"] = storage.max_size
    return {
        "apiVersion": "v1alpha1",
        "kind": "UserVolumeConfig",
        "name": storage.volume_name,
        "provisioning": provisioning,
        "filesystem": {"type": storage.filesystem},
    }


def raw_volume_config(storage: Storage) -> dict:
    """``RawVolumeConfig`` for the partition LINSTOR takes over (``r-<name>``, Talos v1.11+).

    Talos creates the partition and never formats, mounts or wipes it (``block.RawVolumeConfigV1Alpha1``:
    "intended to be used with CSI provisioners"), so LINSTOR builds its pool on it directly. Same sizing
    rules as a user volume: without ``maxSize`` it takes the contiguous free space that is left.
    """
    provisioning: dict = {
        "diskSelector": {"match": storage.disk_selector},
        "minSize": storage.min_size,
    }
    if storage.max_size:
        provisioning["maxSize"] = storage.max_size
    return {"apiVersion": "v1alpha1", "kind": "RawVolumeConfig", "name": storage.volume_name,
            "provisioning": provisioning}


def volume_documents(storage: Storage, talos_version: str) -> list[dict]:
    """EPHEMERAL's cap and LINSTOR's partition: a raw volume on Talos v1.11+, a user volume before."""
    raw = version_tuple(talos_version) >= (1, 11, 0)
    return [ephemeral_volume_config(storage), raw_volume_config(storage) if raw else user_volume_config(storage)]


def on_nodes(nodes: list[str]) -> dict:
    """A pod ``affinity`` that requires one of ``nodes`` (the storage nodes: LINSTOR's CSI node plugin runs only
    there, so a pod with a LINSTOR volume cannot start on a compute-only node)."""
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": sorted(nodes)}]}]}}}


def to_yaml(docs: list[dict]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


#: The Talos override of the satellite pod (piraeus-operator docs/how-to/talos.md): Talos has
#: no systemd and no /usr/lib/modules or /usr/src (the DRBD modules come from the extension),
#: and /etc/lvm is read-only, so LVM's backup and archive move to /var/etc/lvm instead of
#: being deleted as the seed article does.
TALOS_POD_TEMPLATE = {
    "spec": {
        "initContainers": [
            {"name": "drbd-shutdown-guard", "$patch": "delete"},
            {"name": "drbd-module-loader", "$patch": "delete"},
        ],
        "volumes": [
            {"name": "run-systemd-system", "$patch": "delete"},
            {"name": "run-drbd-shutdown-guard", "$patch": "delete"},
            {"name": "systemd-bus-socket", "$patch": "delete"},
            {"name": "lib-modules", "$patch": "delete"},
            {"name": "usr-src", "$patch": "delete"},
            {"name": "etc-lvm-backup", "hostPath": {"path": "/var/etc/lvm/backup", "type": "DirectoryOrCreate"}},
            {"name": "etc-lvm-archive", "hostPath": {"path": "/var/etc/lvm/archive", "type": "DirectoryOrCreate"}},
        ],
    }
}

VERIFY_ALG_KEY = "DrbdOptions/Net/verify-alg"
VERIFY_ALG = "crc32c"


def linstor_cluster(storage_nodes: list[str] | None = None) -> dict:
    """The cluster-wide ``LinstorCluster``: the operator's defaults (it is cluster-scoped).

    ``storage_nodes``: satellites (and so LINSTOR nodes) only there, by ``nodeAffinity`` on the hostname
    (``LinstorCluster.spec.nodeAffinity``): a compute-only node gets no satellite, needs no DRBD module and
    is never given a pool or a replica.
    """
    # The DRBD verify algorithm pinned cluster-wide: LINSTOR's own choice, crct10dif, is gone from Linux 6.18
    # (Talos v1.12), and peers without it never connect (siderolabs/talos#12478); why crc32c: runbook_lib.compat.
    spec: dict = {"properties": [{"name": VERIFY_ALG_KEY, "value": VERIFY_ALG}]}
    if storage_nodes:
        spec["nodeAffinity"] = {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": sorted(storage_nodes)}]}]}
    return {"apiVersion": "piraeus.io/v1", "kind": "LinstorCluster", "metadata": {"name": "linstorcluster"},
            "spec": spec}


def talos_satellite_configuration() -> dict:
    return {"apiVersion": "piraeus.io/v1", "kind": "LinstorSatelliteConfiguration",
            "metadata": {"name": "talos-loader-override"}, "spec": {"podTemplate": TALOS_POD_TEMPLATE}}


def storage_satellite_configuration(node: str, device: str, storage: Storage) -> dict:
    """One node's storage pool on its LINSTOR partition (``device``).

    One configuration per node: each selects its node by hostname, and a node on the old layout
    keeps the device path it was given (``/dev/nvme0n1p5`` here, ``/dev/sda6`` there).
    """
    pool: dict = {"name": storage.pool_name, "source": {"hostDevices": [device]}}
    # With hostDevices the operator creates the zpool / volume group itself, named after the pool.
    pool[storage.pool_type] = {"thinPool": "thin"} if storage.pool_type == "lvmThinPool" else {}
    return {
        "apiVersion": "piraeus.io/v1",
        "kind": "LinstorSatelliteConfiguration",
        "metadata": {"name": f"storage-{node}"},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "storagePools": [pool]},
    }
