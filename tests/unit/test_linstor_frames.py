"""Tests for runbook_lib.linstor views over LINSTOR REST JSON.

Two kinds of input: the real ``/v1/view/resources`` captures in the shared reference
(read in place, skipped when absent), and small hand-built responses for the cases those
captures lack (tie-breakers, StandAlone peers, diskless pools, offline pools). The
hand-built ones are validated against the OpenAPI schema when the spec is available, so
they keep the real shape.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from runbook_lib.errors import ParseError
from runbook_lib.linstor import RESOURCE_COLUMNS, STORAGE_POOL_COLUMNS, resources_frame, storage_pools_frame

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
KIB = 1024
LONG_MAX = 9223372036854775807


def _reference(path: str) -> Path:
    target = REFERENCE / path
    if not target.exists():
        pytest.skip(f"reference material not available: {target} (needs ../shared/reference beside the repo)")
    return target


def _sample(name: str) -> list[dict]:
    return json.loads(_reference(f"linstor/samples/{name}.json").read_text())


def _row(frame: pd.DataFrame, **match: Any) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for column, value in match.items():
        mask &= frame[column] == value
    rows = frame[mask]
    assert len(rows) == 1, f"expected one row for {match}, got {len(rows)}"
    return rows.iloc[0]


# --------------------------------------------------------------------------- hand-built responses


def _drbd_layer(
    node_id: int, connections: dict | None, *, may_promote: bool | None, score: int | None
) -> dict:
    drbd: dict[str, Any] = {
        "node_id": node_id,
        "peer_slots": 7,
        "al_stripes": 1,
        "al_size": 32,
        "drbd_volumes": [
            {
                "drbd_volume_definition": {"volume_number": 0, "minor_number": 1001},
                "device_path": "/dev/drbd1001",
                "allocated_size_kib": 2097480,
                "usable_size_kib": 2097152,
            }
        ],
    }
    if connections is not None:
        drbd["connections"] = connections
    if may_promote is not None:
        drbd["may_promote"] = may_promote
    if score is not None:
        drbd["promotion_score"] = score
    return {"type": "DRBD", "drbd": drbd, "children": [{"type": "STORAGE", "storage": {}}]}


def _volume(pool: str, kind: str, disk_state: str | None, allocated_kib: int, **extra: Any) -> dict:
    volume: dict[str, Any] = {
        "volume_number": 0,
        "storage_pool_name": pool,
        "provider_kind": kind,
        "device_path": "/dev/drbd1001",
        "allocated_size_kib": allocated_kib,
        **extra,
    }
    if disk_state is not None and "state" not in volume:
        volume["state"] = {"disk_state": disk_state}
    return volume


def _tiebreaker_resources() -> list[dict]:
    """pvc-a: two diskful replicas (one StandAlone from the other) and a tie-breaker; pvc-b: no volumes."""

    def conn() -> dict:
        return {"connected": True, "message": "Connected"}

    def standalone() -> dict:
        return {"connected": False, "message": "StandAlone"}

    return [
        {
            "name": "pvc-a",
            "node_name": "w2",
            "flags": ["DISKLESS", "DRBD_DISKLESS", "TIE_BREAKER"],
            "layer_object": _drbd_layer(2, {"w1": conn(), "w3": conn()}, may_promote=False, score=1),
            "state": {"in_use": False},
            "volumes": [_volume("DfltDisklessStorPool", "DISKLESS", "Diskless", 0)],
        },
        {
            "name": "pvc-a",
            "node_name": "w1",
            "flags": [],
            "layer_object": _drbd_layer(
                0, {"w2": conn(), "w3": standalone()}, may_promote=False, score=10102
            ),
            "state": {"in_use": True},
            "volumes": [
                _volume(
                    "zfs-pool",
                    "ZFS_THIN",
                    "UpToDate",
                    1536,
                    usable_size_kib=2097152,
                    **{
                        "state": {
                            "disk_state": "UpToDate",
                            "replication_states": {"w3": {"replication_state": "Established"}},
                        }
                    },
                )
            ],
        },
        {
            "name": "pvc-a",
            "node_name": "w3",
            "flags": [],
            "layer_object": _drbd_layer(
                1, {"w1": standalone(), "w2": conn()}, may_promote=False, score=10101
            ),
            "state": {"in_use": False},
            "volumes": [
                _volume(
                    "zfs-pool",
                    "ZFS_THIN",
                    "Inconsistent",
                    1024,
                    **{
                        "state": {
                            "disk_state": "Inconsistent",
                            "replication_states": {
                                "w1": {"replication_state": "SyncTarget", "done_percentage": 42.5},
                                "w2": {"replication_state": "Established"},
                            },
                        }
                    },
                )
            ],
        },
        {"name": "pvc-b", "node_name": "w1", "flags": [], "state": {"in_use": False}, "volumes": []},
    ]


def _pools() -> list[dict]:
    return [
        {
            "storage_pool_name": "DfltDisklessStorPool",
            "node_name": "w1",
            "provider_kind": "DISKLESS",
            "static_traits": {"SupportsSnapshots": "false"},
            "free_capacity": LONG_MAX,
            "total_capacity": LONG_MAX,
            "supports_snapshots": False,
        },
        {
            "storage_pool_name": "zfs-pool",
            "node_name": "w2",
            "provider_kind": "ZFS_THIN",
            "static_traits": {"SupportsSnapshots": "true"},
            "free_capacity": 882894848,
            "total_capacity": 1056964608,
            "supports_snapshots": True,
        },
        {
            "storage_pool_name": "lvm-thick",
            "node_name": "w1",
            "provider_kind": "LVM",
            "static_traits": {"SupportsSnapshots": "false"},
            "free_capacity": 1000,
            "total_capacity": 4000,
        },
        {
            "storage_pool_name": "zfs-pool",
            "node_name": "w1",
            "provider_kind": "ZFS",
            "supports_snapshots": True,
            "free_capacity": 0,
            "total_capacity": 20971520,
        },
        {
            # Offline satellite: no capacities, an error report instead.
            "storage_pool_name": "zfs-pool",
            "node_name": "w3",
            "provider_kind": "ZFS_THIN",
            "reports": [{"ret_code": -4611686018427387904, "message": "Node 'w3' is offline"}],
        },
    ]


@pytest.fixture(scope="module")
def openapi() -> dict:
    """The LINSTOR OpenAPI spec, parsed once (with libyaml when available: it is 270 kB)."""
    yaml = pytest.importorskip("yaml")
    text = _reference("linstor/rest_v1_openapi.yaml").read_text()
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _openapi_validator(spec: dict, schema_name: str):
    jsonschema = pytest.importorskip("jsonschema")
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    return jsonschema.Draft7Validator(root)


@pytest.mark.reference
def test_hand_built_responses_fit_the_openapi_schema(openapi: dict) -> None:
    resource_validator = _openapi_validator(openapi, "ResourceWithVolumes")
    for resource in _tiebreaker_resources():
        errors = list(resource_validator.iter_errors(resource))
        assert not errors, [e.message for e in errors]
    pool_validator = _openapi_validator(openapi, "StoragePool")
    for pool in _pools():
        errors = list(pool_validator.iter_errors(pool))
        assert not errors, [e.message for e in errors]


@pytest.mark.reference
def test_spec_says_capacities_are_kib_and_snapshot_trait_exists(openapi: dict) -> None:
    schemas = openapi["components"]["schemas"]
    pool = schemas["StoragePool"]["properties"]
    assert "Kibi" in pool["free_capacity"]["description"]
    assert "Kibi" in pool["total_capacity"]["description"]
    assert pool["static_traits"]["additionalProperties"]["type"] == "string"
    assert pool["supports_snapshots"]["type"] == "boolean"
    drbd = schemas["DrbdResource"]["properties"]
    assert {"connections", "may_promote", "promotion_score"} <= set(drbd)


# --------------------------------------------------------------------------- resources: real samples


@pytest.mark.reference
def test_sample_one_of_three_offline() -> None:
    raw = _sample("view_resources_1of3_offline")
    frame = resources_frame(raw)
    assert list(frame.columns) == list(RESOURCE_COLUMNS)
    assert list(frame["node"]) == ["node-0", "node-1", "node-2"]
    assert set(frame["resource"]) == {"rsc1"}
    assert list(frame["volume_number"]) == [0, 0, 0]

    offline = _row(frame, node="node-0")
    assert not offline["state_reported"]
    assert pd.isna(offline["in_use"])
    assert pd.isna(offline["disk_state"])
    assert pd.isna(offline["connected_peers"]) and pd.isna(offline["disconnected_peers"])
    assert pd.isna(offline["may_promote"]) and pd.isna(offline["promotion_score"])
    assert offline["allocated_bytes"] == 1052672 * KIB
    assert offline["usable_bytes"] == 1048576 * KIB  # from the DRBD layer: the volume carries none

    for node in ("node-1", "node-2"):
        row = _row(frame, node=node)
        assert row["state_reported"]
        assert row["in_use"] is False or row["in_use"] == False  # noqa: E712 - pandas BooleanDtype scalar
        assert row["disk_state"] == "UpToDate"
        assert row["connected_peers"] == 1
        assert row["disconnected_peers"] == 1
        assert row["peer_states"]["node-0"] == "Connecting"
        assert row["may_promote"] == True  # noqa: E712
        assert row["promotion_score"] == 10102
        assert row["allocated_bytes"] == 315 * KIB
        assert not row["diskless"] and not row["tiebreaker"]
        assert row["storage_pool"] == "thinpool" and row["provider_kind"] == "LVM_THIN"
        assert row["device_path"] == "/dev/drbd1000"

    # Every number equals the raw JSON's, converted from KiB.
    for resource in raw:
        row = _row(frame, node=resource["node_name"])
        assert row["allocated_bytes"] == resource["volumes"][0]["allocated_size_kib"] * KIB


@pytest.mark.reference
def test_sample_three_replicas_all_connected() -> None:
    frame = resources_frame(_sample("view_resources_3replicas_all_connected"))
    assert len(frame) == 3
    assert frame["state_reported"].all()
    assert list(frame["connected_peers"]) == [2, 2, 2]
    assert list(frame["disconnected_peers"]) == [0, 0, 0]
    assert frame["may_promote"].all()
    assert list(frame["promotion_score"]) == [10103, 10103, 10103]
    assert list(frame["disk_state"]) == ["UpToDate"] * 3
    assert not frame["in_use"].any()
    assert not frame["diskless"].any() and not frame["tiebreaker"].any()
    assert _row(frame, node="node-1")["peer_states"] == {"node-0": "Connected", "node-2": "Connected"}
    assert set(frame["usable_bytes"]) == {1048576 * KIB}


@pytest.mark.reference
def test_sample_input_is_not_modified() -> None:
    raw = _sample("view_resources_1of3_offline")
    before = copy.deepcopy(raw)
    resources_frame(raw)
    assert raw == before


# --------------------------------------------------------------------------- resources: hand-built cases


def test_tiebreaker_standalone_and_resource_without_volumes() -> None:
    frame = resources_frame(_tiebreaker_resources())
    assert list(zip(frame["resource"], frame["node"], strict=True)) == [
        ("pvc-a", "w1"),
        ("pvc-a", "w2"),
        ("pvc-a", "w3"),
        ("pvc-b", "w1"),
    ]

    tb = _row(frame, resource="pvc-a", node="w2")
    assert tb["tiebreaker"] and tb["diskless"]
    assert tb["disk_state"] == "Diskless"
    assert tb["allocated_bytes"] == 0
    assert tb["usable_bytes"] == 2097152 * KIB  # DRBD layer fallback
    assert tb["connected_peers"] == 2 and tb["disconnected_peers"] == 0

    primary = _row(frame, resource="pvc-a", node="w1")
    assert primary["in_use"] == True  # noqa: E712
    assert primary["connected_peers"] == 1 and primary["disconnected_peers"] == 1
    assert primary["peer_states"] == {"w2": "Connected", "w3": "StandAlone"}
    assert primary["may_promote"] == False  # noqa: E712
    assert primary["allocated_bytes"] == 1536 * KIB
    assert primary["usable_bytes"] == 2097152 * KIB
    assert primary["replication_states"] == {"w3": "Established"}
    assert pd.isna(primary["resync_done_percent"])
    assert primary["flags"] == ()

    syncing = _row(frame, resource="pvc-a", node="w3")
    assert syncing["disk_state"] == "Inconsistent"
    assert syncing["resync_done_percent"] == 42.5
    assert syncing["replication_states"] == {"w1": "SyncTarget", "w2": "Established"}

    empty = _row(frame, resource="pvc-b")
    assert pd.isna(empty["volume_number"])
    assert (
        pd.isna(empty["disk_state"]) and pd.isna(empty["allocated_bytes"]) and pd.isna(empty["storage_pool"])
    )
    assert empty["in_use"] == False  # noqa: E712
    assert pd.isna(empty["connected_peers"])  # no DRBD layer at all: unknown, not zero


def test_drbd_layer_found_below_another_layer() -> None:
    resource = {
        "name": "enc",
        "node_name": "w1",
        "state": {"in_use": False},
        "layer_object": {
            "type": "LUKS",
            "luks": {},
            "children": [
                _drbd_layer(0, {"w2": {"connected": True, "message": "Connected"}}, may_promote=True, score=5)
            ],
        },
        "volumes": [_volume("p", "LVM_THIN", "UpToDate", 8)],
    }
    row = resources_frame([resource]).iloc[0]
    assert row["connected_peers"] == 1 and row["may_promote"] == True  # noqa: E712
    assert row["promotion_score"] == 5


def test_reported_state_without_connections_means_no_peers() -> None:
    resource = {
        "name": "single",
        "node_name": "w1",
        "state": {"in_use": False},
        "layer_object": _drbd_layer(0, None, may_promote=True, score=10100),
        "volumes": [_volume("p", "LVM_THIN", "UpToDate", 8)],
    }
    row = resources_frame([resource]).iloc[0]
    assert row["connected_peers"] == 0 and row["disconnected_peers"] == 0
    assert row["peer_states"] == {}


def test_empty_resource_list_has_the_columns() -> None:
    frame = resources_frame([])
    assert list(frame.columns) == list(RESOURCE_COLUMNS)
    assert frame.empty


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rs: rs[3].pop("node_name"), "resources[3].node_name missing"),
        (lambda rs: rs[0].pop("name"), "resources[0].name missing"),
        (lambda rs: rs[1].update(node_name=7), "resources[1].node_name: expected a non-empty string"),
        (lambda rs: rs[0].update(flags="DISKLESS"), "resources[0].flags: expected a list"),
        (lambda rs: rs[0].update(flags=[1]), r"resources[0].flags[0]: expected a string"),
        (lambda rs: rs[1].update(state=[]), "resources[1].state: expected an object"),
        (lambda rs: rs[1]["state"].update(in_use="yes"), "resources[1].state.in_use: expected true or false"),
        (lambda rs: rs[1].update(volumes={}), "resources[1].volumes: expected a list"),
        (
            lambda rs: rs[1]["volumes"][0].update(volume_number="0"),
            "resources[1].volumes[0].volume_number: expected",
        ),
        (
            lambda rs: rs[1]["volumes"][0].pop("volume_number"),
            "resources[1].volumes[0].volume_number missing",
        ),
        (
            lambda rs: rs[1]["volumes"][0].update(allocated_size_kib="1"),
            "resources[1].volumes[0].allocated_size_kib: expected an integer",
        ),
        (
            lambda rs: rs[1]["layer_object"]["drbd"].update(connections=[]),
            "resources[1].layer_object.drbd.connections: expected an object",
        ),
        (
            lambda rs: rs[1]["layer_object"]["drbd"]["connections"]["w2"].pop("connected"),
            "resources[1].layer_object.drbd.connections.w2.connected missing",
        ),
        (
            lambda rs: rs[1]["layer_object"]["drbd"].update(may_promote="true"),
            "resources[1].layer_object.drbd.may_promote: expected true or false",
        ),
        (lambda rs: rs.__setitem__(2, "pvc"), "resources[2]: expected an object"),
    ],
)
def test_malformed_resources_name_the_field(mutate, message: str) -> None:
    resources = _tiebreaker_resources()
    mutate(resources)
    with pytest.raises(ParseError) as info:
        resources_frame(resources)
    assert info.value.tool == "linstor"
    assert message in str(info.value)


def test_resources_must_be_a_list() -> None:
    with pytest.raises(ParseError, match="resources: expected a list"):
        resources_frame({"name": "x"})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- storage pools


def test_storage_pools_frame() -> None:
    frame = storage_pools_frame(_pools())
    assert list(frame.columns) == list(STORAGE_POOL_COLUMNS)
    # Diskless pool dropped; sorted by node, pool.
    assert list(zip(frame["node"], frame["pool"], strict=True)) == [
        ("w1", "lvm-thick"),
        ("w1", "zfs-pool"),
        ("w2", "zfs-pool"),
        ("w3", "zfs-pool"),
    ]
    assert "DISKLESS" not in set(frame["provider_kind"])

    zfs = _row(frame, node="w2")
    assert zfs["total_bytes"] == 1056964608 * KIB
    assert zfs["free_bytes"] == 882894848 * KIB
    assert zfs["used_bytes"] == (1056964608 - 882894848) * KIB
    assert zfs["supports_snapshots"] == True  # noqa: E712

    thick = _row(frame, pool="lvm-thick")
    assert thick["supports_snapshots"] == False  # noqa: E712  (thick LVM cannot snapshot)
    assert thick["used_bytes"] == 3000 * KIB

    full = _row(frame, node="w1", pool="zfs-pool")
    assert full["free_bytes"] == 0 and full["used_bytes"] == 20971520 * KIB
    assert full["supports_snapshots"] == True  # noqa: E712  (from the boolean when no trait)

    offline = _row(frame, node="w3")
    assert (
        pd.isna(offline["total_bytes"]) and pd.isna(offline["free_bytes"]) and pd.isna(offline["used_bytes"])
    )
    assert pd.isna(offline["supports_snapshots"])
    assert offline["reports"] == "Node 'w3' is offline"

    assert str(frame["total_bytes"].dtype) == "Int64"
    assert frame["total_bytes"].sum() == (1056964608 + 4000 + 20971520) * KIB


def test_storage_pools_empty_and_only_diskless() -> None:
    assert list(storage_pools_frame([]).columns) == list(STORAGE_POOL_COLUMNS)
    assert storage_pools_frame([_pools()[0]]).empty


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda ps: ps[1].pop("node_name"), "pools[1].node_name missing"),
        (lambda ps: ps[2].pop("storage_pool_name"), "pools[2].storage_pool_name missing"),
        (lambda ps: ps[2].pop("provider_kind"), "pools[2].provider_kind missing"),
        (lambda ps: ps[1].update(free_capacity="10"), "pools[1].free_capacity: expected an integer"),
        (lambda ps: ps[1].update(static_traits={"SupportsSnapshots": "yes"}), "SupportsSnapshots"),
        (lambda ps: ps[1].update(static_traits=["x"]), "pools[1].static_traits: expected an object"),
        (lambda ps: ps[4].update(reports="offline"), "pools[4].reports: expected a list"),
        (lambda ps: ps.__setitem__(0, None), "pools[0]: expected an object"),
    ],
)
def test_malformed_pools_name_the_field(mutate, message: str) -> None:
    pools = _pools()
    mutate(pools)
    with pytest.raises(ParseError) as info:
        storage_pools_frame(pools)
    assert info.value.tool == "linstor"
    assert message in str(info.value)
