"""talosctl get: resources of one or more nodes in the requested output format."""

from __future__ import annotations

from urllib.parse import quote

from ..errors import TalosAPIError
from .commands import CLIError
from .output import format_resources
from .session import Talosctl
from .transport import append_errors, node_path


class ResourceCommands(Talosctl):
    """talosctl get."""

    def cmd_get(self) -> None:
        o = self.opts
        if o["watch"]:
            raise CLIError("watching resources is not supported by the lab's talosctl")
        nodes = self.nodes()
        ins = "&insecure=true" if o["insecure"] else ""
        try:
            rd = self.client.call("GET", node_path(nodes[0], "resolve?type=" + quote(self.args[0]) + ins))
        except TalosAPIError as e:
            raise CLIError(e.grpc()) from None
        items: list[tuple[str, dict]] = []
        errors: list[str] = []
        rid = "/" + quote(self.args[1], safe="") if len(self.args) > 1 else ""
        q = f"?namespace={quote(o['namespace'])}" if o["namespace"] else "?"
        for node in nodes:
            try:
                data = self.client.call("GET", node_path(node, f"resources/{rd['type']}{rid}{q}{ins}"))
                items.extend((node, r) for r in data["items"])
            except TalosAPIError as e:
                errors.append(e.grpc())
        if items or o["output"] == "table":
            self.out(format_resources(o["output"], rd, items))
        if errors:
            raise CLIError(append_errors(errors))
