"""One talosctl call: its options, talosconfig context, client and target nodes (the command classes' base)."""

from __future__ import annotations

from .commands import CLIError, Command
from .transport import Client, Context, load_context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class Talosctl:
    """One talosctl call against the lab: options, context, client, nodes; :meth:`run` calls ``cmd_<command>``."""

    def __init__(self, opts: dict, cmd: Command, args: list[str], out: Callable[[str], None],
                 err: Callable[[str], None]) -> None:
        self.opts = opts
        self.cmd = cmd
        self.args = args
        self.out = out
        self.err = err
        self._client: Client | None = None
        self._ctx: Context | None = None

    @property
    def ctx(self) -> Context:
        if self._ctx is None:
            self._ctx = load_context(self.opts)
        return self._ctx

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.ctx)
        return self._client

    def nodes(self) -> list[str]:
        nodes = self.ctx.nodes
        if not nodes:
            raise CLIError("nodes are not set for the command: please use `--nodes` flag or configuration file to set "
                           "the nodes to run the command against")
        return nodes

    def single_node(self, command: str) -> str:
        nodes = self.nodes()
        if len(nodes) > 1:
            raise CLIError(f'command "{command}" is not supported with multiple nodes')
        return nodes[0]

    def run(self) -> None:
        handler = getattr(self, "cmd_" + self.cmd.path.replace(" ", "_").replace("-", "_"))
        handler()


def _errno_text(exc: OSError) -> str:
    """Go's spelling of an errno (``no such file or directory``), as ``os.OpenFile`` errors print it."""
    return (exc.strerror or str(exc)).lower()
