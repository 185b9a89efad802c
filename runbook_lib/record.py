"""The machine-readable record a notebook keeps of what it planned, did and checked.

The record ends up as ``metadata.runbook`` in the executed notebook (CONTRACTS §3).
While the kernel runs, it is saved as JSON to ``$RUNBOOK_RECORD`` (beside the notebook in
the run directory): an action is written and fsynced with outcome ``started`` before the
call that performs it, and updated when the call ends. A record that cannot be written
raises :class:`RecordWriteError` before the call, so no change goes unrecorded. The papermill
engine of :mod:`runbook_lib.runner` copies it into the notebook after every cell; after a
crash, :func:`runbook_lib.runs.seal_run` does.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from .errors import RunbookError
from .redact import Redactor

# started: in the record before the call; a crash leaves it so (the change may or may not have happened).
# interrupted: the call was cut short by Ctrl-C.
Outcome = Literal["applied", "planned", "unchanged", "skipped", "failed", "started", "interrupted"]
RECORD_ENV = "RUNBOOK_RECORD"


class RecordWriteError(RunbookError):
    """The record could not be saved: the run stops before its next change."""


def write_durably(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically and on disk (fsync of the file and of its folder).

    A crash or a full disk leaves either the old file or the new one, never a truncated one.
    Raises :class:`RecordWriteError` naming the file and what to do.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise RecordWriteError(
            f"cannot write the run record {path} ({exc.strerror or exc}): the run stops before its next change; "
            "free space there or choose another --out, then run again") from None


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Action:
    step: str
    kind: Literal["talosctl", "helm", "kube", "http", "lab"]  # lab: `runbook lab` control (faults, power)
    mutating: bool
    destructive: bool
    target: str
    command: list[str] | None
    manifest: str | None
    outcome: Outcome
    exit_code: int | None = None
    duration_s: float = 0.0
    started_at: str = field(default_factory=utcnow)


@dataclass
class Check:
    name: str
    ok: bool
    observed: Any
    expected: Any


@dataclass
class Record:
    notebook: str
    run_id: str
    parameters: dict
    redactor: Redactor = field(default_factory=Redactor, repr=False)
    path: Path | None = None
    status: str = "running"
    started_at: str = field(default_factory=utcnow)
    finished_at: str | None = None
    versions: dict = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    results: dict = field(default_factory=dict)

    @classmethod
    def open(cls, notebook: str, run_id: str, parameters: dict, redactor: Redactor) -> Record:
        env = os.environ.get(RECORD_ENV)
        return cls(notebook=notebook, run_id=run_id, parameters=parameters, redactor=redactor,
                   path=Path(env) if env else None)

    def add_action(self, action: Action) -> Action:
        self.actions.append(action)
        self.save()
        return action

    def end_action(self, action: Action, outcome: str, exit_code: int | None, duration_s: float) -> Action:
        """Close an action that was recorded ``started`` before its call."""
        action.outcome, action.exit_code, action.duration_s = outcome, exit_code, round(duration_s, 3)  # type: ignore[assignment]
        self.save()
        return action

    def check(self, name: str, ok: bool, observed: Any, expected: Any) -> bool:
        self.checks.append(Check(name, bool(ok), observed, expected))
        self.save()
        return bool(ok)

    def result(self, key: str, value: Any) -> None:
        self.results[key] = value
        self.save()

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def finish(self, status: str) -> None:
        self.status = status
        self.finished_at = utcnow()
        self.save()

    def to_dict(self) -> dict:
        data = {
            "schema": 1,
            "notebook": self.notebook,
            "run_id": self.run_id,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "versions": self.versions,
            "parameters": self.parameters,
            "actions": [asdict(a) for a in self.actions],
            "checks": [asdict(c) for c in self.checks],
            "results": self.results,
        }
        return json.loads(json.dumps(_finite(self.redactor.deep(data)), default=str, allow_nan=False))

    def save(self) -> None:
        if self.path is None:
            return
        write_durably(self.path, json.dumps(self.to_dict(), indent=1))


def _finite(obj: Any) -> Any:
    """NaN and infinities as null: strict JSON, which JupyterLab and every JSON parser but Python's accept."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
