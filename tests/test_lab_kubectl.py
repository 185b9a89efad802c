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

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[1]
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

