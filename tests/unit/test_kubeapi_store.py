"""The lab's Kubernetes store: the API semantics clients depend on."""

from __future__ import annotations

import json

import pytest

from runbook_lib.lab.kubernetes.patches import json_patch, merge_patch, strategic_merge
from runbook_lib.lab.kubernetes.selectors import label_matcher
from runbook_lib.lab.kubernetes.store import KubeStore
from runbook_lib.lab.kubernetes.types import ApiError


@pytest.fixture
def store() -> KubeStore:
    s = KubeStore()
    s.create(s.resolve("", "v1", "namespaces"), None, {"metadata": {"name": "default"}})
    return s


def cm(name: str, labels: dict | None = None, data: dict | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": data or {}}


def test_create_get_conflict_and_not_found(store: KubeStore) -> None:
    rt = store.resolve("", "v1", "configmaps")
    created = store.create(rt, "default", cm("a"))
    assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
    with pytest.raises(ApiError) as exc:
        store.create(rt, "default", cm("a"))
    assert exc.value.code == 409 and exc.value.reason == "AlreadyExists"
    with pytest.raises(ApiError) as exc:
        store.get(rt, "default", "missing")
    assert exc.value.code == 404
    assert exc.value.status()["message"] == 'configmaps "missing" not found'


def test_namespace_must_exist(store: KubeStore) -> None:
    with pytest.raises(ApiError) as exc:
        store.create(store.resolve("", "v1", "configmaps"), "nope", cm("a"))
    assert exc.value.code == 404 and "namespaces" in exc.value.message


def test_replace_with_stale_resource_version_conflicts(store: KubeStore) -> None:
    rt = store.resolve("", "v1", "configmaps")
    first = store.create(rt, "default", cm("a"))
    second = store.replace(rt, "default", "a", {**first, "data": {"k": "1"}})
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    with pytest.raises(ApiError) as exc:
        store.replace(rt, "default", "a", {**first, "data": {"k": "2"}})
    assert exc.value.code == 409 and exc.value.reason == "Conflict"


def test_noop_update_keeps_resource_version(store: KubeStore) -> None:
    rt = store.resolve("", "v1", "configmaps")
    first = store.create(rt, "default", cm("a", data={"k": "v"}))
    again = store.replace(rt, "default", "a", first)
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


def test_label_selectors(store: KubeStore) -> None:
    rt = store.resolve("", "v1", "configmaps")
    store.create(rt, "default", cm("a", {"app": "x", "tier": "db"}))
    store.create(rt, "default", cm("b", {"app": "y"}))
    store.create(rt, "default", cm("c", {}))

    def names(sel: str) -> list[str]:
        return [o["metadata"]["name"] for o in store.list(rt, "default", sel)["items"]]

    assert names("app=x") == ["a"]
    assert names("app!=x") == ["b", "c"]
    assert names("app in (x,y)") == ["a", "b"]
    assert names("app notin (x)") == ["b", "c"]
    assert names("tier") == ["a"]
    assert names("!tier") == ["b", "c"]
    assert names("app in (x,y),tier=db") == ["a"]
    with pytest.raises(ApiError):
        label_matcher("app==(")


def test_field_selector(store: KubeStore) -> None:
    rt = store.resolve("", "v1", "pods")
    store.create(rt, "default", {"metadata": {"name": "p1"}, "spec": {"nodeName": "n1"}})
    store.create(rt, "default", {"metadata": {"name": "p2"}, "spec": {"nodeName": "n2"}})
    items = store.list(rt, None, field_selector="spec.nodeName=n2")["items"]
    assert [i["metadata"]["name"] for i in items] == ["p2"]


def test_patches() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {"a": {"c": 2, "d": 3}}
    doc = {"spec": {"containers": [{"name": "x", "image": "a"}, {"name": "y", "image": "b"}]}}
    out = strategic_merge(doc, {"spec": {"containers": [{"name": "y", "image": "c"}, {"name": "x", "$patch": "delete"}]}})
    assert out == {"spec": {"containers": [{"name": "y", "image": "c"}]}}
    assert json_patch({"a": [1, 2]}, [{"op": "add", "path": "/a/-", "value": 3}, {"op": "replace", "path": "/a/0", "value": 0}]) == {"a": [0, 2, 3]}
    with pytest.raises(ApiError):
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])


def test_apply_patch_creates_then_merges(store: KubeStore) -> None:
    rt = store.resolve("", "v1", "configmaps")
    code, obj = store.patch(rt, "default", "a", "application/apply-patch+yaml", b"metadata: {name: a}\ndata: {k: v}\n")
    assert code == 201 and obj["data"] == {"k": "v"}
    code, obj = store.patch(rt, "default", "a", "application/apply-patch+yaml", b"data: {k2: v2}\n")
    assert code == 200 and obj["data"] == {"k": "v", "k2": "v2"}


def test_finalizers_delay_deletion(store: KubeStore) -> None:
    rt = store.resolve("", "v1", "configmaps")
    store.create(rt, "default", {**cm("a"), "metadata": {"name": "a", "finalizers": ["x/y"]}})
    store.delete(rt, "default", "a")
    obj = store.get(rt, "default", "a")
    assert obj["metadata"]["deletionTimestamp"]
    obj["metadata"]["finalizers"] = []
    store.replace(rt, "default", "a", obj)
    with pytest.raises(ApiError):
        store.get(rt, "default", "a")


def test_crd_registers_type_and_persistence_round_trip(store: KubeStore) -> None:
    crd = {"metadata": {"name": "linstorclusters.piraeus.io"},
           "spec": {"group": "piraeus.io", "scope": "Cluster",
                    "names": {"plural": "linstorclusters", "kind": "LinstorCluster"},
                    "versions": [{"name": "v1", "served": True, "storage": True}]}}
    store.create(store.resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions"), None, crd)
    rt = store.resolve("piraeus.io", "v1", "linstorclusters")
    store.create(rt, None, {"metadata": {"name": "linstorcluster"}, "spec": {}})
    again = KubeStore.from_dict(json.loads(json.dumps(store.to_dict())))
    assert again.get(again.resolve("piraeus.io", "v1", "linstorclusters"), None, "linstorcluster")["spec"] == {}
    assert again.rv == store.rv


def test_watch_events_and_gone(store: KubeStore) -> None:
    rt = store.resolve("", "v1", "configmaps")
    start = store.rv
    store.create(rt, "default", cm("a", {"app": "x"}))
    store.create(rt, "default", cm("b"))
    evs = store.events_since(rt, "default", start, label_matcher("app=x"), lambda o: True)
    assert [(e.type, e.obj["metadata"]["name"]) for e in evs] == [("ADDED", "a")]
    small = KubeStore()
    small.events = type(small.events)(maxlen=3)
    ns = small.resolve("", "v1", "namespaces")
    for i in range(10):
        small.create(ns, None, {"metadata": {"name": f"n{i}"}})
    with pytest.raises(ApiError) as exc:
        small.events_since(ns, None, 1, lambda labels: True, lambda o: True)
    assert exc.value.code == 410


def test_malformed_patch_is_a_400(store: KubeStore) -> None:
    rt = store.resolve("", "v1", "configmaps")
    store.create(rt, "default", cm("a"))
    for ctype, body in (("application/merge-patch+json", b'"just a string"'),
                        ("application/json-patch+json", b'{"op": "add"}')):
        with pytest.raises(ApiError) as exc:
            store.patch(rt, "default", "a", ctype, body)
        assert exc.value.code == 400


def _deployment(replicas: int) -> dict:
    labels = {"app": "web"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


def test_a_controller_applying_its_state_again_writes_nothing_and_reverts_someone_elses_edit(store: KubeStore) -> None:
    """The lab's controllers apply their desired state at every pass (objects.apply), as an operator does."""
    import copy
    from types import SimpleNamespace

    from runbook_lib.lab.kubernetes import objects as ko

    lab = SimpleNamespace(kube=store)
    rt = store.resolve("apps", "v1", "deployments")
    ko.apply(lab, "apps", "v1", "deployments", _deployment(2))
    ko.apply(lab, "apps", "v1", "deployments", _deployment(2))
    stored = store.get(rt, "default", "web")
    assert stored["spec"] != _deployment(2)["spec"]  # the store filled in defaults: the two never compare equal
    rv, events = store.rv, len(store.events)
    for _ in range(3):
        ko.apply(lab, "apps", "v1", "deployments", _deployment(2))
    assert (store.rv, len(store.events)) == (rv, events)
    edited = copy.deepcopy(stored)
    edited["spec"]["replicas"] = 5
    store.replace(rt, "default", "web", edited)
    ko.apply(lab, "apps", "v1", "deployments", _deployment(2))
    assert store.get(rt, "default", "web")["spec"]["replicas"] == 2
    ko.apply(lab, "apps", "v1", "deployments", _deployment(3))
    assert store.get(rt, "default", "web")["spec"]["replicas"] == 3
