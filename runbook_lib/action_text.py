"""The text a cell shows for one action: what it runs or applies, and how it ended (pure formatting).

Apply and plan mode print the same command or manifest; plan mode says "would" and
"not run" on every action, so a plan can never be read as done.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

#: manifest lines a cell shows per action; the record keeps the whole manifest
MANIFEST_LINES = 40
INDENT = "    "


def command_line(argv: Sequence[str]) -> str:
    """The argv as a shell would take it (``shlex.join``: quoted where needed)."""
    return shlex.join(str(a) for a in argv)


def _what(step: str, kind: str, target: str, destructive: bool) -> str:
    extra = f"{kind} on {target}" + (", destructive" if destructive else "")
    return f"{step} ({extra})"


def manifest_lines(manifest: str, limit: int = MANIFEST_LINES) -> list[str]:
    lines = manifest.rstrip("\n").splitlines()
    shown = [INDENT + "  " + line for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"{INDENT}  ... {len(lines) - limit} more line(s): the whole manifest is in the record "
                     "(metadata.runbook.actions)")
    return shown


def _body(command: Sequence[str] | None, manifest: str | None, *, planned: bool) -> list[str]:
    out = []
    if command:
        out.append(f"{INDENT}{'would run: ' if planned else ''}$ {command_line(command)}")
    if manifest:
        out.append(f"{INDENT}{'would apply' if planned else 'applies'} this manifest:")
        out += manifest_lines(manifest)
    return out


def starting(step: str, kind: str, target: str, command: Sequence[str] | None, manifest: str | None,
             destructive: bool) -> list[str]:
    """Printed before a change is made (apply mode), so a long call shows what is running."""
    return [f">>> {_what(step, kind, target, destructive)}", *_body(command, manifest, planned=False)]


def ended(outcome: str, duration_s: float, exit_code: int | None) -> str:
    """``applied in 1.2 s (exit 0)`` / ``FAILED in 0.3 s (exit 1)``."""
    code = f" (exit {exit_code})" if exit_code is not None else ""
    word = "FAILED" if outcome == "failed" else outcome
    return f"{INDENT}{word} in {duration_s:.1f} s{code}"


def planned(step: str, kind: str, target: str, command: Sequence[str] | None, manifest: str | None,
            destructive: bool) -> list[str]:
    return [f">>> PLAN, not run: would {_what(step, kind, target, destructive)}",
            *_body(command, manifest, planned=True),
            f"{INDENT}planned: nothing was changed (plan mode)"]


def unchanged(step: str, kind: str, target: str, command: Sequence[str] | None, manifest: str | None,
              destructive: bool) -> list[str]:
    lines = [f">>> unchanged, not run: {_what(step, kind, target, destructive)}: the cluster already matches"]
    if command:
        lines.append(f"{INDENT}not needed: $ {command_line(command)}")
    return lines


def refused(step: str, kind: str, target: str, approval: str) -> str:
    return f">>> NOT RUN: {_what(step, kind, target, True)}: it needs the approval {approval!r} in confirm"
