"""The lab's ``talosctl``: same flags, output and exit codes as the real CLI, against the lab.

``python -m runbook_lib.lab.talos.talosctl ...`` (the lab installs a ``talosctl`` wrapper script
that runs it). It reads the talosconfig like the real tool (``--talosconfig``, else
``$TALOSCONFIG``, else ``~/.talos/config``), sends each call to the first endpoint of
the context over HTTP (the lab writes ``127.0.0.1:<port>`` there) and prints what the
real talosctl prints (reference notes §2.1 and §3; talosctl ``cmd/talosctl``):

- ``get -o json``: concatenated 4-space-indented objects with sorted keys, scalars re-typed
  the way a YAML round trip re-types them; ``-o yaml``: ``---`` between resources,
  ``node:`` then ``metadata:``/``spec:`` in go-yaml's 4-space style; ``-o table`` (default)
  through a tabwriter with 3 spaces of padding.
- Errors go to stderr and exit 1 (never another code); cobra usage is appended when the
  message mentions ``arg(s)``, ``flag`` or ``command``; per-node errors are collected as
  ``N error(s) occurred:`` (talosctl ``helpers.AppendErrors``).
- ``--wait`` (reset, upgrade, reboot, shutdown) prints one ``"<node>": <message>`` line per
  update on stderr (the non-TTY reporter) and waits in *lab* time, polling the lab.

It starts as a fresh process for every call (the runbooks make hundreds), so it imports
only what a call needs: no ``urllib``/``http.client`` (a few lines of HTTP/1.1 over a
socket), no ``dataclasses`` or ``typing``, and the Talos model (machine-config parsing,
go-yaml output) only for the commands that use it (``apply-config``, ``patch``, ``-o yaml``).
``python -X importtime -m runbook_lib.lab.talos.talosctl version --client`` shows what is left.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from urllib.parse import quote

from .constants import DEFAULT_TALOS_VERSION, GO_VERSIONS
from .errors import TalosAPIError
from .go_yaml import EMPTY, Raw, dump_config, go_yaml_dump
from .releases import parse_version
from .resource_types import go_duration, resolve_resource_type

# Not imported here, to keep the start of each call short (see the module docstring):
# yaml (when the talosconfig is read), .machine_config (apply-config, patch), datetime.
# Annotations are not evaluated (``from __future__ import annotations``): typing is for checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

POLL_INTERVAL = 0.02  # real seconds between --wait / health polls




def _config():
    """The machine-configuration module, imported on first use by ``apply-config`` and ``patch`` (it needs yaml)."""
    from . import machine_config

    return machine_config


class CLIError(Exception):
    """An error talosctl prints and exits 1 with; ``printed`` suppresses the final print (--wait)."""

    def __init__(self, message: str, *, printed: bool = False, usage: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.printed = printed
        self.usage = usage


# ----------------------------------------------------------------------------- flags (a small pflag)


class Flag:
    __slots__ = ("name", "kind", "default", "short", "usage", "hidden")

    def __init__(self, name: str, kind: str, default: Any = None, short: str = "", usage: str = "",
                 hidden: bool = False) -> None:
        self.name = name
        self.kind = kind  # bool | string | strings (comma-separated slice) | array (no splitting) | duration
        self.default = default
        self.short = short
        self.usage = usage
        self.hidden = hidden

    def __repr__(self) -> str:
        return f"Flag({self.name!r}, {self.kind!r}, {self.default!r})"

    def type_name(self) -> str:
        return {"bool": "", "string": "string", "strings": "strings", "array": "stringArray",
                "duration": "duration"}[self.kind]


class Command:
    __slots__ = ("path", "use", "short", "min_args", "max_args", "flags", "aliases")

    def __init__(self, path: str, use: str, short: str, min_args: int = 0, max_args: int | None = 0,
                 flags: list[Flag] | None = None, aliases: tuple[str, ...] = ()) -> None:
        self.path = path  # "get", "etcd members", "wipe disk", "patch"
        self.use = use
        self.short = short
        self.min_args = min_args
        self.max_args = max_args
        self.flags = list(flags or [])
        self.aliases = aliases

    def __repr__(self) -> str:
        return f"Command({self.path!r})"


GLOBAL_FLAGS = [
    Flag("cluster", "string", "", "c", "Cluster to connect to if a proxy endpoint is used."),
    Flag("context", "string", "", "", "Context to be used in command"),
    Flag("endpoints", "strings", [], "e", "override default endpoints in Talos configuration"),
    Flag("nodes", "strings", [], "n", "target the specified nodes"),
    Flag("talosconfig", "string", "", "", "The path to the Talos configuration file. Defaults to 'TALOSCONFIG' env "
         "variable if set, otherwise '$HOME/.talos/config' and '/var/run/secrets/talos.dev/config' in order."),
]

_MODE_HELP = "apply config mode (auto, no-reboot, reboot, staged, try)"
_WAIT = Flag("wait", "bool", True, "", "wait for the operation to complete, tracking its progress. always set to true "
             "when --debug is set")
_TIMEOUT = Flag("timeout", "duration", 1800.0, "", "time to wait for the operation is complete if --debug or --wait "
                "is set")
_DEBUG = Flag("debug", "bool", False, "", "debug operation from kernel logs. --wait is set to true when this flag is set")

COMMANDS: list[Command] = [
    Command("get", "get <type> [<id>]", "Get a specific resource or list of resources (use 'talosctl get rd' to see "
            "all available resource types).", 1, 2, [
                Flag("insecure", "bool", False, "i", "get resources using the insecure (encrypted with no auth) "
                     "maintenance service"),
                Flag("namespace", "string", "", "", "resource namespace (default is to use default namespace per "
                     "resource)"),
                Flag("output", "string", "table", "o", "output mode (json, table, yaml, jsonpath)"),
                Flag("watch", "bool", False, "w", "watch resource changes")], ("g",)),
    Command("apply-config", "apply-config", "Apply a new configuration to a node", 0, 0, [
        Flag("cert-fingerprint", "strings", [], "", "list of server certificate fingeprints to accept (defaults to "
             "no check)"),
        Flag("config-patch", "array", [], "p", "the list of config patches to apply to the local config file "
             "before sending it to the node"),
        Flag("dry-run", "bool", False, "", "check how the config change will be applied in dry-run mode"),
        Flag("file", "string", "", "f", "the filename of the updated configuration"),
        Flag("insecure", "bool", False, "i", "apply the config using the insecure (encrypted with no auth) "
             "maintenance service"),
        Flag("mode", "string", "auto", "m", _MODE_HELP),
        Flag("timeout", "duration", 60.0, "", "the config will be rolled back after specified timeout (if try mode "
             "is selected)")], ("apply",)),
    Command("patch", "patch <type> [<id>]", "Update field(s) of a resource using a JSON patch.", 1, 2, [
        Flag("dry-run", "bool", False, "", "print the change summary and patch preview without applying the changes"),
        Flag("mode", "string", "auto", "m", _MODE_HELP),
        Flag("patch", "array", [], "p", "the patch to be applied to the resource file, use @file to read a patch "
             "from file."),
        Flag("patch-file", "string", "", "", "a file containing a patch to be applied to the resource."),
        Flag("timeout", "duration", 60.0, "", "the config will be rolled back after specified timeout (if try mode "
             "is selected)")]),
    Command("reset", "reset", "Reset a node", 0, 0, [
        _DEBUG,
        Flag("graceful", "bool", True, "", "if true, attempt to cordon/drain node and leave etcd (if applicable)"),
        Flag("insecure", "bool", False, "", "reset using the insecure (encrypted with no auth) maintenance service"),
        Flag("reboot", "bool", False, "", "if true, reboot the node after resetting instead of shutting down"),
        Flag("system-labels-to-wipe", "strings", [], "", "if set, just wipe selected system disk partitions by label "
             "but keep other partitions intact"),
        _TIMEOUT,
        Flag("user-disks-to-wipe", "strings", [], "", "if set, wipes defined devices in the list"),
        _WAIT,
        Flag("wipe-mode", "string", "all", "", "disk reset mode (all, system-disk, user-disks)")]),
    Command("upgrade", "upgrade", "Upgrade Talos on the target node", 0, 0, [
        _DEBUG,
        Flag("force", "bool", False, "f", "force the upgrade (skip checks on etcd health and members, might lead to "
             "data loss)"),
        Flag("image", "string", None, "i", "the container image to use for performing the install"),
        Flag("insecure", "bool", False, "", "upgrade using the insecure (encrypted with no auth) maintenance service"),
        Flag("preserve", "bool", False, "p", "", hidden=True),
        Flag("reboot-mode", "string", "default", "m", "select the reboot mode during upgrade. Mode \"powercycle\" "
             "bypasses kexec. Valid values are: [\"default\" \"powercycle\"]."),
        Flag("stage", "bool", False, "s", "stage the upgrade to perform it after a reboot"),
        _TIMEOUT, _WAIT]),
    Command("reboot", "reboot", "Reboot a node", 0, 0, [
        _DEBUG,
        Flag("mode", "string", "default", "m", "select the reboot mode: \"default\", \"powercycle\" (skips kexec), "
             "\"force\" (skips graceful teardown)"),
        _TIMEOUT, _WAIT]),
    Command("shutdown", "shutdown", "Shutdown a node", 0, 0, [
        _DEBUG, Flag("force", "bool", False, "", "if true, force a node to shutdown without a cordon/drain"),
        _TIMEOUT, _WAIT]),
    Command("health", "health", "Check cluster health", 0, 0, [
        Flag("control-plane-nodes", "strings", [], "", "specify IPs of control plane nodes"),
        Flag("init-node", "string", "", "", "specify IPs of init node"),
        Flag("k8s-endpoint", "string", "", "", "use endpoint instead of kubeconfig default"),
        Flag("run-e2e", "bool", False, "", "run Kubernetes e2e test"),
        Flag("server", "bool", True, "", "run server-side check"),
        Flag("wait-timeout", "duration", 1200.0, "", "timeout to wait for the cluster to be ready"),
        Flag("worker-nodes", "strings", [], "", "specify IPs of worker nodes")]),
    Command("version", "version", "Prints the version", 0, 0, [
        Flag("client", "bool", False, "", "Print client version only"),
        Flag("insecure", "bool", False, "i", "use Talos maintenance mode API"),
        Flag("json", "bool", False, "", "", hidden=True),
        Flag("short", "bool", False, "", "Print the short version")]),
    Command("read", "read <path>", "Read a file on the machine", 1, 1, [], ("cat",)),
    Command("wipe disk", "disk <device names>...", "Wipe a block device (disk or partition) which is not used as a "
            "volume", 1, None, [
                Flag("drop-partition", "bool", False, "", "drop partition after wipe (if applicable)"),
                Flag("method", "string", "FAST", "", "wipe method to use [FAST ZEROES]")]),
    Command("etcd members", "members", "Get the list of etcd cluster members", 0, 0, []),
    Command("etcd status", "status", "Get the status of etcd cluster member", 0, 0, []),
    Command("etcd remove-member", "remove-member <member ID>", "Remove the node from etcd cluster", 1, 1, []),
    Command("etcd snapshot", "snapshot <path>", "Stream snapshot of the etcd node to the path.", 1, 1, []),
]
_GROUPS = {"wipe": "Wipe block device or volumes", "etcd": "Manage etcd"}


def _find_command(words: list[str]) -> tuple[Command | None, int]:
    """Match the leading non-flag words against command paths (and aliases); returns (command, words used)."""
    if not words:
        return None, 0
    for cmd in COMMANDS:
        parts = cmd.path.split()
        names = {parts[0], *cmd.aliases} if len(parts) == 1 else {parts[0]}
        if words[0] in names and (len(parts) == 1 or (len(words) > 1 and words[1] == parts[1])):
            return cmd, len(parts)
    return None, 0


def _flag_lines(flags: list[Flag]) -> list[str]:
    rows = []
    for f in sorted(flags, key=lambda f: f.name):
        if f.hidden:
            continue
        left = (f"-{f.short}, " if f.short else "    ") + f"--{f.name}" + (f" {f.type_name()}" if f.type_name() else "")
        default = ""
        if f.kind == "bool" and f.default:
            default = " (default true)"
        elif f.kind == "string" and f.default:
            default = f' (default "{f.default}")'
        elif f.kind == "duration":
            default = f" (default {go_duration(f.default)})"
        rows.append((left, f.usage + default))
    width = max((len(r[0]) for r in rows), default=0)
    return [f"  {left.ljust(width)}   {text}" for left, text in rows]


def usage_text(cmd: Command | None) -> str:
    """Cobra's usage template, reduced to what talosctl shows."""
    if cmd is None:
        names = sorted({c.path.split()[0] for c in COMMANDS})
        lines = ["Usage:", "  talosctl [command]", "", "Available Commands:"]
        lines += [f"  {n.ljust(14)} {_GROUPS.get(n) or next(c.short for c in COMMANDS if c.path == n)}" for n in names]
        lines += ["", "Flags:", *_flag_lines(GLOBAL_FLAGS), "", 'Use "talosctl [command] --help" for more information '
                  "about a command."]
        return "\n".join(lines) + "\n"
    parent = cmd.path.rsplit(" ", 1)[0] + " " if " " in cmd.path else ""
    lines = ["Usage:", f"  talosctl {parent}{cmd.use} [flags]"]
    if cmd.aliases:
        lines += ["", "Aliases:", "  " + ", ".join([cmd.path.split()[-1], *cmd.aliases])]
    lines += ["", "Flags:", *_flag_lines([*cmd.flags, Flag("help", "bool", False, "h", f"help for {cmd.path.split()[-1]}")])]
    lines += ["", "Global Flags:", *_flag_lines(GLOBAL_FLAGS)]
    return "\n".join(lines) + "\n"


def parse_duration(text: str) -> float:
    """Go ``time.ParseDuration`` (seconds)."""
    if text in ("0", "+0", "-0"):
        return 0.0
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    m = re.fullmatch(r"((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+", text)
    if not m:
        raise ValueError(f'time: invalid duration "{text}"')
    return sum(float(v) * units[u] for v, u in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text))


def _parse_bool(text: str, flag: str) -> bool:
    """Go ``strconv.ParseBool``."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise CLIError(f'invalid argument "{text}" for "{flag}" flag: strconv.ParseBool: parsing "{text}": invalid syntax')


def parse_flags(flags: list[Flag], tokens: list[str]) -> tuple[dict[str, Any], list[str]]:
    """pflag-compatible parsing: interspersed flags, ``--x=v``, ``--x v``, ``-x v``, ``-xv``, bool ``--x=false``."""
    by_long = {f.name: f for f in flags}
    by_short = {f.short: f for f in flags if f.short}
    values: dict[str, Any] = {f.name: (list(f.default) if isinstance(f.default, list) else f.default) for f in flags}
    seen_lists: set[str] = set()
    args: list[str] = []

    def assign(f: Flag, raw: str, shown: str) -> None:
        if f.kind == "bool":
            values[f.name] = _parse_bool(raw, shown)
        elif f.kind == "duration":
            try:
                values[f.name] = parse_duration(raw)
            except ValueError as exc:
                raise CLIError(f'invalid argument "{raw}" for "{shown}" flag: {exc}') from None
        elif f.kind in ("strings", "array"):
            items = [raw] if f.kind == "array" else ([x for x in raw.split(",")] if raw else [])
            values[f.name] = (values[f.name] if f.name in seen_lists else []) + items
            seen_lists.add(f.name)
        else:
            values[f.name] = raw

    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok == "--":
            args.extend(tokens[i:])
            break
        if tok.startswith("--") and len(tok) > 2:
            name, eq, raw = tok[2:].partition("=")
            f = by_long.get(name)
            if f is None:
                if name == "help":
                    raise CLIError("help requested")
                raise CLIError(f"unknown flag: --{name}")
            if eq:
                assign(f, raw, f"--{name}")
            elif f.kind == "bool":
                values[f.name] = True
            elif i < len(tokens):
                assign(f, tokens[i], f"--{name}")
                i += 1
            else:
                raise CLIError(f"flag needs an argument: --{name}")
        elif tok.startswith("-") and len(tok) > 1:
            shorts = tok[1:]
            while shorts:
                c, shorts = shorts[0], shorts[1:]
                f = by_short.get(c)
                if f is None:
                    if c == "h":
                        raise CLIError("help requested")
                    raise CLIError(f"unknown shorthand flag: '{c}' in {tok}")
                shown = f"-{c}, --{f.name}"
                if shorts.startswith("="):
                    assign(f, shorts[1:], shown)
                    shorts = ""
                elif f.kind == "bool":
                    values[f.name] = True
                elif shorts:
                    assign(f, shorts, shown)
                    shorts = ""
                elif i < len(tokens):
                    assign(f, tokens[i], shown)
                    i += 1
                else:
                    raise CLIError(f"flag needs an argument: '{c}' in {tok}")
        else:
            args.append(tok)
    return values, args


def _split_command(argv: list[str]) -> tuple[Command | None, list[str], list[str]]:
    """Find the command words among the leading tokens (skipping global flags and their values)."""
    value_flags = {f"--{f.name}" for f in GLOBAL_FLAGS} | {f"-{f.short}" for f in GLOBAL_FLAGS if f.short}
    words: list[str] = []
    positions: list[int] = []
    i = 0
    while i < len(argv) and len(words) < 2:
        tok = argv[i]
        if tok == "--":
            break
        if tok.startswith("-"):
            i += 2 if (tok in value_flags and "=" not in tok) else 1
            continue
        words.append(tok)
        positions.append(i)
        i += 1
    cmd, used = _find_command(words)
    if cmd is None:
        return None, words, argv
    rest = [t for j, t in enumerate(argv) if j not in positions[:used]]
    return cmd, words[:used], rest


# ----------------------------------------------------------------------------- talosconfig and transport


class Context:
    __slots__ = ("endpoints", "nodes", "key")

    def __init__(self, endpoints: list[str], nodes: list[str], key: str) -> None:
        self.endpoints = endpoints
        self.nodes = nodes
        self.key = key


def load_context(opts: dict) -> Context:
    path = opts["talosconfig"] or os.environ.get("TALOSCONFIG") or os.path.expanduser("~/.talos/config")
    if not os.path.exists(path) and not opts["talosconfig"] and not os.environ.get("TALOSCONFIG"):
        alt = "/var/run/secrets/talos.dev/config"
        path = alt if os.path.exists(alt) else path
    import yaml

    try:
        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise CLIError(f"failed to open config file {path!r}: {exc.strerror.lower() if exc.strerror else exc}") from None
    except yaml.YAMLError as exc:
        raise CLIError(f"failed to parse config file {path!r}: {exc}") from None
    name = opts["context"] or data.get("context") or ""
    contexts = data.get("contexts") or {}
    if name not in contexts:
        raise CLIError(f'context "{name}" is not defined in \'contexts\' key in config')
    ctx = contexts[name] or {}
    endpoints = opts["endpoints"] or list(ctx.get("endpoints") or [])
    if not endpoints:
        raise CLIError("failed to determine endpoints")
    return Context(endpoints=endpoints, nodes=opts["nodes"] or list(ctx.get("nodes") or []), key=str(ctx.get("key", "")))


class Client:
    """HTTP client for the lab's Talos endpoint; every response updates ``lab_time``.

    One HTTP/1.1 request per connection (``Connection: close``), written and read over a plain
    socket: the lab answers every Talos call with a ``Content-Length`` JSON body.
    """

    def __init__(self, ctx: Context) -> None:
        endpoint = ctx.endpoints[0]
        if ":" not in endpoint.rsplit("]", 1)[-1]:
            endpoint += ":50000"
        self.endpoint = endpoint
        host, _, port = endpoint.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.key = ctx.key
        self.call_id = os.urandom(16).hex()
        self.lab_time = 0.0
        self.scale = 1.0
        self.client_version = ""
        self.client_go_version = ""
        self.client_sha = ""

    def call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else b""
        try:
            status, headers, payload = self._http(method, "/talos/v1" + path, data)
        except (OSError, ValueError) as exc:
            detail = "connect: connection refused" if "refused" in str(exc).lower() else str(exc)
            raise TalosAPIError("Unavailable", 'connection error: desc = "transport: Error while dialing: dial tcp '
                                f'{self.endpoint}: {detail}"') from None
        value = headers.get("x-lab-time")
        if value:
            self.lab_time = float(value)
        if status >= 400:
            try:
                err = json.loads(payload or b"{}")
            except ValueError:
                err = {}
            raise TalosAPIError(err.get("code", "Unknown"), err.get("message", f"HTTP {status}"))
        return json.loads(payload or b"null")

    def _http(self, method: str, path: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.endpoint}\r\nAuthorization: Bearer {self.key}\r\n"
                f"X-Talosctl-Call: {self.call_id}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n")
        with socket.create_connection((self.host, self.port), timeout=30) as sock, sock.makefile("rb") as rfile:
            sock.sendall(head.encode("latin-1") + data)
            status_line = rfile.readline(65537)
            parts = status_line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
                raise ConnectionResetError(f"malformed HTTP status line {status_line[:80]!r}")
            headers: dict[str, str] = {}
            while True:
                line = rfile.readline(65537)
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            length = headers.get("content-length")
            payload = rfile.read(int(length)) if length is not None else rfile.read()
        return int(parts[1]), headers, payload

    def info(self) -> None:
        data = self.call("GET", "/info")
        self.lab_time, self.scale = float(data["now"]), float(data["scale"])
        self.client_version = str(data.get("talosctl_version") or "") or DEFAULT_TALOS_VERSION
        self.client_go_version = str(data.get("talosctl_go_version") or "")
        self.client_sha = str(data.get("talosctl_sha") or "")


def node_path(node: str, rest: str) -> str:
    return f"/nodes/{quote(node, safe='')}/{rest}"


def append_errors(errors: list[str]) -> str:
    """talosctl ``helpers.AppendErrors``: ``1 error occurred:`` / ``2 errors occurred:`` then `` <err>`` lines."""
    word = "error" if len(errors) == 1 else "errors"
    return f"{len(errors)} {word} occurred:\n" + "\n".join(f" {e}" for e in errors)


# ----------------------------------------------------------------------------- output formatting


def _type_display(rtype: str) -> str:
    plural = rtype.split(".", 1)[0]
    return plural[:-2] if plural.endswith("ses") else plural[:-1] if plural.endswith("s") else plural


def _jsonpath(obj: Any, expr: str) -> Any:
    path = expr.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    for part in [p for p in path.split(".") if p]:
        if isinstance(obj, dict):
            obj = obj.get(part)
        else:
            return None
    return obj


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def tabwrite(rows: list[list[str]], padding: int = 3) -> str:
    """Go ``text/tabwriter`` (minwidth 0, padding 3, spaces): cells padded, the last cell of a line is not."""
    ncols = max(len(r) for r in rows)
    widths = [0] * ncols
    for r in rows:
        for i, c in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(c) + padding)
    out = []
    for r in rows:
        out.append("".join(c.ljust(widths[i]) for i, c in enumerate(r[:-1])) + (r[-1] if r else ""))
    return "\n".join(out) + "\n"


def _yaml_int(text: str) -> Any:
    """How go-yaml reads back a plain scalar written unquoted (cosi metadata values)."""
    if re.fullmatch(r"[-+]?(0|[1-9][0-9]*)", text):
        return int(text)
    if re.fullmatch(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?", text):
        return float(text)
    if text in ("true", "false"):
        return text == "true"
    return text


def resource_json(node: str, res: dict) -> dict:
    """The ``-o json`` object: metadata re-typed like talosctl's YAML→map→JSON round trip (notes §2.1)."""
    md = dict(res["metadata"])
    md["id"] = _yaml_int(str(md["id"]))
    md["owner"] = md.get("owner") or None
    if "labels" in md:
        md["labels"] = {k: (None if v == "" else _yaml_int(v)) for k, v in md["labels"].items()}
    return {"metadata": md, "node": node, "spec": res["spec"]}


def format_json(obj: Any) -> str:
    """Go ``json.Encoder`` with ``SetIndent("", "    ")``: sorted keys, HTML-escaped, trailing newline."""
    text = json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"


def resource_yaml(node: str, res: dict) -> str:
    md = res["metadata"]
    meta: dict[str, Any] = {k: Raw(str(md[k])) for k in ("namespace", "type", "id", "version")}
    meta["owner"] = Raw(md["owner"]) if md.get("owner") else EMPTY
    meta.update({k: Raw(str(md[k])) for k in ("phase", "created", "updated")})
    if md.get("labels"):
        meta["labels"] = {k: (EMPTY if v == "" else Raw(v)) for k, v in md["labels"].items()}
    return f"node: {node}\n" + go_yaml_dump({"metadata": meta, "spec": res["spec"]})


def format_resources(output: str, definition: dict, items: list[tuple[str, dict]]) -> str:
    """Render (node, resource) pairs as talosctl ``get -o`` does."""
    if output == "json":
        return "".join(format_json(resource_json(node, res)) for node, res in items)
    if output == "yaml":
        return "---\n".join(resource_yaml(node, res) for node, res in items)
    if output.startswith("jsonpath="):
        expr = output.split("=", 1)[1]
        return "".join(_cell(_jsonpath(resource_json(node, res), expr)) + "\n" for node, res in items)
    if output != "table":
        raise CLIError(f"output writer {output!r} is not supported")
    cols = definition.get("columns") or []
    header = ["NODE", "NAMESPACE", "TYPE", "ID", "VERSION", *[name.upper() for name, _ in cols]]
    rows = [header]
    for node, res in items:
        md = res["metadata"]
        rows.append([node, md["namespace"], _type_display(md["type"]), str(md["id"]), str(md["version"]),
                     *[_cell(_jsonpath(res["spec"], path)) for _, path in cols]])
    return tabwrite(rows)


# ----------------------------------------------------------------------------- commands


class Talosctl:
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

    # -- get
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

    # -- apply-config / patch
    def _apply(self, node: str, text: str, mode: str, dry_run: bool, insecure: bool = False) -> dict:
        try:
            return self.client.call("POST", node_path(node, "apply-config"), {
                "data": text, "mode": mode, "dry_run": dry_run, "insecure": insecure,
                "try_timeout": self.opts["timeout"]})
        except TalosAPIError as e:
            raise CLIError(f"error applying new configuration: {e.grpc()}") from None

    def _print_apply(self, resp: dict) -> None:
        for w in resp.get("warnings") or []:
            self.err(f"WARNING: {w}\n")
        if resp.get("mode_details"):
            self.err(resp["mode_details"] + "\n")

    def cmd_apply_config(self) -> None:
        o = self.opts
        if not o["file"]:
            raise CLIError("no filename supplied for configuration")
        if o["mode"] not in ("auto", "no-reboot", "reboot", "staged", "try"):
            raise CLIError(f'invalid argument "{o["mode"]}" for "-m, --mode" flag: possible options are: auto, '
                           "no-reboot, reboot, staged, try")
        try:
            with open(o["file"]) as fh:
                text = fh.read()
        except OSError as exc:
            raise CLIError(f"failed to read configuration from {o['file']!r}: {exc.strerror}") from None
        if o["config_patch"]:
            m = _config()
            text = dump_config(m.apply_config_patches(m.parse_config(text), [_read_patch(p) for p in o["config_patch"]]))
        errors = []
        for node in self.nodes():
            try:
                self._print_apply(self._apply(node, text, o["mode"], o["dry_run"], o["insecure"]))
            except CLIError as e:
                errors.append(e.message)
        if errors:
            raise CLIError(errors[0] if len(errors) == 1 else append_errors(errors))

    def cmd_patch(self) -> None:
        o = self.opts
        m = _config()

        if resolve_resource_type(self.args[0]) != "MachineConfigs.config.talos.dev":
            raise CLIError(f"patching {self.args[0]!r} is not supported: only machineconfig can be patched")
        patches = [_read_patch(p) for p in o["patch"]]
        if o["patch_file"]:
            patches.append(_read_patch("@" + o["patch_file"]))
        if not patches:
            raise CLIError("either --patch or --patch-file must be specified")
        errors = []
        for node in self.nodes():
            try:
                data = self.client.call("GET", node_path(node, "resources/MachineConfigs.config.talos.dev/v1alpha1"))
                current = m.parse_config(data["items"][0]["spec"])
                try:
                    patched = m.apply_config_patches(current, patches)
                except ValueError as exc:
                    raise CLIError(str(exc)) from None
                resp = self._apply(node, dump_config(patched), o["mode"], o["dry_run"])
                if not o["dry_run"]:
                    self.out(f"patched MachineConfigs.config.talos.dev/v1alpha1 at the node {node}\n")
                self._print_apply(resp)
            except TalosAPIError as e:
                errors.append(e.grpc())
            except CLIError as e:
                errors.append(e.message)
        if errors:
            raise CLIError(errors[0] if len(errors) == 1 else append_errors(errors))

    # -- actions with --wait
    def _action(self, kind: str, payload: dict, err_prefix: str, *, reboots: bool) -> None:
        o = self.opts
        nodes = self.nodes()
        if not (o["wait"] or o["debug"]):
            errors, acks = [], []
            for node in nodes:
                try:
                    resp = self.client.call("POST", node_path(node, kind), payload)
                    acks.append((node, resp))
                except TalosAPIError as e:
                    errors.append(f"{err_prefix}: {e.grpc()}")
            if kind == "upgrade" and acks:
                from datetime import UTC, datetime

                started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC")
                self.out(tabwrite([["NODE", "ACK", "STARTED"], *[[n, r.get("ack", ""), started] for n, r in acks]]))
            if errors:
                raise CLIError(errors[0] if len(errors) == 1 else append_errors(errors))
            return
        self._track(nodes, kind, payload, reboots=reboots)

    def _track(self, nodes: list[str], kind: str, payload: dict, *, reboots: bool) -> None:
        """talosctl ``action.Tracker`` with the non-TTY reporter: one ``"<node>": <message>`` line per update."""
        client = self.client
        client.info()
        # real seconds, as the real talosctl counts (context.WithTimeout); the library's node_timeout is real time too
        deadline = time.monotonic() + self.opts["timeout"]
        state: dict[str, dict] = {}

        def report(node: str, message: str) -> None:
            if state[node].get("last") != message:
                state[node]["last"] = message
                self.err(f'"{node}": {message}\n')

        for node in nodes:
            state[node] = {"done": False, "failed": False}
            report(node, "waiting for actor ID")
            try:
                before = client.call("GET", node_path(node, "wait"))
                resp = client.call("POST", node_path(node, kind), payload)
            except TalosAPIError as e:
                report(node, f"error: {e.grpc()}")
                state[node].update(done=True, failed=True)
                continue
            state[node].update(actor=resp["actor_id"], boot_id=before["boot_id"], down_seen=False)
            report(node, f"actor ID: {resp['actor_id']}")
        while not all(s["done"] for s in state.values()):
            for node, s in state.items():
                if s["done"]:
                    continue
                try:
                    st = client.call("GET", node_path(node, f"wait?actor={s['actor']}"))
                except TalosAPIError as e:
                    if e.code != "Unavailable":
                        report(node, f"error: {e.grpc()}")
                        s.update(done=True, failed=True)
                        continue
                    s["down_seen"] = True
                    if not reboots:
                        report(node, "post check passed")
                        s["done"] = True
                    else:
                        report(node, "unavailable, retrying...")
                    continue
                if st.get("error"):
                    report(node, f"error: {st['error']}")
                    s.update(done=True, failed=True)
                    continue
                unmet = " ".join(c["name"] for c in st.get("unmet") or [])
                if reboots and st["boot_id"] != s["boot_id"]:
                    if not s["down_seen"]:
                        # the node was down between two polls (fast lab clock): report it as talosctl would have
                        report(node, "unavailable, retrying...")
                        s["down_seen"] = True
                    if st["maintenance"]:
                        report(node, "post check passed")
                        s["done"] = True
                        continue
                    if st["stage"] == "running" and st["ready"]:
                        report(node, "events check condition met")
                        report(node, "post check passed")
                        s["done"] = True
                        continue
                report(node, f"stage: {st['stage']} ready: {str(st['ready']).lower()} unmetCond: [{unmet}]")
            if all(s["done"] for s in state.values()):
                break
            if time.monotonic() > deadline:
                for node, s in state.items():
                    if not s["done"]:
                        report(node, "error: context deadline exceeded")
                        s.update(done=True, failed=True)
                break
            time.sleep(POLL_INTERVAL)
        if any(s["failed"] for s in state.values()):
            raise CLIError("", printed=True)

    def cmd_reset(self) -> None:
        o = self.opts
        if o["wipe_mode"] not in ("all", "system-disk", "user-disks"):
            raise CLIError(f'invalid argument "{o["wipe_mode"]}" for "--wipe-mode" flag: possible options are: all, '
                           "system-disk, user-disks")
        if o["insecure"] and o["wait"]:
            raise CLIError("cannot use --wait and --insecure together")
        payload = {"graceful": o["graceful"], "reboot": o["reboot"], "mode": o["wipe_mode"],
                   "system_labels": o["system_labels_to_wipe"], "user_disks": o["user_disks_to_wipe"]}
        self._action("reset", payload, "error executing reset", reboots=o["reboot"])

    def cmd_upgrade(self) -> None:
        o = self.opts
        image = o["image"]
        if not image:
            self.client.info()
            image = f"ghcr.io/siderolabs/installer:{self.client.client_version}"
        payload = {"image": image, "stage": o["stage"], "force": o["force"], "reboot_mode": o["reboot_mode"]}
        self._action("upgrade", payload, "error performing upgrade", reboots=True)

    def cmd_reboot(self) -> None:
        self._action("reboot", {"mode": self.opts["mode"]}, "error executing reboot", reboots=True)

    def cmd_shutdown(self) -> None:
        self._action("shutdown", {"force": self.opts["force"]}, "error executing shutdown", reboots=False)

    # -- health
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

    # -- version
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

    # -- read
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

    # -- wipe disk
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

    # -- etcd
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
        import base64

        from .etcd_snapshot import status

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
            info = status(data)
        except ValueError as e:
            raise CLIError(str(e)) from None
        self.out(f"snapshot info: hash {info['hash']:08x}, revision {info['revision']}, total keys "
                 f"{info['total_keys']}, total size {info['total_size']}\n")


def _errno_text(exc: OSError) -> str:
    """Go's spelling of an errno (``no such file or directory``), as ``os.OpenFile`` errors print it."""
    return (exc.strerror or str(exc)).lower()


def _version_block(tag: str, server: dict | None = None) -> list[str]:
    """``Tag``/``SHA``/``Go version`` lines; the values come from the lab (``/info`` for the client,
    the node's version answer for a server), else are derived from the tag as the model does."""
    go = (server or {}).get("go_version") or GO_VERSIONS.get(parse_version(tag)[:2], "go1.25.5")
    sha = (server or {}).get("sha") or __import__("hashlib").sha1(tag.encode()).hexdigest()[:8]
    return [f"\tTag:         {tag}", f"\tSHA:         {sha}", "\tBuilt:       ", f"\tGo version:  {go}",
            "\tOS/Arch:     linux/amd64"]


def _read_patch(spec: str) -> str:
    if spec.startswith("@"):
        try:
            with open(spec[1:]) as fh:
                return fh.read()
        except OSError as exc:
            raise CLIError(f"open {spec[1:]}: {exc.strerror.lower() if exc.strerror else exc}") from None
    return spec


def _arg_error(cmd: Command, args: list[str]) -> str | None:
    n = len(args)
    if cmd.max_args == 0 and n:
        return f'unknown command "{args[0]}" for "talosctl {cmd.path}"'
    if cmd.max_args is None:
        return None if n >= cmd.min_args else f"requires at least {cmd.min_args} arg(s), only received {n}"
    if cmd.min_args == cmd.max_args:
        return None if n == cmd.min_args else f"accepts {cmd.min_args} arg(s), received {n}"
    if not cmd.min_args <= n <= cmd.max_args:
        return f"accepts between {cmd.min_args} and {cmd.max_args} arg(s), received {n}"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def out(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def err(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    cmd, words, rest = _split_command(argv)
    try:
        if cmd is None:
            if not words or words[0] in ("help", "--help", "-h"):
                out(usage_text(None))
                return 0
            if words[0] in _GROUPS:
                out(f"{_GROUPS[words[0]]}\n\n" + usage_text(None))
                return 0
            parse_flags(GLOBAL_FLAGS, argv)
            raise CLIError(f'unknown command "{words[0]}" for "talosctl"', usage=usage_text(None))
        try:
            values, args = parse_flags([*GLOBAL_FLAGS, *cmd.flags], rest)
        except CLIError as e:
            if e.message == "help requested":
                out(f"{cmd.short}\n\n" + usage_text(cmd))
                return 0
            raise CLIError(e.message, usage=usage_text(cmd)) from None
        problem = _arg_error(cmd, args)
        if problem:
            raise CLIError(problem, usage=usage_text(cmd))
        opts = {k.replace("-", "_"): v for k, v in values.items()}
        Talosctl(opts, cmd, args, out, err).run()
        return 0
    except CLIError as e:
        if not e.printed:
            err(e.message + "\n")
            if any(w in e.message for w in ("arg(s)", "flag", "command")):
                err("\n" + (e.usage or usage_text(cmd)))
        return 1
    except KeyboardInterrupt:
        return 1


if __name__ == "__main__":
    sys.exit(main())
