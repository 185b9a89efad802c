"""The lab talosctl's command and flag table (a small cobra/pflag), and the error it exits 1 with."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class CLIError(Exception):
    """An error talosctl prints and exits 1 with; ``printed`` suppresses the final print (--wait)."""

    def __init__(self, message: str, *, printed: bool = False, usage: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.printed = printed
        self.usage = usage


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
