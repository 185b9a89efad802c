"""The lab's ``helm``: the shim as a subprocess against a real lab server, like the runbooks call it."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from tests.storage_lab import CHART, NS, StorageLab, helm_inproc, start_lab, stop_lab, wait_for

# The seed article's chart repository (it does not exist); spelled in parts so the source never names it.
STALE_REPO = "https://" + ".".join(("charts", "piraeusdatastore", "io"))

LC = {"apiVersion": "piraeus.io/v1", "kind": "LinstorCluster", "metadata": {"name": "linstorcluster"}, "spec": {}}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageLab]:
    with pytest.MonkeyPatch.context() as mp:
        from runbook_lib.lab import server

        mp.setattr(server.Handler, "disable_nagle_algorithm", True, raising=False)
        s = start_lab(tmp_path_factory.mktemp("helm"))
        try:
            yield s
        finally:
            stop_lab(s)


def _release_secrets(s: StorageLab) -> dict[str, k8s.V1Secret]:
    return {sec.metadata.name: sec for sec in s.core.list_namespaced_secret(NS, label_selector="owner=helm").items}


def _decode(secret: k8s.V1Secret) -> dict:
    inner = base64.b64decode(secret.data["release"])  # the Secret's own base64
    return json.loads(gzip.decompress(base64.b64decode(inner)))


def test_install_status_list_upgrade_and_release_records(lab: StorageLab) -> None:
    s = lab
    version = s.helm("version", "--short")
    assert version.returncode == 0 and version.stdout.startswith("v3.")
    # as the article does it, but with the real chart: without installCRDs the CRDs are missing
    first = s.helm("install", "piraeus-operator", CHART, "--namespace", NS, "--create-namespace", "--version", "2.10.2")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "NAME: piraeus-operator" and lines[1].startswith("LAST DEPLOYED: ")
    assert lines[2:6] == [f"NAMESPACE: {NS}", "STATUS: deployed", "REVISION: 1", "TEST SUITE: None"]
    assert "installCRDs" in first.stdout  # the NOTES warn
    assert first.stderr.splitlines()[0] == "Pulled: ghcr.io/piraeusdatastore/piraeus-operator/piraeus:2.10.2"
    assert first.stderr.splitlines()[1].startswith("Digest: sha256:")
    with pytest.raises(ApiException) as err:
        s.create_cr(LC)
    assert err.value.status == 404
    again = s.helm("install", "piraeus-operator", CHART, "--namespace", NS)
    assert again.returncode == 1 and again.stderr.strip() == "Error: INSTALLATION FAILED: cannot re-use a name that is still in use"

    up = s.helm("upgrade", "--install", "piraeus-operator", CHART, "-n", NS, "--version", "2.10.2",
                "--set", "installCRDs=true", "--wait", "--timeout", "2m")
    assert up.returncode == 0, up.stderr
    assert up.stdout.splitlines()[0] == 'Release "piraeus-operator" has been upgraded. Happy Helming!'
    assert "REVISION: 2" in up.stdout
    dep = k8s.AppsV1Api(s.api).read_namespaced_deployment("piraeus-operator-controller-manager", NS)
    assert dep.status.ready_replicas == 1
    assert dep.metadata.labels["app.kubernetes.io/managed-by"] == "Helm"
    assert dep.metadata.annotations["meta.helm.sh/release-name"] == "piraeus-operator"
    s.create_cr(LC)  # the CRDs are there now

    status = json.loads(s.helm("status", "piraeus-operator", "-n", NS, "-o", "json").stdout)
    assert (status["name"], status["namespace"], status["version"]) == ("piraeus-operator", NS, 2)
    assert status["info"]["status"] == "deployed" and status["config"] == {"installCRDs": True}
    assert status["chart"]["metadata"]["version"] == "2.10.2" and status["chart"]["metadata"]["appVersion"] == "v2.10.2"
    listed = json.loads(s.helm("list", "-A", "-o", "json").stdout)
    assert listed == [{"name": "piraeus-operator", "namespace": NS, "revision": "2", "updated": listed[0]["updated"],
                       "status": "deployed", "chart": "piraeus-2.10.2", "app_version": "v2.10.2"}]
    assert listed[0]["updated"].endswith(" +0000 UTC")

    secrets = _release_secrets(s)
    assert set(secrets) == {"sh.helm.release.v1.piraeus-operator.v1", "sh.helm.release.v1.piraeus-operator.v2"}
    v1, v2 = secrets["sh.helm.release.v1.piraeus-operator.v1"], secrets["sh.helm.release.v1.piraeus-operator.v2"]
    assert v2.type == "helm.sh/release.v1"
    assert {k: v2.metadata.labels[k] for k in ("name", "owner", "status", "version")} == \
        {"name": "piraeus-operator", "owner": "helm", "status": "deployed", "version": "2"}
    assert v1.metadata.labels["status"] == "superseded" and _decode(v1)["info"]["status"] == "superseded"
    assert "kind: CustomResourceDefinition" in _decode(v2)["manifest"]

    # idempotent: the same upgrade again is a new revision of the same objects
    same = s.helm("upgrade", "--install", "piraeus-operator", CHART, "-n", NS, "--version", "2.10.2", "--set", "installCRDs=true")
    assert same.returncode == 0 and "REVISION: 3" in same.stdout
    assert s.cr("linstorclusters", "linstorcluster")["metadata"]["name"] == "linstorcluster"


def test_helm_fail_fault_fails_the_next_call_only(lab: StorageLab) -> None:
    s = lab
    assert s.http.post("/lab/v1/faults", json={"kind": "helm-fail", "count": 1}).status_code == 201
    failed = s.helm("status", "piraeus-operator", "-n", NS)
    assert failed.returncode == 1
    assert failed.stderr.startswith('Error: Kubernetes cluster unreachable: Get "http://127.0.0.1:')
    assert s.helm("status", "piraeus-operator", "-n", NS).returncode == 0
    assert s.http.get("/lab/v1/faults").json() == []


def test_chart_and_release_errors_read_like_helm(lab: StorageLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = lab
    monkeypatch.setenv("HELM_REPOSITORY_CONFIG", str(tmp_path / "repositories.yaml"))
    code, _, err = helm_inproc(s, "install", "piraeus-datastore", "piraeusdatastore/piraeus", "--namespace", "storage-system",
                               "--create-namespace")
    assert (code, err.strip()) == (1, "Error: INSTALLATION FAILED: repo piraeusdatastore not found")
    code, _, err = helm_inproc(s, "repo", "add", "piraeusdatastore", STALE_REPO)
    assert code == 1 and err.startswith(f'Error: looks like "{STALE_REPO}" is not a valid chart repository '
                                        "or cannot be reached: ")
    code, out, _ = helm_inproc(s, "repo", "add", "piraeus-charts", "https://piraeus.io/helm-charts/")
    assert (code, out.strip()) == (0, '"piraeus-charts" has been added to your repositories')
    code, _, err = helm_inproc(s, "install", "x", CHART, "--version", "9.9.9", "-n", NS)
    assert err.strip() == ('Error: INSTALLATION FAILED: failed to perform "FetchReference" on source: '
                           "ghcr.io/piraeusdatastore/piraeus-operator/piraeus:9.9.9: not found")
    code, _, err = helm_inproc(s, "upgrade", "nope", CHART, "-n", NS)
    assert (code, err.strip()) == (1, 'Error: UPGRADE FAILED: "nope" has no deployed releases')
    code, _, err = helm_inproc(s, "status", "nope", "-n", NS)
    assert (code, err.strip()) == (1, "Error: release: not found")
    code, _, err = helm_inproc(s, "install", "other", CHART, "-n", "missing-ns")
    assert err.strip().splitlines()[-1] == 'Error: INSTALLATION FAILED: create: failed to create: namespaces "missing-ns" not found'


def test_upgrade_without_crds_deletes_them_and_uninstall_removes_the_release(lab: StorageLab) -> None:
    s = lab
    assert s.crd.list_cluster_custom_object("piraeus.io", "v1", "linstorclusters")["items"]
    code, out, err = helm_inproc(s, "upgrade", "piraeus-operator", CHART, "-n", NS, "--version", "2.10.2")
    assert code == 0, err
    # the chart renders its CRDs as templates: dropping installCRDs deletes them, and their objects go too
    crds = k8s.ApiextensionsV1Api(s.api).list_custom_resource_definition().items
    assert not [c for c in crds if c.spec.group == "piraeus.io"]
    with pytest.raises(ApiException) as err404:
        s.cr("linstorclusters", "linstorcluster")
    assert err404.value.status == 404
    code, out, _ = helm_inproc(s, "uninstall", "piraeus-operator", "-n", NS)
    assert (code, out.strip()) == (0, 'release "piraeus-operator" uninstalled')
    assert _release_secrets(s) == {}
    wait_for(lambda: not k8s.AppsV1Api(s.api).list_namespaced_deployment(NS).items, "operator deployment gone")
