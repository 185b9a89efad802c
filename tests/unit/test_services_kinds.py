"""Typed Kubernetes kinds (runbook_lib.kinds): the REST paths they give, and refusals for misuse."""

from __future__ import annotations

import pytest

from runbook_lib import kinds, kube
from runbook_lib.errors import RunbookError


def test_core_and_group_paths() -> None:
    assert kinds.POD.path("p", "ns") == "/api/v1/namespaces/ns/pods/p"
    assert kinds.POD.collection("ns") == "/api/v1/namespaces/ns/pods"
    assert kinds.POD.collection() == "/api/v1/pods"  # every namespace
    assert kinds.DEPLOYMENT.collection() == "/apis/apps/v1/deployments"
    assert kinds.STORAGE_CLASS.path("replicated") == "/apis/storage.k8s.io/v1/storageclasses/replicated"
    assert kinds.VOLUME_SNAPSHOT.group_version_path == "/apis/snapshot.storage.k8s.io/v1"
    assert kinds.LEASE.collection("kube-system") == "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"


def test_service_proxy_keeps_scheme_and_port() -> None:
    assert (kinds.service_proxy("piraeus-datastore", "https:linstor-controller:3371")
            == "/api/v1/namespaces/piraeus-datastore/services/https:linstor-controller:3371/proxy")


def test_object_path_of_manifests() -> None:
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c", "namespace": "bench"}}
    assert kube.object_path(pvc) == "/api/v1/namespaces/bench/persistentvolumeclaims/c"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
    assert kube.object_path(pod) == "/api/v1/namespaces/default/pods/p"
    cluster = {"apiVersion": "piraeus.io/v1", "kind": "LinstorCluster", "metadata": {"name": "linstorcluster",
                                                                                     "namespace": "ignored"}}
    assert kube.object_path(cluster) == "/apis/piraeus.io/v1/linstorclusters/linstorcluster"


def test_unknown_kind_and_scope_misuse_are_refused() -> None:
    with pytest.raises(RunbookError, match="no API mapping for Widget"):
        kinds.of({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    with pytest.raises(RunbookError, match="cluster-scoped"):
        kinds.NODE.collection("ns")
    with pytest.raises(RunbookError, match="needs a namespace"):
        kinds.POD.path("p")


def test_every_kind_is_unique() -> None:
    assert len({(k.api_version, k.kind) for k in kinds.ALL}) == len(kinds.ALL)
