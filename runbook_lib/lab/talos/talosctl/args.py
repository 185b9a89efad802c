"""Argument parsing of the lab's talosctl: pflag-compatible flags, Go durations, command words, usage text."""

from __future__ import annotations

import re

from ..resource_types import go_duration
from .commands import _GROUPS, COMMANDS, GLOBAL_FLAGS, CLIError, Command, Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


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
