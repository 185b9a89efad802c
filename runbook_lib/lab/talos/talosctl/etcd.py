"""talosctl etcd members, status, remove-member and snapshot."""

from __future__ import annotations

import base64
import json
import os

from .. import etcd_snapshot
from ..errors import TalosAPIError
from .commands import CLIError
from .output import tabwrite
from .session import Talosctl, _errno_text
from .transport import append_errors, node_path


class EtcdCommands(Talosctl):
    """talosctl etcd members, status, remove-member and snapshot."""

    def cmd_etcd_members(self) -> None:
        rows = [["NODE", "ID", "HOSTNAME", "PEER URLS", "CLIENT URLS", "LEARNER"]]
        errors = []
        for node in self.nodes():
            try:
                data = self.client.call("GET", node_path(node, "etcd/members"))
            except TalosAPIError as e:
                errors.append(e.grpc())
                continue
            for m in data["members"]:
                rows.append([node, m["id"], m["hostname"], ",".join(m["peer_urls"]), ",".join(m["client_urls"]),
                             str(m["learner"]).lower()])
        self.out(tabwrite(rows))
        if errors:
            raise CLIError(append_errors(errors))

    def cmd_etcd_status(self) -> None:
        from runbook_lib.sizes import format_si

        rows = [["NODE", "MEMBER", "DB SIZE", "IN USE", "LEADER", "RAFT INDEX", "RAFT TERM", "RAFT APPLIED INDEX",
                 "LEARNER", "ERRORS"]]
        errors = []
        for node in self.nodes():
            try:
                s = self.client.call("GET", node_path(node, "etcd/status"))
            except TalosAPIError as e:
                errors.append(e.grpc())
                continue
            pct = 100.0 * s["db_size_in_use"] / s["db_size"]
            rows.append([node, s["member_id"], format_si(s["db_size"]),
                         f"{format_si(s['db_size_in_use'])} ({pct:.2f}%)", s["leader"], str(s["raft_index"]),
                         str(s["raft_term"]), str(s["raft_applied_index"]), str(s["learner"]).lower(),
                         ", ".join(s["errors"])])
        self.out(tabwrite(rows))
        if errors:
            raise CLIError(append_errors(errors))

    def cmd_etcd_remove_member(self) -> None:
        node = self.single_node("etcd remove-member")
        try:
            self.client.call("POST", node_path(node, "etcd/remove-member"), {"member": self.args[0]})
        except TalosAPIError as e:
            raise CLIError(e.grpc()) from None

    def cmd_etcd_snapshot(self) -> None:
        """talosctl ``cmd/talos/etcd.go``: stream to ``<path>.part`` (0600), check etcd's trailer, rename, report."""
        node = self.single_node("etcd snapshot")
        db_path = self.args[0]
        part_path = db_path + ".part"
        try:
            fd = os.open(part_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as e:
            raise CLIError(f"error creating temporary file: open {part_path}: {_errno_text(e)}") from None
        try:
            with os.fdopen(fd, "wb") as dest:
                try:
                    data = base64.b64decode(self.client.call("GET", node_path(node, "etcd/snapshot"))["snapshot"])
                except TalosAPIError as e:  # the stream fails to open (dial) or while it is read (server error)
                    prefix = "error reading file" if e.code == "Unavailable" else "error reading"
                    raise CLIError(f"{prefix}: {e.grpc()}") from None
                dest.write(data)
                dest.flush()
                os.fsync(dest.fileno())
            if len(data) % 512 != 32:
                raise CLIError(f"sha256 checksum not found (size {len(data)})")
            os.rename(part_path, db_path)
        finally:
            if os.path.exists(part_path):
                os.remove(part_path)
        self.out(f"etcd snapshot saved to {json.dumps(db_path)} ({len(data)} bytes)\n")
        try:
            info = etcd_snapshot.status(data)
        except ValueError as e:
            raise CLIError(str(e)) from None
        self.out(f"snapshot info: hash {info['hash']:08x}, revision {info['revision']}, total keys "
                 f"{info['total_keys']}, total size {info['total_size']}\n")
