"""Container logs: appending lines and serving GET .../pods/{name}/log."""

from __future__ import annotations

from ..cluster import Lab
from ..kubernetes.objects import get
from ..kubernetes.types import ApiError
from .node_facts import node_facts
from .state import MAX_LOG_LINES


def append_log(lab: Lab, namespace: str, pod: str, container: str, text: str) -> None:
    """Add lines to a container's log (kept to the last MAX_LOG_LINES lines)."""
    key = f"{namespace}/{pod}/{container}"
    lines = lab.workloads.state.logs.setdefault(key, [])
    lines.extend(text.rstrip("\n").split("\n"))
    del lines[:-MAX_LOG_LINES]


def pod_log(lab: Lab, namespace: str, pod: str, container: str | None, tail: int | None = None) -> str | None:
    """A container's log text; None when the pod does not exist."""
    obj = get(lab, "", "pods", namespace, pod)
    if obj is None:
        return None
    node = obj["spec"].get("nodeName")
    facts = node_facts(lab, node) if node else None
    if facts is not None and not (facts.up and lab.node_reachable(node)):
        # the API server proxies logs from the node's kubelet, which does not answer
        raise ApiError(500, "InternalError", f'Get "https://{facts.address}:10250/containerLogs/{namespace}/{pod}": '
                                             f"dial tcp {facts.address}:10250: connect: no route to host")
    names = [c["name"] for c in obj["spec"].get("containers") or []]
    if container is None:
        if len(names) > 1:
            default = (obj["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
            container = default or names[0]
        else:
            container = names[0] if names else ""
    valid = names + [c["name"] for c in obj["spec"].get("initContainers") or []]
    if container not in valid:
        raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {pod}")
    statuses = (obj.get("status") or {}).get("containerStatuses", []) + (obj.get("status") or {}).get("initContainerStatuses", [])
    cs = next((c for c in statuses if c.get("name") == container), None)
    waiting = ((cs or {}).get("state") or {}).get("waiting")
    if cs is None or waiting:
        reason = (waiting or {}).get("reason", "ContainerCreating")
        raise ApiError(400, "BadRequest", f'container "{container}" in pod "{pod}" is waiting to start: {reason}')
    lines = lab.workloads.state.logs.get(f"{namespace}/{pod}/{container}", [])
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    return "".join(line + "\n" for line in lines)
