"""One place where the runbooks touch the cluster.

Every external command (``talosctl``, ``helm``) and every mutating API call goes
through an :class:`Executor`. It enforces the mode (plan mode renders and records
instead of mutating), the approvals for destructive steps, timeouts, and turns
every call that could change the cluster into an :class:`~runbook_lib.record.Action`.

Every action is also printed where the operator reads it (the cell's output): the
exact command, shell-quoted, or the manifest, then its outcome and duration; in plan
mode "would ..., not run" (:mod:`runbook_lib.action_text`). Long commands report to
the terminal of ``runbook run`` while they last (:mod:`runbook_lib.progress`).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from . import action_text, progress
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

    def __init__(self, record: Record, *, dry_run: bool, approve: Approver | None, env: dict | None = None,
                 echo: Callable[[str], None] = print) -> None:
        self.record = record
        self.dry_run = dry_run
        self.approve = approve
        self.env = env
        self.echo = echo
        self._pending: Action | None = None  # recorded as started, its call still running

    def _show(self, lines: str | list[str]) -> None:
        text = lines if isinstance(lines, str) else "\n".join(lines)
        self.echo(self.record.redactor.text(text))

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
        changes = bool(mutating or destructive)
        if changes:
            progress.set_step(step, target)
            if destructive:
                try:
                    self.require_approval(destructive, approval_target or target, step)
                except ApprovalRequired:
                    self._action(step, kind, target, shown, manifest, "skipped", None, 0.0, destructive=True)
                    self._show(action_text.refused(step, kind, target, f"{destructive} {target}"))
                    raise
            if self.dry_run:
                self._action(step, kind, target, shown, manifest, "planned", None, 0.0, destructive=bool(destructive))
                self._show(action_text.planned(step, kind, target, shown, manifest, bool(destructive)))
                return None
            self._show(action_text.starting(step, kind, target, shown, manifest, bool(destructive)))
            self._begin(step, kind, target, shown, manifest, bool(destructive))
        started, t0 = utcnow(), time.monotonic()
        try:
            code, stdout, stderr = _run_reporting(argv, timeout=timeout, env=env or self.env,
                                                  what=action_text.command_line(shown[:4]) if changes else None)
        except subprocess.TimeoutExpired as exc:
            duration = time.monotonic() - t0
            if changes:
                self._action(step, kind, target, shown, manifest, "failed", None, duration, bool(destructive), started)
                self._show(action_text.ended("failed", duration, None) + f": did not finish within {timeout:.0f}s")
            stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            raise error(shown, None, self.record.redactor.text(stderr), target=target,
                        hint=hint or f"the command did not finish within {timeout:.0f}s") from None
        except FileNotFoundError:
            self._abandon("failed", time.monotonic() - t0)
            raise RunbookError(f"{argv[0]}: executable not found; set the '{kind}' parameter to its path") from None
        except BaseException as exc:  # Ctrl-C (or anything else) while the change runs: the record says so
            self._abandon("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", time.monotonic() - t0)
            raise
        duration = time.monotonic() - t0
        result = ToolResult(shown, code, stdout, stderr, duration)
        if changes:
            outcome = "applied" if code == 0 else "failed"
            self._action(step, kind, target, shown, manifest, outcome, code, duration, bool(destructive), started)
            self._show(action_text.ended(outcome, duration, code))
        if code != 0:
            raise error(shown, code, self.record.redactor.text(stderr or stdout), target=target, hint=hint)
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
        progress.set_step(step, target)
        if destructive:
            try:
                self.require_approval(destructive, target, step)
            except ApprovalRequired:
                self._action(step, kind, target, command, manifest, "skipped", None, 0.0, True)
                self._show(action_text.refused(step, kind, target, f"{destructive} {target}"))
                raise
        if self.dry_run:
            self._action(step, kind, target, command, manifest, "planned", None, 0.0, bool(destructive))
            self._show(action_text.planned(step, kind, target, command, manifest, bool(destructive)))
            return None
        self._show(action_text.starting(step, kind, target, command, manifest, bool(destructive)))
        self._begin(step, kind, target, command, manifest, bool(destructive))
        started, t0 = utcnow(), time.monotonic()
        try:
            out = fn()
        except KeyboardInterrupt:
            self._abandon("interrupted", time.monotonic() - t0)
            raise
        except Exception as exc:
            duration = time.monotonic() - t0
            self._action(step, kind, target, command, manifest, "failed", None, duration, bool(destructive), started)
            self._show(action_text.ended("failed", duration, None) + f": {type(exc).__name__}")
            raise
        duration = time.monotonic() - t0
        self._action(step, kind, target, command, manifest, "applied", None, duration, bool(destructive), started)
        self._show(action_text.ended("applied", duration, None))
        return out

    def unchanged(self, *, step: str, target: str, kind: str, manifest: str | None = None,
                  command: list[str] | None = None, destructive: bool = False) -> None:
        """Record a mutation that was not needed because the cluster already matches."""
        self._action(step, kind, target, command, manifest, "unchanged", None, 0.0, destructive)
        self._show(action_text.unchanged(step, kind, target, command, manifest, destructive))

    def _begin(self, step: str, kind: str, target: str, command: list[str] | None, manifest: str | None,
               destructive: bool) -> None:
        """Put the action in the record, on disk, before its call starts (a crash leaves it ``started``).

        Raises :class:`~runbook_lib.record.RecordWriteError` when the record cannot be written: the call never runs.
        """
        self._pending = self.record.add_action(Action(
            step=step, kind=kind, mutating=True, destructive=destructive, target=target, command=command,
            manifest=manifest, outcome="started"))

    def _abandon(self, outcome: str, duration: float) -> None:
        """The call did not end normally (Ctrl-C, missing executable): say so in the record."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self.record.end_action(pending, outcome, None, duration)

    def _action(self, step: str, kind: str, target: str, command: list[str] | None, manifest: str | None,
                outcome: str, exit_code: int | None, duration: float, destructive: bool = False,
                started: str | None = None) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and started is not None:  # the end of a call recorded as started
            self.record.end_action(pending, outcome, exit_code, duration)
        else:
            self.record.add_action(Action(
                step=step, kind=kind, mutating=True, destructive=destructive, target=target, command=command,
                manifest=manifest, outcome=outcome, exit_code=exit_code, duration_s=round(duration, 3),
                started_at=started or utcnow(),
            ))
        if outcome != "planned":
            progress.emit(f"{progress.CONTEXT.notebook} | {outcome} in {duration:.1f} s: {step} [{target}]")


def _run_reporting(argv: list[str], *, timeout: float, env: dict | None, what: str | None) -> tuple[int, str, str]:
    """``subprocess.run`` with a terminal line every :data:`progress.LINE_EVERY_S` while a change runs.

    ``Popen.communicate`` may be retried after its timeout without losing output (Python docs).
    """
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env) as proc:
        t0 = time.monotonic()
        while True:
            left = timeout - (time.monotonic() - t0)
            try:
                wait = max(0.0, min(left, progress.LINE_EVERY_S) if what else left)
                stdout, stderr = proc.communicate(timeout=wait)
                return proc.returncode, stdout, stderr
            except subprocess.TimeoutExpired as exc:
                if time.monotonic() - t0 >= timeout:
                    proc.kill()
                    out, err = proc.communicate()
                    raise subprocess.TimeoutExpired(argv, timeout, output=out, stderr=err) from exc
                progress.emit(progress.format_line(time.monotonic() - t0, f"still running: {what} ..."))
