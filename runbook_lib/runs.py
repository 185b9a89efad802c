"""Run directories, their ``run.json`` index, the hash chain, the journal and their verification.

A run lives in ``<out>/<cluster_name>/<run_id>/``. ``run.json`` is written (fsynced) when
the run starts, with status ``running``, and after every notebook; each kernel keeps its
record in ``.<notebook>.record.json`` beside its notebook, an action written before its
call starts. :func:`seal_run` folds those records into the notebooks, hashes them and
writes the final ``run.json``: at the end of a run, at Ctrl-C, and, for a run that was
killed, at the start of the next run of its cluster (which marks it ``interrupted``).

``run.json`` points at the previous run of the same cluster by the sha256 of that run's
``run.json``, so removing or editing any earlier record breaks the chain that
``runbook verify`` walks. The newest run has no successor to vouch for it: the
**journal** does. Every run appends ``started`` and ``sealed`` lines (run ID, sha256 of
the sealed ``run.json``) to a per-cluster journal outside ``outputs/`` (in
``$RUNBOOK_STATE_DIR``, default ``~/.local/state/runbook/journal/``), and ``verify``
checks the run directory against it: an edited, re-hashed or deleted newest run no
longer matches. The journal protects against edits of ``outputs/`` alone (a copied,
pruned or hand-edited record folder); someone who can also rewrite the journal in the
operator's home can forge both, and a record verified on another machine has no
journal to compare with (``verify`` says so). A commit of the run to a repository whose
history others hold is the strongest witness.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RunbookError
from .notebook_json import NotebookEncoder
from .processes import alive
from .record import RecordWriteError, utcnow, write_durably

RUN_INDEX = "run.json"
RESERVE = ".reserve"
#: Space set aside at the start of a run so that a full disk still lets the run seal its record.
RESERVE_BYTES = 192 * 1024
STATE_ENV = "RUNBOOK_STATE_DIR"
#: failed plans against a real cluster are moved here, out of the chain (:mod:`runbook_lib.runner`)
SET_ASIDE = "failed-plans"
ENDED = ("succeeded", "failed", "interrupted")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cluster_runs(cluster_dir: Path) -> list[Path]:
    """Run directories of one cluster that have an index, oldest first (run IDs sort by time)."""
    if not cluster_dir.is_dir():
        return []
    return sorted(p for p in cluster_dir.iterdir() if (p / RUN_INDEX).is_file())


def previous_run(cluster_dir: Path, run_id: str) -> Path | None:
    earlier = [p for p in cluster_runs(cluster_dir) if p.name < run_id]
    return earlier[-1] if earlier else None


def record_path(run_dir: Path, notebook: str) -> Path:
    """Where a notebook's kernel keeps its record while it runs (folded into the notebook by :func:`seal_run`)."""
    return run_dir / f".{notebook}.record.json"


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_index(run_dir: Path, index: dict) -> None:
    """Write ``run.json`` durably; on a full disk, give up the reserve and try once more."""
    text = json.dumps(index, indent=2) + "\n"
    try:
        write_durably(run_dir / RUN_INDEX, text)
    except RecordWriteError:
        if not release_reserve(run_dir):
            raise
        write_durably(run_dir / RUN_INDEX, text)


def release_reserve(run_dir: Path) -> bool:
    """Free the space set aside for sealing; True if there was any."""
    try:
        (run_dir / RESERVE).unlink()
        return True
    except OSError:
        return False


def start_run(run_dir: Path, index: dict, names: list[str]) -> None:
    """Write ``run.json`` (status ``running``, every notebook ``pending``) before the first notebook starts.

    Also sets space aside (:data:`RESERVE_BYTES`) so the record can be sealed on a full disk,
    and journals the start. Raises :class:`RecordWriteError` when the directory cannot hold it.
    """
    index.update(status="running", finished_at=None,
                 runner={"pid": os.getpid(), "host": socket.gethostname()},
                 notebooks=[{"name": n, "file": f"{n}.ipynb", "status": "pending", "sha256": None, "duration_s": 0.0}
                            for n in names])
    try:
        with open(run_dir / RESERVE, "wb") as fh:
            fh.write(b"\0" * RESERVE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        release_reserve(run_dir)
        raise RecordWriteError(f"cannot write the run record in {run_dir} ({exc.strerror or exc}): nothing was "
                               "changed; free space there or choose another --out") from None
    _write_index(run_dir, index)
    journal_append(run_dir.parent, {"event": "started", "run_id": run_dir.name})


def mark_notebook(run_dir: Path, index: dict, name: str, status: str, sha256: str | None = None,
                  duration_s: float = 0.0) -> None:
    """Update one notebook's entry in ``run.json`` (``running`` before it starts, its outcome after)."""
    for entry in index["notebooks"]:
        if entry["name"] == name:
            entry.update(status=status, sha256=sha256, duration_s=round(duration_s, 3))
    _write_index(run_dir, index)


def write_notebook(path: Path, nb: dict, encoder: NotebookEncoder | None = None) -> None:
    """Write an executed notebook durably (a crash or full disk leaves the previous version, never half a file).

    ``encoder`` (one per notebook, kept across its saves) re-encodes only the cells changed since its last save;
    without one, ``nbformat`` writes it (and validates it). ``nbformat`` is imported here, where a notebook is
    written: importing it loads ``jsonschema`` (seconds).
    """
    if encoder is not None:
        write_durably(path, encoder.encode(nb))
        return
    import nbformat

    write_durably(path, nbformat.writes(nbformat.from_dict(nb)))


def make_run_dir(cluster_dir: Path, run_id: str) -> Path:
    """Create ``<cluster_dir>/<run_id>``; a one-line :class:`RunbookError` saying what to do when it cannot be."""
    run_dir = cluster_dir / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise RunbookError(f"{run_dir} already exists: a run directory is never reused; run again (a new run ID) "
                           "or move the old one away") from None
    except NotADirectoryError:
        raise RunbookError(f"{cluster_dir}: a file is in the way of the records folder; move it or choose "
                           "another --out") from None
    except OSError as exc:
        raise RunbookError(f"cannot create {run_dir} ({exc.strerror or exc}); choose a writable --out") from None
    return run_dir


def _empty_notebook(record: dict) -> dict:
    return {"cells": [], "metadata": {"runbook": record}, "nbformat": 4, "nbformat_minor": 5}


def fold_record(run_dir: Path, name: str, *, status: str | None = None) -> None:
    """Copy a kernel's record (``.<name>.record.json``) into ``metadata.runbook`` of its notebook."""
    sidecar = record_path(run_dir, name)
    record = _read_json(sidecar)
    if record is None:
        return
    if status and record.get("status") == "running":
        record["status"] = status
        record["finished_at"] = record.get("finished_at") or utcnow()
    path = run_dir / f"{name}.ipynb"
    nb = _read_json(path) or _empty_notebook(record)
    nb.setdefault("metadata", {})["runbook"] = record
    write_notebook(path, nb)


def seal_run(run_dir: Path, index: dict, status: str) -> dict:
    """Fold every record into its notebook, hash the notebooks and write the final ``run.json``.

    ``status`` is the run's: ``succeeded``, ``failed`` or ``interrupted``. A notebook still
    ``running`` ends ``interrupted`` (or ``failed``); one never started ends ``skipped``.
    """
    release_reserve(run_dir)  # from here on every byte counts
    for entry in index.get("notebooks", []):
        if entry.get("status") in ("running", "pending") or record_path(run_dir, entry["name"]).exists():
            if entry.get("status") == "running":
                entry["status"] = "failed" if status == "failed" else "interrupted"
            elif entry.get("status") == "pending":
                entry["status"] = "skipped"
            fold_record(run_dir, entry["name"], status=entry["status"] if entry["status"] != "skipped" else None)
        path = run_dir / entry.get("file", f"{entry['name']}.ipynb")
        entry["sha256"] = sha256_file(path) if path.is_file() else None
    index["status"] = status
    index["finished_at"] = index.get("finished_at") or utcnow()
    _write_index(run_dir, index)
    for entry in index.get("notebooks", []):
        record_path(run_dir, entry["name"]).unlink(missing_ok=True)
    journal_append(run_dir.parent, {"event": "sealed", "run_id": run_dir.name, "status": status,
                                    "run_json_sha256": sha256_file(run_dir / RUN_INDEX)})
    return index


def is_dead(index: dict, *, holding_lock: bool) -> bool:
    """A ``running`` run whose runner is gone: its process died here, or we hold the lock it would hold."""
    if index.get("status") != "running":
        return False
    runner = index.get("runner") or {}
    if runner.get("host") == socket.gethostname():
        return not alive(runner.get("pid"))
    return holding_lock and not index.get("dry_run", True)


def started_changes(run_dir: Path, index: dict) -> list[str]:
    """``01-partition: reset [lab-cp-1] started``: every change a run applied or started, in order."""
    lines = []
    for entry in index.get("notebooks", []):
        record = _read_json(record_path(run_dir, entry["name"]))
        if record is None:
            record = ((_read_json(run_dir / f"{entry['name']}.ipynb") or {}).get("metadata") or {}).get("runbook") or {}
        for action in record.get("actions") or []:
            if action.get("outcome") in ("applied", "started", "failed", "interrupted"):
                lines.append(f"{entry['name']}: {action.get('step')} [{action.get('target')}] {action.get('outcome')}")
    return lines


def seal_interrupted_runs(cluster_dir: Path, *, holding_lock: bool) -> list[str]:
    """Seal every run of the cluster that was killed; lines saying where each stopped and what it had started."""
    lines = []
    for run_dir in cluster_runs(cluster_dir):
        index = _read_json(run_dir / RUN_INDEX)
        if index is None or not is_dead(index, holding_lock=holding_lock):
            continue
        where = next((e["name"] for e in index.get("notebooks", []) if e.get("status") == "running"), None)
        changes = started_changes(run_dir, index)
        seal_run(run_dir, index, "interrupted")
        lines.append(f"the previous run {run_dir.name} of '{cluster_dir.name}' was interrupted"
                     + (f" during {where}" if where else "") + f"; it had started {len(changes)} change(s)"
                     + (":" if changes else "") + f" (marked interrupted in {run_dir / RUN_INDEX})")
        lines += [f"  {c}" for c in changes]
    return lines


def journal_path(cluster_dir: Path) -> Path:
    """The journal of one cluster folder (keyed by its absolute path) in the state directory."""
    state = Path(os.environ.get(STATE_ENV) or Path.home() / ".local" / "state" / "runbook")
    key = hashlib.sha256(str(cluster_dir.resolve()).encode()).hexdigest()[:16]
    return state / "journal" / f"{cluster_dir.name}-{key}.jsonl"


def journal_append(cluster_dir: Path, entry: dict) -> None:
    """Append one line (fsynced). A journal that cannot be written is reported, not fatal: the run itself is recorded."""
    path = journal_path(cluster_dir)
    line = json.dumps({**entry, "cluster_dir": str(cluster_dir.resolve()), "at": utcnow()}) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise RecordWriteError(f"cannot append to the run journal {path} ({exc.strerror or exc}); set "
                               f"{STATE_ENV} to a writable folder") from None


def journal_entries(cluster_dir: Path) -> list[dict] | None:
    """The journal's lines for this cluster folder, or None when this machine has no journal of it."""
    path = journal_path(cluster_dir)
    if not path.is_file():
        return None
    out = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def _journal_problems(cluster_dir: Path) -> tuple[list[str], list[str]]:
    entries = journal_entries(cluster_dir)
    if entries is None:
        return [], [f"no journal of {cluster_dir} on this machine ({journal_path(cluster_dir)}): edits of the newest "
                    "run cannot be detected here (verify where the runs were made, or compare with a commit)"]
    problems: list[str] = []
    started = [e["run_id"] for e in entries if e.get("event") == "started" and isinstance(e.get("run_id"), str)]
    sealed = {e["run_id"]: e for e in entries if e.get("event") == "sealed" and isinstance(e.get("run_id"), str)}
    present = {p.name for p in cluster_runs(cluster_dir)}
    for run_id in dict.fromkeys(started + list(sealed)):
        where = next((d for d in (cluster_dir / run_id, cluster_dir / SET_ASIDE / run_id) if (d / RUN_INDEX).is_file()),
                     None)
        if where is None:
            problems.append(f"{run_id}: the journal records this run but its directory or run.json is gone")
            continue
        seal = sealed.get(run_id)
        actual = sha256_file(where / RUN_INDEX)
        if seal is not None and seal.get("run_json_sha256") != actual:
            problems.append(f"{run_id}: run.json differs from the one sealed in the journal (sha256 {actual[:12]}…, "
                            f"journal {str(seal.get('run_json_sha256'))[:12]}…): the run was edited after it ended")
    for run_id in sorted(present - set(started) - set(sealed)):
        if started and run_id > started[0]:
            problems.append(f"{run_id}: not in the journal, although it is newer than the journal's first run")
    return problems, []


@dataclass
class VerifyResult:
    ok: bool
    problems: list[str]
    checked_runs: int
    status: str | None = None  # the verified run's own status
    notes: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.ok and self.status == "succeeded"


def _notebook_problems(run_dir: Path, index: dict) -> list[str]:
    problems = []
    listed = set()
    ended_early = False
    for nb in index.get("notebooks", []):
        path = run_dir / nb.get("file", "")
        listed.add(path.name)
        status = nb.get("status")
        if status == "skipped" and not nb.get("sha256"):
            if path.is_file():
                problems.append(f"{run_dir.name}/{path.name}: listed as skipped without a hash, but the file is there "
                                "(run.json was edited)")
            elif not ended_early:
                problems.append(f"{run_dir.name}/{path.name}: listed as skipped although no notebook before it failed "
                                "(run.json was edited)")
            continue
        ended_early = ended_early or status != "succeeded"
        if not path.is_file():
            problems.append(f"{run_dir.name}/{path.name}: listed in run.json but missing")
        elif sha256_file(path) != nb.get("sha256"):
            problems.append(f"{run_dir.name}/{path.name}: sha256 differs from run.json (the file was modified)")
        else:
            record = ((_read_json(path) or {}).get("metadata") or {}).get("runbook") or {}
            if record.get("run_id") not in (None, index.get("run_id")):
                problems.append(f"{run_dir.name}/{path.name}: its record belongs to run {record.get('run_id')}")
    for extra in sorted(p.name for p in run_dir.glob("*.ipynb") if p.name not in listed):
        problems.append(f"{run_dir.name}/{extra}: a notebook that run.json does not list")
    statuses = [nb.get("status") for nb in index.get("notebooks", [])]
    if index.get("status") == "succeeded" and any(s != "succeeded" for s in statuses):
        problems.append(f"{run_dir.name}: run.json says succeeded but lists notebooks that did not succeed")
    return problems


def verify_run(run_dir: Path) -> VerifyResult:
    """Check ``run_dir`` and every earlier run it chains back to, and the cluster's journal."""
    run_dir = run_dir.resolve()
    index_path = run_dir / RUN_INDEX
    if not index_path.is_file():
        return VerifyResult(False, [f"{index_path}: missing"], 0)
    index = _read_json(index_path)
    if index is None:
        return VerifyResult(False, [f"{index_path}: not valid JSON"], 0)
    problems = _notebook_problems(run_dir, index)
    journal_problems, notes = _journal_problems(run_dir.parent)
    problems += journal_problems
    checked = 1
    current_dir, current = run_dir, index
    while True:
        prev_dir = previous_run(current_dir.parent, current_dir.name)
        expected = current.get("previous_run_sha256")
        if prev_dir is None:
            if expected is not None:
                problems.append(f"{current_dir.name}: points at a previous run that is no longer there")
            break
        actual = sha256_file(prev_dir / RUN_INDEX)
        if expected != actual:
            problems.append(f"{current_dir.name}: chain broken: previous run {prev_dir.name} has run.json sha256 "
                            f"{actual[:12]}…, the record expects {str(expected)[:12]}…")
            break
        current_dir, current = prev_dir, _read_json(prev_dir / RUN_INDEX) or {}
        problems += _notebook_problems(current_dir, current)
        checked += 1
    return VerifyResult(not problems, problems, checked, index.get("status"), notes)
