"""Parameter files: every rule, every problem at once, with its path; secrets stay hidden."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runbook_lib.disk_selector import (
    DiskSelector,
    DiskSelectorError,
    check_disk_selector,
    evaluate_disk_selector,
    go_glob,
)
from runbook_lib.errors import ApprovalRequired, ParamsError
from runbook_lib.params import (
    PARAMETER_KEYS,
    LabOptions,
    Params,
    Storage,
    is_secret_key,
    load_params,
    merge_secrets,
    params_from_namespace,
    parse_params,
    read_params_file,
    redact_tree,
    split_secrets,
    supports_ephemeral_resize_by_reset,
    supports_user_volumes,
    version_tuple,
)
from runbook_lib.sizes import GiB

ROOT = Path(__file__).resolve().parents[2]
LAB_FILE = ROOT / "parameters" / "lab.yaml"
HOMELAB_FILE = ROOT / "parameters" / "example-homelab.yaml"
LAB: dict[str, Any] = yaml.safe_load(LAB_FILE.read_text())

PATH_RE = re.compile(
    r'^(?:[A-Za-z0-9_-]+|\["(?:[^"\\]|\\.)*"\])(?:\.[A-Za-z0-9_-]+|\[\d+\]|\["(?:[^"\\]|\\.)*"\])*: \S'
)


def problems_of(data: Any) -> list[str]:
    with pytest.raises(ParamsError) as info:
        parse_params(data)
    return info.value.problems


def lab(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(LAB)
    data.update(changes)
    return data


def with_storage(**changes: Any) -> dict[str, Any]:
    data = lab()
    data["storage"].update(changes)
    return data


def with_lab(**changes: Any) -> dict[str, Any]:
    data = lab()
    data["lab"].update(changes)
    return data


def only(data: Any) -> str:
    found = problems_of(data)
    assert len(found) == 1, found
    return found[0]


# --------------------------------------------------------------------------- shipped files and defaults


def test_shipped_files_load() -> None:
    lab_params = load_params(LAB_FILE)
    assert lab_params.target == "lab"
    assert lab_params.effective_dry_run is False
    assert [n.name for n in lab_params.nodes] == ["lab-cp-1", "lab-cp-2", "lab-cp-3"]
    homelab = load_params(HOMELAB_FILE)
    assert homelab.target == "talos"
    assert homelab.effective_dry_run is True
    assert homelab.confirm == []
    assert homelab.talos_version == "v1.12.7"
    assert [n.address for n in homelab.nodes] == ["192.168.1.11", "192.168.1.12", "192.168.1.13"]
    assert homelab.talosconfig == "~/.talos/config"
    assert homelab.talosconfig_path == Path("~/.talos/config").expanduser()
    assert homelab.kubeconfig_path == Path("~/.kube/config").expanduser()


def test_lab_file_spells_out_every_key() -> None:
    assert set(LAB) == set(PARAMETER_KEYS)
    assert set(LAB["storage"]) == set(Storage.model_fields)
    assert set(LAB["lab"]) == set(LabOptions.model_fields)


def test_defaults() -> None:
    p = Params()
    assert p.cluster_name == "lab"
    assert p.target == "lab"
    assert p.dry_run is None and p.effective_dry_run is False
    assert p.confirm == []
    assert (p.talosctl, p.helm, p.talosconfig, p.kubeconfig) == ("talosctl", "helm", None, None)
    assert p.talos_version == "v1.12.7" and p.talos_version_tuple == (1, 12, 7)
    assert [(n.name, n.address, n.role) for n in p.nodes] == [
        ("lab-cp-1", "10.5.0.2", "controlplane"),
        ("lab-cp-2", "10.5.0.3", "controlplane"),
        ("lab-cp-3", "10.5.0.4", "controlplane"),
    ]
    s = p.storage
    assert s.disk_selector == "system_disk"  # the single-disk layout: next to EPHEMERAL
    assert s.ephemeral_max_bytes == 100 * GiB
    assert s.min_bytes == 200 * GiB and s.max_bytes is None
    assert (s.volume_name, s.partition_label, s.mount_path) == (
        "linstor-storage",
        "u-linstor-storage",
        "/var/mnt/linstor-storage",
    )
    assert (s.filesystem, s.pool_name, s.pool_type) == ("xfs", "linstor-pool", "zfsPool")
    assert p.lab.nodes is None and p.lab_node_count == 3
    assert (p.lab.time_scale, p.lab.seed, p.lab.disk_size_bytes) == (100.0, 1, 500 * 1000**3)
    assert (p.lab.disk_transport, p.lab.initial_talos_version, p.lab.faults) == ("nvme", "v1.12.6", [])
    assert p.factory_url == "https://factory.talos.dev"
    assert p.extensions == ["siderolabs/drbd", "siderolabs/zfs"]
    assert p.secrets == {}
    assert parse_params({}) == p


def test_parameter_keys_are_the_top_level_fields() -> None:
    assert PARAMETER_KEYS[:3] == ("cluster_name", "target", "dry_run")
    assert set(PARAMETER_KEYS) == set(Params.model_fields)


def test_params_are_read_only() -> None:
    p = Params()
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises its own ValidationError here
        p.target = "talos"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("target", "dry_run", "effective"),
    [("lab", None, False), ("talos", None, True), ("lab", True, True), ("talos", False, False)],
)
def test_effective_dry_run(target: str, dry_run: bool | None, effective: bool) -> None:
    creds = {"talosconfig": "~/.talos/config", "kubeconfig": "~/.kube/config"} if target == "talos" else {}
    assert parse_params({"target": target, "dry_run": dry_run, **creds}).effective_dry_run is effective


# --------------------------------------------------------------------------- top-level fields


@pytest.mark.parametrize("name", ["lab", "home-lab-2", "a" * 63, "0"])
def test_cluster_name_ok(name: str) -> None:
    assert parse_params({"cluster_name": name}).cluster_name == name


@pytest.mark.parametrize("name", ["Lab", "home_lab", "a" * 64, "", "a b", "lab/x"])
def test_cluster_name_bad(name: str) -> None:
    assert only({"cluster_name": name}).startswith("cluster_name: ")


def test_cluster_name_wrong_type() -> None:
    assert only({"cluster_name": 5}) == "cluster_name: expected a string, got the number 5"


def test_target_must_be_lab_or_talos() -> None:
    assert only({"target": "prod"}) == "target: must be one of 'lab' or 'talos', got the string 'prod'"


def test_dry_run_must_be_bool() -> None:
    assert only({"dry_run": "maybe"}) == "dry_run: expected true or false, got the string 'maybe'"


@pytest.mark.parametrize("field", ["talosctl", "helm", "talosconfig", "kubeconfig"])
def test_executables_and_paths_not_empty(field: str) -> None:
    assert only({field: "  "}) == f"{field}: must not be empty"


def test_papermill_strings_are_coerced() -> None:
    p = parse_params(
        {
            "dry_run": "false",
            "lab": {"time_scale": "50", "seed": "3", "nodes": "3"},
            "confirm": "reset lab-cp-1",
        }
    )
    assert p.dry_run is False
    assert (p.lab.time_scale, p.lab.seed, p.lab.nodes) == (50.0, 3, 3)
    assert p.confirm == ["reset lab-cp-1"]


def test_params_from_namespace_reads_only_parameter_keys() -> None:
    namespace = {"target": "talos", "dry_run": None, "np": object(), "_": 1, "nodes": LAB["nodes"],
                 "talosconfig": "tc", "kubeconfig": "kc"}
    p = params_from_namespace(namespace)
    assert p.target == "talos" and p.effective_dry_run is True


# --------------------------------------------------------------------------- confirm / approvals


def test_confirm_entries_are_normalized_and_approve() -> None:
    p = parse_params({"confirm": ["reset   lab-cp-1", " wipe lab-cp-2 "]})
    assert p.confirm == ["reset lab-cp-1", "wipe lab-cp-2"]
    assert p.approves("reset", "lab-cp-1")
    assert p.approves("wipe", "lab-cp-2")
    assert not p.approves("wipe", "lab-cp-1")
    assert not p.approves("drill", "lab-cp-2")


def test_confirm_comma_separated_string() -> None:
    p = parse_params({"confirm": "reset lab-cp-1, wipe lab-cp-2\nupgrade lab-cp-3"})
    assert p.confirm == ["reset lab-cp-1", "wipe lab-cp-2", "upgrade lab-cp-3"]


def test_confirm_problems_have_indexes() -> None:
    found = problems_of({"confirm": ["reset lab-cp-1", "format lab-cp-1", "wipe", "wipe lab-cp-9"]})
    assert found == [
        "confirm[1]: unknown action 'format'; approvals are for reset, wipe, upgrade, drill, quorum-loss, benchmark",
        "confirm[2]: 'wipe' must be '<action> <node>' (or 'benchmark <storage-class>'), for example 'reset lab-cp-1'",
        "confirm[3]: node 'lab-cp-9' is not in nodes (nodes: lab-cp-1, lab-cp-2, lab-cp-3)",
    ]


def test_require_approval() -> None:
    p = parse_params({"confirm": ["reset lab-cp-1"]})
    p.require_approval("reset", "lab-cp-1", "reset EPHEMERAL")
    with pytest.raises(ApprovalRequired) as info:
        p.require_approval("wipe", "lab-cp-1", "wipe storage partition")
    assert info.value.entry == "wipe lab-cp-1"
    with pytest.raises(ValueError):
        p.require_approval("format", "lab-cp-1", "x")


# --------------------------------------------------------------------------- versions


def test_version_helpers() -> None:
    assert version_tuple("v1.12.7") == (1, 12, 7)
    assert version_tuple("1.10.0") == (1, 10, 0)
    assert version_tuple("v1.13.0-beta.1") == (1, 13, 0)
    with pytest.raises(ValueError):
        version_tuple("v1.12")
    assert supports_ephemeral_resize_by_reset("v1.12.0")
    assert supports_ephemeral_resize_by_reset("v1.13.2")
    assert not supports_ephemeral_resize_by_reset("v1.11.6")
    assert supports_user_volumes("v1.10.0")
    assert not supports_user_volumes("v1.9.6")


@pytest.mark.parametrize("version", ["v1.10.0", "v1.11.6", "v1.12.7", "v1.13.0-alpha.1", "v2.0.0"])
def test_talos_version_ok(version: str) -> None:
    assert parse_params({"talos_version": version}).talos_version == version


@pytest.mark.parametrize("version", ["1.12.7", "v1.12", "latest", "v1.12.7+meta", ""])
def test_talos_version_format(version: str) -> None:
    assert (
        only({"talos_version": version}) == f"talos_version: {version!r} is not a Talos version like v1.12.7"
    )


def test_talos_version_float_from_yaml() -> None:
    assert only({"talos_version": 1.12}) == "talos_version: '1.12' is not a Talos version like v1.12.7"


@pytest.mark.parametrize("version", ["v1.9.6", "v1.8.0", "v0.14.0"])
def test_talos_version_gate(version: str) -> None:
    assert only({"talos_version": version}) == (
        f"talos_version: Talos {version} has no UserVolumeConfig; these runbooks need v1.10.0 or later"
    )


def test_initial_lab_version_is_not_gated() -> None:
    # The lab may start below the target (notebook 02 upgrades); only the format is checked.
    assert parse_params(with_lab(initial_talos_version="v1.11.6")).lab.initial_talos_version == "v1.11.6"
    assert only(with_lab(initial_talos_version="1.11")).startswith("lab.initial_talos_version: ")


# --------------------------------------------------------------------------- nodes


def node(name: str, address: str, role: str = "controlplane") -> dict[str, str]:
    return {"name": name, "address": address, "role": role}


def test_node_lookup_and_roles() -> None:
    p = parse_params(
        {
            "nodes": [
                node("cp-1", "10.0.0.1"),
                node("w-1", "10.0.0.2", "worker"),
                node("w-2", "fd00::2", "worker"),
            ]
        }
    )
    assert p.node("w-1").address == "10.0.0.2"
    assert [n.name for n in p.controlplanes] == ["cp-1"]
    assert [n.name for n in p.workers] == ["w-1", "w-2"]
    with pytest.raises(KeyError, match="cp-1, w-1, w-2"):
        p.node("nope")


def test_ipv6_addresses_are_normalized() -> None:
    p = parse_params({"nodes": [node("cp-1", "FD00:0:0::0001")]})
    assert p.nodes[0].address == "fd00::1"


@pytest.mark.parametrize("name", ["Node-1", "node_1", "-node", "node-", "", "a" * 64, "node.1"])
def test_node_name_must_be_dns_label(name: str) -> None:
    found = only({"nodes": [node(name, "10.0.0.1")]})
    assert found.startswith("nodes[0].name: ") and "DNS-1123" in found


@pytest.mark.parametrize("address", ["10.0.0", "999.1.1.1", "node1.example.com", "10.0.0.1/24", ""])
def test_node_address_must_be_ip(address: str) -> None:
    assert only({"nodes": [node("cp-1", address)]}) == f"nodes[0].address: {address!r} is not an IP address"


def test_node_role() -> None:
    found = only({"nodes": [node("cp-1", "10.0.0.1"), node("cp-2", "10.0.0.2", "master")]})
    assert found == "nodes[1].role: must be one of 'controlplane' or 'worker', got the string 'master'"


def test_node_fields_required() -> None:
    found = problems_of({"nodes": [{"name": "cp-1"}]})
    assert "nodes[0].address: required" in found
    assert "nodes[0].role: required" in found


def test_nodes_unique_names_and_addresses() -> None:
    found = problems_of(
        {
            "nodes": [
                node("cp-1", "10.0.0.1"),
                node("cp-2", "10.0.0.2"),
                node("cp-1", "10.0.0.2"),
            ]
        }
    )
    assert found == [
        "nodes[2].name: duplicate node name 'cp-1' (already at nodes[0].name)",
        "nodes[2].address: duplicate address '10.0.0.2' (already at nodes[1].address)",
    ]


def test_nodes_unique_addresses_compare_normalized() -> None:
    found = only({"nodes": [node("cp-1", "fd00::1"), node("cp-2", "FD00:0::1")]})
    assert found == "nodes[1].address: duplicate address 'fd00::1' (already at nodes[0].address)"


def test_nodes_need_one_node_and_one_controlplane() -> None:
    assert only({"nodes": []}) == "nodes: needs at least 1 entry"
    assert only({"nodes": [node("w-1", "10.0.0.1", "worker")]}) == (
        "nodes: needs at least one controlplane node (etcd and the API server run there)"
    )


def test_nodes_wrong_shapes() -> None:
    assert only({"nodes": "lab-cp-1"}) == "nodes: expected a list, got the string 'lab-cp-1'"
    assert (
        only({"nodes": ["lab-cp-1"]})
        == "nodes[0]: expected a mapping (key: value), got the string 'lab-cp-1'"
    )


# --------------------------------------------------------------------------- storage


def test_storage_sizes_accept_numbers_and_units() -> None:
    p = parse_params(with_storage(min_size=214748364800, max_size="1.5TiB", ephemeral_max_size="2GiB"))
    assert p.storage.min_bytes == 200 * GiB
    assert p.storage.max_bytes == 1536 * GiB
    assert p.storage.ephemeral_max_bytes == 2 * GiB


def test_storage_size_problems() -> None:
    found = problems_of(with_storage(min_size="lots", max_size="10 XB", ephemeral_max_size="1GiB"))
    assert found == [
        "storage.ephemeral_max_size: '1GiB' is below 2GiB, the smallest EPHEMERAL Talos provisions "
        "(its built-in minSize)",
        "storage.min_size: size 'lots' does not start with a number",
        "storage.max_size: size '10 XB': unknown unit 'XB' (use B, kB, MB, GB, TB, PB, EB or KiB, MiB, GiB, "
        "TiB, PiB, EiB)",
    ]


def test_storage_zero_and_negative_sizes() -> None:
    assert only(with_storage(min_size="0")) == "storage.min_size: must be more than 0 bytes"
    assert only(with_storage(min_size=-5)).startswith(
        "storage.min_size: size '-5' does not start with a number"
    )


def test_storage_min_greater_than_max_uses_talos_wording() -> None:
    assert only(with_storage(min_size="300GB", max_size="200GB")) == (
        "storage.min_size: min size is greater than max size"
    )
    assert parse_params(with_storage(min_size="200GB", max_size="200GB")).storage.max_bytes == 200 * 1000**3


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "name is required"),
        ("a" * 35, "name must be between 1 and 34 characters long"),
        (
            "linstor_storage",
            "name can only contain lowercase and uppercase ASCII letters, digits, and hyphens",
        ),
        (
            "linstor storage",
            "name can only contain lowercase and uppercase ASCII letters, digits, and hyphens",
        ),
    ],
)
def test_volume_name_talos_rules(name: str, message: str) -> None:
    assert only(with_storage(volume_name=name)) == f"storage.volume_name: {message}"


def test_volume_name_limits_ok() -> None:
    p = parse_params(with_storage(volume_name="A" * 34))
    assert p.storage.partition_label == "u-" + "A" * 34
    assert p.storage.mount_path == "/var/mnt/" + "A" * 34


@pytest.mark.parametrize("name", ["pool", "linstor_pool-2", "P" * 48])
def test_pool_name_ok(name: str) -> None:
    assert parse_params(with_storage(pool_name=name)).storage.pool_name == name


@pytest.mark.parametrize("name", ["1pool", "_pool", "pool.x", "P" * 49, ""])
def test_pool_name_bad(name: str) -> None:
    assert only(with_storage(pool_name=name)).startswith("storage.pool_name: ")


def test_pool_type_and_filesystem_literals() -> None:
    found = problems_of(with_storage(pool_type="lvm", filesystem="btrfs"))
    assert found == [
        "storage.filesystem: must be one of 'xfs' or 'ext4', got the string 'btrfs'",
        "storage.pool_type: must be one of 'zfsPool', 'zfsThinPool', 'lvmThinPool' or 'lvmPool', "
        "got the string 'lvm'",
    ]


# --------------------------------------------------------------------------- disk selector (CEL)


@pytest.mark.parametrize(
    "expr",
    [
        "disk.transport == 'nvme'",
        "disk.size > 120u * GB && !system_disk",
        "disk.size > 120u * GB && disk.size < 1u * TB",
        'disk.transport == "sata" && !disk.rotational && !system_disk',
        "'/dev/disk/by-path/pci-0000:00:1f.2-ata-1' in disk.symlinks",
        "glob('/dev/nvme*', disk.dev_path)",
        "disk.symlinks.exists(s, s.startsWith('/dev/disk/by-id/nvme-'))",
        "has(disk.model) && disk.model.contains('Samsung')",
        "size(disk.serial) > 0 ? disk.size >= 100u * GiB : false",
    ],
)
def test_disk_selector_ok(expr: str) -> None:
    assert check_disk_selector(expr) == []
    assert parse_params(with_storage(disk_selector=expr)).storage.disk_selector == expr


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("disk.transport ==", "not a valid CEL expression: unexpected end of expression at column 16"),
        ("disk.transport == 'nvme", "not a valid CEL expression: an unterminated string at column 19"),
        ("disk.size @ 3", "not a valid CEL expression: unexpected character '@' at column 11"),
        ("", "not a valid CEL expression: the expression is empty"),
        ("dsk.transport == 'nvme'", "unknown variable 'dsk'"),
        ("disk.transprot == 'nvme'", "disk has no field 'transprot'"),
        ("disk.size > 120 * GB", "'*' cannot combine int with uint"),
        ("disk.size > 100", "write numbers with a u suffix"),
        ("disk.size", "the expression must evaluate to bool, not uint"),
        ("globb('x', disk.dev_path)", "unknown function 'globb'"),
        ("disk.model.lowerAscii() == 'x'", "unknown function 'lowerAscii'"),
        ("disk.rotational == 1", "'==' cannot combine bool with int"),
    ],
)
def test_disk_selector_bad(expr: str, message: str) -> None:
    found = only(with_storage(disk_selector=expr))
    assert found.startswith("storage.disk_selector: ")
    assert message in found


def test_disk_selector_evaluates_like_talos() -> None:
    disk = {
        "dev_path": "/dev/nvme0n1",
        "size": 500 * 1000**3,
        "transport": "nvme",
        "rotational": False,
        "symlinks": ["/dev/disk/by-path/x", "/dev/disk/by-id/nvme-abc"],
        "unrelated": "ignored",
    }
    assert evaluate_disk_selector("disk.transport == 'nvme'", disk, system_disk=True)
    assert not evaluate_disk_selector("disk.transport == 'sata'", disk, system_disk=True)
    assert evaluate_disk_selector("disk.size > 120u * GB && !system_disk", disk, system_disk=False)
    assert not evaluate_disk_selector("disk.size > 120u * GB && !system_disk", disk, system_disk=True)
    assert not evaluate_disk_selector("disk.size > 1u * TB", disk, system_disk=False)
    assert evaluate_disk_selector("'/dev/disk/by-path/x' in disk.symlinks", disk, system_disk=False)
    assert evaluate_disk_selector("glob('/dev/nvme*', disk.dev_path)", disk, system_disk=False)
    # fields the disk does not report read as proto3 defaults
    assert evaluate_disk_selector("disk.model == '' && disk.io_size == 0u", disk, system_disk=False)


def test_disk_selector_compiles_once() -> None:
    selector = DiskSelector("disk.size >= 200u * GiB")
    assert selector.matches({"size": 200 * GiB}, system_disk=False)
    assert not selector.matches({"size": 200 * GiB - 1}, system_disk=False)
    with pytest.raises(DiskSelectorError) as info:
        DiskSelector("disk.size >= 200 * GiB")
    assert info.value.problems and "uint" in info.value.problems[0]


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("", "", True),
        ("", "a", False),
        ("*", "anything/at/all", True),
        ("/dev/nvme*", "/dev/nvme0n1", True),
        ("/dev/nvme*", "/dev/sda", False),
        ("*n1", "/dev/nvme0n1", True),
        ("/dev/*/x", "/dev/a/b/x", True),  # '*' crosses '/' in go-glob
        ("a*b*c", "axxbyyc", True),
        ("a*b*c", "axxcyyb", False),
        ("ab?", "abc", False),  # '?' is a literal character
        ("abc", "abc", True),
    ],
)
def test_go_glob(pattern: str, subject: str, expected: bool) -> None:
    assert go_glob(pattern, subject) is expected


# --------------------------------------------------------------------------- lab options


def test_lab_node_count() -> None:
    assert parse_params(with_lab(nodes=5)).lab_node_count == 5
    assert only(with_lab(nodes=2)) == "lab.nodes: the lab would simulate 2 node(s) but nodes lists 3"
    assert only(with_lab(nodes=0)) == "lab.nodes: must be at least 1"


@pytest.mark.parametrize(
    ("value", "message"), [(0, "must be greater than 0"), (10001, "must be at most 10000")]
)
def test_lab_time_scale_bounds(value: float, message: str) -> None:
    assert only(with_lab(time_scale=value)) == f"lab.time_scale: {message}"


def test_lab_time_scale_limits_ok() -> None:
    assert parse_params(with_lab(time_scale=10000)).lab.time_scale == 10000
    assert parse_params(with_lab(time_scale=0.5)).lab.time_scale == 0.5


def test_lab_faults_ok() -> None:
    faults = [
        {"kind": "partition", "node": "lab-cp-1", "peer": "lab-cp-2"},
        {"kind": "api-errors", "count": 3},
        {"kind": "talosctl-fail", "node": "lab-cp-3", "count": 1},
        {"kind": "node-down", "node": "lab-cp-2"},
    ]
    p = parse_params(with_lab(faults=faults))
    assert [f.kind for f in p.lab.faults] == ["partition", "api-errors", "talosctl-fail", "node-down"]


def test_lab_fault_problems() -> None:
    faults = [
        {"kind": "meteor"},
        {"kind": "partition", "node": "lab-cp-1"},
        {"kind": "partition", "node": "lab-cp-1", "peer": "lab-cp-1"},
        {"kind": "node-down", "node": "lab-cp-7"},
        {"kind": "api-errors", "count": 0},
        {"kind": "helm-fail", "peer": "lab-cp-1"},
    ]
    found = problems_of(with_lab(faults=faults))
    assert found[0].startswith("lab.faults[0].kind: must be one of 'node-down', ")
    assert found[1:] == [
        "lab.faults[4].count: must be at least 1",
        "lab.faults[1]: a partition fault needs both node and peer",
        "lab.faults[2].peer: must differ from node",
        "lab.faults[3].node: node 'lab-cp-7' is not in nodes (nodes: lab-cp-1, lab-cp-2, lab-cp-3)",
        "lab.faults[5].peer: only partition and replication-down faults take a peer",
    ]


def test_lab_disk_options() -> None:
    assert parse_params(with_lab(disk_size="1TB")).lab.disk_size_bytes == 1000**4
    found = problems_of(with_lab(disk_size="big", disk_transport="NVMe!"))
    assert found == [
        "lab.disk_size: size 'big' does not start with a number",
        "lab.disk_transport: 'NVMe!' is not a disk transport like nvme, sata, scsi, virtio or usb",
    ]


# --------------------------------------------------------------------------- factory, extensions, secrets


def test_factory_url() -> None:
    assert (
        parse_params({"factory_url": "https://factory.example.com/"}).factory_url
        == "https://factory.example.com"
    )
    assert (
        only({"factory_url": "factory.talos.dev"}) == "factory_url: 'factory.talos.dev' is not an http(s) URL"
    )
    wrong_host = ".".join(("factory", "talos", "systems"))  # kept out of the source as one word: see test_no_stale_names
    assert only({"factory_url": f"https://{wrong_host}"}) == (
        f"factory_url: {wrong_host} does not exist; the Image Factory is https://factory.talos.dev"
    )


def test_extensions() -> None:
    assert parse_params({"extensions": ["siderolabs/drbd"]}).extensions == ["siderolabs/drbd"]
    found = problems_of({"extensions": ["siderolabs/drbd", "drbd", "siderolabs/drbd"]})
    assert found == [
        "extensions[1]: 'drbd' is not an extension name like siderolabs/drbd",
        "extensions[2]: duplicate extension 'siderolabs/drbd' (already at extensions[0])",
    ]


def test_secrets_never_shown() -> None:
    p = parse_params({"secrets": {"factory_token": "hunter2-token", "pin": "4711"}})
    assert p.secret("factory_token") == "hunter2-token"
    for text in (repr(p), str(p), repr(p.secrets), str(p.redacted()), str(p.model_dump(mode="json"))):
        assert "hunter2" not in text and "4711" not in text
    assert p.redacted()["secrets"] == {"factory_token": "***", "pin": "***"}


def test_secret_values_not_echoed_in_errors() -> None:
    found = problems_of({"secrets": {"pin": 4711, "token": ["hunter2"]}})
    assert found == [
        "secrets.pin: expected a string, got a number (value hidden)",
        "secrets.token: expected a string, got a list (value hidden)",
    ]
    assert not any("4711" in line or "hunter2" in line for line in found)


def test_secret_names() -> None:
    assert (
        only({"secrets": {"a b": "x"}})
        == "secrets[\"a b\"]: secret names use letters, digits, '_', '.' and '-'"
    )


def test_redacted_is_json_and_complete() -> None:
    p = load_params(LAB_FILE)
    data = p.redacted()
    assert tuple(data) == PARAMETER_KEYS
    assert data["nodes"][0] == {"name": "lab-cp-1", "address": "10.5.0.2", "role": "controlplane",
                                 "storage": True}
    assert data["storage"]["min_size"] == "200GiB"
    yaml.safe_dump(data)  # plain data only


def test_secret_values() -> None:
    p = parse_params({"secrets": {"factory_token": "hunter2-token", "pin": "4711"}})
    assert p.secret_values() == ["hunter2-token", "4711"]
    assert Params().secret_values() == []


def test_split_and_merge_secrets() -> None:
    raw = lab(secrets={"factory_token": "hunter2"})
    raw["storage"] = {**raw["storage"], "luks_passphrase": "pp"}
    raw["extra"] = [{"api_token": "t"}]
    public, secret = split_secrets(raw)
    assert secret == {
        "secrets": {"factory_token": "hunter2"},
        "storage": {"luks_passphrase": "pp"},
        "extra": [{"api_token": "t"}],
    }
    assert "secrets" not in public and "extra" not in public and "luks_passphrase" not in public["storage"]
    assert "hunter2" not in str(public) and "pp'" not in str(public)
    assert public["storage"]["min_size"] == "200GiB"
    assert merge_secrets(public, secret) == raw
    json.dumps(secret)
    assert split_secrets(LAB) == ({k: v for k, v in LAB.items() if k != "secrets"}, {"secrets": {}})


def test_redact_tree_masks_secret_keys_at_any_depth() -> None:
    data = {
        "a": {"db_password": "x", "list": [{"api_token": "y", "keep": 1}], "client_secret": None},
        "Passphrase": "z",
    }
    assert redact_tree(data) == {
        "a": {"db_password": "***", "list": [{"api_token": "***", "keep": 1}], "client_secret": None},
        "Passphrase": "***",
    }
    assert is_secret_key("LUKS_PASSPHRASE") and not is_secret_key("token_count")


# --------------------------------------------------------------------------- unknown keys, many problems


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"clustr_name": "x"}, "clustr_name: unknown key (typo? did you mean 'cluster_name'?)"),
        ({"whatever": 1}, "whatever: unknown key (typo?)"),
        (with_storage(min_sise="1GB"), "storage.min_sise: unknown key (typo? did you mean 'min_size'?)"),
        (with_lab(seeds=2), "lab.seeds: unknown key (typo? did you mean 'seed'?)"),
        (
            {"nodes": [{"name": "cp-1", "address": "10.0.0.1", "role": "controlplane", "ip": "x"}]},
            "nodes[0].ip: unknown key (typo?)",
        ),
        (
            with_lab(faults=[{"kind": "node-down", "nodes": "lab-cp-1"}]),
            "lab.faults[0].nodes: unknown key (typo? did you mean 'node'?)",
        ),
    ],
)
def test_unknown_keys_at_every_level(data: dict[str, Any], expected: str) -> None:
    assert only(data) == expected


def test_all_problems_reported_together() -> None:
    data = lab(
        cluster_name="My Lab",
        target="prod",
        confirm=["reset lab-cp-9"],
        talos_version="v1.9.0",
        extra_key=True,
    )
    data["nodes"][1]["address"] = "10.5.0.300"
    data["nodes"][2]["name"] = "lab-cp-1"
    data["storage"]["volume_name"] = "x" * 40
    data["storage"]["disk_selector"] = "disk.size > 1"
    data["lab"]["time_scale"] = -1
    found = problems_of(data)
    assert found == [
        "cluster_name: 'My Lab' must be 1-63 characters of lowercase letters, digits and '-' "
        "(it names the output folder)",
        "target: must be one of 'lab' or 'talos', got the string 'prod'",
        "confirm[0]: node 'lab-cp-9' is not in nodes (nodes: lab-cp-1, lab-cp-2)",
        "talos_version: Talos v1.9.0 has no UserVolumeConfig; these runbooks need v1.10.0 or later",
        "nodes[1].address: '10.5.0.300' is not an IP address",
        "nodes[2].name: duplicate node name 'lab-cp-1' (already at nodes[0].name)",
        "storage.disk_selector: '>' cannot combine uint with int; disk sizes and the size constants are uint "
        "in Talos, so write numbers with a u suffix (for example 120u * GB)",
        "storage.volume_name: name must be between 1 and 34 characters long",
        "lab.time_scale: must be greater than 0",
        "extra_key: unknown key (typo?)",
    ]


def test_top_level_not_a_mapping() -> None:
    assert problems_of(["a"]) == ["top level: expected a mapping of parameter names to values, got a list"]
    assert problems_of({1: "x"}) == ["top level: keys must be strings, got 1"]


# --------------------------------------------------------------------------- YAML files


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def load_problems(path: Path) -> list[str]:
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert info.value.source == str(path)
    return info.value.problems


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "cluster_name: lab\ntarget: [lab\ndry_run: false\n")
    [problem] = load_problems(path)
    assert re.match(r"^line \d+, column \d+: ", problem), problem


def test_yaml_bad_indentation(tmp_path: Path) -> None:
    path = write(tmp_path, "storage:\n  min_size: 1GB\n   max_size: 2GB\n")
    [problem] = load_problems(path)
    assert problem.startswith("line 3, column 12: mapping values are not allowed here")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "cluster_name: a\ntarget: lab\ncluster_name: b\n",
            "line 3, column 1: duplicate key 'cluster_name' (first at line 1)",
        ),
        (
            "storage:\n  min_size: 1GB\n  min_size: 2GB\n",
            "line 3, column 3: duplicate key 'min_size' (first at line 2)",
        ),
        (
            "nodes:\n  - name: a\n    address: 10.0.0.1\n    name: b\n    role: controlplane\n",
            "line 4, column 5: duplicate key 'name' (first at line 2)",
        ),
    ],
)
def test_yaml_duplicate_keys_are_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert load_problems(write(tmp_path, text)) == [expected]


def test_yaml_non_string_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "secrets:\n  1: x\n")
    assert load_problems(path) == ["line 2, column 3: key 1 is not a string (quote it)"]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    assert load_problems(write(tmp_path, text)) == [
        "top level: the file is empty; expected a mapping of parameter names to values"
    ]


def test_top_level_list_file(tmp_path: Path) -> None:
    assert load_problems(write(tmp_path, "- a\n- b\n")) == [
        "top level: expected a mapping of parameter names to values, got a list"
    ]


def test_missing_file(tmp_path: Path) -> None:
    [problem] = load_problems(tmp_path / "nope.yaml")
    assert problem.startswith("cannot read the file: ")


def test_validation_problems_from_a_file_carry_the_source(tmp_path: Path) -> None:
    path = write(tmp_path, "target: prod\nnodes:\n  - {name: cp-1, address: 10.0.0.x, role: controlplane}\n")
    assert load_problems(path) == [
        "target: must be one of 'lab' or 'talos', got the string 'prod'",
        "nodes[0].address: '10.0.0.x' is not an IP address",
    ]


def test_read_params_file_returns_raw_mapping() -> None:
    assert read_params_file(LAB_FILE) == LAB


# --------------------------------------------------------------------------- property: any broken file is a ParamsError

BAD_NAMES = ["Bad_Name", "-x", "x-", "", "a" * 64, "UPPER", "a.b", "with space"]
BAD_ADDRESSES = ["999.1.1.1", "not-an-ip", "10.5.0", "", "1.2.3.4/24", "::g", "10.5.0.2.1"]


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into the structure (the secrets mapping accepts any key, so stop there)."""
    out = [prefix] if prefix else []
    if isinstance(data, dict) and prefix != ("secrets",):
        for key, value in data.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += _paths(value, (*prefix, i))
    return out


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    _get(data, path[:-1])[path[-1]] = value


def _wrong_type(value: Any) -> Any:
    """A value of a type no field at that place accepts."""
    if isinstance(value, dict):
        return ["not", "a", "mapping"]
    if isinstance(value, list):
        return {"not": "a list"}
    return [value] if value is not None else {"not": "null"}


@st.composite
def broken_lab(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(LAB)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["wrong_type", "bad_name", "bad_address", "unknown_key", "bad_value"]))
        node_paths = [("nodes", i) for i, n in enumerate(data.get("nodes", [])) if isinstance(n, dict)]
        if kind == "wrong_type":
            path = draw(st.sampled_from(_paths(data)))
            _set(data, path, _wrong_type(_get(data, path)))
        elif kind == "bad_name" and isinstance(data.get("nodes"), list) and node_paths:
            _set(data, (*draw(st.sampled_from(node_paths)), "name"), draw(st.sampled_from(BAD_NAMES)))
        elif kind == "bad_address" and isinstance(data.get("nodes"), list) and node_paths:
            _set(data, (*draw(st.sampled_from(node_paths)), "address"), draw(st.sampled_from(BAD_ADDRESSES)))
        elif kind == "bad_value":
            field, value = draw(
                st.sampled_from(
                    [
                        ("cluster_name", "Not Valid"),
                        ("target", "production"),
                        ("talos_version", "v1.9.6"),
                        ("confirm", ["destroy lab-cp-1"]),
                        ("factory_url", "ftp://x"),
                        ("extensions", ["drbd"]),
                    ]
                )
            )
            data[field] = value
        else:
            mappings = [p for p in _paths(data) if isinstance(_get(data, p), dict) and p != ("secrets",)]
            where = draw(st.sampled_from([(), *mappings]))
            target = _get(data, where)
            key = draw(st.from_regex(r"\A[a-z][a-z0-9_]{0,10}\Z").filter(lambda k, t=target: k not in t))
            target[key] = draw(st.one_of(st.integers(), st.text(max_size=5), st.none()))
    return data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_lab())
def test_any_broken_parameter_set_raises_params_error_with_paths(data: dict[str, Any]) -> None:
    with pytest.raises(ParamsError) as info:
        parse_params(data)
    assert info.value.problems
    for problem in info.value.problems:
        assert PATH_RE.match(problem), problem


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_value_anywhere_is_accepted_or_a_params_error(data: st.DataObject) -> None:
    params = copy.deepcopy(LAB)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        _set(params, data.draw(st.sampled_from(_paths(params))), data.draw(JSON_VALUES))
    try:
        parse_params(params)
    except ParamsError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert PATH_RE.match(problem), problem


# --------------------------------------------------------------------------- through the command: exit 2, nothing done






