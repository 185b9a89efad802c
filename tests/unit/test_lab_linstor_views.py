"""LINSTOR's volume-group, error-report and physical-storage lists, valid against LINSTOR's OpenAPI spec."""

from __future__ import annotations

import pytest

from runbook_lib.lab.linstor import api as linstor_api
from runbook_lib.lab.linstor import views as linstor_views
from runbook_lib.lab.linstor.constants import CONTROLLER_VERSION
from runbook_lib.lab.linstor.providers import DeviceInfo, SatelliteFacts
from runbook_lib.lab.linstor.return_codes import LinstorError
from runbook_lib.lab.storage.chart import IMAGES
from tests.linstor_checks import linstor_controller, validate
from tests.storage_lab import GIB


def _get(ctl, path: str, **query: str):
    return linstor_views.route(ctl, "GET", path, {k: [v] for k, v in query.items()}, linstor_api._rg)


def test_volume_groups_of_the_default_and_a_csi_group() -> None:
    ctl = linstor_controller()
    ctl.create_resource_group("sc-fast", {"storage_pool": "zfs"}, {})
    assert _get(ctl, "/v1/resource-groups/DfltRscGrp/volume-groups") == (200, [])
    code, vgs = _get(ctl, "/v1/resource-groups/SC-FAST/volume-groups")  # names are case-insensitive
    assert code == 200 and [v["volume_number"] for v in vgs] == [0]
    validate(vgs, "VolumeGroup", array=True)
    with pytest.raises(LinstorError):
        _get(ctl, "/v1/resource-groups/nope/volume-groups")


def test_a_failed_pool_creation_leaves_an_error_report_with_its_id() -> None:
    ctl = linstor_controller(kinds=())
    ctl.now_ms = lambda: 1_700_000_000_000
    with pytest.raises(LinstorError) as failed:
        ctl.create_device_pool("a", "LVM", "vg", ["/dev/sdc"], "vg", {})
    report_id = failed.value.rcs[0]["error_report_ids"][0]
    code, reports = _get(ctl, "/v1/error-reports", withContent="true")
    assert code == 200 and [r["filename"] for r in reports] == [f"ErrorReport-{report_id}.log"]
    assert reports[0]["node_name"] == "a" and "xfs signature detected on /dev/sdc" in reports[0]["text"]
    validate(reports, "ErrorReport", array=True)
    assert _get(ctl, "/v1/error-reports", node="b") == (200, [])
    assert _get(ctl, "/v1/error-reports", since=str(1_700_000_000_001)) == (200, [])


def test_physical_storage_lists_only_devices_a_pool_could_take() -> None:
    ctl = linstor_controller(kinds=())
    ctl.set_online("a", True, SatelliteFacts("9.2.16", True, {
        "/dev/nvme1n1": DeviceInfo("/dev/nvme1n1", 200 * GIB, None),
        "/dev/sdc": DeviceInfo("/dev/sdc", 100 * GIB, "xfs")}))
    code, groups = _get(ctl, "/v1/physical-storage")
    assert code == 200
    validate(groups, "PhysicalStorage", array=True)
    by_size = {(g["size"], g["rotational"]): g["nodes"] for g in groups}
    assert [d["device"] for d in by_size[(200 * GIB, False)]["a"]] == ["/dev/nvme1n1"]
    assert set(by_size[(100 * GIB, True)]) == {"b", "c"}  # /dev/sdb on b and c; a's sdc has a signature
    ctl.create_device_pool("b", "ZFS", "tank", ["/dev/sdb"], "tank", {})
    _code, after = _get(ctl, "/v1/physical-storage")
    assert set({(g["size"], g["rotational"]): g["nodes"] for g in after}[(100 * GIB, True)]) == {"c"}


def test_the_controller_image_tag_is_the_version_linstor_reports() -> None:
    for component in ("linstor-controller", "linstor-satellite"):
        assert IMAGES[component].rsplit(":", 1)[1] == f"v{CONTROLLER_VERSION['version']}"
