"""Upstream kubectl's protobuf request bodies (built-in kinds) against the lab: created as sent, dry runs write
nothing, and bodies the lab cannot take are refused with a message kubectl shows.

kubectl binaries come from `.ci/install-kubectl`; the tests skip with a reason when they are not installed.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client, config

from runbook_lib.lab import control
from runbook_lib.lab.kubernetes.protobuf import decode

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("RUNBOOK_KUBECTL_DIR") or ROOT / ".ci" / "tools")
KUBECTLS = {v: TOOLS / f"kubectl-{v}" for v in ("1.37", "1.34")}
VERSIONS = list(KUBECTLS)
#: kubectl create verbs that send a built-in kind as protobuf: (name suffix, arguments before the name's use)
CREATES = {
    "namespace": ["create", "namespace", "pb-ns-{v}"],
    "configmap": ["create", "configmap", "pb-cm-{v}", "--from-literal=a=1", "--from-literal=b=two words"],
    "deployment": ["create", "deployment", "pb-web-{v}", "--image=nginx:1.29", "--replicas=2", "--port=8080"],
    "job": ["create", "job", "pb-job-{v}", "--image=busybox:1.37", "--", "echo", "hi"],
    "secret": ["create", "secret", "generic", "pb-secret-{v}", "--from-literal=k=v"],
    "service": ["create", "service", "clusterip", "pb-svc-{v}", "--tcp=80:8080"],
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    d: Path = tmp_path_factory.mktemp("kubectl-protobuf-lab")
    info = control.start(None, d)
    yield d, info
    control.remove(d)


def kubectl(version: str, kubeconfig: str, home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    binary = KUBECTLS[version]
    if not binary.exists():
        pytest.skip(f"kubectl {version} not installed ({binary}); run .ci/install-kubectl")
    proc = subprocess.run([str(binary), "--kubeconfig", kubeconfig, *args], capture_output=True, text=True,
                          timeout=120, env={"HOME": str(home), "PATH": os.environ.get("PATH", "")})
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _args(verb: str, version: str) -> list[str]:
    return [a.replace("{v}", version.replace(".", "")) for a in CREATES[verb]]


def _client_json(version: str, kubeconfig: str, home: Path, verb: str) -> dict:
    """The object as kubectl itself writes it in JSON (Go's encoding of the typed struct it would send)."""
    args = _args(verb, version)
    cut = args.index("--") if "--" in args else len(args)
    out = kubectl(version, kubeconfig, home, *args[:cut], "--dry-run=client", "-o", "json", *args[cut:]).stdout
    return json.loads(out)


class _Capture(BaseHTTPRequestHandler):
    """Records kubectl's protobuf POST bodies and answers 201 with the object they decode to."""

    seen: list[tuple[str, bytes]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.headers["Content-Type"], body))
        out = json.dumps(decode.to_object(body)).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """A plain-HTTP endpoint kubectl posts to (kubectl create needs no discovery), and its kubeconfig."""
    d: Path = tmp_path_factory.mktemp("kubectl-capture")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    kubeconfig = d / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{srv.server_port}"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "default"}}],
        "users": [{"name": "u", "user": {}}]}))
    yield str(kubeconfig), d
    srv.shutdown()


@pytest.mark.parametrize("version", VERSIONS)
def test_kubectls_protobuf_bodies_decode_to_the_json_kubectl_writes(capture, version: str) -> None:
    kubeconfig, home = capture
    for verb in CREATES:
        _Capture.seen.clear()
        kubectl(version, kubeconfig, home, *_args(verb, version))
        [(ctype, body)] = _Capture.seen
        assert ctype == decode.PROTOBUF and body.startswith(decode.MAGIC)
        assert decode.to_object(body) == _client_json(version, kubeconfig, home, verb), verb


def _assert_within(sent: Any, stored: Any, path: str = "") -> None:
    """Every value kubectl sent is in the stored object (which adds API defaults and status)."""
    if isinstance(sent, dict):
        for k, v in sent.items():
            if v in ({}, None):
                continue
            assert isinstance(stored, dict) and k in stored, f"{path}.{k} missing"
            _assert_within(v, stored[k], f"{path}.{k}")
    elif isinstance(sent, list):
        assert isinstance(stored, list) and len(sent) == len(stored), path
        for i, (a, b) in enumerate(zip(sent, stored, strict=True)):
            _assert_within(a, b, f"{path}[{i}]")
    else:
        assert sent == stored, f"{path}: sent {sent!r}, stored {stored!r}"


def _http(lab) -> httpx.Client:
    """The lab's API over https with the admin client certificate (JSON only)."""
    home = lab[0]
    server = yaml.safe_load(Path(lab[1]["kubeconfig"]).read_text())["clusters"][0]["cluster"]["server"]
    ctx = ssl.create_default_context(cafile=str(home / "pki" / "ca.crt"))
    ctx.load_cert_chain(home / "pki" / "admin.crt", home / "pki" / "admin.key")
    return httpx.Client(base_url=server, verify=ctx, timeout=10, headers={"Accept": "application/json"})


def _read(http: httpx.Client, verb: str, name: str) -> dict:
    path = {"namespace": f"/api/v1/namespaces/{name}", "configmap": f"/api/v1/namespaces/default/configmaps/{name}",
            "deployment": f"/apis/apps/v1/namespaces/default/deployments/{name}",
            "job": f"/apis/batch/v1/namespaces/default/jobs/{name}"}[verb]
    resp = http.get(path)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json", resp.text
    return resp.json()


@pytest.mark.parametrize("version", VERSIONS)
def test_kubectl_create_and_auth_can_i_over_protobuf(lab, version: str) -> None:
    kubeconfig, home = lab[1]["kubeconfig"], lab[0]
    http = _http(lab)
    for verb in ("namespace", "configmap", "deployment", "job"):
        sent = _client_json(version, kubeconfig, home, verb)
        out = kubectl(version, kubeconfig, home, *_args(verb, version)).stdout
        assert out.strip().endswith(f"/{sent['metadata']['name']} created")
        stored = _read(http, verb, sent["metadata"]["name"])
        _assert_within({k: v for k, v in sent.items() if k != "status"}, stored)
    cm = _read(http, "configmap", f"pb-cm-{version.replace('.', '')}")
    assert cm["data"] == {"a": "1", "b": "two words"}
    dep = _read(http, "deployment", f"pb-web-{version.replace('.', '')}")
    assert dep["spec"]["replicas"] == 2 and dep["metadata"]["labels"] == {"app": f"pb-web-{version.replace('.', '')}"}
    assert [(c["name"], c["image"]) for c in dep["spec"]["template"]["spec"]["containers"]] == [
        ("nginx", "nginx:1.29")]
    assert kubectl(version, kubeconfig, home, "auth", "can-i", "create", "pods").stdout.strip() == "yes"


@pytest.mark.parametrize("version", VERSIONS)
def test_server_dry_run_over_protobuf_creates_nothing(lab, version: str) -> None:
    kubeconfig, home = lab[1]["kubeconfig"], lab[0]
    core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    v = version.replace(".", "")
    for args in (["namespace", f"dry-ns-{v}"], ["configmap", f"dry-cm-{v}", "--from-literal=a=1"],
                 ["deployment", f"dry-web-{v}", "--image=nginx:1.29"]):
        out = kubectl(version, kubeconfig, home, "create", *args, "--dry-run=server").stdout
        assert f"/{args[1]} created (server dry run)" in out
    assert f"dry-ns-{v}" not in {n.metadata.name for n in core.list_namespace().items}
    assert f"dry-cm-{v}" not in {c.metadata.name for c in core.list_namespaced_config_map("default").items}
    apps = client.AppsV1Api(config.new_client_from_config(config_file=kubeconfig))
    assert f"dry-web-{v}" not in {d.metadata.name for d in apps.list_namespaced_deployment("default").items}


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    unknown = decode.message_class("k8s.io.apimachinery.pkg.runtime.Unknown")(raw=raw)
    unknown.typeMeta.apiVersion, unknown.typeMeta.kind = api_version, kind
    return decode.MAGIC + unknown.SerializeToString()


def test_bodies_the_lab_cannot_take_are_refused_with_a_message_and_change_nothing(lab, tmp_path: Path) -> None:
    kubeconfig, home = lab[1]["kubeconfig"], lab[0]
    core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    before = sorted(n.metadata.name for n in core.list_namespace().items)
    ns = decode.message_class("k8s.io.api.core.v1.Namespace")()
    ns.metadata.name = "never-made"
    bodies = {  # name: (body, the status kubectl prints, words in the message)
        "garbage": (b"k8s\x00\x0a\x03abc", "BadRequest", "not a valid Kubernetes protobuf message"),
        "truncated": (_envelope("v1", "Namespace", ns.SerializeToString())[:-4], "BadRequest",
                      "not a valid Kubernetes protobuf message"),
        "crd-kind": (_envelope("example.com/v1", "Widget", b""), "UnsupportedMediaType",
                     "application/vnd.kubernetes.protobuf is not supported for kind Widget (example.com/v1)"),
    }
    for name, (body, reason, words) in bodies.items():
        f = tmp_path / f"{name}.bin"
        f.write_bytes(body)
        proc = kubectl(VERSIONS[0], kubeconfig, home, "create", "--raw", "/api/v1/namespaces", "-f", str(f),
                       check=False)
        assert proc.returncode != 0 and f"Error from server ({reason})" in proc.stderr and words in proc.stderr, name
    with _http(lab) as http:
        resp = http.post("/api/v1/namespaces/default/configmaps", content=b"\xd9\xd9\xf7\xa0",
                         headers={"Content-Type": "application/cbor"})
    assert resp.status_code == 415 and resp.json()["reason"] == "UnsupportedMediaType"
    assert "application/cbor" in resp.json()["message"] and "ConfigMap" in resp.json()["message"]
    assert sorted(n.metadata.name for n in core.list_namespace().items) == before
