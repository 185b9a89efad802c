"""Kubernetes API access through the official ``kubernetes`` client.

Reads use one list call with selectors (never one call per object), so views cost
the same number of requests on 3 nodes as on 300. Paths come from :mod:`runbook_lib.kinds`.

The ``kubernetes`` package is imported by the functions that talk to a cluster, not by this
module: importing it costs about 3 s (its dynamic client imports ``kubernetes-validate`` and
with it ``jsonschema``'s format checkers), which every module that only names this one would pay.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from . import kinds
from .errors import RunbookError

if TYPE_CHECKING:
    from kubernetes import client as k8s

#: imported on first use (runbook_lib.warm_up): the kubeconfig loader, the REST layer and httpx with its transport
WARM_UP_IMPORTS = ("kubernetes.config", "kubernetes.client.rest", "httpx", "httpcore")

T = TypeVar("T")


RETRY_ATTEMPTS = 6
_TRANSIENT = {429, 500, 502, 503, 504}


def retrying(fn: Callable[[], T], what: str) -> T:
    """Call ``fn``, retrying transient API answers (5xx, 429) with exponential backoff.

    A burst of errors from an API server that is restarting or overloaded is ridden out;
    a lasting one becomes a :class:`RunbookError` saying how often and how long we tried.
    """
    from kubernetes.client.rest import ApiException

    delay, start = 0.05, time.monotonic()
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return fn()
        except ApiException as exc:
            if exc.status not in _TRANSIENT or attempt == RETRY_ATTEMPTS:
                if exc.status in _TRANSIENT:
                    raise RunbookError(f"Kubernetes API: {what}: answered {exc.status} {attempt} times over "
                                       f"{time.monotonic() - start:.1f}s; last: {exc.reason}") from None
                raise
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


def connect(kubeconfig: str | None) -> k8s.ApiClient:
    """An API client for ``kubeconfig`` (the default kubeconfig when None)."""
    from kubernetes import config as k8s_config

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


def node_states(api: k8s.ApiClient, label_selector: str | None = None, *, retry: bool = True) -> dict[str, NodeState]:
    """Ready condition, taints and OS image of every node, in one list call (``retry``: as :func:`request`).

    Read as plain JSON like every other object: the typed ``CoreV1Api`` and its models cost a kernel
    about 0.4 s to import, for four fields.
    """
    out = {}
    for node in list_objects(api, kinds.NODE.collection(), label_selector, retry=retry, missing_ok=False):
        status, spec = node.get("status") or {}, node.get("spec") or {}
        ready = condition(node, "Ready")
        out[node["metadata"]["name"]] = NodeState(
            name=node["metadata"]["name"],
            ready=ready.get("status", "Unknown"),
            taints=[t.get("key", "") for t in spec.get("taints") or []],
            os_image=(status.get("nodeInfo") or {}).get("osImage", ""),
        )
    return out


def describe_nodes(states: dict[str, NodeState]) -> str:
    return ", ".join(f"{n}={s.ready}" for n, s in sorted(states.items())) or "no nodes registered"


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
    # One SSLContext for CA and client certificate: httpx 0.28 drops ``cert=`` when ``verify`` is a path,
    # which made every service-proxy call with a Talos (client certificate) kubeconfig 401.
    verify: ssl.SSLContext | bool = False
    if cfg.verify_ssl:
        verify = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
        if cfg.cert_file and cfg.key_file:
            verify.load_cert_chain(cfg.cert_file, cfg.key_file)
    elif cfg.cert_file and cfg.key_file:
        verify = ssl.create_default_context()
        verify.check_hostname, verify.verify_mode = False, ssl.CERT_NONE
        verify.load_cert_chain(cfg.cert_file, cfg.key_file)
    return httpx.Client(base_url=cfg.host, headers=headers, verify=verify, timeout=timeout)


def object_path(manifest: dict) -> str:
    """REST path of the object a manifest describes."""
    return kinds.object_path(manifest)


class ApiCallError(RunbookError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.status = status
        try:
            message = json.loads(body).get("message", body)
        except ValueError:
            message = body
        super().__init__(f"Kubernetes API: {method} {path}: {status} {str(message)[:300]}")


def request(api: k8s.ApiClient, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
            body: Any = None, content_type: str | None = None, retry: bool = True) -> Any:
    """One REST call with the client's own auth and TLS settings; the decoded JSON answer.

    ``retry=False`` makes one attempt: for observers that must see an outage, not ride it out.
    """
    data = _call(api, method, path, query=query, body=body, content_type=content_type, retry=retry)
    return json.loads(data) if data else None


def _call(api: k8s.ApiClient, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
          body: Any = None, content_type: str | None = None, accept: str = "application/json",
          retry: bool = True, timeout: float | None = None) -> bytes:
    """The answer's body; an answer of 400 or more raises :class:`ApiCallError`."""
    from kubernetes.client.rest import ApiException

    headers = {"Accept": accept}
    if content_type:
        headers["Content-Type"] = content_type
    _, url, headers, body, _ = api.param_serialize(method, path, query_params=query or [], header_params=headers,
                                                    body=body, auth_settings=["BearerToken"])

    def call():
        resp = api.call_api(method, url, header_params=headers, body=body, _request_timeout=timeout)
        resp.read()
        if resp.status >= 400:
            raise ApiException(status=resp.status, reason=resp.data.decode(errors="replace")[:300])
        return resp

    try:
        resp = retrying(call, f"{method} {path}") if retry else call()
    except ApiException as exc:
        raise ApiCallError(method, path, exc.status or 0, exc.reason or exc.body or str(exc)) from None
    return resp.data


def get_object(api: k8s.ApiClient, path: str) -> dict | None:
    try:
        return request(api, "GET", path)
    except ApiCallError as err:
        if err.status == 404:
            return None
        raise


def list_objects(api: k8s.ApiClient, path: str, label_selector: str | None = None, *, retry: bool = True,
                 missing_ok: bool = True) -> list[dict]:
    """``GET`` a collection path (one call, with a selector) and return its items as plain dicts.

    A collection the server does not serve (404: its CRD is not installed) is empty when ``missing_ok``.
    """
    try:
        data = request(api, "GET", path, query=[("labelSelector", label_selector)] if label_selector else None,
                       retry=retry)
    except ApiCallError as err:
        if err.status == 404 and missing_ok:
            return []
        raise
    return list((data or {}).get("items") or [])


def server_side_apply(api: k8s.ApiClient, manifest: dict, *, field_manager: str = "runbook") -> dict:
    """Create or update ``manifest`` with server-side apply."""
    return request(api, "PATCH", object_path(manifest), query=[("fieldManager", field_manager), ("force", "true")],
                   body=json.dumps(manifest), content_type="application/apply-patch+yaml")


def delete_object(api: k8s.ApiClient, manifest: dict) -> None:
    try:
        request(api, "DELETE", object_path(manifest))
    except ApiCallError as err:
        if err.status != 404:
            raise


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


def condition(obj: dict | None, ctype: str) -> dict:
    """The status condition ``ctype`` of ``obj`` (empty dict when absent)."""
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c.get("type") == ctype), {})


def pod_log(api: k8s.ApiClient, namespace: str, name: str, *, timeout: float | None = None) -> str | None:
    """The pod's log; None when it cannot be read now (no such pod, its kubelet or the API unreachable)."""
    import urllib3

    try:
        data = _call(api, "GET", kinds.POD.path(name, namespace) + "/log", accept="text/plain", retry=False,
                     timeout=timeout)
    except (ApiCallError, OSError, urllib3.exceptions.HTTPError):
        return None
    return data.decode(errors="replace")
