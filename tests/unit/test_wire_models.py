"""Wire models (runbook_lib.wire and the models in linstor, fio, helm): what fits, what is refused, and the path named."""

from __future__ import annotations

import pytest

from runbook_lib import wire
from runbook_lib.errors import ParseError
from runbook_lib.fio import FioResult
from runbook_lib.helm import Release
from runbook_lib.linstor import Layer, Resource, StoragePool


@pytest.mark.parametrize(("root", "loc", "path"), [
    ("pools", (1, "free_capacity"), "pools[1].free_capacity"),
    ("", ("jobs", 0, "read", "clat_ns", "percentile"), "jobs[0].read.clat_ns.percentile"),
    ("resources", (0, "layer_object", "drbd", "connections", "n2", "connected"),
     "resources[0].layer_object.drbd.connections.n2.connected"),
    ("", (), "(top level)"),
    ("controller/version", (), "controller/version"),
])
def test_field_path(root: str, loc: tuple, path: str) -> None:
    assert wire.field_path(root, loc) == path


@pytest.mark.parametrize("value", [True, "1", 1.5, 2**63, -(2**63) - 1, None])
def test_int64_refuses_what_is_not_a_64_bit_integer(value) -> None:
    with pytest.raises(ValueError):
        wire.int64(value)


@pytest.mark.parametrize("value", [False, "1.0", 10**400, float("inf"), float("nan"), [1]])
def test_number_refuses_what_is_not_a_finite_number(value) -> None:
    with pytest.raises(ValueError):
        wire.number(value)


def test_numbers_are_not_coerced_from_strings() -> None:
    with pytest.raises(ParseError) as info:
        wire.parse("fio", FioResult, {"jobs": [{"jobname": "j", "read": {"iops": "12"}}]})
    assert info.value.tool == "fio" and info.value.field == "jobs[0].read.iops"
    assert "expected a number, got '12'" in str(info.value)


def test_missing_field_says_missing() -> None:
    with pytest.raises(ParseError) as info:
        wire.parse("linstor", list[StoragePool], [{"storage_pool_name": "p", "node_name": "n1"}], root="pools")
    assert info.value.field == "pools[0].provider_kind" and "pools[0].provider_kind missing" in str(info.value)


def test_wrong_container_names_the_expected_shape() -> None:
    with pytest.raises(ParseError, match=r"resources\[0\]: expected an object, got str") as info:
        wire.parse("linstor", list[Resource], ["r1"], root="resources")
    assert info.value.field == "resources[0]"


def test_unknown_fields_are_ignored() -> None:
    pool = wire.parse("linstor", StoragePool, {"storage_pool_name": "p", "node_name": "n1", "provider_kind": "LVM_THIN",
                                               "free_capacity": 4, "new_in_linstor_2": {"x": 1}})
    assert pool.free_capacity == 4096  # KiB arrive, bytes are held


@pytest.mark.parametrize(("kib", "held"), [(2**63 - 1, None), (-1, None), (0, 0)])
def test_kib_capacity_sentinels(kib: int, held) -> None:
    pool = wire.parse("linstor", StoragePool, {"storage_pool_name": "p", "node_name": "n", "provider_kind": "ZFS",
                                               "total_capacity": kib})
    assert pool.total_capacity == held


def test_drbd_layer_found_below_other_layers() -> None:
    layer = wire.parse("linstor", Layer, {"children": [{"children": [{"drbd": {"promotion_score": 7}}]}]})
    drbd = layer.find_drbd()
    assert drbd is not None and drbd.promotion_score == 7


def test_helm_release_model_reads_status_and_version() -> None:
    release = wire.parse("helm", Release, {"info": {"status": "deployed"}, "chart": {"metadata": {"version": "2.10.2"}},
                                           "config": {"installCRDs": True}})
    assert release.info.status == "deployed" and release.chart and release.chart.metadata
    assert release.chart.metadata.version == "2.10.2"
    with pytest.raises(ParseError) as info:
        wire.parse("helm", Release, {"info": {"status": 3}})
    assert info.value.field == "info.status"


def test_too_deep_nesting_is_a_parse_error() -> None:
    deep: dict = {}
    for _ in range(5000):
        deep = {"children": [deep]}
    try:
        layer = wire.parse("linstor", Layer, deep)
    except ParseError as err:
        assert err.tool == "linstor"
    else:
        assert layer.find_drbd() is None
