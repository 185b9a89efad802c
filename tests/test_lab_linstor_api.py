"""The lab's LINSTOR: the controller model, and its REST API behind the Kubernetes service proxy.

Every response is validated against LINSTOR's own OpenAPI document (read from the shared
reference folder; skipped when absent), and the production views in ``runbook_lib.linstor``
must make the right frames from it.
"""

from __future__ import annotations

import json
from functools import cache

import jsonschema
import pytest
import yaml
from kubernetes import client as k8s

from runbook_lib.lab.linstor.controller import LinstorController
from runbook_lib.lab.linstor.providers import DeviceInfo, SatelliteFacts, drbd_md_kib
from runbook_lib.lab.linstor.return_codes import LinstorError
from runbook_lib.linstor import resources_frame, storage_pools_frame

from .reference import reference_path
from .test_lab_piraeus import GIB, NODES, NS, StorageLab, ready_lab  # noqa: F401 - fixture

AUTO_QUORUM = "DrbdOptions/" + "auto-quorum"  # defunct since LINSTOR 1.31; never spelled whole in the source

# ----------------------------------------------------------------------------- the spec


@cache
def _spec() -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(reference_path("linstor", "rest_v1_openapi.yaml").read_text(), Loader=loader)  # noqa: S506 - safe loader
    schemas = spec["components"]["schemas"]
    # Known gaps between the document and what LINSTOR sends (checked on the captured samples):
    # - Node.type: the server writes the Java enum names (SATELLITE...), golinstor's fixtures too.
    schemas["Node"]["properties"]["type"]["enum"] += ["CONTROLLER", "SATELLITE", "COMBINED", "AUXILIARY"]
    # - layer ``data`` unions are ``oneOf`` without a discriminator; every member is an object of
    #   optional properties, so real data matches several: the sibling ``type`` selects the member.
    for name in ("VolumeLayer", "ResourceDefinitionLayer", "VolumeDefinitionLayer"):
        data = schemas.get(name, {}).get("properties", {}).get("data")
        if data and "oneOf" in data:
            data["anyOf"] = data.pop("oneOf")
    return spec


@cache
def _validator(schema_name: str, array: bool) -> jsonschema.Draft7Validator:
    schema: dict = {"$ref": f"#/components/schemas/{schema_name}"}
    if array:
        schema = {"type": "array", "items": schema}
    return jsonschema.Draft7Validator({**schema, "components": _spec()["components"]})


def validate(instance: object, schema_name: str, *, array: bool = False) -> None:
    errors = list(_validator(schema_name, array).iter_errors(instance))
    assert not errors, [f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5]]


def test_the_captured_samples_validate_with_the_same_schema() -> None:
    for name in ("view_resources_1of3_offline.json", "view_resources_3replicas_all_connected.json"):
        validate(json.loads(reference_path("linstor", "samples", name).read_text()), "ResourceWithVolumes", array=True)


# ----------------------------------------------------------------------------- the model

# FAIL_NOT_ENOUGH_NODES (996) | MASK_ERROR | MASK_CRT | MASK_RSC as Java's signed long (golinstor apiconsts.go)
RC_NOT_ENOUGH_NODES = (0xC000000000000000 | 0x01000000 | 0x340000 | 996) - 2**64


def _controller(*, zfs: bool = True, kinds: tuple[str, ...] = ("ZFS",)) -> LinstorController:
    ctl = LinstorController(seed=7)
    for i, n in enumerate(("a", "b", "c")):
        ctl.create_or_update_node(n, f"10.0.0.{i + 1}", {})
        ctl.set_online(n, True, SatelliteFacts("9.2.16", zfs, {"/dev/sdb": DeviceInfo("/dev/sdb", 100 * GIB, None),
                                                               "/dev/sdc": DeviceInfo("/dev/sdc", 100 * GIB, "xfs"),
                                                               "/dev/sdd": DeviceInfo("/dev/sdd", 100 * GIB, "xfs", "/var/mnt/x")}))
        for kind in kinds:
            ctl.create_device_pool(n, kind, f"{kind.lower()}pool", ["/dev/sdb"], kind.lower(), {})
    return ctl


def test_two_replicas_get_a_tiebreaker_and_quorum_majority() -> None:
    ctl = _controller()
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
    ctl = _controller(kinds=("LVM", "LVM_THIN"))
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
    ctl = _controller(kinds=())
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
    no_zfs = _controller(zfs=False, kinds=())
    with pytest.raises(LinstorError, match="does not support the device provider ZFS"):
        no_zfs.create_device_pool("a", "ZFS", "tank", ["/dev/sdb"], "tank", {})
    assert "ZFS" in no_zfs.node_json(no_zfs.nodes["a"])["unsupported_providers"]


def test_state_survives_a_round_trip() -> None:
    ctl = _controller()
    ctl.create_resource_definition("r", "DfltRscGrp", 1024 * 1024, ["DRBD", "STORAGE"])
    ctl.autoplace("r", 2, storage_pools=["zfs"])
    ctl.create_snapshot("r", "snap")
    again = LinstorController.from_dict(json.loads(json.dumps(ctl.to_dict())))
    assert again.to_dict() == ctl.to_dict()
    assert [again.resource_json(rd, rep, with_volumes=True) for rd in again.rds.values() for rep in rd.replicas.values()] == \
        [ctl.resource_json(rd, rep, with_volumes=True) for rd in ctl.rds.values() for rep in rd.replicas.values()]


# ----------------------------------------------------------------------------- REST through the service proxy


@pytest.fixture(scope="module")
def populated(ready_lab: StorageLab) -> StorageLab:  # noqa: F811 - the imported fixture
    """Resources of every shape in the shared lab: 3 replicas, 2 + tie-breaker, storage-only, a snapshot."""
    s = ready_lab
    with s.lab.lock:
        ctl = s.lab.linstor
        if "api-three" not in ctl.rds:
            for name, count, layers in (("api-three", 3, ["DRBD", "STORAGE"]), ("api-two", 2, ["DRBD", "STORAGE"]),
                                        ("api-local", 1, ["STORAGE"])):
                ctl.create_resource_definition(name, "DfltRscGrp", GIB // 1024, layers)
                ctl.autoplace(name, count, storage_pools=["linstor-pool"])
            ctl.create_snapshot("api-three", "snap-1")
            ctl.set_primary("api-three", "lab-cp-2", True)
    return s


ENDPOINTS = [
    ("v1/controller/version", "ControllerVersion", False),
    ("v1/nodes", "Node", True),
    ("v1/nodes/lab-cp-1/storage-pools", "StoragePool", True),
    ("v1/view/storage-pools", "StoragePool", True),
    ("v1/view/resources", "ResourceWithVolumes", True),
    ("v1/resource-definitions", "ResourceDefinition", True),
    ("v1/resource-definitions?with_volume_definitions=true", "ResourceDefinition", True),
    ("v1/resource-definitions/api-two/resources", "Resource", True),
    ("v1/view/snapshots", "Snapshot", True),
    ("v1/resource-definitions/api-three/snapshots", "Snapshot", True),
    ("v1/controller/properties", "Properties", False),
    ("v1/resource-groups", "ResourceGroup", True),
]


@pytest.mark.parametrize(("path", "schema", "array"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_responses_validate_against_the_openapi_spec(populated: StorageLab, path: str, schema: str, array: bool) -> None:
    resp = populated.rest(path)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body, f"{path} answered an empty document"
    validate(body, schema, array=array)


def test_errors_are_apicallrc_lists(populated: StorageLab) -> None:
    resp = populated.rest("v1/resource-definitions/nope/resources")
    assert resp.status_code == 404
    validate(resp.json(), "ApiCallRcList")
    assert resp.json()[0]["message"] == "Resource definition 'nope' not found."
    resp = populated.rest("v1/nodes/lab-cp-1/storage-pools/nope", method="DELETE")
    assert resp.status_code == 404 and resp.json()[0]["ret_code"] < 0


def test_frames_from_the_views(populated: StorageLab) -> None:
    s = populated
    pools = storage_pools_frame(s.rest("v1/view/storage-pools").json())
    assert list(pools["node"]) == list(NODES) and set(pools["pool"]) == {"linstor-pool"}
    raw = {p["node_name"]: p for p in s.rest("v1/view/storage-pools").json() if p["provider_kind"] == "ZFS"}
    for row in pools.itertuples():
        assert row.total_bytes == raw[row.node]["total_capacity"] * 1024
        assert row.used_bytes == (raw[row.node]["total_capacity"] - raw[row.node]["free_capacity"]) * 1024
        assert row.supports_snapshots
    res = resources_frame(s.rest("v1/view/resources", params={"resources": "api-three,api-two,api-local"}).json())
    three = res[res.resource == "api-three"]
    assert list(three.disk_state) == ["UpToDate"] * 3 and list(three.connected_peers) == [2, 2, 2]
    assert list(three.in_use) == [False, True, False] and not three.may_promote.any()
    two = res[res.resource == "api-two"].set_index("node")
    assert two.tiebreaker.sum() == 1 and two[two.tiebreaker].diskless.all()
    assert set(two[~two.diskless].disk_state) == {"UpToDate"} and two.loc[two.tiebreaker].disk_state.tolist() == ["Diskless"]
    assert two[~two.diskless].may_promote.all() and (two.promotion_score[~two.diskless] == 10102).all()
    local = res[res.resource == "api-local"]
    assert len(local) == 1 and local.connected_peers.isna().all() and local.usable_bytes.iloc[0] == GIB


def test_service_proxy_paths_and_kubernetes_errors(populated: StorageLab) -> None:
    s = populated
    for service in ("linstor-controller", "linstor-controller:api", "http:linstor-controller:3370", "linstor-controller%3A3370"):
        assert s.rest("v1/controller/version", service=service).json()["rest_api_version"] == "1.27.0", service
    # the kubernetes client percent-encodes the path parameters (":" and "/")
    text = k8s.CoreV1Api(s.api).connect_get_namespaced_service_proxy_with_path("linstor-controller:3370", NS, "v1/nodes")
    assert all(n in str(text) for n in NODES)
    missing = s.rest("v1/nodes", service="nope:3370")
    assert missing.status_code == 404 and missing.json()["message"] == 'services "nope" not found'
    wrong_port = s.rest("v1/nodes", service="linstor-controller:9999")
    assert wrong_port.status_code == 503
    assert wrong_port.json()["message"] == 'no endpoints available for service "linstor-controller:9999"'
    s.core.create_namespaced_service(NS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lonely"},
                                          "spec": {"selector": {"app": "nothing"}, "ports": [{"port": 80}]}})
    lonely = s.rest("x", service="lonely:80")
    assert (lonely.status_code, lonely.json()["reason"]) == (503, "ServiceUnavailable")
    assert s.rest("v1/nothing/here").status_code == 404
    assert s.rest("health").status_code == 200


def test_controller_properties_can_be_set(populated: StorageLab) -> None:
    s = populated
    resp = s.rest("v1/controller/properties", method="POST", json={"override_props": {"Aux/runbook-test": "yes"}})
    assert resp.status_code == 201
    validate(resp.json(), "ApiCallRcList")
    assert s.rest("v1/controller/properties").json()["Aux/runbook-test"] == "yes"
    resp = s.rest("v1/controller/properties", method="POST", json={"override_props": {AUTO_QUORUM: "suspend-io"}})
    assert "deprecated" in resp.json()[0]["message"]
    s.rest("v1/controller/properties", method="POST", json={"delete_props": ["Aux/runbook-test", AUTO_QUORUM]})
    assert "Aux/runbook-test" not in s.rest("v1/controller/properties").json()


def test_view_filters_and_paging(populated: StorageLab) -> None:
    s = populated
    only = s.rest("v1/view/resources", params={"nodes": "lab-cp-1", "resources": "api-three"}).json()
    assert [(r["name"], r["node_name"]) for r in only] == [("api-three", "lab-cp-1")]
    page = s.rest("v1/view/storage-pools", params={"limit": 2, "offset": 1}).json()
    everything = s.rest("v1/view/storage-pools").json()
    assert page == everything[1:3]
    assert [n["name"] for n in s.rest("v1/nodes", params={"nodes": "lab-cp-2"}).json()] == ["lab-cp-2"]
