"""One place where the runbooks touch the cluster.

Every external command (``talosctl``, ``helm``) and every mutating API call goes
through an :class:`Executor`. It enforces the mode (plan mode renders and records
instead of mutating), the approvals for destructive steps, timeouts, and turns
every call that could change the cluster into an :class:`~runbook_lib.record.Action`.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from .approvals import meaning
from .errors import ApprovalRequired, CommandError, RunbookError
from .record import Action, Record, utcnow

T = TypeVar("T")
Approver = Callable[[str, str], bool]


@dataclass
class ToolResult:
    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float


class Executor:
    """Runs or plans cluster changes and records them.

    ``approve(action, node)`` answers whether a destructive ``action`` on ``node``
    was approved; ``None`` means no approvals are needed (the lab).
    """

    def __init__(self, record: Record, *, dry_run: bool, approve: Approver | None, env: dict | None = None) -> None:
        self.record = record
        self.dry_run = dry_run
        self.approve = approve
        self.env = env

    # -- approvals
    def require_approval(self, action: str, node: str, step: str) -> None:
        """Raise :class:`ApprovalRequired` unless ``"<action> <node>"`` was approved.

        In plan mode nothing is changed, so a missing approval is only named (the apply run stops there).
        """
        if self.approve is None or self.approve(action, node):
            return
        if self.dry_run:
            print(f"plan: step '{step}' will need the approval '{action} {node}' when applied ({meaning(action)})")
            return
        raise ApprovalRequired(f"{action} {node}", step, meaning(action))

    # -- commands
    def run(
        self,
        argv: Sequence[str],
        *,
        step: str,
        target: str,
        kind: str = "talosctl",
        mutating: bool = False,
        destructive: str | None = None,
        manifest: str | None = None,
        shown_argv: Sequence[str] | None = None,
        timeout: float = 120.0,
        error: type[CommandError] = CommandError,
        hint: str | None = None,
        env: dict | None = None,
        approval_target: str | None = None,
    ) -> ToolResult | None:
        """Run ``argv``; for a mutating call in plan mode, record it as planned and return None.

        ``destructive`` names the approval action (``reset``, ``wipe``, ``upgrade``, ``drill``,
        ``quorum-loss``, ``benchmark``); ``shown_argv`` is what the record shows when ``argv`` holds a
        temporary path or anything else that must not be recorded. ``approval_target`` is the target
        the approval names when it is not ``target`` (quorum loss: the writer's node, not the peer).
        """
        argv = [str(a) for a in argv]
        shown = [str(a) for a in (shown_argv or argv)]
        if mutating or destructive:
            if destructive:
                try:
                    self.require_approval(destructive, approval_target or target, step)
                except ApprovalRequired:
                    self._action(step, kind, target, shown, manifest, "skipped", None, 0.0, destructive=True)
                    raise
            if self.dry_run:
                self._action(step, kind, target, shown, manifest, "planned", None, 0.0, destructive=bool(destructive))
                return None
        started, t0 = utcnow(), time.monotonic()
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env or self.env,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            duration = time.monotonic() - t0
            if mutating or destructive:
                self._action(step, kind, target, shown, manifest, "failed", None, duration, bool(destructive), started)
            stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            raise error(shown, None, self.record.redactor.text(stderr), target=target,
                        hint=hint or f"the command did not finish within {timeout:.0f}s") from None
        except FileNotFoundError:
            raise RunbookError(f"{argv[0]}: executable not found; set the '{kind}' parameter to its path") from None
        duration = time.monotonic() - t0
        result = ToolResult(shown, proc.returncode, proc.stdout, proc.stderr, duration)
        if mutating or destructive:
            outcome = "applied" if proc.returncode == 0 else "failed"
            self._action(step, kind, target, shown, manifest, outcome, proc.returncode, duration, bool(destructive), started)
        if proc.returncode != 0:
            raise error(shown, proc.returncode, self.record.redactor.text(proc.stderr or proc.stdout), target=target, hint=hint)
        return result

    # -- API calls (Kubernetes, HTTP)
    def call(
        self,
        fn: Callable[[], T],
        *,
        step: str,
        target: str,
        kind: str = "kube",
        destructive: str | None = None,
        manifest: str | None = None,
        command: list[str] | None = None,
    ) -> T | None:
        """Perform a mutating API call ``fn`` (or plan it) and record it."""
        if destructive:
            try:
                self.require_approval(destructive, target, step)
            except ApprovalRequired:
                self._action(step, kind, target, command, manifest, "skipped", None, 0.0, True)
                raise
        if self.dry_run:
            self._action(step, kind, target, command, manifest, "planned", None, 0.0, bool(destructive))
            return None
        started, t0 = utcnow(), time.monotonic()
        try:
            out = fn()
        except Exception:
            self._action(step, kind, target, command, manifest, "failed", None, time.monotonic() - t0, bool(destructive), started)
            raise
        self._action(step, kind, target, command, manifest, "applied", None, time.monotonic() - t0, bool(destructive), started)
        return out

    def unchanged(self, *, step: str, target: str, kind: str, manifest: str | None = None,
                  command: list[str] | None = None, destructive: bool = False) -> None:
        """Record a mutation that was not needed because the cluster already matches."""
        self._action(step, kind, target, command, manifest, "unchanged", None, 0.0, destructive)

    def _action(self, step: str, kind: str, target: str, command: list[str] | None, manifest: str | None,
                outcome: str, exit_code: int | None, duration: float, destructive: bool = False,
                started: str | None = None) -> None:
        self.record.add_action(Action(
            step=step, kind=kind, mutating=True, destructive=destructive, target=target, command=command,
            manifest=manifest, outcome=outcome, exit_code=exit_code, duration_s=round(duration, 3),
            started_at=started or utcnow(),
        ))
