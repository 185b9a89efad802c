"""The end of ``runbook run``: a table per notebook and, in plan mode, every planned command (pure)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .action_text import command_line

OUTCOMES = ("applied", "planned", "unchanged", "failed", "skipped")


@dataclass
class NotebookSummary:
    name: str
    status: str
    duration_s: float
    checks_passed: int
    checks_failed: int
    actions: Counter
    error: str | None = None


def summarize(name: str, status: str, duration_s: float, record: dict | None, error: str | None = None) -> NotebookSummary:
    """Counts from a notebook's ``metadata.runbook`` (none when it never ran)."""
    record = record or {}
    checks = record.get("checks") or []
    passed = sum(1 for c in checks if c.get("ok"))
    actions = Counter(a.get("outcome") for a in record.get("actions") or [])
    return NotebookSummary(name, status, duration_s, passed, len(checks) - passed, actions, error)


def table(rows: list[NotebookSummary]) -> str:
    """A fixed-width table a terminal and a CI log both show as is."""
    head = ["notebook", "status", "checks passed", "checks failed", *(f"{o}" for o in OUTCOMES[:3]),
            "actions failed", "skipped", "duration"]
    body = [[r.name, r.status, str(r.checks_passed), str(r.checks_failed),
             *(str(r.actions.get(o, 0)) for o in OUTCOMES), f"{r.duration_s:.1f}s"] for r in rows]
    total = [["total", "", str(sum(r.checks_passed for r in rows)), str(sum(r.checks_failed for r in rows)),
              *(str(sum(r.actions.get(o, 0) for r in rows)) for o in OUTCOMES),
              f"{sum(r.duration_s for r in rows):.1f}s"]]
    widths = [max(len(row[i]) for row in [head, *body, *total]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    rule = "  ".join("-" * w for w in widths)
    out = [line(head), rule, *(line(b) for b in body), rule, line(total[0])]
    out += [f"{r.name}: {r.error}" for r in rows if r.error]
    return "\n".join(out)


def planned_actions(records: dict[str, dict | None]) -> list[str]:
    """Every planned action of a plan run, numbered, with its exact command or the object it applies."""
    lines = []
    for name, record in records.items():
        for action in (record or {}).get("actions") or []:
            if action.get("outcome") != "planned":
                continue
            flag = " [destructive]" if action.get("destructive") else ""
            what = f"$ {command_line(action['command'])}" if action.get("command") else f"apply {action.get('target')}"
            if action.get("command") and action.get("manifest"):
                what += f"   (manifest for {action.get('target')} in {name}.ipynb)"
            lines.append(f"{len(lines) + 1:3d}. {name}: {action.get('step')}{flag}\n       {what}")
    return lines
