"""``pods/exec`` over WebSocket, as current kubectl speaks it (``v5.channel.k8s.io``, ``v4.channel.k8s.io``).

RFC 6455 framing with Kubernetes' channel protocol (k8s.io/apimachinery/pkg/util/remotecommand): every
binary message starts with a channel byte (1 stdout, 2 stderr, 3 the final ``Status`` as JSON; v5 adds
255 for closing a stream). A command runs to completion, its output goes out on 1 and 2, then the
Status (``NonZeroExitCode`` with the exit code as a cause when it failed) and a close frame.
What runs: ``linstor`` in the LINSTOR controller's container (:mod:`.linstor_cli`), ``zfs --version`` in a
satellite's; anything else fails as containerd does for a missing executable.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from typing import Any

from ..cluster import Lab
from ..linstor import cli as linstor_cli
from ..linstor import providers as linstor_providers
from ..talos.releases import zfs_version
from .types import ApiError

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDOUT, STDERR, ERROR = 1, 2, 3


def wants_websocket(headers: Any) -> bool:
    return "websocket" in (headers.get("Upgrade") or "").lower()


def choose_protocol(headers: Any) -> str | None:
    offered = [p.strip() for p in (headers.get("Sec-WebSocket-Protocol") or "").split(",") if p.strip()]
    return next((p for p in offered if p in PROTOCOLS), None)


def frame(payload: bytes, opcode: int = 2) -> bytes:
    """One unmasked, final server frame."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 1 << 16:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def run_in_pod(lab: Lab, pod: dict, container: str, command: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``command`` in the pod's container; ApiError when it cannot start."""
    labels = pod["metadata"].get("labels") or {}
    if command and command[0] == "linstor" and labels.get("app.kubernetes.io/component") == "linstor-controller":
        return linstor_cli.run(lab.linstor, command[1:])
    if command == ["zfs", "--version"] and labels.get("app.kubernetes.io/component") == "linstor-satellite":
        return satellite_zfs_version(lab, (pod.get("spec") or {}).get("nodeName", ""))
    raise ApiError(500, "InternalError", "Internal error occurred: error executing command in container: failed to exec "
                   f"in container: failed to start exec: OCI runtime exec failed: exec failed: unable to start container "
                   f'process: exec: "{command[0] if command else ""}": executable file not found in $PATH: unknown')


def satellite_zfs_version(lab: Lab, node_name: str) -> tuple[int, str, str]:
    """``zfs --version`` in a satellite: the image's userland, then the host's module (OpenZFS zfs_main.c
    ``zfs_version_print``: without the module it prints "zfs_version_kernel() failed" and exits 1)."""
    user = f"zfs-{linstor_providers.SATELLITE_ZFS_USERLAND}-1\n"
    node = lab.talos.nodes.get(node_name)
    if node is None or node.loaded_module("zfs") is None:
        return 1, user, "zfs_version_kernel() failed: No such file or directory\n"
    return 0, user + f"zfs-kmod-{zfs_version(node.talos_version)}-1\n", ""


def status(code: int) -> dict:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def exec_pod(handler: Any, lab: Lab, namespace: str, name: str, query: dict[str, list[str]]) -> None:
    """Answer ``GET|POST .../pods/{name}/exec`` on ``handler`` (a BaseHTTPRequestHandler)."""
    command = query.get("command") or []
    with lab.lock:
        pod = lab.kube.objects.get(("", "pods", namespace, name))
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found', kind="pods", name=name)
        names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        container = (query.get("container") or [names[0] if names else ""])[-1]
        if container not in names:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        if (pod.get("status") or {}).get("phase") != "Running":
            raise ApiError(400, "BadRequest", f"pod {name} does not have a host assigned" if not
                           (pod.get("spec") or {}).get("nodeName") else f'container {container} is not running')
        if not command:
            raise ApiError(400, "BadRequest", "you must specify at least 1 command")
    protocol = choose_protocol(handler.headers)
    if not wants_websocket(handler.headers) or protocol is None:
        raise ApiError(400, "BadRequest", "Upgrade request required: the lab serves exec over WebSocket "
                       f"({', '.join(PROTOCOLS)}) only, not SPDY")
    key = handler.headers.get("Sec-WebSocket-Key", "")
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    with lab.lock:
        try:
            code, out, err = run_in_pod(lab, pod, container, command)
            final = status(code)
        except ApiError as exc:
            code, out, err = 1, "", ""
            final = exc.status()
            final.pop("kind", None)
            final.pop("apiVersion", None)
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept)
    handler.send_header("Sec-WebSocket-Protocol", protocol)
    handler.end_headers()
    data = b""
    if out:
        data += frame(bytes([STDOUT]) + out.encode())
    if err:
        data += frame(bytes([STDERR]) + err.encode())
    data += frame(bytes([ERROR]) + json.dumps(final).encode())
    data += frame(struct.pack("!H", 1000), opcode=8)
    handler.wfile.write(data)
    handler.wfile.flush()
    handler.close_connection = True

