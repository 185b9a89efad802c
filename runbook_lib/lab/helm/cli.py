"""``helm`` for the lab: Helm 3's commands the runbooks use, over the lab's Kubernetes API.

Runs as the lab's ``bin/helm`` shim (``python -m runbook_lib.lab.helm ...``) and talks to the
API server named by ``--kubeconfig``/``$KUBECONFIG`` with its credentials (client certificate or bearer
token, over https or http), like helm does.

- ``install``/``upgrade [--install]`` RELEASE CHART ``-n NS [--create-namespace] [--version V]
  [--set k=v] [--set-string k=v] [-f values.yaml] [--wait] [--timeout 5m0s] [--dry-run]``, ``status``,
  ``list``, ``uninstall``, ``version``, ``repo add|update|list``, ``show chart|values``.
- One chart exists in the lab's registry: ``oci://ghcr.io/piraeusdatastore/piraeus-operator/piraeus``
  (versions in :data:`piraeus.CHART_VERSIONS`); pulling it prints ``Pulled:``/``Digest:`` on
  stderr. Other OCI references are not found (``failed to perform "FetchReference" on
  source: ...: not found``); ``repo/chart`` needs ``helm repo add`` first (``repo X not
  found``), and a repository that does not exist cannot be added (helm's ``looks like "URL"
  is not a valid chart repository or cannot be reached``).
- Releases are stored like Helm 3's Secret driver: Secret ``sh.helm.release.v1.<name>.v<N>``,
  type ``helm.sh/release.v1``, labels ``name``/``owner=helm``/``status``/``version``, data
  ``release`` = base64(gzip(JSON)); ``upgrade`` supersedes the previous revision and deletes
  objects the new manifest no longer has (CRDs too: this chart renders them as templates).
- Fault ``helm-fail``: each call that would reach the cluster consumes one use and exits 1
  with ``Error: ... Kubernetes cluster unreachable`` (``helm version`` does not count).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import http.client
import json
import os
import ssl
import sys
import tempfile
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ..storage import chart as piraeus
from . import charts

HELM_VERSION = "v3.19.0"
HELM_COMMIT = "3d8990f0836691f0229297773f3524598f46bda6"
GO_VERSION = "go1.24.7"
OCI_PREFIX = "oci://"
KNOWN_REPOS = {"https://piraeus.io/helm-charts": ("linstor-cluster", "snapshot-controller", "piraeus-ha-controller",
                                                  "linstor-scheduler", "linstor-affinity-controller")}

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
ORDER = ["CustomResourceDefinition", "Namespace", "ServiceAccount", "Secret", "ConfigMap", "ClusterRole",
         "ClusterRoleBinding", "Role", "RoleBinding", "Service", "DaemonSet", "Deployment"]


class HelmError(Exception):
    """Printed as ``Error: <message>`` with exit code 1, like helm."""


# ----------------------------------------------------------------------------- arguments


class Args:
    def __init__(self, argv: list[str]) -> None:
        self.positional: list[str] = []
        self.flags: dict[str, list[str]] = {}
        takes_value = {"--kubeconfig", "--namespace", "-n", "--version", "--set", "--set-string", "--values", "-f",
                       "--timeout", "--output", "-o", "--kube-context", "--description", "--repository-config"}
        aliases = {"-n": "--namespace", "-f": "--values", "-o": "--output", "-i": "--install", "-A": "--all-namespaces",
                   "-a": "--all"}
        i = 0
        while i < len(argv):
            arg = argv[i]
            if arg.startswith("-") and arg != "-":
                name, eq, value = arg.partition("=")
                name = aliases.get(name, name)
                if eq:
                    self.flags.setdefault(name, []).append(value)
                elif arg in takes_value or name in takes_value:
                    if i + 1 >= len(argv):
                        raise HelmError(f"flag needs an argument: {arg}")
                    self.flags.setdefault(name, []).append(argv[i + 1])
                    i += 1
                else:
                    self.flags.setdefault(name, []).append("true")
            else:
                self.positional.append(arg)
            i += 1

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.flags.get(name)
        return values[-1] if values else default

    def has(self, name: str) -> bool:
        return self.get(name, "false") not in ("false", None)


def _set_path(values: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    cur = values
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value


def _parse_set(raw: str, *, as_string: bool) -> list[tuple[str, Any]]:
    out = []
    for item in raw.split(","):
        if "=" not in item:
            raise HelmError(f'failed parsing --set data: key "{item}" has no value')
        key, value = item.split("=", 1)
        if not as_string:
            parsed: Any = value
            if value in ("true", "false"):
                parsed = value == "true"
            elif value.isdigit():
                parsed = int(value)
            elif value == "null":
                parsed = None
            out.append((key, parsed))
        else:
            out.append((key, value))
    return out


def _user_values(args: Args) -> dict:
    values: dict = {}
    for path in args.flags.get("--values", []):
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except OSError:
            raise HelmError(f"open {path}: no such file or directory") from None
        values.update(data)
    for raw in args.flags.get("--set", []):
        for k, v in _parse_set(raw, as_string=False):
            _set_path(values, k, v)
    for raw in args.flags.get("--set-string", []):
        for k, v in _parse_set(raw, as_string=True):
            _set_path(values, k, v)
    return values


def _duration(text: str) -> float:
    total, num = 0.0, ""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            num += ch
            i += 1
            continue
        unit = "ms" if text[i:i + 2] == "ms" else ch
        if unit not in units or not num:
            raise HelmError(f'invalid argument "{text}" for "--timeout" flag: time: invalid duration "{text}"')
        total += float(num) * units[unit]
        num = ""
        i += len(unit)
    if num:
        raise HelmError(f'invalid argument "{text}" for "--timeout" flag: time: missing unit in duration "{text}"')
    return total


# ----------------------------------------------------------------------------- cluster access


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


# ----------------------------------------------------------------------------- releases


def _now() -> datetime:
    return datetime.now(UTC)


def _go_time(t: datetime) -> str:
    """Go's ``time.Time`` JSON form (RFC 3339 with nanoseconds)."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def _list_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S.%f") + "000 +0000 UTC"


def _ansic(t: datetime) -> str:
    return t.strftime("%a %b ") + f"{t.day:>2}" + t.strftime(" %H:%M:%S %Y")


def _encode_release(rel: dict) -> str:
    inner = base64.b64encode(gzip.compress(json.dumps(rel).encode(), mtime=0)).decode()
    return base64.b64encode(inner.encode()).decode()


def _decode_release(data: str) -> dict:
    inner = base64.b64decode(data).decode()
    raw = base64.b64decode(inner)
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return json.loads(raw)


def load_releases(cluster: Cluster, namespace: str | None, name: str | None = None) -> list[dict]:
    selector = "owner=helm" + (f",name={name}" if name else "")
    path = f"/api/v1/namespaces/{namespace}/secrets" if namespace else "/api/v1/secrets"
    resp = cluster.request("GET", path, params={"labelSelector": selector})
    if resp.status_code == 404:
        return []
    if resp.status_code >= 400:
        raise HelmError(f"list: failed to list: {resp.json().get('message', resp.text)}")
    out = []
    for item in resp.json().get("items", []):
        if item.get("type") != "helm.sh/release.v1":
            continue
        out.append(_decode_release(item["data"]["release"]))
    return sorted(out, key=lambda r: (r["namespace"], r["name"], r["version"]))


def save_release(cluster: Cluster, rel: dict, *, create: bool) -> None:
    name = f"sh.helm.release.v1.{rel['name']}.v{rel['version']}"
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
              "metadata": {"name": name, "namespace": rel["namespace"],
                           "labels": {"name": rel["name"], "owner": "helm", "status": rel["info"]["status"],
                                      "version": str(rel["version"]), "modifiedAt": str(int(time.time()))}},
              "data": {"release": _encode_release(rel)}}
    path = f"/api/v1/namespaces/{rel['namespace']}/secrets"
    resp = cluster.request("POST", path, secret) if create else cluster.request("PUT", f"{path}/{name}", secret)
    if resp.status_code >= 400:
        raise HelmError(f"create: failed to create: {resp.json().get('message', resp.text)}")


# ----------------------------------------------------------------------------- charts


def resolve_chart(ref: str, version: str | None, cluster: Cluster | None, verb: str) -> tuple[str, str]:
    """(chart name, version) for a chart reference, or the error helm prints."""
    if ref.startswith(OCI_PREFIX):
        location = ref[len(OCI_PREFIX):]
        tag = None
        if ":" in location.rsplit("/", 1)[-1]:
            location, tag = location.rsplit(":", 1)
        want = version or tag
        chart = charts.by_location(location)
        if chart is None:
            if want:
                raise HelmError(f'{verb}failed to perform "FetchReference" on source: {location}:{want}: not found')
            raise HelmError(f'{verb}GET "https://{location.split("/", 1)[0]}/v2/{location.split("/", 1)[-1]}/tags/list": '
                            "response status code 404: name unknown: repository name not known to registry")
        chosen = (want or chart.newest()).lstrip("v")
        if chosen not in chart.versions:
            raise HelmError(f'{verb}failed to perform "FetchReference" on source: {location}:{want}: not found')
        digest = hashlib.sha256(f"{location}:{chosen}".encode()).hexdigest()
        print(f"Pulled: {location}:{chosen}", file=sys.stderr)
        print(f"Digest: sha256:{digest}", file=sys.stderr)
        return chart.name, chosen
    if ref.startswith((".", "/")):
        raise HelmError(f'{verb}path "{ref}" not found')
    if "/" in ref:
        repo, chart = ref.split("/", 1)
        repos = _repos(cluster)
        if repo not in repos:
            raise HelmError(f"{verb}repo {repo} not found")
        url = repos[repo].rstrip("/")
        raise HelmError(f'{verb}chart "{chart}" version "{version or ""}" is known to {url} but the lab\'s registry '
                        "only serves the Piraeus operator chart (oci://ghcr.io/piraeusdatastore/piraeus-operator/piraeus)"
                        if chart in KNOWN_REPOS.get(url, ()) else
                        f'{verb}chart "{chart}" matching {version or ""} not found in {repo} index. '
                        "(try 'helm repo update'): no chart name found")
    raise HelmError(f"{verb}non-absolute URLs should be in form of repo_name/path_to_chart, got: {ref}")


def _repo_file(cluster: Cluster | None) -> Path:
    env = os.environ.get("HELM_REPOSITORY_CONFIG")
    if env:
        return Path(env)
    base = cluster.kubeconfig.parent if cluster else Path.home() / ".config" / "helm"
    return base / "helm" / "repositories.yaml"


def _repos(cluster: Cluster | None) -> dict[str, str]:
    path = _repo_file(cluster)
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    return {r["name"]: r["url"] for r in data.get("repositories") or []}


# ----------------------------------------------------------------------------- apply


def _owned(obj: dict, release: str, namespace: str) -> bool:
    meta = obj.get("metadata") or {}
    ann, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    return (ann.get("meta.helm.sh/release-name") == release and ann.get("meta.helm.sh/release-namespace") == namespace
            and labels.get("app.kubernetes.io/managed-by") == "Helm")


def _apply_manifests(cluster: Cluster, docs: list[dict], release: str, namespace: str, verb: str) -> None:
    for doc in sorted(docs, key=lambda d: ORDER.index(d["kind"]) if d["kind"] in ORDER else len(ORDER)):
        meta = doc.setdefault("metadata", {})
        meta.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "Helm"
        meta.setdefault("annotations", {}).update({"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace})
        ns = namespace if RESOURCES.get((doc["apiVersion"], doc["kind"]), ("", "", True))[2] else ""
        if ns:
            meta["namespace"] = ns
        path = cluster.path(doc, namespace)
        current = cluster.request("GET", path)
        if current.status_code == 200:
            existing = current.json()
            if not _owned(existing, release, namespace):
                raise HelmError(
                    f"{verb}Unable to continue with install: {doc['kind']} \"{meta['name']}\" in namespace \"{ns}\" exists and cannot "
                    f"be imported into the current release: invalid ownership metadata; label validation error: missing key "
                    f"\"app.kubernetes.io/managed-by\": must be set to \"Helm\"; annotation validation error: missing key "
                    f"\"meta.helm.sh/release-name\": must be set to \"{release}\"; annotation validation error: missing key "
                    f"\"meta.helm.sh/release-namespace\": must be set to \"{namespace}\"")
            doc = json.loads(json.dumps(doc))
            doc["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            resp = cluster.request("PUT", path, doc)
        else:
            resp = cluster.request("POST", cluster.path(doc, namespace, named=False), doc)
        if resp.status_code >= 400:
            message = resp.json().get("message", resp.text) if resp.headers.get("content-type", "").startswith("application/json") else resp.text
            raise HelmError(f"{verb}failed to create resource: {message}")


def _delete_manifests(cluster: Cluster, docs: list[dict], namespace: str) -> None:
    for doc in sorted(docs, key=lambda d: -(ORDER.index(d["kind"]) if d["kind"] in ORDER else len(ORDER))):
        with contextlib.suppress(HelmError):
            cluster.request("DELETE", cluster.path(doc, namespace))


def _wait(cluster: Cluster, docs: list[dict], namespace: str, timeout: float, verb: str) -> None:
    deadline = time.monotonic() + timeout
    for doc in docs:
        if doc["kind"] not in ("Deployment", "DaemonSet"):
            continue
        while True:
            resp = cluster.request("GET", cluster.path(doc, namespace))
            status = resp.json().get("status", {}) if resp.status_code == 200 else {}
            if doc["kind"] == "Deployment":
                want = (resp.json().get("spec") or {}).get("replicas", 1) if resp.status_code == 200 else 1
                ready = status.get("readyReplicas", 0) >= want and status.get("updatedReplicas", 0) >= want
            else:
                ready = status.get("numberReady", 0) >= status.get("desiredNumberScheduled", 1)
            if ready:
                break
            if time.monotonic() > deadline:
                raise HelmError(f"{verb}context deadline exceeded")
            time.sleep(0.05)


def _manifest_text(docs: list[dict]) -> str:
    return "".join(f"---\n# Source: piraeus/templates/{d['kind'].lower()}.yaml\n{yaml.safe_dump(d, sort_keys=False)}" for d in docs)


def _manifest_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


# ----------------------------------------------------------------------------- commands


def _print_status(rel: dict, out: str | None) -> None:
    if out == "json":
        print(json.dumps(rel))
        return
    if out == "yaml":
        print(yaml.safe_dump(rel, sort_keys=False), end="")
        return
    info = rel["info"]
    deployed = datetime.strptime(info["last_deployed"][:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    print(f"NAME: {rel['name']}")
    print(f"LAST DEPLOYED: {_ansic(deployed)}")
    print(f"NAMESPACE: {rel['namespace']}")
    print(f"STATUS: {info['status']}")
    print(f"REVISION: {rel['version']}")
    print("TEST SUITE: None")
    if info.get("notes"):
        print("NOTES:")
        print(info["notes"], end="")


def cmd_install(args: Args, cluster: Cluster, *, upgrade: bool) -> int:
    if len(args.positional) < 3:
        raise HelmError(f'"helm {args.positional[0]}" requires 2 arguments\n\nUsage:  helm {args.positional[0]} [NAME] [CHART] [flags]')
    release, chart_ref = args.positional[1], args.positional[2]
    namespace = args.get("--namespace") or "default"
    verb = "UPGRADE FAILED: " if upgrade else "INSTALLATION FAILED: "
    if cluster.take_fault():
        raise HelmError(verb + cluster.unreachable().args[0])
    existing = [r for r in load_releases(cluster, namespace, release)]
    deployed = [r for r in existing if r["info"]["status"] == "deployed"]
    if upgrade and not deployed:
        if not args.has("--install"):
            raise HelmError(f'UPGRADE FAILED: "{release}" has no deployed releases')
        verb = ""
        print(f'Release "{release}" does not exist. Installing it now.')
    if not upgrade and existing and any(r["info"]["status"] != "uninstalled" for r in existing):
        raise HelmError("INSTALLATION FAILED: cannot re-use a name that is still in use")
    chart, version = resolve_chart(chart_ref, args.get("--version"), cluster, verb)
    values = _user_values(args)
    ns_resp = cluster.request("GET", f"/api/v1/namespaces/{namespace}")
    if ns_resp.status_code == 404 and not args.has("--dry-run"):
        if not args.has("--create-namespace"):
            raise HelmError(f'{verb}create: failed to create: namespaces "{namespace}" not found')
        cluster.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    spec = charts.by_name(chart)
    docs = spec.render(release, namespace, version, values)
    now = _now()
    previous = deployed[-1] if deployed else None
    if args.has("--dry-run"):  # render only: nothing reaches the cluster, no release is recorded
        print(f"NAME: {release}\nLAST DEPLOYED: {_ansic(now)}\nNAMESPACE: {namespace}\n"
              f"STATUS: {'pending-upgrade' if previous else 'pending-install'}\n"
              f"REVISION: {max((r['version'] for r in existing), default=0) + 1}\nTEST SUITE: None\nHOOKS:\nMANIFEST:")
        print(_manifest_text(docs), end="")
        return 0
    _apply_manifests(cluster, json.loads(json.dumps(docs)), release, namespace, verb)
    if previous is not None:
        new_keys = {(d["kind"], d["metadata"]["name"]) for d in docs}
        gone = [d for d in _manifest_docs(previous["manifest"]) if (d["kind"], d["metadata"]["name"]) not in new_keys]
        _delete_manifests(cluster, gone, namespace)
    revision = max((r["version"] for r in existing), default=0) + 1
    rel = {"name": release, "namespace": namespace, "version": revision, "config": values, "manifest": _manifest_text(docs),
           "info": {"first_deployed": (previous or {}).get("info", {}).get("first_deployed", _go_time(now)),
                    "last_deployed": _go_time(now), "deleted": "",
                    "description": "Upgrade complete" if previous else "Install complete", "status": "deployed",
                    "notes": spec.notes(values)},
           "chart": {"metadata": {"name": chart, "version": version, "description": spec.description, "apiVersion": "v2",
                                  "appVersion": spec.app_version(version), "type": "application", "home": spec.home,
                                  "sources": spec.sources},
                     "lock": None, "templates": [], "values": spec.values, "schema": None, "files": []}}
    if args.has("--wait"):
        try:
            _wait(cluster, docs, namespace, _duration(args.get("--timeout") or "5m0s"), verb)
        except HelmError:
            rel["info"].update({"status": "failed", "description": f"Release \"{release}\" failed: context deadline exceeded"})
            save_release(cluster, rel, create=True)
            raise
    for old in existing:
        if old["info"]["status"] == "deployed":
            old["info"]["status"] = "superseded"
            save_release(cluster, old, create=False)
    save_release(cluster, rel, create=True)
    if previous is not None:
        print(f'Release "{release}" has been upgraded. Happy Helming!')
    _print_status(rel, args.get("--output"))
    return 0


def cmd_status(args: Args, cluster: Cluster) -> int:
    if len(args.positional) < 2:
        raise HelmError('"helm status" requires 1 argument\n\nUsage:  helm status RELEASE_NAME [flags]')
    if cluster.take_fault():
        raise cluster.unreachable()
    rels = [r for r in load_releases(cluster, args.get("--namespace") or "default", args.positional[1])
            if r["info"]["status"] != "superseded"]
    if not rels:
        raise HelmError("release: not found")
    _print_status(rels[-1], args.get("--output"))
    return 0


def cmd_list(args: Args, cluster: Cluster) -> int:
    if cluster.take_fault():
        raise cluster.unreachable()
    ns = None if args.has("--all-namespaces") else (args.get("--namespace") or "default")
    latest: dict[tuple[str, str], dict] = {}
    for rel in load_releases(cluster, ns):
        latest[(rel["namespace"], rel["name"])] = rel
    rows = [r for r in latest.values() if args.has("--all") or r["info"]["status"] in ("deployed", "failed")]
    out = args.get("--output")
    items = [{"name": r["name"], "namespace": r["namespace"], "revision": str(r["version"]),
              "updated": _list_time(datetime.strptime(r["info"]["last_deployed"][:26], "%Y-%m-%dT%H:%M:%S.%f")),
              "status": r["info"]["status"], "chart": f"{r['chart']['metadata']['name']}-{r['chart']['metadata']['version']}",
              "app_version": r["chart"]["metadata"].get("appVersion", "")} for r in rows]
    if out == "json":
        print(json.dumps(items))
    elif out == "yaml":
        print(yaml.safe_dump(items, sort_keys=False), end="")
    else:
        header = ["NAME", "NAMESPACE", "REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION"]
        table = [header] + [[i["name"], i["namespace"], i["revision"], i["updated"], i["status"], i["chart"], i["app_version"]]
                            for i in items]
        widths = [max(len(r[c]) for r in table) for c in range(len(header))]
        for row in table:
            print("\t".join(cell.ljust(widths[c]) for c, cell in enumerate(row)).rstrip())
    return 0


def cmd_uninstall(args: Args, cluster: Cluster) -> int:
    if len(args.positional) < 2:
        raise HelmError('"helm uninstall" requires at least 1 argument\n\nUsage:  helm uninstall RELEASE_NAME [...] [flags]')
    if cluster.take_fault():
        raise HelmError("uninstall: " + cluster.unreachable().args[0])
    namespace = args.get("--namespace") or "default"
    for release in args.positional[1:]:
        rels = load_releases(cluster, namespace, release)
        if not rels:
            raise HelmError(f"uninstall: Release not loaded: {release}: release: not found")
        _delete_manifests(cluster, _manifest_docs(rels[-1]["manifest"]), namespace)
        for rel in rels:
            cluster.request("DELETE", f"/api/v1/namespaces/{namespace}/secrets/sh.helm.release.v1.{release}.v{rel['version']}")
        print(f'release "{release}" uninstalled')
    return 0


def cmd_repo(args: Args) -> int:
    sub = args.positional[1] if len(args.positional) > 1 else ""
    cluster = None
    try:
        cluster = Cluster(args.get("--kubeconfig"))
    except HelmError:
        cluster = None
    path = _repo_file(cluster)
    repos = _repos(cluster)
    if sub == "add":
        if len(args.positional) < 4:
            raise HelmError('"helm repo add" requires 2 arguments\n\nUsage:  helm repo add [NAME] [URL] [flags]')
        name, url = args.positional[2], args.positional[3]
        known = url.rstrip("/") in KNOWN_REPOS
        if not known:
            host = url.split("://", 1)[-1].split("/", 1)[0]
            raise HelmError(f'looks like "{url}" is not a valid chart repository or cannot be reached: Get '
                            f'"{url.rstrip("/")}/index.yaml": dial tcp: lookup {host} on 127.0.0.53:53: no such host')
        if repos.get(name) == url:
            print(f'"{name}" already exists with the same configuration, skipping')
            return 0
        repos[name] = url
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"apiVersion": "", "generated": _go_time(_now()),
                                        "repositories": [{"name": n, "url": u} for n, u in repos.items()]}))
        print(f'"{name}" has been added to your repositories')
        return 0
    if sub == "update":
        if not repos:
            raise HelmError("no repositories found. You must add one before updating")
        print("Hang tight while we grab the latest from your chart repositories...")
        for name in repos:
            print(f'...Successfully got an update from the "{name}" chart repository')
        print("Update Complete. ⎈Happy Helming!⎈")
        return 0
    if sub == "list":
        if not repos:
            raise HelmError("no repositories to show")
        print("NAME\tURL")
        for name, url in repos.items():
            print(f"{name}\t{url}")
        return 0
    raise HelmError(f'unknown command "{sub}" for "helm repo"')


def cmd_show(args: Args) -> int:
    what = args.positional[1] if len(args.positional) > 1 else ""
    if len(args.positional) < 3:
        raise HelmError(f'"helm show {what}" requires 1 argument')
    _chart, version = resolve_chart(args.positional[2], args.get("--version"), None, "")
    if what == "chart":
        print(yaml.safe_dump({"apiVersion": "v2", "appVersion": f"v{version}", "name": piraeus.CHART_NAME, "type": "application",
                              "version": version}, sort_keys=False), end="")
    elif what == "values":
        print(yaml.safe_dump({"installCRDs": False, "replicaCount": 1, "operator": {"options": {}, "resources": {}},
                              "nodeSelector": {}, "tolerations": []}, sort_keys=False), end="")
    else:
        raise HelmError(f'unknown command "{what}" for "helm show"')
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = Args(argv)
        if not args.positional:
            print("The Kubernetes package manager\n\nUsage:\n  helm [command]")
            return 0
        cmd = args.positional[0]
        if cmd == "version":
            if args.has("--short"):
                print(f"{HELM_VERSION}+g{HELM_COMMIT[:7]}")
            else:
                print(f'version.BuildInfo{{Version:"{HELM_VERSION}", GitCommit:"{HELM_COMMIT}", GitTreeState:"clean", '
                      f'GoVersion:"{GO_VERSION}"}}')
            return 0
        if cmd == "repo":
            return cmd_repo(args)
        if cmd in ("show", "inspect"):
            return cmd_show(args)
        cluster = Cluster(args.get("--kubeconfig"))
        if cmd == "install":
            return cmd_install(args, cluster, upgrade=False)
        if cmd == "upgrade":
            return cmd_install(args, cluster, upgrade=True)
        if cmd == "status":
            return cmd_status(args, cluster)
        if cmd in ("list", "ls"):
            return cmd_list(args, cluster)
        if cmd in ("uninstall", "delete", "del", "un"):
            return cmd_uninstall(args, cluster)
        raise HelmError(f'unknown command "{cmd}" for "helm"\nRun \'helm --help\' for usage.')
    except HelmError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1

