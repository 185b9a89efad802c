"""The compatibility preflight of 02 and 03 (issue 13, item 8): DRBD layer, verify algorithm, ZFS userland."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib import compat, manifests
from runbook_lib.errors import PreconditionFailed
from runbook_lib.lab.linstor import providers as linstor_providers
from runbook_lib.lab.linstor.controller import LinstorController
from runbook_lib.lab.linstor.providers import SatelliteFacts
from runbook_lib.lab.talos import installed_image
from runbook_lib.lab.talos.cluster import TalosCluster
from runbook_lib.params import parse_params
from runbook_lib.session import Session
from tests.storage_lab import StorageLab

NODES = [{"name": "n1", "address": "10.5.0.2", "role": "controlplane"}]


def _linstor_nodes(drbd: str | None, zfs: bool) -> list[dict]:
    ctl = LinstorController()
    node = ctl.create_or_update_node("n1", "10.5.0.2", {})
    ctl.set_online("n1", True, SatelliteFacts(drbd_version=drbd, zfs=zfs))
    return [ctl.node_json(node)]


def test_a_node_without_drbd_stops_with_linstors_reason_and_the_fix() -> None:
    found = compat.linstor_problems(_linstor_nodes(None, True), ["n1"], "zfsPool")["n1"]
    assert "DRBD version has to be >= 9. Current DRBD version: 0.0.0" in found.drbd
    assert len(found.problems) == 1 and "run 02" in found.problems[0] and "usermode_helper=disabled" in found.problems[0]


def test_a_node_without_zfs_cannot_take_a_zfs_pool_but_an_lvm_thin_pool_needs_no_zfs() -> None:
    nodes = _linstor_nodes("9.2.16", False)
    zfs = compat.linstor_problems(nodes, ["n1"], "zfsPool")["n1"]
    assert zfs.drbd == "supported" and "/sys/module/zfs/version" in zfs.provider and len(zfs.problems) == 1
    assert compat.linstor_problems(nodes, ["n1"], "lvmThinPool")["n1"].problems == []
    missing = compat.linstor_problems([], ["n1"], "zfsPool")["n1"]
    assert missing.linstor == "not registered" and "no satellite" in missing.problems[0]


def test_crypto_lists_crct10dif_only_before_talos_1_12_and_crc32c_always() -> None:
    cluster = TalosCluster.create(NODES, talos_version="v1.11.6")
    old = compat.crypto_algorithms(installed_image.crypto(cluster.nodes["n1"]))
    cluster.nodes["n1"].talos_version = "v1.12.7"
    new = compat.crypto_algorithms(installed_image.crypto(cluster.nodes["n1"]))
    assert {"crc32c", "crct10dif"} <= old and "crc32c" in new and "crct10dif" not in new  # talos#12478


def test_zfs_version_lines_as_piraeus_operator_635_printed_them() -> None:
    assert compat.zfs_versions("zfs-2.1.11-1\nzfs-kmod-2.2.2-1\n") == ("2.1.11", "2.2.2")
    assert compat.zfs_mismatch("2.1.11", "2.2.2") and not compat.zfs_mismatch("2.2.2", "2.2.0")
    assert compat.zfs_versions("zfs-2.3.4-1\nzfs_version_kernel() failed: No such file or directory\n") == ("2.3.4", None)


def test_the_linstor_cluster_pins_the_verify_algorithm() -> None:
    props = manifests.linstor_cluster()["spec"]["properties"]
    assert {"name": "DrbdOptions/Net/verify-alg", "value": "crc32c"} in props


def _session(s: StorageLab, tmp: Path, notebook: str, **params) -> Session:
    connection = s.connection
    return Session.open(notebook, parse_params({"backup_dir": str(tmp / "etcd"), **params}), connection,
                        read_only=True)


@pytest.mark.lab
def test_preflight_on_the_lab(ready_lab: StorageLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rb = _session(ready_lab, tmp_path, "03-piraeus-install")
    frame = compat.preflight(rb)
    assert list(frame["DRBD layer"]) == ["supported"] * 3 and set(frame["verify-alg"]) == {"crc32c present"}
    assert set(frame["ZFS"]) == {"userland 2.3.4, module 2.3.4"}  # read with `zfs --version` in each satellite
    assert set(frame["DRBD module"]) == {"9.2.16"}  # /sys/module/drbd/version of Talos v1.12.6

    # 02 before an upgrade to v1.12: this lab's LinstorCluster does not pin verify-alg, so the upgrade must not start
    rb = _session(ready_lab, tmp_path, "02-extensions-and-upgrade")
    with pytest.raises(PreconditionFailed, match=r"talos#12478.*set-property DrbdOptions/Net/verify-alg crc32c"):
        compat.preflight(rb, before_upgrade=True)

    monkeypatch.setattr(linstor_providers, "SATELLITE_ZFS_USERLAND", "2.1.11")
    rb = _session(ready_lab, tmp_path, "03-piraeus-install")
    with pytest.raises(PreconditionFailed, match=r"lab-cp-1: the satellite's ZFS userland 2.1.11 does not match .* "
                                                 r"2.3.4.*piraeus-operator#635"):
        compat.preflight(rb)
    assert not rb.record.actions
    rb = _session(ready_lab, tmp_path, "02-extensions-and-upgrade", dry_run=True)
    assert compat.after_upgrade(rb) is None  # plan mode upgraded nothing: nothing to check again
