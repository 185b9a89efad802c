"""``pods/exec`` over WebSocket, as current kubectl speaks it (``v5.channel.k8s.io``, ``v4.channel.k8s.io``).

RFC 6455 framing with Kubernetes' channel protocol (k8s.io/apimachinery/pkg/util/remotecommand): every
binary message starts with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 the final ``Status`` as JSON;
v5 adds 255 for closing a stream: client-go sends ``[255, 0]`` when its stdin ends, which is what lets
``kubectl cp`` into a pod finish). A command that reads stdin (``tar x``) gets what the client sends
until then; the command then runs to completion, its output goes out on 1 and 2, then the Status
(``NonZeroExitCode`` with the exit code as a cause when it failed) and a close frame.
What runs: ``linstor`` in the LINSTOR controller's container (:mod:`..linstor.cli`), ``zfs --version`` and
``drbdadm status`` in a satellite's (:mod:`..linstor.drbdadm`), and in every container the ``tar`` and
``test`` that ``kubectl cp`` runs (:mod:`..workloads.pod_tar`); anything else fails as containerd does for a
missing executable.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Callable
from typing import Any

from ..cluster import Lab
from ..linstor import cli as linstor_cli
from ..linstor import drbdadm
from ..linstor import providers as linstor_providers
from ..talos.releases import zfs_version
from ..workloads import pod_tar
from .types import ApiError

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, CLOSE = 0, 1, 2, 3, 255
MAX_STDIN = 16 * 2**20  # what the lab takes on stdin: files copied in are kept in the lab's state


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


def run_in_pod(lab: Lab, pod: dict, container: str, command: list[str], stdin: bytes = b"") -> tuple[int, bytes | str, str]:
    """(exit code, stdout, stderr) of ``command`` in the pod's container; ApiError when it cannot start."""
    labels = pod["metadata"].get("labels") or {}
    component = labels.get("app.kubernetes.io/component")
    node = (pod.get("spec") or {}).get("nodeName", "")
    if command and command[0] == "linstor" and component == "linstor-controller":
        return linstor_cli.run(lab.linstor, command[1:])
    if command == ["zfs", "--version"] and component == "linstor-satellite":
        return satellite_zfs_version(lab, node)
    if command and command[0] == "drbdadm" and component == "linstor-satellite":
        return drbdadm.run(lab.linstor, node, command[1:])
    spec = next((c for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name") == container), {})
    if command and command[0] in pod_tar.COMMANDS:
        return pod_tar.COMMANDS[command[0]](lab, pod, spec, command[1:], stdin)
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


class Frames:
    """The client's side of the WebSocket: masked frames, reassembled into messages; pings answered."""

    def __init__(self, rfile: Any, wfile: Any) -> None:
        self.rfile, self.wfile = rfile, wfile

    def _exact(self, n: int) -> bytes:
        data = self.rfile.read(n) if n else b""
        if len(data) < n:
            raise EOFError
        return data

    def _frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._exact(8))[0]
        mask = self._exact(4) if b1 & 0x80 else b""
        payload = self._exact(n)
        if mask:
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def message(self) -> tuple[int, bytes] | None:
        """The next data message (opcode, payload); None once the client closed or the connection ended."""
        parts: list[bytes] = []
        opcode = 0
        while True:
            try:
                fin, op, payload = self._frame()
            except (EOFError, OSError, ValueError):
                return None
            if op == 8:
                return None
            if op == 9:  # client-go's heartbeat
                self.wfile.write(frame(payload, opcode=10))
                self.wfile.flush()
                continue
            if op == 10:
                continue
            if op:
                opcode = op
            parts.append(payload)
            if fin:
                return opcode, b"".join(parts)


def read_stdin(frames: Frames, protocol: str, enough: Callable[[bytearray], bool] = lambda data: False) -> bytes:
    """What the client sends on channel 0 until it closes stdin (v5 ``[255, 0]``) or the connection ends; on v4,
    which cannot close stdin, also once the command has ``enough`` (tar stops reading at the archive's end)."""
    data = bytearray()
    v5 = protocol.startswith("v5")
    while v5 or not enough(data):
        msg = frames.message()
        if msg is None:
            break
        _op, payload = msg
        if not payload:
            continue
        if payload[0] == CLOSE and v5 and payload[1:2] == bytes([STDIN]):
            break
        if payload[0] == STDIN:
            data += payload[1:]
            if len(data) > MAX_STDIN:
                raise ApiError(413, "RequestEntityTooLarge", f"the lab takes at most {MAX_STDIN // 2**20} MiB on an "
                               "exec's stdin (what kubectl cp copies in is kept in the lab's state)")
    return bytes(data)


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
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept)
    handler.send_header("Sec-WebSocket-Protocol", protocol)
    handler.end_headers()
    handler.wfile.flush()
    try:
        stdin = b""
        if (query.get("stdin") or [""])[-1] in ("true", "1") and pod_tar.reads_stdin(command):
            stdin = read_stdin(Frames(handler.rfile, handler.wfile), protocol,  # without the lock: uploads take time
                               pod_tar.archive_complete)
        with lab.lock:
            pod = lab.kube.objects.get(("", "pods", namespace, name)) or pod
            code, out, err = run_in_pod(lab, pod, container, command, stdin)
        final = status(code)
    except ApiError as exc:
        code, out, err = 1, "", ""
        final = exc.status()
        final.pop("kind", None)
        final.pop("apiVersion", None)
    data = b""
    if err:  # before stdout: a command's complaints come as it works (tar's come before its archive's end)
        data += frame(bytes([STDERR]) + err.encode())
    if out:
        data += frame(bytes([STDOUT]) + (out.encode() if isinstance(out, str) else out))
    data += frame(bytes([ERROR]) + json.dumps(final).encode())
    data += frame(struct.pack("!H", 1000), opcode=8)
    handler.wfile.write(data)
    handler.wfile.flush()
    handler.close_connection = True
