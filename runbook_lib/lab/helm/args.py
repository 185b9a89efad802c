"""helm's command line: flags, --set/--values parsing and durations, and the error helm prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class HelmError(Exception):
    """Printed as ``Error: <message>`` with exit code 1, like helm."""


class Args:
    def __init__(self, argv: list[str]) -> None:
        self.positional: list[str] = []
        self.flags: dict[str, list[str]] = {}
        takes_value = {"--kubeconfig", "--namespace", "-n", "--version", "--set", "--set-string", "--values", "-f",
                       "--timeout", "--output", "-o", "--kube-context", "--description", "--repository-config"}
        aliases = {"-n": "--namespace", "-f": "--values", "-o": "--output", "-i": "--install", "-A": "--all-namespaces",
                   "-a": "--all"}
        i = 0
        while i < len(argv):
            arg = argv[i]
            if arg.startswith("-") and arg != "-":
                name, eq, value = arg.partition("=")
                name = aliases.get(name, name)
                if eq:
                    self.flags.setdefault(name, []).append(value)
                elif arg in takes_value or name in takes_value:
                    if i + 1 >= len(argv):
                        raise HelmError(f"flag needs an argument: {arg}")
                    self.flags.setdefault(name, []).append(argv[i + 1])
                    i += 1
                else:
                    self.flags.setdefault(name, []).append("true")
            else:
                self.positional.append(arg)
            i += 1

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.flags.get(name)
        return values[-1] if values else default

    def has(self, name: str) -> bool:
        return self.get(name, "false") not in ("false", None)


def _set_path(values: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    cur = values
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value


def _parse_set(raw: str, *, as_string: bool) -> list[tuple[str, Any]]:
    out = []
    for item in raw.split(","):
        if "=" not in item:
            raise HelmError(f'failed parsing --set data: key "{item}" has no value')
        key, value = item.split("=", 1)
        if not as_string:
            parsed: Any = value
            if value in ("true", "false"):
                parsed = value == "true"
            elif value.isdigit():
                parsed = int(value)
            elif value == "null":
                parsed = None
            out.append((key, parsed))
        else:
            out.append((key, value))
    return out


def user_values(args: Args) -> dict:
    values: dict = {}
    for path in args.flags.get("--values", []):
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except OSError:
            raise HelmError(f"open {path}: no such file or directory") from None
        values.update(data)
    for raw in args.flags.get("--set", []):
        for k, v in _parse_set(raw, as_string=False):
            _set_path(values, k, v)
    for raw in args.flags.get("--set-string", []):
        for k, v in _parse_set(raw, as_string=True):
            _set_path(values, k, v)
    return values


def duration(text: str) -> float:
    total, num = 0.0, ""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            num += ch
            i += 1
            continue
        unit = "ms" if text[i:i + 2] == "ms" else ch
        if unit not in units or not num:
            raise HelmError(f'invalid argument "{text}" for "--timeout" flag: time: invalid duration "{text}"')
        total += float(num) * units[unit]
        num = ""
        i += len(unit)
    if num:
        raise HelmError(f'invalid argument "{text}" for "--timeout" flag: time: missing unit in duration "{text}"')
    return total
