"""The machine-readable record a notebook keeps of what it planned, did and checked.

The record ends up as ``metadata.runbook`` in the executed notebook (CONTRACTS §3).
While the kernel runs, it is saved as JSON to ``$RUNBOOK_RECORD`` after every change;
the papermill engine of :mod:`runbook_lib.runner` copies it into the notebook after
every cell, so even a crash leaves a record behind.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from .redact import Redactor

Outcome = Literal["applied", "planned", "unchanged", "skipped", "failed"]
RECORD_ENV = "RUNBOOK_RECORD"


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
        return json.loads(json.dumps(self.redactor.deep(data), default=str))

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, self.path)
