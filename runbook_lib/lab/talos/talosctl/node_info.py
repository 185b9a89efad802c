"""talosctl health, version, read and wipe disk."""

from __future__ import annotations

import time
from urllib.parse import quote

from ..constants import DEFAULT_TALOS_VERSION, GO_VERSIONS
from ..errors import TalosAPIError
from ..releases import parse_version
from .commands import CLIError
from .session import Talosctl
from .transport import POLL_INTERVAL, append_errors, node_path


class NodeInfoCommands(Talosctl):
    """talosctl health, version, read and wipe disk."""

    def cmd_health(self) -> None:
        o = self.opts
        node = self.single_node("health")
        client = self.client
        client.info()
        deadline = time.monotonic() + o["wait_timeout"]  # real seconds, like the real talosctl
        body = {"control_plane_nodes": o["control_plane_nodes"], "worker_nodes": o["worker_nodes"]}
        cursor, announced, last_err = 0, -1, None
        while True:
            try:
                data = client.call("POST", node_path(node, "health"), body)
            except TalosAPIError as e:
                raise CLIError(f"healthcheck error: {e.grpc()}") from None
            if announced == -1 and not (o["control_plane_nodes"] or o["worker_nodes"]):
                self.err("discovered nodes: [" + " ".join(f'"{a}"' for a in data["nodes"]) + "]\n")
            checks = data["checks"]
            while cursor < len(checks):
                name, error = checks[cursor]
                if announced < cursor:
                    self.err(f"waiting for {name}: ...\n")
                    announced, last_err = cursor, None
                if error is None:
                    self.err(f"waiting for {name}: OK\n")
                    cursor += 1
                    continue
                if error != last_err:
                    self.err(f"waiting for {name}: {error}\n")
                    last_err = error
                break
            if cursor >= len(checks):
                return
            if time.monotonic() > deadline:
                raise CLIError("healthcheck error: rpc error: code = DeadlineExceeded desc = context deadline exceeded")
            time.sleep(POLL_INTERVAL)

    def cmd_version(self) -> None:
        o = self.opts
        client = {}
        try:
            self.client.info()
            tag = self.client.client_version
            client = {"go_version": self.client.client_go_version, "sha": self.client.client_sha}
        except (TalosAPIError, CLIError):
            tag = DEFAULT_TALOS_VERSION
        lines = ["Client:"]
        lines += [f"\tTag:         {tag}"] if o["short"] else _version_block(tag, client)
        self.out("\n".join(lines) + "\n")
        if o["client"]:
            return
        self.out("Server:\n")
        errors = []
        for node in self.nodes():
            try:
                v = self.client.call("GET", node_path(node, "version" + ("?insecure=true" if o["insecure"] else "")))
            except TalosAPIError as e:
                errors.append(e.grpc())
                continue
            block = [f"\tNODE:        {node}", f"\tTag:         {v['tag']}"]
            if not o["short"]:
                block = [block[0], *_version_block(v["tag"], v)]
                if v.get("features", {}).get("rbac"):
                    block.append("\tEnabled:     RBAC")
            self.out("\n".join(block) + "\n")
        if errors:
            raise CLIError(f"error getting version: {errors[0] if len(errors) == 1 else append_errors(errors)}")

    def cmd_read(self) -> None:
        errors = []
        for node in self.nodes():
            try:
                data = self.client.call("GET", node_path(node, "read?path=" + quote(self.args[0])))
                self.out(data["content"])
            except TalosAPIError as e:
                errors.append(e.grpc())
        if errors:
            raise CLIError(append_errors(errors))

    def cmd_wipe_disk(self) -> None:
        o = self.opts
        if o["method"] not in ("FAST", "ZEROES"):
            raise CLIError(f'invalid wipe method "{o["method"]}"')
        errors = []
        for node in self.nodes():
            try:
                self.client.call("POST", node_path(node, "wipe"), {
                    "devices": self.args, "method": o["method"], "drop_partition": o["drop_partition"]})
            except TalosAPIError as e:
                errors.append(e.grpc())
        if errors:
            raise CLIError(errors[0] if len(errors) == 1 else append_errors(errors))


def _version_block(tag: str, server: dict | None = None) -> list[str]:
    """``Tag``/``SHA``/``Go version`` lines; the values come from the lab (``/info`` for the client,
    the node's version answer for a server), else are derived from the tag as the model does."""
    go = (server or {}).get("go_version") or GO_VERSIONS.get(parse_version(tag)[:2], "go1.25.5")
    sha = (server or {}).get("sha") or __import__("hashlib").sha1(tag.encode()).hexdigest()[:8]
    return [f"\tTag:         {tag}", f"\tSHA:         {sha}", "\tBuilt:       ", f"\tGo version:  {go}",
            "\tOS/Arch:     linux/amd64"]
