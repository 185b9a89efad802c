"""linstor-csi in the lab: StorageClass parameters, placement, attach, capacity, delete."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from runbook_lib.lab.storage.csi_params import parse_parameters
from runbook_lib.linstor import resources_frame, storage_pools_frame
from tests.storage_lab import GIB, NODES, P, StorageLab, bound_claim, pod_doc, pvc_doc, running_pod, wait_for

# ----------------------------------------------------------------------------- parameters


def test_parameters_parse_like_linstor_csi() -> None:
    p = parse_parameters({f"{P}storagePool": "pool-a pool-b", f"{P}PLACEMENTCOUNT": "3", f"{P}layerList": "drbd storage",
                          "property.linstor.csi.linbit.com/DrbdOptions/Resource/on-no-quorum": "suspend-io",
                          "DrbdOptions/Net/rr-conflict": "retry-connect", "csi.storage.k8s.io/fstype": "xfs",
                          f"{P}replicasOnDifferent": "topology.kubernetes.io/zone"})
    assert (p.placement_count, p.storage_pools, p.layers) == (3, ["pool-a", "pool-b"], ["DRBD", "STORAGE"])
    assert p.properties == {"DrbdOptions/Resource/on-no-quorum": "suspend-io", "DrbdOptions/Net/rr-conflict": "retry-connect"}
    assert p.replicas_on_different == ["Aux/topology.kubernetes.io/zone"]
    assert p.resource_group.startswith("sc-") and p.remote_access is True
    assert parse_parameters({f"{P}layerList": "storage"}).remote_access is False  # no DRBD: local only by default
    assert parse_parameters({f"{P}autoPlace": "2"}).placement_count == 2
    with pytest.raises(ValueError, match="^invalid parameter: storagepools does not belong to paramKey values$"):
        parse_parameters({f"{P}storagePools": "x"})
    with pytest.raises(ValueError, match='unable to parse "three" as a 32 bit integer'):
        parse_parameters({f"{P}placementCount": "three"})
    with pytest.raises(ValueError, match="unknown layer type zfs"):
        parse_parameters({f"{P}layerList": "drbd zfs"})
    manual = parse_parameters({f"{P}nodeList": "a b", f"{P}placementCount": "3"})
    assert (manual.placement_count, manual.placement_policy) == (0, "Manual")


# ----------------------------------------------------------------------------- provisioning


def _resources(s: StorageLab, rd: str):
    return resources_frame(s.rest("v1/view/resources", params={"resources": rd}).json()).set_index("node")


def test_local_class_places_one_replica_on_the_consumer_node(classes: StorageLab) -> None:
    s = classes
    s.core.create_namespaced_persistent_volume_claim("default", pvc_doc("local-data", "csi-local"))
    pvc = s.core.read_namespaced_persistent_volume_claim("local-data", "default")
    assert pvc.status.phase == "Pending"
    wait_for(lambda: [e for e in s.events("default", "WaitForFirstConsumer") if e.involved_object.name == "local-data"],
             "WaitForFirstConsumer event")
    s.core.create_namespaced_pod("default", pod_doc("local-user", "local-data", node="lab-cp-2"))
    pod = running_pod(s, "local-user")
    pvc = bound_claim(s, "local-data")
    pvc_meta = pvc.metadata.annotations
    assert pvc_meta["volume.kubernetes.io/selected-node"] == "lab-cp-2" and pod.spec.node_name == "lab-cp-2"
    pv = s.core.read_persistent_volume(pvc.spec.volume_name)
    assert pv.spec.csi.driver == "linstor.csi.linbit.com" and pv.spec.csi.volume_handle == pvc.spec.volume_name
    terms = pv.spec.node_affinity.required.node_selector_terms
    assert [(t.match_expressions[0].key, t.match_expressions[0].values) for t in terms] == [("linbit.com/hostname", ["lab-cp-2"])]
    res = _resources(s, pv.spec.csi.volume_handle)
    assert list(res.index) == ["lab-cp-2"] and not res.diskless.any() and res.in_use.all()
    assert res.provider_kind.tolist() == ["ZFS"] and res.disk_state.tolist() == ["Created"]
    va = k8s.StorageV1Api(s.api).list_volume_attachment().items
    assert [(v.spec.node_name, v.status.attached) for v in va if v.spec.source.persistent_volume_name == pv.metadata.name] == \
        [("lab-cp-2", True)]


def test_replicated_class_three_uptodate_replicas_in_use_on_one(classes: StorageLab) -> None:
    s = classes
    s.core.create_namespaced_persistent_volume_claim("default", pvc_doc("repl-data", "csi-replicated", "2Gi"))
    pvc = bound_claim(s, "repl-data")  # Immediate: bound before any consumer
    rd = pvc.spec.volume_name
    res = _resources(s, rd)
    assert list(res.index) == list(NODES) and list(res.disk_state) == ["UpToDate"] * 3 and not res.in_use.any()
    assert list(res.connected_peers) == [2, 2, 2] and res.may_promote.all()
    assert (res.usable_bytes == 2 * GIB).all()
    definition = next(d for d in s.rest("v1/resource-definitions").json() if d["name"] == rd)
    assert definition["props"]["DrbdOptions/Resource/quorum"] == "majority"
    group = next(g for g in s.rest("v1/resource-groups").json() if g["name"] == definition["resource_group_name"])
    assert group["props"]["DrbdOptions/Resource/on-no-quorum"] == "suspend-io"
    assert group["select_filter"]["place_count"] == 3 and group["select_filter"]["layer_stack"] == ["DRBD", "STORAGE"]
    s.core.create_namespaced_pod("default", pod_doc("repl-user", "repl-data"))
    node = running_pod(s, "repl-user").spec.node_name
    res = wait_for(lambda: (r := _resources(s, rd)).in_use.any() and r, "in use")
    assert res.in_use[res.in_use].index.tolist() == [node]
    assert not res.drop(node).may_promote.any()  # a Primary elsewhere: the others cannot promote


def test_a_pod_on_a_node_without_replica_gets_a_diskless_one(classes: StorageLab) -> None:
    s = classes
    s.core.create_namespaced_persistent_volume_claim("default", pvc_doc("two-data", "csi-two"))
    rd = bound_claim(s, "two-data").spec.volume_name
    res = _resources(s, rd)
    tiebreaker = res[res.tiebreaker].index.tolist()
    assert len(tiebreaker) == 1 and (~res.diskless).sum() == 2
    s.core.create_namespaced_pod("default", pod_doc("two-user", "two-data", node=tiebreaker[0]))
    running_pod(s, "two-user")
    res = _resources(s, rd)
    assert bool(res.loc[tiebreaker[0], "diskless"]) and not bool(res.loc[tiebreaker[0], "tiebreaker"])
    assert bool(res.loc[tiebreaker[0], "in_use"]) and res.loc[tiebreaker[0], "connected_peers"] == 2
    s.core.delete_namespaced_pod("two-user", "default", _preload_content=False)
    # detached: the diskless replica goes, LINSTOR puts its tie-breaker back
    res = wait_for(lambda: (r := _resources(s, rd)).tiebreaker.any() and r, "tie-breaker back")
    assert not res.in_use.any() and len(res) == 3


def test_an_unknown_parameter_fails_provisioning(classes: StorageLab) -> None:
    s = classes
    s.core.create_namespaced_persistent_volume_claim("default", pvc_doc("typo-data", "csi-typo"))
    event = wait_for(lambda: next((e for e in s.events("default", "ProvisioningFailed") if e.involved_object.name == "typo-data"),
                                  None), "ProvisioningFailed")
    assert event.type == "Warning"
    assert event.message == ('failed to provision volume with StorageClass "csi-typo": rpc error: code = InvalidArgument desc = '
                             "failed to parse parameters: invalid parameter: storagepools does not belong to paramKey values")
    assert s.core.read_namespaced_persistent_volume_claim("typo-data", "default").status.phase == "Pending"


def test_deleting_the_claim_deletes_the_volume_and_frees_the_space(classes: StorageLab) -> None:
    s = classes

    def free() -> dict[str, int]:
        return dict(storage_pools_frame(s.rest("v1/view/storage-pools").json()).set_index("node").free_bytes)

    before = free()
    s.core.create_namespaced_persistent_volume_claim("default", pvc_doc("gone-data", "csi-replicated", "10Gi"))
    rd = bound_claim(s, "gone-data").spec.volume_name
    during = free()
    assert all(before[n] - during[n] >= 10 * GIB for n in NODES)
    s.core.create_namespaced_pod("default", pod_doc("gone-user", "gone-data"))
    running_pod(s, "gone-user")
    s.core.delete_namespaced_persistent_volume_claim("gone-data", "default", _preload_content=False)
    pvc = s.core.read_namespaced_persistent_volume_claim("gone-data", "default")
    assert pvc.metadata.deletion_timestamp and "kubernetes.io/pvc-protection" in pvc.metadata.finalizers  # still in use
    s.core.delete_namespaced_pod("gone-user", "default", _preload_content=False)
    wait_for(lambda: rd not in {d["name"] for d in s.rest("v1/resource-definitions").json()}, "resource definition deleted")
    wait_for(lambda: not [pv for pv in s.core.list_persistent_volume().items if pv.metadata.name == rd], "PV deleted")
    assert free() == before
