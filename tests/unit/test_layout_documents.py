"""The Talos-native layout, pure parts: RawVolumeConfig rendering and its version rule, the node classification
(raw volume, old user-volume layout), the machine-config patch that holds only what is missing, node roles and
the preflight that names a selector or size that cannot fit.

Conformance: the rendered documents validate against Talos's own machine-config schemas
(``../shared/reference/talos/config.schema.v1.1x.json``, ``block.RawVolumeConfigV1Alpha1``).
"""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from runbook_lib import machineconfig, storage_layout
from runbook_lib.errors import ParamsError
from runbook_lib.layout_fit import layout_misfit
from runbook_lib.manifests import volume_documents
from runbook_lib.params import Storage, parse_params
from runbook_lib.volume_rules import validate_documents
from tests.reference import talos_schema_def

GIB = 1 << 30
DEFS = {"VolumeConfig": "block.VolumeConfigV1Alpha1", "RawVolumeConfig": "block.RawVolumeConfigV1Alpha1",
        "UserVolumeConfig": "block.UserVolumeConfigV1Alpha1"}


def test_talos_v1_11_and_later_get_a_raw_volume_older_ones_a_user_volume() -> None:
    storage = Storage()
    for version in ("v1.11.0", "v1.12.7", "v1.13.9"):
        eph, raw = volume_documents(storage, version)
        assert eph["kind"] == "VolumeConfig"
        assert raw == {"apiVersion": "v1alpha1", "kind": "RawVolumeConfig", "name": "linstor-storage",
                       "provisioning": {"diskSelector": {"match": "system_disk"}, "minSize": "200GiB"}}
        assert validate_documents([eph, raw], version) == []
    assert volume_documents(storage, "v1.10.9")[1]["kind"] == "UserVolumeConfig"
    raw = volume_documents(storage, "v1.12.7")[1]
    assert validate_documents([raw], "v1.10.9") == [
        "RawVolumeConfig 'linstor-storage': RawVolumeConfig needs Talos v1.11 or later (running v1.10.9)"]
    assert "name must be between 1 and 34" in validate_documents([{**raw, "name": "r" * 35}], "v1.12.7")[0]
    assert validate_documents([{**raw, "provisioning": {"minSize": "1GiB"}}], "v1.12.7") == [
        "RawVolumeConfig 'linstor-storage': disk selector is required"]


@pytest.mark.reference
@pytest.mark.parametrize("version", ["v1.11.6", "v1.12.11", "v1.13.9"])
def test_raw_volume_documents_are_valid_against_the_talos_schema(version: str) -> None:
    for doc in volume_documents(Storage(max_size="300GiB"), version):
        jsonschema.Draft202012Validator(talos_schema_def(version, DEFS[doc["kind"]])).validate(doc)
    # a raw volume has no filesystem: the schema refuses one, so the parameter never leaks into it
    raw = volume_documents(Storage(), "v1.12.11")[1]
    validator = jsonschema.Draft202012Validator(talos_schema_def("v1.12.11", DEFS["RawVolumeConfig"]))
    assert list(validator.iter_errors({**raw, "filesystem": {"type": "xfs"}}))


def part(label: str, dev: str, signature: str = "", size: int = 300 * GIB, parent: str = "/dev/nvme0n1") -> dict:
    spec = {"type": "partition", "dev_path": dev, "partition_label": label, "size": size, "parent_dev_path": parent}
    return {**spec, "name": signature} if signature else spec


def test_a_node_is_classified_by_what_it_has_not_by_what_the_parameters_say() -> None:
    s = Storage()
    fresh = storage_layout.node_volume("n1", s, "v1.12.7", {}, [part("EPHEMERAL", "/dev/nvme0n1p4", "xfs")])
    assert (fresh.kind, fresh.label, fresh.old_layout) == ("raw", "r-linstor-storage", False)
    ready = {"r-linstor-storage": {"phase": "ready", "location": "/dev/nvme0n1p5", "size": 300 * GIB}}
    raw = storage_layout.node_volume("n1", s, "v1.12.7", ready,
                                     [part("r-linstor-storage", "/dev/nvme0n1p5", "zfs_member")])
    assert (raw.kind, raw.device, raw.signature, raw.size) == ("raw", "/dev/nvme0n1p5", "zfs_member", 300 * GIB)
    # the article's layout, handed to LINSTOR: Talos failed the volume (zfs_member != xfs); it is still recognised
    failed = {"u-linstor-storage": {"phase": "failed", "errorMessage": "filesystem type mismatch: zfs_member != xfs"}}
    old = storage_layout.node_volume("n1", s, "v1.12.7", failed,
                                     [part("u-linstor-storage", "/dev/nvme0n1p5", "zfs_member")])
    assert (old.kind, old.label, old.old_layout, old.device) == ("user", "u-linstor-storage", True, "/dev/nvme0n1p5")
    by_config = storage_layout.node_volume("n1", s, "v1.12.7", {}, [], [
        {"apiVersion": "v1alpha1", "kind": "UserVolumeConfig", "name": "linstor-storage"}])
    assert by_config.old_layout
    before = storage_layout.node_volume("n1", s, "v1.10.9", {}, [])
    assert (before.kind, before.old_layout) == ("user", False)
    assert storage_layout.linstor_device(s, raw) == "/dev/disk/by-partlabel/r-linstor-storage"
    assert storage_layout.linstor_device(s, old) == "/dev/nvme0n1p5"


def test_the_patch_holds_only_the_missing_documents_and_none_of_the_nodes_own() -> None:
    v1 = {"version": "v1alpha1", "machine": {"type": "controlplane", "ca": {"crt": "Q0VSVA==", "key": "S0VZ"}},
          "cluster": {"secret": "c2VjcmV0"}}
    wanted = volume_documents(Storage(), "v1.12.7")
    patch = machineconfig.documents_patch([v1], wanted)
    assert [d["kind"] for d in yaml.safe_load_all(patch)] == ["VolumeConfig", "RawVolumeConfig"]
    assert "S0VZ" not in patch and "machine" not in patch
    # one present: only the other one; both present (with fields Talos added): nothing, so a re-run patches nothing
    assert [d["kind"] for d in yaml.safe_load_all(machineconfig.documents_patch([v1, wanted[0]], wanted))] == \
        ["RawVolumeConfig"]
    live = [v1, wanted[0], {**wanted[1], "provisioning": {**wanted[1]["provisioning"], "grow": False}}]
    assert machineconfig.documents_patch(live, wanted) is None
    changed = volume_documents(Storage(min_size="250GiB"), "v1.12.7")
    assert yaml.safe_load(machineconfig.documents_patch(live, changed))["provisioning"]["minSize"] == "250GiB"


NODES = [{"name": "cp-1", "address": "10.5.0.2", "role": "controlplane"},
         {"name": "w-1", "address": "10.5.0.5", "role": "worker", "storage": False}]


def test_node_roles_storage_nodes_and_unlisted_lab_workers() -> None:
    p = parse_params({"nodes": NODES, "lab": {"extra_workers": 2}})
    assert [n.name for n in p.storage_nodes] == ["cp-1"]
    assert [(n["name"], n["address"], n["storage"]) for n in p.lab_nodes()] == [
        ("cp-1", "10.5.0.2", True), ("w-1", "10.5.0.5", False), ("lab-w-1", "10.5.0.6", False),
        ("lab-w-2", "10.5.0.7", False)]
    with pytest.raises(ParamsError, match=r"nodes: storage: false on every node \(cp-1, w-1\)"):
        parse_params({"nodes": [{**NODES[0], "storage": False}, NODES[1]]})


DISKS = [{"type": "disk", "dev_path": "/dev/nvme0n1", "size": 500 * 10**9},
         {"type": "disk", "dev_path": "/dev/sda", "size": 2000 * 10**9}]
DISK_SPECS = [{"dev_path": "/dev/nvme0n1", "size": 500 * 10**9, "transport": "nvme"},
              {"dev_path": "/dev/sda", "size": 2000 * 10**9, "transport": "sata", "rotational": True}]
SYSTEM = [part("EFI", "/dev/nvme0n1p1", "vfat", 100 << 20), part("META", "/dev/nvme0n1p2", "talosmeta", 1 << 20),
          part("STATE", "/dev/nvme0n1p3", "xfs", 100 << 20), part("EPHEMERAL", "/dev/nvme0n1p4", "xfs", 450 * GIB)]


def test_preflight_names_a_selector_that_matches_no_disk_and_sizes_that_cannot_fit() -> None:
    assert layout_misfit("n1", DISKS[:1], SYSTEM, Storage(), disk_specs=DISK_SPECS[:1]) is None
    why = layout_misfit("n1", DISKS, SYSTEM, Storage(disk_selector="disk.transport == 'virtio'"), disk_specs=DISK_SPECS)
    assert why == ("n1: storage.disk_selector \"disk.transport == 'virtio'\" matches none of its disks: "
                   "/dev/nvme0n1 (500 GB, nvme), /dev/sda (2.0 TB, sata); fix the selector (Talos would fail the "
                   "volume with 'no disks matched selector for volume')")
    # a dedicated data disk: the whole sata disk is free, whatever EPHEMERAL takes on the system disk
    data_disk = Storage(disk_selector="!system_disk && disk.transport == 'sata'", min_size="1.5TiB")
    assert layout_misfit("n1", DISKS, SYSTEM, data_disk, disk_specs=DISK_SPECS) is None
    why = layout_misfit("n1", DISKS, SYSTEM, Storage(min_size="1.5TiB"), disk_specs=DISK_SPECS)
    assert why and why.startswith("n1: storage.min_size 1.5TiB cannot fit: the most a selected disk can give "
                                  "r-linstor-storage is ") and "(on /dev/nvme0n1," in why
    why = layout_misfit("n1", DISKS, SYSTEM, Storage(ephemeral_max_size="600GiB"), disk_specs=DISK_SPECS)
    assert why and why.startswith("n1: storage.ephemeral_max_size 600GiB does not fit on the system disk /dev/nvme0n1")


def test_an_old_layout_node_is_left_alone_and_only_old_user_volumes_are_ever_wiped() -> None:
    from runbook_lib.params import Node
    from runbook_lib.steps import nb03_piraeus_install as piraeus
    from runbook_lib.steps.nb01_partition import NodeLayout, plan_node

    p = parse_params({"nodes": [{"name": "cp-1", "address": "10.5.0.2", "role": "controlplane"}]})
    parts = [*SYSTEM[:3], part("EPHEMERAL", "/dev/nvme0n1p4", "xfs", 100 * GIB),
             part("u-linstor-storage", "/dev/nvme0n1p5", "zfs_member", 350 * GIB)]
    volumes = {"EPHEMERAL": {"phase": "ready", "size": 100 * GIB},
               "u-linstor-storage": {"phase": "failed", "errorMessage": "filesystem type mismatch: zfs_member != xfs"}}
    layout = NodeLayout(node="cp-1", talos_version="v1.12.7", volumes=volumes, partitions=parts, disks=DISKS[:1],
                        disk_specs=DISK_SPECS[:1], config=[{"version": "v1alpha1"}],
                        storage=storage_layout.node_volume("cp-1", p.storage, "v1.12.7", volumes, parts),
                        storage_params=p.storage)
    assert layout.docs == [] and layout.patch is None  # no RawVolumeConfig next to the old partition
    plan = plan_node(layout, p, Node(name="cp-1", address="10.5.0.2", role="controlplane"))
    assert (plan.apply_config, plan.reset, plan.blocked) == (False, False, None)
    assert "old layout" in plan.reasons[0]
    assert "linstor node evacuate cp-1" in storage_layout.migration_steps("cp-1", p.storage)

    old = piraeus.Partition("cp-1", "/dev/nvme0n1p5", "failed", "zfs_member", "user", "u-linstor-storage", True)
    fresh_old = piraeus.Partition("cp-1", "/dev/nvme0n1p5", "ready", "xfs", "user", "u-linstor-storage", True)
    raw = piraeus.Partition("cp-1", "/dev/nvme0n1p5", "ready", "xfs", "raw", "r-linstor-storage")
    assert (old.needs_wipe, fresh_old.needs_wipe, raw.needs_wipe) == (False, True, False)
