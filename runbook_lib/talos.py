"""``talosctl`` wrapper and parsers for its output.

Reads go straight to ``talosctl`` (they run in plan mode too); writes go through
the :class:`~runbook_lib.execution.Executor` so they are approved, planned or
recorded. Talos's exit code is always 1 on error, so failures are explained from
the text on stderr.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import yaml

from .errors import ParseError, TalosError
from .execution import Executor

_DECODER = json.JSONDecoder()


#: one-node ``talosctl read`` calls run at once (each is a process and a round trip to the node's apid)
READS_AT_ONCE = 4
JSON_WHITESPACE = " \t\n\r"  # what JSON and YAML treat as blank between documents (RFC 8259 ws)


def parse_resources(text: str) -> list[dict]:
    """Parse ``talosctl get ... -o json`` or ``-o yaml`` output into resource dicts.

    ``-o json`` prints concatenated, indented JSON objects (not an array), one per
    resource; ``-o yaml`` prints documents separated by ``---``. Each resource has
    ``node``, ``metadata`` and ``spec``. Anything else raises :class:`ParseError` naming
    the resource and field (``resources[1].metadata.id``), never a bare ``KeyError``.
    """
    if not isinstance(text, str):
        raise ParseError("talosctl", f"expected text, got {type(text).__name__}")
    stripped = text.strip(JSON_WHITESPACE)  # str.strip() would also drop control characters such as \x1f
    if not stripped:
        return []
    try:
        items = _json_stream(stripped) if stripped[0] in "{[" else _yaml_documents(stripped)
    except RecursionError:
        raise ParseError("talosctl", "output is nested too deeply to be a Talos resource") from None
    return [_resource(item, i) for i, item in enumerate(items)]


def _json_stream(text: str) -> list:
    items: list = []
    pos = 0
    while pos < len(text):
        while pos < len(text) and text[pos] in JSON_WHITESPACE:
            pos += 1
        if pos >= len(text):
            break
        try:
            obj, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ParseError("talosctl", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg} "
                             f"(truncated or garbled `talosctl get -o json` output?)") from None
        items.extend(obj if isinstance(obj, list) else [obj])
    return items


def _yaml_documents(text: str) -> list:
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ParseError("talosctl", f"invalid YAML: {exc}") from None


def _resource(item: object, i: int) -> dict:
    """One resource, checked: a mapping with ``metadata.id`` (a string) and a ``spec``."""
    where = f"resources[{i}]"
    if not isinstance(item, dict):
        raise ParseError("talosctl", f"resource #{i} is a {type(item).__name__}, not a mapping", field=where)
    for key in ("metadata", "spec"):
        if key not in item:
            raise ParseError("talosctl", f"resource #{i} has no '{key}' field", field=f"{where}.{key}")
    metadata = item["metadata"]
    if not isinstance(metadata, dict) or "id" not in metadata:
        raise ParseError("talosctl", f"resource #{i}: metadata.id missing", field=f"{where}.metadata.id")
    rid = metadata["id"]
    # YAML re-typing turns numeric IDs into numbers; IDs are strings in Talos.
    if isinstance(rid, bool) or not isinstance(rid, str | int | float):
        raise ParseError("talosctl", f"resource #{i}: metadata.id is a {type(rid).__name__}, not a string",
                         field=f"{where}.metadata.id")
    metadata["id"] = str(rid)
    node = item.setdefault("node", "")
    if not isinstance(node, str):
        raise ParseError("talosctl", f"resource #{i}: node is a {type(node).__name__}, not a string",
                         field=f"{where}.node")
    return item


_RELEASE_TAG = re.compile(r"v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?")  # Talos tags are semver with a leading v


def parse_version(text: str) -> dict[str, str]:
    """``talosctl version`` output → ``{"client": tag, "server": tag}`` (server absent with --client)."""
    if not isinstance(text, str):
        raise ParseError("talosctl", f"expected text, got {type(text).__name__}")
    tags: dict[str, str] = {}
    section = None
    for line in text.splitlines():
        if line.strip() in ("Client:", "Server:"):
            section = line.strip()[:-1].lower()
        m = re.match(r"\s+Tag:\s*(.*)", line)
        if m and section:
            tag = m.group(1).strip()
            if not _RELEASE_TAG.fullmatch(tag):  # a truncated or garbled line must not pass for a version
                raise ParseError("talosctl", f"{section.title()} Tag {tag!r} is not a Talos release tag (vX.Y.Z)",
                                 field=f"{section.title()}.Tag")
            tags[section] = tag
    if "client" not in tags:
        raise ParseError("talosctl", "no 'Client: Tag:' line in `talosctl version` output", field="Client.Tag")
    if section == "server" and "server" not in tags:  # the output ends inside the Server section: cut short
        raise ParseError("talosctl", "a 'Server:' section without its 'Tag:' line in `talosctl version` output",
                         field="Server.Tag")
    return tags


_HINTS = [
    ("connection refused", "the node does not answer on the Talos API: is it powered on and reachable?"),
    ("context deadline exceeded", "the node did not come back in time: check that it is powered on and booting "
     "(console, `talosctl dmesg`), then run this notebook again: it resumes with the nodes not yet done"),
    ("is the system disk", "the device is the node's system disk; pick another device"),
    ("blockdevice is in use by volume", "remove the volume from the machine configuration before wiping it"),
    ("failed to get volume status", "the node has no such volume; check `talosctl get volumestatus`"),
    ("etcd", "etcd is unhealthy: wait until every control-plane node is back before continuing"),
    ("PermissionDenied", "the talosconfig lacks the os:admin role needed for this command"),
]


def hint_for(stderr: str) -> str | None:
    for needle, hint in _HINTS:
        if needle in stderr:
            return hint
    return None


class NodeRef(Protocol):
    """What a talosctl call needs of a node: its name (in steps and messages), the address talosctl reaches it
    on, its role. The parameter file's ``params.Node`` is one; there is no second node type."""

    name: str
    address: str
    role: str


@dataclass(frozen=True)
class NodeGroup:
    """Nodes one talosctl call reaches together (``--nodes a,b``: apid fans the one request out to each), so they
    act at the same moment however long a talosctl process takes to start."""

    members: tuple[NodeRef, ...]

    @property
    def name(self) -> str:
        return ",".join(n.name for n in self.members)

    @property
    def address(self) -> str:
        return ",".join(n.address for n in self.members)

    @property
    def role(self) -> str:
        return ",".join(sorted({n.role for n in self.members}))


class Talosctl:
    """Calls the ``talosctl`` executable for one cluster."""

    def __init__(self, executor: Executor, binary: str, talosconfig: str | None) -> None:
        self.executor = executor
        self.binary = binary
        self.talosconfig = talosconfig

    def _base(self, node: NodeRef | None) -> list[str]:
        argv = [self.binary]
        if self.talosconfig:
            argv += ["--talosconfig", os.path.expanduser(self.talosconfig)]
        if node is not None:
            argv += ["--nodes", node.address]
        return argv

    def _read(self, node: NodeRef | None, args: Sequence[str], *, step: str, timeout: float = 60.0) -> str:
        argv = self._base(node) + list(args)
        try:
            res = self.executor.run(argv, step=step, target=node.name if node else "cluster", timeout=timeout,
                                    error=TalosError)
        except TalosError as err:
            err.hint = err.hint or hint_for(err.stderr)
            raise
        assert res is not None  # reads are never planned
        return res.stdout

    # -- reads
    def get(self, node: NodeRef, resource: str, resource_id: str | None = None, *, namespace: str | None = None) -> list[dict]:
        args = ["get", resource] + ([resource_id] if resource_id else []) + ["-o", "json"]
        if namespace:
            args += ["--namespace", namespace]
        return parse_resources(self._read(node, args, step=f"read {resource}"))

    def version(self, node: NodeRef) -> str:
        tags = parse_version(self._read(node, ["version"], step="read version"))
        if "server" not in tags:
            raise ParseError("talosctl", f"`talosctl version` printed no 'Server: Tag:' line for {node.name}",
                             field="Server.Tag")
        return tags["server"]

    def client_version(self) -> str:
        return parse_version(self._read(None, ["version", "--client"], step="talosctl version"))["client"]

    def read(self, node: NodeRef, path: str) -> str:
        return self._read(node, ["read", path], step=f"read {path}")

    def read_each(self, nodes: Sequence[NodeRef], path: str) -> dict[str, str | TalosError]:
        """``talosctl read`` of ``path`` on each node, side by side (``read`` takes one node per call): node name →
        the file's text, or the :class:`TalosError` its read raised, for the caller to judge; in the given order."""
        nodes = list(nodes)

        def one(node: NodeRef) -> str | TalosError:
            try:
                return self.read(node, path)
            except TalosError as err:
                return err

        if len(nodes) <= 1:
            return {n.name: one(n) for n in nodes}
        with ThreadPoolExecutor(max_workers=min(len(nodes), READS_AT_ONCE), thread_name_prefix="talosctl-read") as pool:
            return dict(zip([n.name for n in nodes], pool.map(one, nodes), strict=True))

    def machine_config(self, node: NodeRef) -> str:
        """The node's running machine configuration (secret material: never record or print it)."""
        items = self.get(node, "machineconfig", "v1alpha1")
        if not items:
            raise ParseError("talosctl", f"no machineconfig resource on {node.name}")
        spec = items[0]["spec"]
        return spec if isinstance(spec, str) else yaml.safe_dump(spec)

    # -- reads of several nodes in one call
    #
    # ``talosctl --nodes a,b,c get ...`` runs the request against each node in turn and prints one
    # object stream, each object's ``node`` being the value given to ``--nodes``; ``version`` prints
    # one ``NODE:`` block per node. A node that fails does not stop the others: its error is
    # collected (``N error(s) occurred:``) and the command exits 1. ``read`` and ``health`` refuse
    # several nodes, and writes stay per node, so those keep the one-node methods above.
    #
    # A failure is reported against one node, as the one-node reads do: the first node (in the
    # given order) whose address the error text names (dial errors do), else the first node whose
    # own read fails when the nodes are read again one by one. If every one-node read then
    # succeeds, the batch error was transient and their results are used.

    def get_many(self, nodes: Sequence[NodeRef], resource: str, resource_id: str | None = None, *,
                 namespace: str | None = None) -> dict[str, list[dict]]:
        """``get`` on every node in one call: node name → its resources (in the given node order)."""
        nodes = list(nodes)
        if len(nodes) <= 1:
            return {n.name: self.get(n, resource, resource_id, namespace=namespace) for n in nodes}
        args = ["get", resource] + ([resource_id] if resource_id else []) + ["-o", "json"]
        if namespace:
            args += ["--namespace", namespace]
        out = self._read_many(nodes, args, step=f"read {resource}",
                              one=lambda n: self.get(n, resource, resource_id, namespace=namespace))
        if not isinstance(out, str):
            return out
        by_address = {n.address: n.name for n in nodes}
        result: dict[str, list[dict]] = {n.name: [] for n in nodes}
        for i, item in enumerate(parse_resources(out)):
            name = by_address.get(item["node"])
            if name is None:
                raise ParseError("talosctl", f"resource #{i} is from node {item['node']!r}, which was not asked for "
                                 f"(asked: {', '.join(by_address)})", field=f"resources[{i}].node")
            result[name].append(item)
        return result

    def versions(self, nodes: Sequence[NodeRef]) -> dict[str, str]:
        """Talos version (server tag) of every node in one call: node name → tag."""
        nodes = list(nodes)
        if len(nodes) <= 1:
            return {n.name: self.version(n) for n in nodes}
        out = self._read_many(nodes, ["version"], step="read version", one=self.version)
        if not isinstance(out, str):
            return out
        tags = self._server_tags(out)
        result = {}
        for n in nodes:
            if n.address not in tags:
                raise ParseError("talosctl", f"`talosctl version` printed no 'Server: NODE: {n.address}' block with a "
                                 f"'Tag:' line for {n.name}", field="Server.Tag")
            result[n.name] = tags[n.address]
        return result

    def machine_configs(self, nodes: Sequence[NodeRef]) -> dict[str, str]:
        """Every node's running machine configuration in one call (secret material: never record or print it)."""
        result = {}
        for name, items in self.get_many(nodes, "machineconfig", "v1alpha1").items():
            if not items:
                raise ParseError("talosctl", f"no machineconfig resource on {name}")
            spec = items[0]["spec"]
            result[name] = spec if isinstance(spec, str) else yaml.safe_dump(spec)
        return result

    @staticmethod
    def _server_tags(text: str) -> dict[str, str]:
        """``talosctl version`` with several nodes → ``{node: server tag}`` (the ``NODE:`` line opens a block)."""
        parse_version(text)  # the client block must be there (raises ParseError otherwise)
        tags: dict[str, str] = {}
        in_server, node = False, None
        for line in text.splitlines():
            if line.strip() in ("Client:", "Server:"):
                in_server, node = line.strip() == "Server:", None
                continue
            if not in_server:
                continue
            m = re.match(r"\s+NODE:\s+(\S+)", line)
            if m:
                node = m.group(1)
                continue
            m = re.match(r"\s+Tag:\s+(\S+)", line)
            if m and node is not None:
                tags.setdefault(node, m.group(1))
        return tags

    def _read_many(self, nodes: list[NodeRef], args: Sequence[str], *, step: str, one, timeout: float = 60.0):
        """Run a read against all ``nodes`` in one call; its stdout, or ``{name: one(node)}`` after a failure
        that named no node and did not repeat (see above). A failure raises :class:`TalosError` for one node."""
        argv = self._base(None) + ["--nodes", ",".join(n.address for n in nodes)] + list(args)
        try:
            res = self.executor.run(argv, step=step, target=",".join(n.name for n in nodes), timeout=timeout,
                                    error=TalosError)
        except TalosError as err:
            named = next((n for n in nodes if _names(err.stderr, n.address)), None)
            if named is None:
                # The error does not say which node failed: read them one by one (each failure names its node).
                return {n.name: one(n) for n in nodes}
            err.target = named.name
            err.hint = err.hint or hint_for(err.stderr)
            raise
        assert res is not None  # reads are never planned
        return res.stdout

    def health(self, node: NodeRef, *, control_plane: Sequence[str], workers: Sequence[str], wait_timeout: str = "5m",
               timeout: float = 600.0) -> None:
        args = ["health", "--wait-timeout", wait_timeout, "--control-plane-nodes", ",".join(control_plane)]
        if workers:
            args += ["--worker-nodes", ",".join(workers)]
        self._read(node, args, step="health", timeout=timeout)

    # -- writes
    def apply_config(self, node: NodeRef, config_text: str, *, step: str, manifest: str, mode: str = "no-reboot") -> bool:
        """Apply a whole machine configuration. The file only lives for the call (mode 0600)."""
        fd, path = tempfile.mkstemp(prefix="machineconfig-", suffix=".yaml")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(config_text)
            argv = self._base(node) + ["apply-config", "--file", path, "--mode", mode]
            shown = self._base(node) + ["apply-config", "--file", "<running config + rendered documents>", "--mode", mode]
            return self._write(node, argv, shown, step=step, manifest=manifest) is not None
        finally:
            os.unlink(path)

    def patch_machineconfig(self, node: NodeRef, patch_text: str, *, step: str, mode: str = "no-reboot",
                            then: Sequence[str] = ()) -> bool:
        """Apply a (multi-document) config patch, and the patches in ``then`` after it in the same call
        (talosctl applies repeated ``--patch`` flags in order); the patches are the recorded manifest."""
        patches = [patch_text, *then]
        paths = []
        try:
            for text in patches:
                fd, path = tempfile.mkstemp(prefix="patch-", suffix=".yaml")
                paths.append(path)
                with os.fdopen(fd, "w") as fh:
                    fh.write(text)
            argv = self._base(node) + ["patch", "machineconfig"]
            shown = list(argv)
            for i, path in enumerate(paths):
                argv += ["--patch", f"@{path}"]
                shown += ["--patch", "@<manifest>" if len(paths) == 1 else f"@<manifest part {i + 1}>"]
            argv += ["--mode", mode]
            shown += ["--mode", mode]
            manifest = "\n# then, in the same call:\n".join(patches)
            return self._write(node, argv, shown, step=step, manifest=manifest) is not None
        finally:
            for path in paths:
                os.unlink(path)

    def upgrade(self, node: NodeRef, image: str, *, step: str, timeout: str = "15m") -> bool:
        """Upgrade to ``image`` and wait (``--wait``) until the node answers again after its reboot."""
        argv = self._base(node) + ["upgrade", "--image", image, "--wait=true", "--timeout", timeout]
        return self._write(node, argv, argv, step=step, manifest=None, destructive="upgrade",
                           timeout=_seconds(timeout) + 60) is not None

    def reset(self, node: NodeRef, *, step: str, system_labels: Sequence[str], graceful: bool = True,
              reboot: bool = True, timeout: str = "15m", manifest: str | None = None) -> bool:
        args = ["reset", f"--graceful={str(graceful).lower()}", f"--reboot={str(reboot).lower()}",
                "--wait=true", "--timeout", timeout]
        for label in system_labels:
            args += ["--system-labels-to-wipe", label]
        argv = self._base(node) + args
        return self._write(node, argv, argv, step=step, manifest=manifest, destructive="reset", timeout=_seconds(timeout) + 60) is not None

    def reboot(self, node: NodeRef, *, step: str, approval: str = "drill", approval_target: str | None = None) -> bool:
        """Start a reboot and return (``--wait=false``): the caller watches the node go and come back.

        ``approval`` (and ``approval_target``, default this node) is the ``confirm`` entry it needs.
        """
        argv = self._base(node) + ["reboot", "--wait=false"]
        return self._write(node, argv, argv, step=step, manifest=None, destructive=approval,
                           approval_target=approval_target) is not None

    def shutdown(self, node: NodeRef, *, step: str, approval: str = "drill", approval_target: str | None = None) -> bool:
        """Power the node off (it stays off until someone powers it on). Talos cordons and drains it first."""
        argv = self._base(node) + ["shutdown", "--wait=false"]
        return self._write(node, argv, argv, step=step, manifest=None, destructive=approval,
                           approval_target=approval_target) is not None

    def etcd_snapshot(self, node: NodeRef, path: str, *, timeout: float = 300.0) -> str:
        """``talosctl etcd snapshot <path>`` through ``node`` (a control-plane node): its output.

        A read for the cluster (nothing there changes), so it is not an action in the record; the
        file holds every cluster Secret and never goes into a record.
        """
        return self._read(node, ["etcd", "snapshot", path], step="etcd snapshot", timeout=timeout)

    def _write(self, node: NodeRef, argv: list[str], shown: list[str], *, step: str, manifest: str | None,
               destructive: str | None = None, timeout: float = 300.0, approval_target: str | None = None):
        try:
            return self.executor.run(argv, step=step, target=node.name, mutating=True, destructive=destructive,
                                     manifest=manifest, shown_argv=shown, timeout=timeout, error=TalosError,
                                     approval_target=approval_target)
        except TalosError as err:
            err.hint = err.hint or hint_for(err.stderr)
            raise


def _names(text: str, address: str) -> bool:
    """Whether ``text`` names ``address`` as a whole word (``10.5.0.2`` is not in ``10.5.0.20``)."""
    return bool(address) and re.search(rf"(?<![\w.-]){re.escape(address)}(?![\w-]|\.\w)", text or "") is not None


def _seconds(duration: str) -> float:
    """Go duration (``15m``, ``30s``, ``1h``) → seconds."""
    total = 0.0
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", duration):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total
