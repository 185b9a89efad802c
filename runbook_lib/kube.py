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
