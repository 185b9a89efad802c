"""The lab talosctl's entry point: parse the command line, run the command's class, map errors to exit 1."""

from __future__ import annotations

import importlib
import sys

from .args import _arg_error, _split_command, parse_flags, usage_text
from .commands import _GROUPS, GLOBAL_FLAGS, CLIError

#: the module and class that run each command: a call imports only its own command's module (``apply-config``
#: and ``patch`` pull in the machine-configuration model and yaml; ``version --client`` needs neither)
COMMAND_CLASSES = {
    "get": ("resources", "ResourceCommands"),
    "apply-config": ("config", "ConfigCommands"),
    "patch": ("config", "ConfigCommands"),
    "reset": ("lifecycle", "LifecycleCommands"),
    "upgrade": ("lifecycle", "LifecycleCommands"),
    "reboot": ("lifecycle", "LifecycleCommands"),
    "shutdown": ("lifecycle", "LifecycleCommands"),
    "health": ("node_info", "NodeInfoCommands"),
    "version": ("node_info", "NodeInfoCommands"),
    "read": ("node_info", "NodeInfoCommands"),
    "wipe disk": ("node_info", "NodeInfoCommands"),
    "etcd members": ("etcd", "EtcdCommands"),
    "etcd status": ("etcd", "EtcdCommands"),
    "etcd remove-member": ("etcd", "EtcdCommands"),
    "etcd snapshot": ("etcd", "EtcdCommands"),
}


def command_class(path: str) -> type:
    """The class that runs command ``path`` (``"etcd members"``), its module imported now."""
    module, name = COMMAND_CLASSES[path]
    return getattr(importlib.import_module(f".{module}", __package__), name)


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
        command_class(cmd.path)(opts, cmd, args, out, err).run()
        return 0
    except CLIError as e:
        if not e.printed:
            err(e.message + "\n")
            if any(w in e.message for w in ("arg(s)", "flag", "command")):
                err("\n" + (e.usage or usage_text(cmd)))
        return 1
    except KeyboardInterrupt:
        return 1
