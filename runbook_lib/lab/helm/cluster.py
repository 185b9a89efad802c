"""How the lab's helm reaches the cluster: the kubeconfig's server and credentials, one HTTP request at a time."""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from .args import HelmError


class Response:
    """The bits of an HTTP response helm looks at."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status_code = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.content = body

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content or b"null")


def kubeconfig_tls(cluster: dict, user: dict) -> ssl.SSLContext:
    """TLS as helm sets it up from a kubeconfig: the cluster's CA, and the user's client certificate if any."""
    ca = cluster.get("certificate-authority-data")
    ctx = ssl.create_default_context(cadata=base64.b64decode(ca).decode() if ca else None)
    if not ca and cluster.get("certificate-authority"):
        ctx.load_verify_locations(cluster["certificate-authority"])
    if cluster.get("insecure-skip-tls-verify"):
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    crt, key = user.get("client-certificate-data"), user.get("client-key-data")
    if crt and key:
        # ssl loads a certificate chain from files only: a private temporary directory, removed at once.
        with tempfile.TemporaryDirectory() as tmp:
            paths = [Path(tmp) / "tls.crt", Path(tmp) / "tls.key"]
            for p, data in zip(paths, (crt, key), strict=True):
                p.write_bytes(base64.b64decode(data))
            ctx.load_cert_chain(*paths)
    elif user.get("client-certificate") and user.get("client-key"):
        ctx.load_cert_chain(user["client-certificate"], user["client-key"])
    return ctx


class Cluster:
    def __init__(self, kubeconfig: str | None) -> None:
        path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        try:
            cfg = yaml.safe_load(Path(path).read_text())
        except OSError:
            raise HelmError("Kubernetes cluster unreachable: Get \"http://localhost:8080/version\": dial tcp "
                            "127.0.0.1:8080: connect: connection refused") from None
        ctx_name = cfg.get("current-context")
        ctx = next((c["context"] for c in cfg.get("contexts", []) if c["name"] == ctx_name), {})
        cluster = next((c["cluster"] for c in cfg.get("clusters", []) if c["name"] == ctx.get("cluster")), {})
        user = next((u["user"] for u in cfg.get("users", []) if u["name"] == ctx.get("user")), {})
        self.server = cluster.get("server", "")
        self.kubeconfig = Path(path)
        self.token = user.get("token", "")
        self.tls = kubeconfig_tls(cluster, user) if self.server.startswith("https://") else None
        self._conn: http.client.HTTPConnection | None = None

    def unreachable(self) -> HelmError:
        host = self.server.split("://", 1)[-1]
        return HelmError(f'Kubernetes cluster unreachable: Get "{self.server}/version": dial tcp {host}: connect: connection refused')

    def take_fault(self) -> bool:
        try:
            resp = self.request("POST", "/lab/v1/helm/fault")
            return bool(resp.json().get("fail"))
        except (HelmError, ValueError):
            return False

    def request(self, method: str, path: str, body: Any = None, params: dict | None = None) -> Response:
        """One HTTP request to the API server (kept-alive connection, bearer token)."""
        url = urllib.parse.urlsplit(self.server)
        if params:
            path = f"{path}?{urllib.parse.urlencode(params)}"
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                if self._conn is None:
                    if url.scheme == "https":
                        self._conn = http.client.HTTPSConnection(url.hostname or "127.0.0.1", url.port, timeout=30,
                                                                 context=self.tls)
                    else:
                        self._conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
                self._conn.request(method, path, body=data, headers=headers)
                resp = self._conn.getresponse()
                return Response(resp.status, dict(resp.getheaders()), resp.read())
            except (OSError, http.client.HTTPException):
                self._conn = None
                if attempt == 2:
                    raise self.unreachable() from None
        raise self.unreachable()


    def path(self, obj: dict, namespace: str, *, named: bool = True) -> str:
        key = (obj["apiVersion"], obj["kind"])
        if key not in RESOURCES:
            raise HelmError(f'resource mapping not found for name: "{obj["metadata"]["name"]}" namespace: "{namespace}" from "": '
                            f'no matches for kind "{obj["kind"]}" in version "{obj["apiVersion"]}"')
        prefix, plural, namespaced = RESOURCES[key]
        base = f"{prefix}/namespaces/{namespace}/{plural}" if namespaced else f"{prefix}/{plural}"
        return f"{base}/{obj['metadata']['name']}" if named else base


# apiVersion/kind -> (API prefix, plural, namespaced)
RESOURCES = {
    ("v1", "Namespace"): ("/api/v1", "namespaces", False),
    ("v1", "ServiceAccount"): ("/api/v1", "serviceaccounts", True),
    ("v1", "ConfigMap"): ("/api/v1", "configmaps", True),
    ("v1", "Secret"): ("/api/v1", "secrets", True),
    ("v1", "Service"): ("/api/v1", "services", True),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments", True),
    ("apps/v1", "DaemonSet"): ("/apis/apps/v1", "daemonsets", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    ("rbac.authorization.k8s.io/v1", "Role"): ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
}
