"""The lab's Talos volume manager with a ``RawVolumeConfig``: located or provisioned like a user volume, never
formatted, ready whatever LINSTOR writes on it, across reboots; a blank ``UserVolumeConfig`` is still formatted
(talos ``block/internal/volumes/format.go``: "no filesystem, format"), and fails once LINSTOR's pool replaced
the filesystem (the old layout). The satellite opens ``/dev/disk/by-partlabel/r-<name>`` as the partition.
"""

from __future__ import annotations

from runbook_lib.lab.faults import FaultBook
from runbook_lib.lab.talos import block_links
from runbook_lib.lab.talos.cluster import TalosCluster
from runbook_lib.lab.talos.go_yaml import dump_config
from runbook_lib.lab.talos.machine_config import apply_config_patches
from runbook_lib.machineconfig import documents_patch
from runbook_lib.manifests import user_volume_config, volume_documents
from runbook_lib.params import Storage

NODES = [{"name": f"cp-{i}", "address": f"10.5.0.{i + 1}", "role": "controlplane"} for i in (1, 2, 3)]
STORAGE = Storage()


def settle(cluster: TalosCluster, start: float, seconds: int = 100) -> float:
    faults = FaultBook()
    for t in range(int(start), int(start) + seconds):
        cluster.advance(float(t), faults)
    return start + seconds


def carve(docs: list[dict]) -> tuple[TalosCluster, object, float]:
    """01 on one lab node: patch in ``docs`` (only what is missing), reset EPHEMERAL, let it boot."""
    cluster = TalosCluster.create(NODES, talos_version="v1.12.6", seed=3)
    node = cluster.nodes["cp-1"]
    patch = documents_patch(node.config, docs)
    assert patch is not None
    cluster.apply_config(node, dump_config(apply_config_patches(node.config, [patch])), "no-reboot", 10)
    assert documents_patch(node.config, docs) is None  # what a re-run sees: nothing to patch
    cluster.reset(node, False, True, "all", ["EPHEMERAL"], [], 20)
    return cluster, node, settle(cluster, 20)


def test_a_raw_volume_is_provisioned_never_formatted_and_stays_ready_under_linstors_pool() -> None:
    cluster, node, now = carve(volume_documents(STORAGE, "v1.12.6"))
    status = node.volumes["r-linstor-storage"]
    assert status["phase"] == "ready" and status["location"] == "/dev/nvme0n1p5"
    assert status["size"] >= STORAGE.min_bytes and "filesystem" not in status and not status.get("_mount")
    disk, partition = node.partition_by_path(status["location"])
    assert partition.label == "r-linstor-storage" and partition.filesystem == ""  # blank: Talos never formatted it
    assert block_links.resolve(node, "/dev/disk/by-partlabel/r-linstor-storage") == "/dev/nvme0n1p5"
    assert block_links.resolve(node, "/dev/disk/by-partlabel/r-missing") == "/dev/disk/by-partlabel/r-missing"

    partition.filesystem = "zfs_member"  # what `zpool create` leaves; then a reboot
    cluster.reboot(node, now)
    settle(cluster, now + 1, 120)
    after = node.volumes["r-linstor-storage"]
    assert after["phase"] == "ready" and after["location"] == "/dev/nvme0n1p5"
    assert node.partition_by_path("/dev/nvme0n1p5")[1].filesystem == "zfs_member"


def test_a_blank_user_volume_is_formatted_and_fails_once_linstor_owns_it() -> None:
    cluster, node, now = carve([volume_documents(STORAGE, "v1.12.6")[0], user_volume_config(STORAGE)])
    status = node.volumes["u-linstor-storage"]
    assert status["phase"] == "ready" and status["filesystem"] == "xfs"
    partition = node.partition_by_path(status["location"])[1]
    partition.filesystem, partition.fs_uuid = "", ""  # wiped, and a reboot before the pool: Talos formats it again
    cluster.reboot(node, now)
    now = settle(cluster, now + 1, 120)
    assert partition.filesystem == "xfs"
    partition.filesystem = "zfs_member"  # LINSTOR's pool on it: the article's layout after any reboot
    cluster.reboot(node, now)
    settle(cluster, now + 1, 120)
    failed = node.volumes["u-linstor-storage"]
    assert failed["phase"] == "failed" and failed["errorMessage"] == "filesystem type mismatch: zfs_member != xfs"
