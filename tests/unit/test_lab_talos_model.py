"""Unit tests of the lab's Talos model (runbook_lib.lab.talos): layout, volumes, reset, timing."""

from __future__ import annotations

import json

import pytest

from runbook_lib.lab.faults import FaultBook
from runbook_lib.lab.talos.cluster import TalosCluster
from runbook_lib.lab.talos.constants import GIB, MIB
from runbook_lib.lab.talos.errors import TalosAPIError
from runbook_lib.lab.talos.go_yaml import dump_config, go_yaml_dump
from runbook_lib.lab.talos.gpt import efi_size
from runbook_lib.lab.talos.machine_config import apply_config_patches, parse_config
from runbook_lib.lab.talos.node import TalosNode
from tests.lab_helpers import VOLUME_DOCS

NODES = [
    {"name": "cp-1", "address": "10.5.0.2", "role": "controlplane"},
    {"name": "cp-2", "address": "10.5.0.3", "role": "controlplane"},
    {"name": "cp-3", "address": "10.5.0.4", "role": "controlplane"},
    {"name": "w-1", "address": "10.5.0.5", "role": "worker"},
]


NOT_ENOUGH_SPACE = ("no disks matched for volume (1 matched selector): 1 have not enough space, 0 have wrong format, "
                    "0 have other issues")


def make(version: str = "v1.12.6") -> tuple[TalosCluster, FaultBook]:
    return TalosCluster.create(NODES, talos_version=version, seed=7), FaultBook()


def run(cluster: TalosCluster, faults: FaultBook, start: float, end: float, step: float = 1.0) -> float:
    t = start
    while t <= end:
        cluster.advance(t, faults)
        t += step
    return end


def with_volumes(node: TalosNode) -> str:
    return dump_config(node.config or []) + VOLUME_DOCS


def spec_by_label(node: TalosNode) -> dict[str, tuple[int, int]]:
    disk = node.system_disk
    return {p.label: (p.index, p.size) for p in disk.partitions}


def test_default_layout_is_talos_uefi_install_with_ephemeral_over_the_rest():
    cluster, _ = make()
    node = cluster.nodes["w-1"]
    disk = node.system_disk
    assert [(p.index, p.label, p.filesystem) for p in disk.partitions] == [
        (1, "EFI", "vfat"), (2, "META", "talosmeta"), (3, "STATE", "xfs"), (4, "EPHEMERAL", "xfs")]
    assert efi_size("v1.12.6") == 2101 * MIB and efi_size("v1.10.9") == 1101 * MIB
    # 1 MiB aligned, EPHEMERAL ends at the last usable LBA (lastLBA - 33)
    assert disk.partitions[0].first_lba == 2048
    assert disk.partitions[3].last_lba == disk.size // 512 - 1 - 33
    assert disk.largest_free() == 0
    eph = node.volumes["EPHEMERAL"]
    assert eph["phase"] == "ready" and eph["location"] == "/dev/nvme0n1p4" and eph["prettySize"] == "498 GB"
    dv = {r["metadata"]["id"]: r["spec"] for r in cluster.resources(node, "DiscoveredVolumes.block.talos.dev", 0)}
    assert dv["nvme0n1"]["name"] == "gpt"
    assert dv["nvme0n1p4"]["partition_label"] == "EPHEMERAL" and dv["nvme0n1p4"]["partition_index"] == 4
    assert node.kubelet_ready(0) and node.is_up(0) and node.stage == "running"


def test_correct_order_apply_then_reset_gives_capped_ephemeral_and_user_volume():
    cluster, faults = make()
    node = cluster.nodes["w-1"]
    res = cluster.apply_config(node, with_volumes(node), "auto", 10)
    assert res["mode_details"] == "Applied configuration without a reboot"
    # volume documents apply at once: the user volume is tried and finds no space yet
    assert node.volumes["u-linstor-storage"]["phase"] == "failed"
    cluster.reset(node, False, True, "all", ["EPHEMERAL"], [], 20)
    run(cluster, faults, 20, 120)
    assert node.stage == "running" and node.kubelet_ready(120)
    assert node.volumes["EPHEMERAL"]["size"] == 100 * GIB
    user = node.volumes["u-linstor-storage"]
    assert user["phase"] == "ready"
    assert user["location"] == "/dev/nvme0n1p5" and user["partitionIndex"] == 5
    assert user["filesystem"] == "xfs" and user["_mount"]["targetPath"] == "linstor-storage"
    disk = node.system_disk
    assert user["size"] == (disk.size // 512 - 34 - disk.by_label("u-linstor-storage").first_lba + 1) * 512
    assert 380e9 < user["size"] < 400e9 and user["prettySize"] == "390 GB"
    spec = next(r for r in cluster.resources(node, "VolumeStatuses.block.talos.dev", 120)
                if r["metadata"]["id"] == "u-linstor-storage")
    assert spec["metadata"]["labels"] == {"talos.dev/user-volume": ""}
    assert list(spec["spec"])[:3] == ["phase", "type", "location"]


def test_wrong_order_reset_then_apply_leaves_ephemeral_grown_and_user_volume_failing():
    cluster, faults = make()
    node = cluster.nodes["w-1"]
    cluster.reset(node, False, True, "all", ["EPHEMERAL"], [], 10)
    run(cluster, faults, 10, 100)
    assert node.volumes["EPHEMERAL"]["prettySize"] == "498 GB"  # re-provisioned with the defaults: grow over all
    cluster.apply_config(node, with_volumes(node), "auto", 101)
    user = node.volumes["u-linstor-storage"]
    assert user["phase"] == "failed"
    assert user["errorMessage"] == NOT_ENOUGH_SPACE
    assert node.volumes["EPHEMERAL"]["prettySize"] == "498 GB"  # maxSize only counts when EPHEMERAL is missing
    rendered = go_yaml_dump(cluster.resources(node, "VolumeStatuses.block.talos.dev", 101)[-1])
    assert "errorMessage: 'no disks matched for volume (1 matched selector)" in rendered


def test_v1_11_reset_keeps_the_ephemeral_partition():
    cluster, faults = make("v1.11.5")
    node = cluster.nodes["w-1"]
    before = spec_by_label(node)["EPHEMERAL"]
    cluster.apply_config(node, with_volumes(node), "auto", 10)
    cluster.reset(node, False, True, "all", ["EPHEMERAL"], [], 20)
    run(cluster, faults, 20, 120)
    assert spec_by_label(node)["EPHEMERAL"] == before  # FastWipe only: the maxSize is ignored
    assert node.volumes["EPHEMERAL"]["phase"] == "ready"
    assert node.volumes["u-linstor-storage"]["errorMessage"] == "no disks matched for volume"


def test_reapplying_the_same_config_changes_nothing():
    cluster, faults = make()
    node = cluster.nodes["w-1"]
    cluster.apply_config(node, with_volumes(node), "auto", 10)
    cluster.reset(node, True, True, "all", ["EPHEMERAL"], [], 20)
    run(cluster, faults, 20, 150)
    layout, volumes = spec_by_label(node), json.dumps(node.volumes, sort_keys=True)
    res = cluster.apply_config(node, dump_config(node.config or []), "auto", 151)
    assert res["mode_details"] == "Applied configuration without a reboot"
    dry = cluster.apply_config(node, dump_config(node.config or []), "auto", 152, dry_run=True)
    assert dry["mode_details"].endswith("Config diff:\n\nNo changes.")
    assert spec_by_label(node) == layout and json.dumps(node.volumes, sort_keys=True) == volumes


def test_existing_user_partition_is_located_and_reused_and_wipe_refuses_while_in_use():
    cluster, faults = make()
    node = cluster.nodes["w-1"]
    cluster.apply_config(node, with_volumes(node), "auto", 10)
    cluster.reset(node, False, True, "all", ["EPHEMERAL"], [], 20)
    run(cluster, faults, 20, 120)
    part = node.system_disk.by_label("u-linstor-storage")
    with pytest.raises(TalosAPIError) as exc:
        cluster.wipe_disk(node, ["nvme0n1p5"], "FAST", True, 121)
    assert exc.value.code == "FailedPrecondition"
    assert exc.value.message == 'blockdevice "nvme0n1p5" is in use by volume "u-linstor-storage"'
    # remove the document: the status goes, the partition (and its data) stays
    without = [d for d in node.config or [] if d.get("kind") != "UserVolumeConfig"]
    cluster.apply_config(node, dump_config(without), "auto", 122)
    assert "u-linstor-storage" not in node.volumes
    assert node.system_disk.by_label("u-linstor-storage") is part
    # adding it back locates the same partition instead of provisioning a new one
    cluster.apply_config(node, with_volumes(node).split("---\napiVersion: v1alpha1\nkind: VolumeConfig")[0]
                         + VOLUME_DOCS, "auto", 123)
    assert node.volumes["u-linstor-storage"]["partitionUUID"] == part.part_uuid
    assert len(node.system_disk.partitions) == 5


def test_preexisting_user_partition_from_an_earlier_install_is_reused():
    cluster, _ = make()
    node = cluster.nodes["w-1"]
    disk = node.system_disk
    eph = disk.by_label("EPHEMERAL")
    eph.last_lba = eph.first_lba + (100 * GIB) // 512 - 1  # an earlier run left EPHEMERAL capped ...
    old = disk.allocate(50 * GIB, "u-linstor-storage", "11111111-2222-4333-8444-555555555555")  # ... and a u- partition
    old.filesystem = "xfs"
    cluster.apply_config(node, with_volumes(node), "auto", 10)
    user = node.volumes["u-linstor-storage"]
    assert user["phase"] == "ready" and user["partitionUUID"] == old.part_uuid and user["size"] == 50 * GIB


def test_reset_without_labels_wipes_the_system_disk_into_maintenance_and_install_recovers():
    cluster, faults = make("v1.11.5")
    node = cluster.nodes["w-1"]
    config = dump_config(node.config or []) + VOLUME_DOCS
    cluster.reset(node, True, True, "all", [], [], 10)
    run(cluster, faults, 10, 120)
    assert node.stage == "maintenance" and node.config is None
    assert node.is_up(120) and not node.kubelet_ready(120)
    assert node.system_disk.partitions == [] and not node.system_disk.gpt
    with pytest.raises(TalosAPIError) as exc:
        cluster.require_up(node, 120)
    assert "certificate signed by unknown authority" in exc.value.message
    assert cluster.resources(node, "VolumeStatuses.block.talos.dev", 120) == []
    # the v1.10/v1.11 way: install again with the volume config present from the start
    cluster.apply_config(node, config, "auto", 121, insecure=True)
    assert node.stage == "installing"
    run(cluster, faults, 121, 260)
    assert node.stage == "running" and node.kubelet_ready(260)
    assert node.volumes["EPHEMERAL"]["size"] == 100 * GIB
    assert node.volumes["u-linstor-storage"]["phase"] == "ready"


def test_reset_validation_errors_use_talos_texts():
    cluster, _ = make()
    node = cluster.nodes["w-1"]
    with pytest.raises(TalosAPIError) as exc:
        cluster.reset(node, True, True, "user-disks", ["EPHEMERAL"], [], 1)
    assert "wipe mode USER_DISKS doesn't support SystemPartitionsToWipe parameter" in exc.value.message
    with pytest.raises(TalosAPIError) as exc:
        cluster.reset(node, True, True, "all", ["NOPE"], [], 1)
    assert exc.value.message.startswith('failed to get volume status with label "NOPE"')
    with pytest.raises(TalosAPIError) as exc:
        cluster.reset(node, True, True, "all", [], ["/dev/nvme0n1"], 1)
    assert exc.value.message == "reset user disk failed: device /dev/nvme0n1 is the system disk"
    assert node.stage == "running"


def test_stuck_reboot_holds_the_node_down_until_cleared():
    cluster, faults = make()
    node = cluster.nodes["w-1"]
    faults.add("stuck-reboot", "w-1")
    boot = node.boot_id
    cluster.reboot(node, 10)
    run(cluster, faults, 10, 300, 5)
    assert not node.is_up(300) and node.stage == "rebooting" and node.boot_id == boot
    faults.clear()
    run(cluster, faults, 301, 400)
    assert node.is_up(400) and node.stage == "running" and node.boot_id != boot


def test_reboot_timing_and_node_down_fault():
    cluster, faults = make()
    node = cluster.nodes["w-1"]
    cluster.reboot(node, 0)
    run(cluster, faults, 0, 29)
    assert not node.is_up(29) and node.stage == "rebooting"
    run(cluster, faults, 30, 45)
    assert node.stage == "running" and not node.kubelet_ready(45)
    run(cluster, faults, 45, 61)
    assert node.kubelet_ready(61)
    faults.add("node-down", "w-1")
    run(cluster, faults, 62, 100)
    assert not node.is_up(100) and not node.kubelet_ready(100)
    faults.clear()
    run(cluster, faults, 101, 160)
    assert node.kubelet_ready(160)


def test_etcd_quorum_needs_a_majority_of_control_planes():
    cluster, faults = make()
    assert cluster.etcd_quorum(0)
    faults.add("node-down", "cp-1")
    cluster.advance(1, faults)
    assert cluster.etcd_quorum(1)
    faults.add("node-down", "cp-2")
    cluster.advance(2, faults)
    assert not cluster.etcd_quorum(2)
    checks = dict(cluster.health_checks(cluster.nodes["cp-3"], 2))
    assert checks["etcd to be healthy"] and "10.5.0.2" in checks["etcd to be healthy"]


def test_graceful_controlplane_reset_leaves_and_rejoins_etcd():
    cluster, faults = make()
    node = cluster.nodes["cp-1"]
    old_id = node.etcd_member_id
    cluster.reset(node, True, True, "all", ["EPHEMERAL"], [], 10)
    run(cluster, faults, 10, 30)
    assert not node.etcd_member and len(cluster.etcd_members()) == 2 and cluster.etcd_quorum(30)
    run(cluster, faults, 30, 150)
    assert node.etcd_member and node.etcd_running(150) and node.etcd_member_id != old_id
    assert cluster.etcd_quorum(150)


def test_non_graceful_controlplane_ephemeral_wipe_breaks_etcd_until_member_removed():
    cluster, faults = make()
    node = cluster.nodes["cp-1"]
    cluster.reset(node, False, True, "all", ["EPHEMERAL"], [], 10)
    run(cluster, faults, 10, 150)
    assert node.stage == "running" and node.etcd_member and not node.etcd_running(150)
    ready, unmet = cluster._machine_ready(node, 150)
    assert not ready and unmet[0]["reason"] == "etcd is not healthy"
    assert dict(cluster.health_checks(cluster.nodes["cp-2"], 150))["etcd to be healthy"]
    cluster.etcd_remove_member(cluster.nodes["cp-2"], node.etcd_member_id, 151)
    run(cluster, faults, 151, 170)
    assert node.etcd_running(170) and cluster.etcd_quorum(170)


def test_upgrade_swaps_extensions_and_vanilla_installer_loses_them():
    cluster, faults = make()
    node = cluster.nodes["w-1"]
    patched = apply_config_patches(node.config or [], ["""machine:
  kernel:
    modules:
      - name: drbd
        parameters:
          - usermode_helper=disabled
      - name: drbd_transport_tcp
"""])
    cluster.apply_config(node, dump_config(patched), "auto", 1)
    assert node.modules == [] and 'error loading module "drbd": module not found' in node.log
    schematic = "98442b5bb4e8d050f30978ce3e6ec22e7bf534d57cafcd51313235128057e612"
    lookup = {schematic: ["siderolabs/drbd", "siderolabs/zfs"]}.get
    cluster.upgrade(node, f"factory.talos.dev/metal-installer/{schematic}:v1.12.6", 2, schematic_lookup=lookup)
    assert node.stage == "upgrading"
    run(cluster, faults, 2, 150)
    exts = [r["spec"]["metadata"] for r in cluster.resources(node, "ExtensionStatuses.runtime.talos.dev", 150)]
    assert [(e["name"], e["version"]) for e in exts] == [
        ("drbd", "9.2.16-v1.12.6"), ("zfs", "2.3.4-v1.12.6"), ("schematic", schematic)]
    assert cluster.read(node, "/sys/module/drbd/parameters/usermode_helper", 150) == "disabled\n"
    assert cluster.read(node, "/proc/modules", 150).splitlines()[0].startswith("drbd_transport_tcp 28672 - - Live")
    assert node.drbd_version() == "9.2.16"
    cluster.upgrade(node, "ghcr.io/siderolabs/installer:v1.12.6", 151)
    run(cluster, faults, 151, 300)
    assert node.extensions == [] and node.schematic is None
    assert cluster.resources(node, "ExtensionStatuses.runtime.talos.dev", 300) == []
    with pytest.raises(TalosAPIError, match="stat /sys/module/drbd/parameters/usermode_helper: no such file"):
        cluster.read(node, "/sys/module/drbd/parameters/usermode_helper", 300)
    with pytest.raises(TalosAPIError, match="not found"):
        cluster.upgrade(node, f"factory.talos.dev/installer/{'a' * 64}:v1.12.6", 301, schematic_lookup=lookup)
    with pytest.raises(TalosAPIError, match="not found"):
        cluster.upgrade(node, "ghcr.io/siderolabs/installer:v1.99.0", 302)


def test_controlplane_upgrade_refused_while_another_member_is_down():
    cluster, faults = make()
    faults.add("node-down", "cp-2")
    cluster.advance(1, faults)
    with pytest.raises(TalosAPIError, match="is not healthy; all members must be healthy"):
        cluster.upgrade(cluster.nodes["cp-1"], "ghcr.io/siderolabs/installer:v1.12.6", 2)


def test_apply_config_modes_and_errors():
    cluster, faults = make()
    node = cluster.nodes["w-1"]
    with pytest.raises(TalosAPIError) as exc:
        cluster.apply_config(node, VOLUME_DOCS, "auto", 1)
    assert exc.value.message.startswith("the applied machine configuration doesn't contain v1alpha1 config")
    changed = apply_config_patches(node.config or [], ["machine:\n  env:\n    FOO: bar\n"])
    with pytest.raises(TalosAPIError) as exc:
        cluster.apply_config(node, dump_config(changed), "no-reboot", 2)
    assert exc.value.code == "InvalidArgument"
    assert exc.value.message.startswith("this config change can't be applied in immediate mode\ndiff: ")
    res = cluster.apply_config(node, dump_config(changed), "auto", 3)
    assert res["mode"] == "reboot"
    assert res["mode_details"].startswith("Applied configuration with a reboot: this config change can't be applied")
    assert node.stage == "rebooting"
    run(cluster, faults, 3, 100)
    assert (node.config or [{}])[0]["machine"]["env"] == {"FOO": "bar"}
    staged = cluster.apply_config(node, dump_config(node.config or []), "staged", 101)
    assert staged["mode_details"] == "Staged configuration to be applied after the next reboot"
    bad = dump_config(node.config or []) + VOLUME_DOCS.replace("minSize: 100GiB", "minSize: 100GiB\n  maxSize: 1GiB")
    with pytest.raises(TalosAPIError, match="min size is greater than max size"):
        cluster.apply_config(node, bad, "auto", 102)


def test_patch_merges_by_kind_and_name_and_deletes():
    docs = parse_config("version: v1alpha1\nmachine:\n  type: worker\n" + VOLUME_DOCS)
    out = apply_config_patches(docs, [
        "machine:\n  kernel:\n    modules:\n      - name: drbd\n",
        "apiVersion: v1alpha1\nkind: UserVolumeConfig\nname: linstor-storage\nprovisioning:\n  minSize: 200GiB\n",
        "apiVersion: v1alpha1\nkind: VolumeConfig\nname: EPHEMERAL\n$patch: delete\n",
    ])
    assert out[0]["machine"] == {"type": "worker", "kernel": {"modules": [{"name": "drbd"}]}}
    assert [d.get("kind") for d in out] == [None, "UserVolumeConfig"]
    assert out[1]["provisioning"] == {"diskSelector": {"match": "disk.transport == 'nvme'"}, "minSize": "200GiB"}
    with pytest.raises(ValueError, match="v1alpha1"):
        apply_config_patches(docs, ["version: v1alpha1\n$patch: delete\n"])


def test_secrets_are_in_the_config_and_listed():
    cluster, _ = make()
    text = dump_config(cluster.nodes["cp-1"].config or [])
    secrets = cluster.secret_values()
    assert cluster.secrets["cluster_secret"] in secrets and cluster.client_key in secrets
    assert sum(1 for s in secrets if s in text) >= 8
    assert not any(s in json.dumps(cluster.resources(cluster.nodes["cp-1"], "VolumeStatuses.block.talos.dev", 0))
                   for s in secrets)


def test_go_yaml_dump_style():
    text = go_yaml_dump({"a": {"list": ["x", "0"], "items": [{"name": "drbd", "parameters": ["p=1"]}],
                               "msg": "error: creating", "empty": "", "block": "l1\nl2\n", "none": {}}})
    assert text == ("a:\n    list:\n        - x\n        - \"0\"\n    items:\n        - name: drbd\n"
                    "          parameters:\n            - p=1\n    msg: 'error: creating'\n    empty: \"\"\n"
                    "    block: |\n        l1\n        l2\n    none: {}\n")


def test_round_trip_keeps_state_mid_reboot():
    cluster, faults = make()
    node = cluster.nodes["w-1"]
    cluster.apply_config(node, with_volumes(node), "auto", 1)
    cluster.reset(node, False, True, "all", ["EPHEMERAL"], [], 2)
    run(cluster, faults, 2, 20)
    data = json.loads(json.dumps(cluster.to_dict()))
    clone = TalosCluster.from_dict(data)
    assert clone.to_dict() == cluster.to_dict()
    run(clone, faults, 20, 120)
    assert clone.nodes["w-1"].volumes["u-linstor-storage"]["phase"] == "ready"
