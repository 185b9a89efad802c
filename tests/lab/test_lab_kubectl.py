"""The lab as operators' own tools see it: https with a client certificate, and upstream kubectl.

kubectl binaries come from `.ci/install-kubectl` (newest minor and a year older); the kubectl
tests skip with a reason when they are not installed.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from kubernetes import client, config

from runbook_lib import cli
from runbook_lib.lab import control, tls

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("RUNBOOK_KUBECTL_DIR") or ROOT / ".ci" / "tools")
KUBECTLS = {v: TOOLS / f"kubectl-{v}" for v in ("1.37", "1.34")}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    d: Path = tmp_path_factory.mktemp("kubectl-lab")
    info = control.start(None, d)
    yield d, info
    control.remove(d)


def _kubeconfig(lab) -> dict:
    return yaml.safe_load(Path(lab[1]["kubeconfig"]).read_text())


def _tls_client(lab, *, with_cert: bool) -> httpx.Client:
    d = lab[0]
    ctx = ssl.create_default_context(cafile=str(d / "pki" / "ca.crt"))
    if with_cert:
        ctx.load_cert_chain(d / "pki" / "admin.crt", d / "pki" / "admin.key")
    server = _kubeconfig(lab)["clusters"][0]["cluster"]["server"]
    return httpx.Client(base_url=server, verify=ctx, timeout=10)


def test_kubeconfig_is_https_with_the_cluster_ca_and_an_admin_client_certificate(lab) -> None:
    cfg = _kubeconfig(lab)
    cluster, user = cfg["clusters"][0]["cluster"], cfg["users"][0]["user"]
    assert cluster["server"].startswith("https://127.0.0.1:")
    assert set(user) == {"client-certificate-data", "client-key-data"}  # as `talosctl kubeconfig` writes it
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    ca = x509.load_pem_x509_certificate(base64.b64decode(cluster["certificate-authority-data"]))
    assert cert.issuer == ca.subject
    assert "O=system:masters" in cert.subject.rfc4514_string()
    assert oct(Path(lab[1]["kubeconfig"]).stat().st_mode & 0o777) == "0o600"
    assert oct((lab[0] / "pki" / "ca.key").stat().st_mode & 0o777) == "0o600"


def test_the_kubernetes_client_reaches_the_api_over_tls(lab) -> None:
    api = config.new_client_from_config(config_file=lab[1]["kubeconfig"])
    assert api.configuration.host.startswith("https://")
    names = [n.metadata.name for n in client.CoreV1Api(api).list_node().items]
    assert names == ["lab-cp-1", "lab-cp-2", "lab-cp-3"]


def test_tls_without_a_client_certificate_or_token_is_unauthorized(lab) -> None:
    with _tls_client(lab, with_cert=False) as http:
        resp = http.get("/api/v1/namespaces")
    assert resp.status_code == 401 and resp.json()["reason"] == "Unauthorized"
    with _tls_client(lab, with_cert=True) as http:
        assert http.get("/api/v1/namespaces").status_code == 200


def test_a_certificate_from_another_ca_is_refused_in_the_handshake(lab, tmp_path: Path) -> None:
    other = tls.ensure_pki(tmp_path)
    ctx = ssl.create_default_context(cafile=str(lab[0] / "pki" / "ca.crt"))
    ctx.load_cert_chain(other.path("admin.crt"), other.path("admin.key"))
    server = _kubeconfig(lab)["clusters"][0]["cluster"]["server"]
    with pytest.raises(httpx.HTTPError), httpx.Client(base_url=server, verify=ctx, timeout=10) as http:
        http.get("/api/v1/namespaces")


def test_the_pki_survives_a_restart_so_an_exported_kubeconfig_keeps_working(tmp_path: Path) -> None:
    first = tls.ensure_pki(tmp_path).pem("ca.crt")
    assert tls.ensure_pki(tmp_path).pem("ca.crt") == first


def test_runbook_lab_kubeconfig_prints_the_path_or_writes_a_copy(lab, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("RUNBOOK_LAB_DIR", str(lab[0]))
    assert cli.main(["lab", "kubeconfig"]) == 0
    assert capsys.readouterr().out.strip() == lab[1]["kubeconfig"]
    out = tmp_path / "kube" / "lab.yaml"
    assert cli.main(["lab", "kubeconfig", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text() == Path(lab[1]["kubeconfig"]).read_text()
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_the_helm_shim_uses_the_client_certificate(lab) -> None:
    proc = subprocess.run([lab[1]["helm"], "list", "-A", "--kubeconfig", lab[1]["kubeconfig"]],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("NAME")


def kubectl(version: str, lab, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    binary = KUBECTLS[version]
    if not binary.exists():
        pytest.skip(f"kubectl {version} not installed ({binary}); run .ci/install-kubectl")
    proc = subprocess.run([str(binary), "--kubeconfig", lab[1]["kubeconfig"], *args], capture_output=True,
                          text=True, timeout=120, env={"HOME": str(lab[0]), "PATH": os.environ.get("PATH", "")})
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.parametrize("version", list(KUBECTLS))
def test_kubectl_authenticates_with_the_client_certificate(lab, version: str) -> None:
    out = kubectl(version, lab, "get", "--raw", "/api/v1/namespaces/default").stdout
    assert json.loads(out)["metadata"]["name"] == "default"
    who = kubectl(version, lab, "version", "-o", "json").stdout
    assert json.loads(who)["serverVersion"]["gitVersion"].startswith("v1.")



VERSIONS = list(KUBECTLS)
CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wg]}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: ".status.conditions[?(@.type=='Ready')].status"}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: %(name)s, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: %(name)s}}
  template:
    metadata: {labels: {app: %(name)s}}
    spec:
      containers: [{name: web, image: "nginx:1.29"%(extra)s}]
"""


def _apply(version: str, lab, text: str, *args: str, check: bool = True, verb: str = "apply") -> subprocess.CompletedProcess:
    binary = KUBECTLS[version]
    if not binary.exists():
        pytest.skip(f"kubectl {version} not installed ({binary}); run .ci/install-kubectl")
    proc = subprocess.run([str(binary), "--kubeconfig", lab[1]["kubeconfig"], verb, "-f", "-", *args], input=text,
                          capture_output=True, text=True, timeout=120,
                          env={"HOME": str(lab[0]), "PATH": os.environ.get("PATH", "")})
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


@pytest.mark.parametrize("version", VERSIONS)
def test_get_prints_the_servers_columns(lab, version: str) -> None:
    nodes = _rows(kubectl(version, lab, "get", "nodes", "-o", "wide").stdout)
    assert nodes[0][:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"] and "INTERNAL-IP" in nodes[0]
    assert nodes[1][:3] == ["lab-cp-1", "Ready", "control-plane"] and "10.5.0.2" in nodes[1]
    ns = _rows(kubectl(version, lab, "get", "namespaces").stdout)
    assert ns[0] == ["NAME", "STATUS", "AGE"] and ns[1][:2] == ["default", "Active"]


def test_default_storage_class_is_marked(lab) -> None:
    version = VERSIONS[0]
    _apply(version, lab, "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: marked\n  annotations:\n"
                         "    storageclass.kubernetes.io/is-default-class: \"true\"\nprovisioner: linstor.csi.linbit.com\n")
    out = _rows(kubectl(version, lab, "get", "storageclass", "marked").stdout)
    assert out[0][:3] == ["NAME", "PROVISIONER", "RECLAIMPOLICY"]
    assert out[1][:4] == ["marked", "(default)", "linstor.csi.linbit.com", "Delete"]


def test_custom_resources_print_their_crds_printer_columns_once_established(lab) -> None:
    version = VERSIONS[0]
    _apply(version, lab, CRD)
    kubectl(version, lab, "wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=30s")
    _apply(version, lab, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\nspec: {size: 3}\n")
    api = config.new_client_from_config(config_file=lab[1]["kubeconfig"])
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        "example.com", "v1", "default", "widgets", "w1", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    out = _rows(kubectl(version, lab, "get", "wg").stdout)
    assert out[0] == ["NAME", "SIZE", "READY", "AGE"]
    assert out[1][:3] == ["w1", "3", "True"]


@pytest.mark.parametrize("version", VERSIONS)
def test_apply_validates_against_the_servers_openapi(lab, version: str) -> None:
    name = f"valid-{version.replace('.', '')}"
    _apply(version, lab, DEPLOYMENT % {"name": name, "extra": ""})
    _apply(version, lab, DEPLOYMENT % {"name": name, "extra": ", imagePullPolicy: Always"}, "--server-side")
    bad = _apply(version, lab, DEPLOYMENT % {"name": name + "-bad", "extra": ", imagePullPolicyy: Always"}, check=False)
    assert bad.returncode != 0
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolicyy"' in bad.stderr
    with pytest.raises(client.ApiException):
        client.AppsV1Api(config.new_client_from_config(config_file=lab[1]["kubeconfig"])).read_namespaced_deployment(
            name + "-bad", "default")
    explain = kubectl(version, lab, "explain", "deployment.spec.strategy").stdout
    assert "FIELD: strategy <DeploymentStrategy>" in explain


@pytest.mark.parametrize("version", VERSIONS)
def test_wait_and_rollout_status_return_when_the_condition_holds(lab, version: str) -> None:
    name = f"roll-{version.replace('.', '')}"
    _apply(version, lab, DEPLOYMENT % {"name": name, "extra": ""})
    out = kubectl(version, lab, "rollout", "status", f"deployment/{name}", "--timeout=60s").stdout
    assert f'deployment "{name}" successfully rolled out' in out
    out = kubectl(version, lab, "wait", "--for=condition=Available", f"deployment/{name}", "--timeout=60s").stdout
    assert "condition met" in out
    kubectl(version, lab, "wait", "--for=condition=Ready", "pod", "-l", f"app={name}", "--timeout=60s")


def test_server_dry_run_changes_nothing(lab) -> None:
    version = VERSIONS[0]
    _apply(version, lab, DEPLOYMENT % {"name": "dry", "extra": ""})
    kubectl(version, lab, "rollout", "status", "deployment/dry", "--timeout=60s")
    api = config.new_client_from_config(config_file=lab[1]["kubeconfig"])
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    before = apps.read_namespaced_deployment("dry", "default").metadata.resource_version
    pods = sorted(p.metadata.name for p in core.list_namespaced_pod("default", label_selector="app=dry").items)
    node = core.list_namespaced_pod("default", label_selector="app=dry").items[0].spec.node_name
    out = _apply(version, lab, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dry-cm, namespace: default}\n",
                 "--dry-run=server", verb="create").stdout
    assert "configmap/dry-cm created (server dry run)" in out
    with pytest.raises(client.ApiException):
        core.read_namespaced_config_map("dry-cm", "default")
    out = kubectl(version, lab, "label", "deployment", "dry", "x=y", "--dry-run=server").stdout
    assert "(server dry run)" in out
    out = kubectl(version, lab, "delete", "deployment", "dry", "--dry-run=server").stdout
    assert "(server dry run)" in out
    out = kubectl(version, lab, "drain", node, "--dry-run=server", "--ignore-daemonsets", "--delete-emptydir-data").stdout
    assert "drained (server dry run)" in out
    after = apps.read_namespaced_deployment("dry", "default")
    assert after.metadata.resource_version == before and "x" not in (after.metadata.labels or {})
    assert sorted(p.metadata.name for p in core.list_namespaced_pod("default", label_selector="app=dry").items) == pods
    assert not core.read_node(node).spec.unschedulable


def test_scale_and_eviction_subresources(lab) -> None:
    version = VERSIONS[0]
    _apply(version, lab, DEPLOYMENT % {"name": "scaled", "extra": ""})
    kubectl(version, lab, "scale", "deployment/scaled", "--replicas=2")
    kubectl(version, lab, "rollout", "status", "deployment/scaled", "--timeout=60s")
    api = config.new_client_from_config(config_file=lab[1]["kubeconfig"])
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod("default", label_selector="app=scaled").items
    assert len(pods) == 2
    victim = pods[0].metadata.name
    core.create_namespaced_pod_eviction(victim, "default", {"metadata": {"name": victim, "namespace": "default"}})
    assert victim not in {p.metadata.name for p in core.list_namespaced_pod("default", label_selector="app=scaled").items}


def test_lists_page_with_limit_and_continue_and_bad_field_selectors_are_400(lab) -> None:
    api = config.new_client_from_config(config_file=lab[1]["kubeconfig"])
    core = client.CoreV1Api(api)
    first = core.list_namespace(limit=2)
    assert len(first.items) == 2 and first.metadata._continue and first.metadata.remaining_item_count >= 2
    rest = core.list_namespace(limit=100, _continue=first.metadata._continue)
    names = [n.metadata.name for n in first.items + rest.items]
    assert names == sorted(n.metadata.name for n in core.list_namespace().items)
    with pytest.raises(client.ApiException) as exc:
        core.list_pod_for_all_namespaces(field_selector="spec.color=blue")
    assert exc.value.status == 400 and "field label not supported: spec.color" in exc.value.body
    out = kubectl(VERSIONS[0], lab, "get", "ns", "--chunk-size=1", "-o", "name").stdout.split()
    assert out == [f"namespace/{n}" for n in names]


def test_version_health_and_self_subject_review(lab) -> None:
    server = _kubeconfig(lab)["clusters"][0]["cluster"]["server"]
    ctx = ssl.create_default_context(cafile=str(lab[0] / "pki" / "ca.crt"))
    with httpx.Client(base_url=server, verify=ctx, timeout=10) as anonymous:  # public, as on a real API server
        v = anonymous.get("/version/").json()
        assert {"major", "minor", "gitVersion", "gitCommit", "buildDate", "goVersion", "platform"} <= set(v)
        for path in ("/healthz", "/livez", "/readyz", "/readyz/etcd"):
            assert anonymous.get(path).text == "ok"
        assert "[+]etcd ok" in anonymous.get("/readyz", params={"verbose": ""}).text
        assert anonymous.get("/api/v1/pods").status_code == 401
    api = config.new_client_from_config(config_file=lab[1]["kubeconfig"])
    review = client.AuthorizationV1Api(api).create_self_subject_access_review(
        {"spec": {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}})
    assert review.status.allowed is True


def test_nodes_report_resources_pressure_and_a_lease(lab) -> None:
    api = config.new_client_from_config(config_file=lab[1]["kubeconfig"])
    node = client.CoreV1Api(api).read_node("lab-cp-1")
    assert node.status.capacity["cpu"] == "4" and node.status.allocatable["pods"] == "110"
    assert {c.type: c.status for c in node.status.conditions} == {
        "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False", "Ready": "True"}
    lease = client.CoordinationV1Api(api).read_namespaced_lease("lab-cp-1", "kube-node-lease")
    assert lease.spec.holder_identity == "lab-cp-1"
    described = kubectl(VERSIONS[0], lab, "describe", "node", "lab-cp-1").stdout
    assert "-9223372036854775808" not in described and "cpu                0 (0%)" in described


def test_created_objects_carry_api_defaults(lab) -> None:
    api = config.new_client_from_config(config_file=lab[1]["kubeconfig"])
    pod = client.CoreV1Api(api).create_namespaced_pod("default", {
        "metadata": {"name": "defaulted"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    c = pod.spec.containers[0]
    assert (c.image_pull_policy, c.termination_message_path) == ("Always", "/dev/termination-log")
    assert {t.key for t in pod.spec.tolerations} == {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
    assert pod.spec.service_account_name == "default" and pod.spec.restart_policy == "Always"


def test_server_side_apply_records_managers_and_refuses_conflicts(lab) -> None:
    version = VERSIONS[0]
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owned, namespace: default}\ndata: {a: \"%s\"}\n"
    _apply(version, lab, cm % "1", "--server-side", "--field-manager=first")
    refused = _apply(version, lab, cm % "2", "--server-side", "--field-manager=second", check=False)
    assert refused.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "first" using v1: .data.a' in refused.stderr
    _apply(version, lab, cm % "2", "--server-side", "--field-manager=second", "--force-conflicts")
    api = config.new_client_from_config(config_file=lab[1]["kubeconfig"])
    obj = client.CoreV1Api(api).read_namespaced_config_map("owned", "default")
    assert obj.data == {"a": "2"}
    managers = {(m.manager, m.operation): m.fields_v1 for m in obj.metadata.managed_fields}
    assert managers == {("second", "Apply"): {"f:data": {"f:a": {}}}}
