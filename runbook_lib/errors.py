"""Error types raised by the runbook library.

Every error says what went wrong, where (a node, a field, a tool) and, where we
know it, what to do next. Callers catch :class:`RunbookError` to handle them all.
"""

from __future__ import annotations


class RunbookError(Exception):
    """Base class for every error the library raises on purpose."""


class ParamsError(RunbookError):
    """A parameter file or value is invalid.

    ``problems`` holds one ``"dotted.path: message"`` string per problem, so a
    caller can print all of them at once.
    """

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s){where}:\n{lines}")


class ParseError(RunbookError):
    """Output of a tool or API could not be understood.

    Names the tool (``talosctl``, ``helm``, ``linstor``, ``fio``...) and the field
    or position that did not fit, never a bare ``KeyError``. ``field`` is that field's
    dotted path (``pools[0].node_name``, ``jobs[1].read.iops``) when one is known, so
    code can tell which part of the output was wrong without reading the message.
    """

    def __init__(self, tool: str, detail: str, *, field: str | None = None) -> None:
        self.tool = tool
        self.detail = detail
        self.field = field
        where = f"{field}: " if field and field not in detail else ""
        super().__init__(f"could not parse {tool} output: {where}{detail}")


class CommandError(RunbookError):
    """An external command exited non-zero or timed out."""

    def __init__(
        self,
        argv: list[str],
        exit_code: int | None,
        stderr: str,
        *,
        target: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.exit_code = exit_code
        self.stderr = stderr
        self.target = target
        self.hint = hint
        super().__init__(self._message())

    def _message(self) -> str:
        tool = self.argv[0].rsplit("/", 1)[-1] if self.argv else "command"
        status = "timed out" if self.exit_code is None else f"exited {self.exit_code}"
        where = f" on {self.target}" if self.target else ""
        msg = f"{tool} {status}{where}"
        last = self.stderr.strip().splitlines()[-3:] if self.stderr else []
        if last:
            msg += ": " + " | ".join(line.strip() for line in last)
        if self.hint:
            msg += f"\n  what to do: {self.hint}"
        return msg

    def __str__(self) -> str:
        # built when shown: wrappers add a hint after the error was raised (talos.hint_for)
        return self._message()


class TalosError(CommandError):
    """``talosctl`` failed; the message carries Talos's own error text."""


class HelmError(CommandError):
    """``helm`` failed."""


class ApprovalRequired(RunbookError):
    """A destructive step needs an explicit approval in ``confirm``."""

    def __init__(self, entry: str, step: str, meaning: str | None = None) -> None:
        self.entry = entry
        self.step = step
        self.meaning = meaning
        what = f" (notebook {meaning})" if meaning else ""
        super().__init__(
            f"step '{step}' is destructive and needs the approval {entry!r}{what}: "
            f'add "{entry}" to the confirm list in your parameter file (or -p confirm ...)'
        )


class GateRefused(RunbookError):
    """A storage or etcd gate said no: a node may not go down now, or did not come back whole.

    ``resources`` names the blocking resources (LINSTOR resource names, or ``satellite``/``node``).
    """

    def __init__(self, message: str, resources: list[str] | None = None) -> None:
        self.resources = list(resources or [])
        super().__init__(message)


class WaitTimeout(RunbookError):
    """A wait ran out of time; says how long it waited and the last state seen."""

    def __init__(self, what: str, waited_s: float, last_state: str) -> None:
        self.what = what
        self.waited_s = waited_s
        self.last_state = last_state
        super().__init__(f"timed out after {waited_s:.1f}s waiting for {what}; last state: {last_state}")


class CheckFailed(RunbookError):
    """One or more verification checks failed."""


class PreconditionFailed(RunbookError):
    """The cluster is not in the state this step needs (run an earlier notebook first, ...)."""


class LabNotRunning(RunbookError):
    """The simulated cluster is not running."""


class RunInterrupted(RunbookError):
    """Ctrl-C: the run was sealed ``interrupted``; the message says where and what it had started."""

    def __init__(self, run_dir, where: str, changes: list[str]) -> None:
        self.run_dir = run_dir
        started = (f"; {len(changes)} change(s) applied or started, the last: {changes[-1]}" if changes
                   else "; no change had started")
        super().__init__(f"interrupted{' during ' + where if where else ''}{started}; the record is in {run_dir} "
                         "(status interrupted)")
