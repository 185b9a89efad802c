"""Kubernetes API access through the official ``kubernetes`` client.

Reads use one list call with selectors (never one call per object), so views cost
the same number of requests on 3 nodes as on 300.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from .errors import RunbookError


def connect(kubeconfig: str | None) -> k8s.ApiClient:
    """An API client for ``kubeconfig`` (the default kubeconfig when None)."""
    try:
        return k8s_config.new_client_from_config(config_file=kubeconfig)
    except Exception as exc:  # noqa: BLE001 - the client raises several unrelated types
        raise RunbookError(f"cannot load kubeconfig {kubeconfig or '~/.kube/config'}: {type(exc).__name__}") from None


@dataclass
class NodeState:
    name: str
    ready: str  # "True" | "False" | "Unknown"
    taints: list[str]
    os_image: str


def node_states(api: k8s.ApiClient, label_selector: str | None = None) -> dict[str, NodeState]:
    """Ready condition, taints and OS image of every node, in one list call."""
    try:
        items = k8s.CoreV1Api(api).list_node(label_selector=label_selector or "").items
    except ApiException as exc:
        raise RunbookError(f"Kubernetes API: listing nodes failed: {exc.status} {exc.reason}") from None
    out = {}
    for node in items:
        cond = next((c for c in (node.status.conditions or []) if c.type == "Ready"), None)
        out[node.metadata.name] = NodeState(
            name=node.metadata.name,
            ready=cond.status if cond else "Unknown",
            taints=[t.key for t in (node.spec.taints or [])],
            os_image=(node.status.node_info.os_image if node.status.node_info else ""),
        )
    return out


def describe_nodes(states: dict[str, NodeState]) -> str:
    return ", ".join(f"{n}={s.ready}" for n, s in sorted(states.items())) or "no nodes registered"


def to_plain(obj: Any) -> Any:
    """A ``kubernetes`` model object as plain JSON-able data."""
    return k8s.ApiClient().sanitize_for_serialization(obj)


def http_client(api: k8s.ApiClient, timeout: float = 30.0):
    """An ``httpx`` client that authenticates to the API server like ``api`` does.

    Used for the Kubernetes service proxy to the LINSTOR REST API, so LINSTOR is reached
    with the kubeconfig's own credentials (token or client certificate) and no port-forward.
    """
    import httpx

    cfg = api.configuration
    headers = {}
    token = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    if token:
        headers["Authorization"] = token if token.lower().startswith("bearer ") else f"Bearer {token}"
    cert = (cfg.cert_file, cfg.key_file) if cfg.cert_file and cfg.key_file else None
    verify = (cfg.ssl_ca_cert or True) if cfg.verify_ssl else False
    return httpx.Client(base_url=cfg.host, headers=headers, cert=cert, verify=verify, timeout=timeout)


# kind -> (api path prefix, plural, namespaced) for what the runbooks apply; one table, no discovery round trips.
KINDS: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("v1", "Namespace"): ("/api/v1", "namespaces", False),
    ("v1", "Pod"): ("/api/v1", "pods", True),
    ("v1", "PersistentVolumeClaim"): ("/api/v1", "persistentvolumeclaims", True),
    ("v1", "ConfigMap"): ("/api/v1", "configmaps", True),
    ("batch/v1", "Job"): ("/apis/batch/v1", "jobs", True),
    ("storage.k8s.io/v1", "StorageClass"): ("/apis/storage.k8s.io/v1", "storageclasses", False),
    ("piraeus.io/v1", "LinstorCluster"): ("/apis/piraeus.io/v1", "linstorclusters", False),
    ("piraeus.io/v1", "LinstorSatelliteConfiguration"): ("/apis/piraeus.io/v1", "linstorsatelliteconfigurations", False),
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshotClass"): ("/apis/snapshot.storage.k8s.io/v1", "volumesnapshotclasses", False),
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshot"): ("/apis/snapshot.storage.k8s.io/v1", "volumesnapshots", True),
}


def object_path(manifest: dict) -> str:
    """REST path of the object a manifest describes."""
    key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
    if key not in KINDS:
        raise RunbookError(f"no API mapping for {key[1]} ({key[0]}): add it to runbook_lib.kube.KINDS")
    prefix, plural, namespaced = KINDS[key]
    meta = manifest.get("metadata", {})
    ns = f"/namespaces/{meta.get('namespace', 'default')}" if namespaced else ""
    return f"{prefix}{ns}/{plural}/{meta['name']}"


def get_object(api: k8s.ApiClient, path: str) -> dict | None:
    try:
        data = api.call_api(path, "GET", response_type="object", auth_settings=["BearerToken"],
                            _return_http_data_only=True)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise RunbookError(f"Kubernetes API: GET {path} failed: {exc.status} {exc.reason}") from None
    return data


def server_side_apply(api: k8s.ApiClient, manifest: dict, *, field_manager: str = "runbook") -> dict:
    """Create or update ``manifest`` with server-side apply."""
    path = object_path(manifest)
    try:
        return api.call_api(path, "PATCH", body=manifest, query_params=[("fieldManager", field_manager), ("force", "true")],
                            header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
                            response_type="object", auth_settings=["BearerToken"], _return_http_data_only=True)
    except ApiException as exc:
        raise RunbookError(f"Kubernetes API: applying {manifest.get('kind')} {manifest['metadata'].get('name')} "
                           f"failed: {exc.status} {exc.reason}: {(exc.body or '')[:300]}") from None


def delete_object(api: k8s.ApiClient, manifest: dict) -> None:
    try:
        api.call_api(object_path(manifest), "DELETE", auth_settings=["BearerToken"], _return_http_data_only=True)
    except ApiException as exc:
        if exc.status != 404:
            raise RunbookError(f"Kubernetes API: deleting {manifest.get('kind')} {manifest['metadata'].get('name')} "
                               f"failed: {exc.status} {exc.reason}") from None


def differs(live: dict | None, manifest: dict) -> bool:
    """True when applying ``manifest`` would change ``live`` (fields we set, ignoring server-added ones)."""
    if live is None:
        return True

    def covered(want, have) -> bool:
        if isinstance(want, dict):
            return isinstance(have, dict) and all(covered(v, have.get(k)) for k, v in want.items())
        return want == have

    body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
    return not covered(body, live)
