"""The lab's LINSTOR: the controller model, and its REST API behind the Kubernetes service proxy.

Every response is validated against LINSTOR's own OpenAPI document (read from the shared
reference folder; skipped when absent), and the production views in ``runbook_lib.linstor``
must make the right frames from it.
"""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from runbook_lib.linstor import resources_frame, storage_pools_frame
from tests.linstor_checks import validate
from tests.storage_lab import GIB, NODES, NS, StorageLab

AUTO_QUORUM = "DrbdOptions/" + "auto-quorum"  # defunct since LINSTOR 1.31; never spelled whole in the source



# ----------------------------------------------------------------------------- the model









# ----------------------------------------------------------------------------- REST through the service proxy


@pytest.fixture(scope="module")
def populated(ready_lab: StorageLab) -> StorageLab:
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
