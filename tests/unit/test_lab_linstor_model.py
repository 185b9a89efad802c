"""The lab's LINSTOR controller model in memory: placement, tiebreakers, capacity, device pools, its saved state; and the captured samples against the OpenAPI spec."""

from __future__ import annotations

import json

import pytest

from runbook_lib.lab.linstor.controller import LinstorController
from runbook_lib.lab.linstor.providers import drbd_md_kib
from runbook_lib.lab.linstor.return_codes import LinstorError
from tests.linstor_checks import RC_NOT_ENOUGH_NODES, linstor_controller, validate
from tests.reference import reference_path
from tests.storage_lab import GIB


def test_the_captured_samples_validate_with_the_same_schema() -> None:
    for name in ("view_resources_1of3_offline.json", "view_resources_3replicas_all_connected.json"):
        validate(json.loads(reference_path("linstor", "samples", name).read_text()), "ResourceWithVolumes", array=True)


def test_two_replicas_get_a_tiebreaker_and_quorum_majority() -> None:
    ctl = linstor_controller()
    ctl.create_resource_definition("r2", "DfltRscGrp", GIB // 1024, ["DRBD", "STORAGE"])
    rcs = ctl.autoplace("r2", 2, storage_pools=["zfs"])
    assert any("Tie breaker resource 'r2' created" in rc["message"] for rc in rcs)
    reps = ctl.rds["r2"].replicas
    assert sorted(n for n, r in reps.items() if not r.diskless) == ["a", "b"]
    assert reps["c"].flags == ["DISKLESS", "DRBD_DISKLESS", "TIE_BREAKER"]
    assert ctl.rds["r2"].props["DrbdOptions/Resource/quorum"] == "majority"
    # a third diskful replica replaces the tie-breaker
    ctl.autoplace("r2", 3, storage_pools=["zfs"])
    assert not any(r.diskless for r in ctl.rds["r2"].replicas.values())
    # one replica: no quorum possible
    ctl.create_resource_definition("r1", "DfltRscGrp", GIB // 1024, ["DRBD", "STORAGE"])
    ctl.autoplace("r1", 1, storage_pools=["zfs"])
    assert ctl.rds["r1"].props["DrbdOptions/Resource/quorum"] == "off"
    ctl.create_resource_definition("r4", "DfltRscGrp", 1024, ["DRBD", "STORAGE"])
    with pytest.raises(LinstorError) as err:
        ctl.autoplace("r4", 4, storage_pools=["zfs"])
    assert err.value.rcs[0]["message"] == "Not enough available nodes"
    assert err.value.rcs[0]["ret_code"] == RC_NOT_ENOUGH_NODES


def test_capacity_thick_and_thin_and_which_pools_can_snapshot() -> None:
    ctl = linstor_controller(kinds=("LVM", "LVM_THIN"))
    thick, thin = ctl.pools["a"]["lvm"], ctl.pools["a"]["lvm_thin"]
    assert ctl.pool_json(thick)["supports_snapshots"] is False and ctl.pool_json(thin)["supports_snapshots"] is True
    total, free = ctl.pool_space(thick)
    assert total == free and total % (4 * 1024) == 0 and 99 * GIB // 1024 < total <= 100 * GIB // 1024
    size = GIB // 1024
    for name, pool in (("thick", "lvm"), ("thin", "lvm_thin")):
        ctl.create_resource_definition(name, "DfltRscGrp", size, ["DRBD", "STORAGE"])
        ctl.create_resource(name, "a", pool=pool, initial=True)
    # thick LVM allocates size + DRBD metadata in whole 4 MiB extents (the samples' 1 GiB -> 1052672 KiB)
    assert drbd_md_kib(size) == 264
    assert total - ctl.pool_space(thick)[1] == 1052672
    # thin allocates what was written
    thin_total, thin_free = ctl.pool_space(thin)
    assert thin_total - thin_free < 1024
    ctl.rds["thin"].replicas["a"].written_kib = 512 * 1024
    assert 512 * 1024 <= thin_total - ctl.pool_space(thin)[1] < 513 * 1024
    with pytest.raises(LinstorError, match="does not support snapshots"):
        ctl.create_snapshot("thick", "s1")
    assert ctl.create_snapshot("thin", "s1")[0]["message"] == "New snapshot 's1' of resource 'thin' registered."
    view = ctl.resource_json(ctl.rds["thick"], ctl.rds["thick"].replicas["a"], with_volumes=True)
    assert view["volumes"][0]["allocated_size_kib"] == 1052672
    assert view["layer_object"]["drbd"]["drbd_volumes"][0]["allocated_size_kib"] == 1048840


def test_device_pools_need_an_unused_device() -> None:
    ctl = linstor_controller(kinds=())
    with pytest.raises(LinstorError) as busy:
        ctl.create_device_pool("a", "ZFS", "tank", ["/dev/sdd"], "tank", {})
    assert busy.value.rcs[0]["message"] == "(Node: 'a') Failed to create zpool: tank"
    assert "cannot open '/dev/sdd': Device or resource busy" in busy.value.rcs[0]["details"]
    with pytest.raises(LinstorError) as sig:
        ctl.create_device_pool("a", "LVM", "vg", ["/dev/sdc"], "vg", {})
    assert "WARNING: xfs signature detected on /dev/sdc at offset 0" in sig.value.rcs[0]["details"]
    # zpool create -f takes an unmounted device even with a leftover signature
    _rcs, signatures = ctl.create_device_pool("a", "ZFS", "tank", ["/dev/sdc"], "tank", {})
    assert signatures == {"/dev/sdc": "zfs_member"}
    no_zfs = linstor_controller(zfs=False, kinds=())
    with pytest.raises(LinstorError, match="does not support the device provider ZFS"):
        no_zfs.create_device_pool("a", "ZFS", "tank", ["/dev/sdb"], "tank", {})
    assert "ZFS" in no_zfs.node_json(no_zfs.nodes["a"])["unsupported_providers"]


def test_state_survives_a_round_trip() -> None:
    ctl = linstor_controller()
    ctl.create_resource_definition("r", "DfltRscGrp", 1024 * 1024, ["DRBD", "STORAGE"])
    ctl.autoplace("r", 2, storage_pools=["zfs"])
    ctl.create_snapshot("r", "snap")
    again = LinstorController.from_dict(json.loads(json.dumps(ctl.to_dict())))
    assert again.to_dict() == ctl.to_dict()
    assert [again.resource_json(rd, rep, with_volumes=True) for rd in again.rds.values() for rep in rd.replicas.values()] == \
        [ctl.resource_json(rd, rep, with_volumes=True) for rd in ctl.rds.values() for rep in rd.replicas.values()]

