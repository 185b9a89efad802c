"""The lab's Kubernetes API through the official ``kubernetes`` client over real HTTP."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from runbook_lib.lab import control


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    d: Path = tmp_path_factory.mktemp("kube-lab")
    info = control.start(None, d)
    yield d, info
    control.remove(d)


@pytest.fixture(scope="module")
def api(lab):
    return config.new_client_from_config(config_file=lab[1]["kubeconfig"])


def test_nodes_mirror_talos_nodes(api) -> None:
    nodes = client.CoreV1Api(api).list_node().items
    assert sorted(n.metadata.name for n in nodes) == ["lab-cp-1", "lab-cp-2", "lab-cp-3"]
    ready = {n.metadata.name: next(c.status for c in n.status.conditions if c.type == "Ready") for n in nodes}
    assert set(ready.values()) == {"True"}
    cp = client.CoreV1Api(api).list_node(label_selector="node-role.kubernetes.io/control-plane").items
    assert len(cp) == 3


def test_404_409_and_conflict_statuses(api) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("nope", "default")
    assert exc.value.status == 404
    body = {"metadata": {"name": "cm1", "labels": {"app": "x"}}, "data": {"a": "1"}}
    first = core.create_namespaced_config_map("default", body)
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", body)
    assert exc.value.status == 409 and "AlreadyExists" in exc.value.body
    first.data = {"a": "2"}
    core.replace_namespaced_config_map("cm1", "default", first)
    first.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("cm1", "default", first)
    assert exc.value.status == 409 and "Conflict" in exc.value.body
    patched = core.patch_namespaced_config_map("cm1", "default", {"data": {"b": "2"}})
    assert patched.data == {"a": "2", "b": "2"}
    assert [c.metadata.name for c in core.list_namespaced_config_map("default", label_selector="app=x").items] == ["cm1"]
    core.delete_namespaced_config_map("cm1", "default")
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("cm1", "default")


def test_watch_streams_changes(api) -> None:
    core = client.CoreV1Api(api)
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    seen: list[tuple[str, str]] = []

    def consume() -> None:
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5,
                           label_selector="watched=yes"):
            seen.append((ev["type"], ev["object"].metadata.name))
            if len(seen) == 2:
                w.stop()

    t = threading.Thread(target=consume)
    t.start()
    core.create_namespaced_config_map("default", {"metadata": {"name": "w1", "labels": {"watched": "yes"}}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "other"}})
    core.delete_namespaced_config_map("w1", "default")
    t.join(10)
    assert seen == [("ADDED", "w1"), ("DELETED", "w1")]


def test_api_errors_fault_answers_500_then_recovers(lab, api) -> None:
    d, _ = lab
    control.fault_add("api-errors", count=2, d=d)
    core = client.CoreV1Api(api)
    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            core.list_namespace()
        assert exc.value.status == 500
    assert core.list_namespace().items
    assert control.fault_list(d) == []


def test_unauthenticated_requests_are_refused(lab) -> None:
    import httpx

    assert httpx.get(lab[1]["url"] + "/api/v1/nodes").status_code == 401


def test_state_survives_restart(lab, api) -> None:
    d, _ = lab
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "keep"}, "data": {"k": "v"}})
    control.stop(d)
    info = control.start(None, d)
    again = config.new_client_from_config(config_file=info["kubeconfig"])
    assert client.CoreV1Api(again).read_namespaced_config_map("keep", "default").data == {"k": "v"}
