"""Bad input is refused before anything changes (issue 14, item 5).

Each bad value exits 2 from ``runbook params check`` naming its field; a layout that cannot fit
a node's disks is refused by 01's plan (before the first apply-config), judged against the lab
model's own ``DiscoveredVolume`` output and cross-checked with the lab's provisioning.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runbook_lib.cli import main
from runbook_lib.lab.faults import FaultBook
from runbook_lib.lab.talos.cluster import TalosCluster
from runbook_lib.lab.talos.constants import GIB
from runbook_lib.lab.talos.go_yaml import dump_config
from runbook_lib.layout_fit import layout_misfit
from runbook_lib.params import MAX_PARAMS_FILE_BYTES, Storage
from tests.lab_helpers import LAB_PARAMS

BAD = [
    ({"piraeus": {"chart_version": "latest"}}, "piraeus.chart_version"),
    ({"piraeus": {"chart_version": "2.10.2 --set x=y"}}, "piraeus.chart_version"),
    ({"snapshots": {"chart_version": "^5.2"}}, "snapshots.chart_version"),
    ({"target": "talos", "talosconfig": None, "kubeconfig": "~/.kube/config"}, "talosconfig"),
    ({"target": "talos", "talosconfig": "~/.talos/config", "kubeconfig": None}, "kubeconfig"),
    ({"node_timeout": True}, "node_timeout"),
    ({"dry_run": 1}, "dry_run"),
    ({"bench": {"iterations": True}}, "bench.iterations"),
    ({"bench": {"size_factor": float("inf")}}, "bench.size_factor"),
    ({"bench": {"link_mbps": float("nan")}}, "bench.link_mbps"),
    ({"node_timeout": float("-inf")}, "node_timeout"),
]


@pytest.mark.parametrize(("change", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_value_exits_2_naming_its_field(tmp_path: Path, capsys, change: dict, field: str) -> None:
    data = yaml.safe_load(LAB_PARAMS.read_text())
    for key, value in change.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))  # .inf / .nan are YAML's own spellings
    assert main(["params", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"  {field}: " in err, err


def test_the_lab_file_still_passes(capsys) -> None:
    assert main(["params", "check", str(LAB_PARAMS)]) == 0


def test_an_oversized_file_is_refused_without_being_read(tmp_path: Path, capsys) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as fh:  # sparse: 50 MB on paper, nothing to parse
        fh.truncate(50_000_000)
    assert main(["params", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "top level: the file is 47.7 MiB" in err and f"at most {MAX_PARAMS_FILE_BYTES // 2**20} MiB" in err


# --------------------------------------------------------------------------- layout against disks

NODES = [{"name": f"cp-{i}", "address": f"10.5.0.{i + 1}", "role": "controlplane"} for i in (1, 2, 3)]


def discovered(cluster: TalosCluster, name: str) -> tuple[list[dict], list[dict]]:
    specs = [spec for _, spec, _ in cluster._discovered(cluster.nodes[name])]
    return [s for s in specs if s["type"] == "disk"], [s for s in specs if s["type"] == "partition"]


def provisions(storage: Storage) -> bool:
    """What the lab's volume manager does with this layout: apply, reset EPHEMERAL, reboot."""
    cluster, faults = TalosCluster.create(NODES, talos_version="v1.12.6", seed=7), FaultBook()
    node = cluster.nodes["cp-1"]
    docs = f"""---
apiVersion: v1alpha1
kind: VolumeConfig
name: EPHEMERAL
provisioning:
  maxSize: {storage.ephemeral_max_bytes}
---
apiVersion: v1alpha1
kind: UserVolumeConfig
name: {storage.volume_name}
provisioning:
  diskSelector:
    match: disk.transport == 'nvme'
  minSize: {storage.min_bytes}
"""
    cluster.apply_config(node, dump_config(node.config or []) + docs, "auto", 10)
    cluster.reset(node, False, True, "all", ["EPHEMERAL"], [], 20)
    for t in range(20, 121):
        cluster.advance(float(t), faults)
    return node.volumes[storage.partition_label]["phase"] == "ready"


def test_default_layout_fits_the_lab_disk() -> None:
    cluster = TalosCluster.create(NODES, talos_version="v1.12.6", seed=7)
    assert layout_misfit("cp-1", *discovered(cluster, "cp-1"), Storage()) is None


def test_ephemeral_cap_larger_than_the_disk_is_named_with_node_and_sizes() -> None:
    cluster = TalosCluster.create(NODES, talos_version="v1.12.6", seed=7)
    why = layout_misfit("cp-2", *discovered(cluster, "cp-2"), Storage(ephemeral_max_size="600GiB"))
    assert why and why.startswith("cp-2: storage.ephemeral_max_size 600GiB does not fit on the system disk /dev/nvme0n1")


def test_min_size_that_cannot_fit_is_named_and_agrees_with_the_lab() -> None:
    cluster = TalosCluster.create(NODES, talos_version="v1.12.6", seed=7)
    disks, parts = discovered(cluster, "cp-1")
    too_big = Storage(min_size="400GiB")
    why = layout_misfit("cp-1", disks, parts, too_big)
    assert why and why.startswith("cp-1: storage.min_size 400GiB cannot fit")
    assert not provisions(too_big)
    # the largest minimum the bound allows is one the lab really provisions (the bound is a few MiB of GPT from exact)
    room = int(disks[0]["size"]) - sum(int(p["size"]) for p in parts if p["partition_label"] != "EPHEMERAL")
    fits = Storage(min_size=str((room - 100 * GIB) // (1 << 20) * (1 << 20) - 4 * (1 << 20)))
    assert layout_misfit("cp-1", disks, parts, fits) is None
    assert provisions(fits)


def test_a_device_path_from_a_node_never_becomes_a_shell_command() -> None:
    from runbook_lib.errors import RunbookError
    from runbook_lib.steps.nb03_piraeus_install import wipe_pod

    script = wipe_pod("n1", "/dev/nvme0n1p5", "/var/mnt/linstor-storage", "ns")["spec"]["containers"][0]["command"]
    assert script == ["sh", "-c", "umount /host/var/mnt/linstor-storage || true; wipefs --all /dev/nvme0n1p5"]
    with pytest.raises(RunbookError, match="refusing to wipe"):
        wipe_pod("n1", "/dev/nvme0n1p5; chroot /host sh -c reboot", "/var/mnt/linstor-storage", "ns")


def test_01s_plan_blocks_a_misfit_before_the_first_apply_config() -> None:
    from runbook_lib.params import Node, parse_params
    from runbook_lib.steps.nb01_partition import NodeLayout, plan_node
    from runbook_lib.storage_layout import node_volume

    cluster = TalosCluster.create(NODES, talos_version="v1.12.6", seed=7)
    disks, parts = discovered(cluster, "cp-1")
    node = cluster.nodes["cp-1"]
    storage = parse_params({"nodes": NODES, "storage": {"ephemeral_max_size": "600GiB"}}).storage
    layout = NodeLayout(node="cp-1", talos_version="v1.12.6", volumes=dict(node.volumes), partitions=parts,
                        disks=disks, disk_specs=[], config=[],
                        storage=node_volume("cp-1", storage, "v1.12.6", dict(node.volumes), parts), storage_params=storage)
    params = parse_params({"nodes": NODES, "storage": {"ephemeral_max_size": "600GiB"}})
    plan = plan_node(layout, params, Node(name="cp-1", address="10.5.0.2", role="controlplane"))
    assert plan.blocked and "storage.ephemeral_max_size 600GiB does not fit" in plan.blocked
