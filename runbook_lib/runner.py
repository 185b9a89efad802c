"""``runbook run``: execute notebooks headless with papermill and keep them as the audit record.

Secrets never travel as papermill parameters (papermill writes those into the
notebook): they go to the kernel in the ``RUNBOOK_SECRETS`` environment variable.
A papermill engine copies the kernel's record (``$RUNBOOK_RECORD``) into
``metadata.runbook`` every time papermill saves, i.e. after every cell.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import yaml

from . import kernels, progress, run_summary
from .errors import ParamsError, RunbookError, RunInterrupted
from .figure_export import FIGURE_SOCKET_ENV
from .figure_server import FigureServer
from .interrupt import run_interruptibly, tracking
from .lock import take as take_lock
from .notebook_json import NotebookEncoder
from .params import load_params, parse_params, read_params_file, split_secrets
from .progress import PROGRESS_ENV
from .record import RECORD_ENV, RecordWriteError, utcnow
from .redact import Redactor, move_secret_bearing
from .runs import (
    RUN_INDEX,
    SET_ASIDE,
    is_dead,
    make_run_dir,
    mark_notebook,
    previous_run,
    record_path,
    seal_interrupted_runs,
    seal_run,
    sha256_file,
    start_run,
    started_changes,
    write_notebook,
)
from .session import (
    LAB_CONNECTION_ENV,
    RUN_ID_ENV,
    SECRETS_ENV,
    connection_for,
    handed_lab_connection,
    new_run_id,
    operator_identity,
)

NOTEBOOKS = ("01-partition", "02-extensions-and-upgrade", "03-piraeus-install", "04-storage-classes",
             "05-snapshots", "06-failover-drill", "07-benchmarks", "08-storage-health")


def notebooks_dir() -> Path:
    here = Path(__file__).resolve().parents[1] / "notebooks"
    return here if here.is_dir() else Path.cwd() / "notebooks"


def resolve_names(names: list[str]) -> list[str]:
    """``01`` or ``01-partition`` → ``01-partition``; no names → all, in order."""
    if not names:
        # Every notebook that exists, in order (06-failover-drill is not written yet).
        return [n for n in NOTEBOOKS if (notebooks_dir() / f"{n}.ipynb").exists()]
    out = []
    for name in names:
        stem = name.removesuffix(".ipynb")
        match = [n for n in NOTEBOOKS if n == stem or n.split("-", 1)[0] == stem]
        if not match:
            raise RunbookError(f"unknown notebook {name!r}; known: {', '.join(NOTEBOOKS)}")
        if not (notebooks_dir() / f"{match[0]}.ipynb").exists():
            raise RunbookError(f"notebook {match[0]} is not written yet")
        out.append(match[0])
    return sorted(dict.fromkeys(out), key=NOTEBOOKS.index)


def _register_engine(redactor: Redactor | None = None) -> None:
    from papermill.engines import NBClientEngine, papermill_engines

    class RunbookEngine(NBClientEngine):
        """nbclient engine that keeps ``metadata.runbook`` up to date at every save."""

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            original = nb_man.save
            markdown = {"now": False}  # papermill saves at every cell's start and end, a markdown cell's too
            encoder = NotebookEncoder()  # each save re-encodes only the cells that changed

            def save(**kw):
                if markdown["now"]:  # a markdown cell changes only papermill's timing metadata: saved with the next cell
                    return
                merge_record(nb_man.nb)
                if nb_man.output_path:  # atomic and fsynced: a crash or a full disk keeps the last good version
                    write_notebook(Path(nb_man.output_path), masked(nb_man.nb), encoder)
                    nb_man.last_save_time = nb_man.now()
                else:
                    original(**kw)

            def unsaved_for_markdown(step):
                def wrapped(cell, cell_index=None, **kw):
                    markdown["now"] = cell.get("cell_type") != "code"
                    try:
                        return step(cell, cell_index, **kw)
                    finally:
                        markdown["now"] = False
                return wrapped

            masked = redactor.deep if redactor else (lambda nb: nb)  # secrets out of every cell and output
            nb_man.save = save
            started = unsaved_for_markdown(nb_man.cell_start)

            def cell_start(cell, cell_index=None, **kw):  # the terminal hears which section runs now
                if cell.get("cell_type") == "code" and cell_index is not None:
                    progress.emit(cell_line(nb_man.nb, cell_index))
                return started(cell, cell_index, **kw)

            nb_man.cell_start, nb_man.cell_complete = cell_start, unsaved_for_markdown(nb_man.cell_complete)
            manager, reaper = kwargs.pop("km", None), kwargs.pop("kernel_reaper", None)
            if manager is not None:
                return kernels.execute_in(manager, reaper or kernels.Reaper(), nb_man, kernel_name, **kwargs)
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register("runbook", RunbookEngine)


def cell_line(nb: Any, index: int) -> str:
    """``02-extensions-and-upgrade | cell 5/9: Roll the installer out``: the section a code cell belongs to."""
    cells = nb.cells
    code = [i for i, c in enumerate(cells) if c.get("cell_type") == "code"]
    title = ""
    for cell in reversed(cells[:index]):
        if cell.get("cell_type") == "markdown":
            heading = [ln.lstrip("#").strip() for ln in cell.get("source", "").splitlines() if ln.startswith("#")]
            title = heading[0] if heading else ""
            break
    name = progress.CONTEXT.notebook
    where = f"cell {code.index(index) + 1}/{len(code)}" if index in code else f"cell {index + 1}"
    return " | ".join(p for p in (name, f"{where}: {title or 'parameters'}") if p)


def merge_record(nb: Any, *, final_status: str | None = None) -> dict | None:
    path = os.environ.get(RECORD_ENV)
    record = None
    if path and Path(path).exists():
        try:
            record = json.loads(Path(path).read_text())
        except ValueError:
            record = None  # being replaced right now; the next save picks it up
    if record is None:
        record = nb.metadata.get("runbook")
    if record is None and final_status:
        # The notebook failed before its session began (bad parameters, import error):
        # it still gets a record saying so.
        name = Path(path).stem if path else ""
        record = {"schema": 1, "notebook": name, "run_id": os.environ.get(RUN_ID_ENV, ""), "status": final_status,
                  "started_at": None, "finished_at": utcnow(), "versions": {}, "parameters": {}, "actions": [],
                  "checks": [], "results": {}}
    if record is not None and final_status == "failed" and record.get("status") != "failed":
        record["status"] = final_status
        record["finished_at"] = record.get("finished_at") or utcnow()
    if record is not None:
        nb.metadata["runbook"] = record
    return record


@dataclass
class NotebookOutcome:
    name: str
    status: str
    sha256: str | None
    duration_s: float
    error: str | None = None


def parse_override(value: str) -> Any:
    """``-p KEY VALUE``: the value is YAML, so ``true``, ``3`` and ``[a, b]`` get their types."""
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def merge_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The parameter file's mapping with ``-p`` overrides; ``section.key`` reaches into a section.

    ``-p failover.keep_test_objects true`` sets one key of ``failover`` and keeps the file's others.
    """
    merged = {**raw}
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        if not all(parts):
            raise ParamsError([f"-p {dotted}: empty part in the key (write section.key)"], "the -p overrides")
        node = merged
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, dict):
                child = node[part] = dict(child)  # a copy: the file's mapping stays as read
            else:
                where = ".".join(parts[: depth + 1])
                raise ParamsError([f"-p {dotted}: {where} is not a section (it holds {type(child).__name__})"],
                                  "the -p overrides")
            node = child
        node[parts[-1]] = value
    return merged


def run(
    params_file: Path,
    names: list[str],
    out_dir: Path,
    overrides: dict[str, Any],
    *,
    echo: Callable[[str], None] = print,
) -> tuple[Path, bool]:
    """Run notebooks in order; stop at the first failure. Returns (run directory, success).

    In plan mode a notebook that fails does not stop the run: the later notebooks are planned as far
    as their own preconditions can be checked, and the summary names what each could not check.
    A failed plan run against a real cluster is moved to ``<cluster>/failed-plans/``, out of the
    cluster's audit chain (it changed nothing and approves nothing).

    An applying run holds the cluster's lock (:mod:`runbook_lib.lock`) from before the first
    notebook to after the last; its notebooks find it held under their own run ID.
    """
    load_params(params_file)  # report every problem of the file itself first (a YAML syntax error included)
    raw = read_params_file(params_file)
    merged = merge_overrides(raw, overrides)
    source = str(params_file) + (f" with -p {', '.join(overrides)}" if overrides else "")
    params = parse_params(merged, source=source)
    public, secret = move_secret_bearing(*split_secrets(merged), params.secret_values())
    names = resolve_names(names)
    run_id = new_run_id()
    # absolute: papermill runs each notebook from notebooks/ (its cwd), where a relative --out points elsewhere
    out_dir = Path(out_dir).absolute()
    check_out_dir(out_dir)
    with tempfile.TemporaryDirectory(prefix="runbook-records-") as records:
        kernel_starts = KernelStarts(records, out_dir / params.cluster_name / run_id, run_id, secret)
        # the first kernel starts now, beside the lab's start, the lock and the figure server: it learns where the
        # lab and the figure server are once they are known (runbook_lib.kernels)
        first = kernel_starts.ahead(names[0], env_later=True)
        lock = None
        try:
            # the lab is started (or found) once, here: the run's kernels find the answer in their environment
            connection = connection_for(params) if params.target == "lab" or not params.effective_dry_run else None
            if not params.effective_dry_run:  # plans change nothing and may run beside anything
                from .kube import connect

                lock = take_lock(connect(connection.get("kubeconfig")), operator_identity(), run_id,
                                 finished=lambda holder_run: run_has_ended(out_dir / params.cluster_name / holder_run))
            # the run's one browser starts now and draws every kernel's figures
            with FigureServer() as figures:
                run_env = {FIGURE_SOCKET_ENV: figures.socket_path}
                if params.target == "lab":
                    run_env[LAB_CONNECTION_ENV] = handed_lab_connection(params, connection, run_id)
                first.complete_env(run_env)
                return _run(params, params_file, names, out_dir, run_id, public, echo, run_env=run_env,
                            kernel_starts=kernel_starts, first=first)
        finally:
            first.discard(wait=True)  # not taken: the run stopped before its first notebook
            if lock is not None:
                problem = lock.release_quietly()
                if problem:
                    echo(f"warning: {problem}")


class KernelStarts:
    """How the run's kernels start: on Unix sockets in the run's private folder ``records``, each with its
    notebook's record, progress file, run ID and secrets in its environment."""

    def __init__(self, records: str, run_dir: Path, run_id: str, secret: dict) -> None:
        self.records, self.run_dir, self.run_id, self.secret = records, run_dir, run_id, secret
        self.manager_class = kernels.ipc_kernel_manager(records)

    def env(self, name: str) -> dict[str, str]:
        """What the notebook's kernel finds in its environment besides the run's own: its record, its progress."""
        progress_file = Path(self.records) / f"{name}.progress"
        progress_file.touch()
        return {RUN_ID_ENV: self.run_id, RECORD_ENV: str(record_path(self.run_dir, name)),
                SECRETS_ENV: json.dumps(self.secret), PROGRESS_ENV: str(progress_file)}

    def ahead(self, name: str, *, env_later: bool = False) -> kernels.KernelAhead:
        """Notebook ``name``'s kernel, starting now (see :mod:`runbook_lib.kernels`)."""
        imports, figures = kernels.warm_up_parts(notebooks_dir() / f"{name}.ipynb")
        return kernels.KernelAhead(self.manager_class, env={**os.environ, **self.env(name)}, cwd=str(notebooks_dir()),
                                   warm_up=imports, figures=figures, env_later=env_later)


def _run(params, params_file: Path, names: list[str], out_dir: Path, run_id: str, public: dict,
         echo: Callable[[str], None], *, run_env: dict[str, str], kernel_starts: KernelStarts,
         first: kernels.KernelAhead) -> tuple[Path, bool]:
    """The run itself; ``run_env``: what every kernel of the run finds in its environment (the lab's connection,
    the figure server's socket)."""
    import papermill as pm

    cluster_dir = out_dir / params.cluster_name
    for line in seal_interrupted_runs(cluster_dir, holding_lock=not params.effective_dry_run):
        echo(line)
    run_dir = make_run_dir(cluster_dir, run_id)
    if params.target == "lab":
        (run_dir / ".gitignore").write_text("# lab rehearsal: not an audit record of a real cluster\n*\n")
    prev = previous_run(cluster_dir, run_id)
    index: dict[str, Any] = {
        "schema": 1, "run_id": run_id, "cluster_name": params.cluster_name, "target": params.target,
        "dry_run": params.effective_dry_run, "params_file": str(params_file), "params_sha256": sha256_file(params_file),
        "operator": operator_identity(), "started_at": utcnow(), "finished_at": None,
        "status": "failed", "previous_run_sha256": sha256_file(prev / RUN_INDEX) if prev else None, "notebooks": [],
    }
    start_run(run_dir, index, names)  # run.json says "running" before the first notebook starts
    echo(f"run {run_id}: {len(names)} notebook(s) on '{params.cluster_name}' ({params.target}, "
         f"{'plan only' if params.effective_dry_run else 'apply'}) -> {run_dir}")
    redactor = Redactor(params.secret_values())
    _register_engine(redactor)
    outcomes: list[NotebookOutcome] = []
    records_of: dict[str, dict | None] = {}
    failed = False
    keep_going = params.effective_dry_run  # a plan changes nothing: plan every notebook that can be planned
    saved_env = {k: os.environ.get(k) for k in (RUN_ID_ENV, RECORD_ENV, SECRETS_ENV, PROGRESS_ENV, LAB_CONNECTION_ENV,
                                                FIGURE_SOCKET_ENV)}
    os.environ.update(run_env)
    ahead: kernels.KernelAhead | None = first
    reaper = kernels.Reaper()
    manager_class = kernel_starts.manager_class

    def start_ahead(after: int) -> None:
        """While notebook ``after`` runs, the next one's kernel starts (see :mod:`runbook_lib.kernels`)."""
        nonlocal ahead
        if after < len(names) and ahead is None:
            ahead = kernel_starts.ahead(names[after])

    try:
        for i, name in enumerate(names, 1):
            if failed and not keep_going:
                outcomes.append(NotebookOutcome(name, "skipped", None, 0.0))
                continue
            echo(f"[{i}/{len(names)}] {name} ...")
            os.environ.update(kernel_starts.env(name))
            progress.set_notebook(name)
            tail = ProgressTail(Path(os.environ[PROGRESS_ENV]), lambda line: echo(f"      {line}"), label=name)
            out_nb = run_dir / f"{name}.ipynb"
            t0 = time.monotonic()
            error = None
            mark_notebook(run_dir, index, name, "running")
            started, ahead = (ahead.take() if ahead else None), None

            def execute(kms: list, name: str = name, out_nb: Path = out_nb, started: Any = started,
                        i: int = i) -> None:
                if started is not None:
                    kms.append(started)  # Ctrl-C interrupts it as it does a kernel papermill starts
                pm.execute_notebook(
                    str(notebooks_dir() / f"{name}.ipynb"), str(out_nb), parameters=public,
                    engine_name="runbook", kernel_name="python3", progress_bar=False, cwd=str(notebooks_dir()),
                    log_output=False, kernel_manager_class=tracking(manager_class, kms), km=started,
                    kernel_reaper=reaper, on_notebook_start=lambda notebook: start_ahead(i))

            try:
                run_interruptibly(execute)
                status = "succeeded"
            except Exception as exc:  # noqa: BLE001 - any failure ends the run, reported below
                status, error = "failed", _first_line(exc)
            finally:
                tail.stop()
            duration = time.monotonic() - t0
            record = None
            if out_nb.exists():
                nb = nbformat.read(out_nb, as_version=4)
                record = merge_record(nb, final_status=status)
                write_notebook(out_nb, redactor.deep(nb))
                sha = sha256_file(out_nb)
            else:
                sha = None
            mark_notebook(run_dir, index, name, status, sha, duration)
            records_of[name] = record
            outcomes.append(NotebookOutcome(name, status, sha, duration, error))
            echo(f"[{i}/{len(names)}] {name} {status} in {duration:.1f}s" + (f": {error}" if error else ""))
            if status != "succeeded" and keep_going and i < len(names):
                echo(f"      plan mode: {name} could not be planned to its end; planning the next notebook")
            failed = failed or status != "succeeded"
    except KeyboardInterrupt:
        where = next((e["name"] for e in index["notebooks"] if e["status"] == "running"), "")
        changes = started_changes(run_dir, index)
        seal_run(run_dir, index, "interrupted")
        raise RunInterrupted(run_dir, where, changes) from None
    except RecordWriteError:
        _seal_after_write_error(run_dir, index)
        raise
    finally:
        if ahead is not None:
            ahead.discard()
        reaper.wait()
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    index["finished_at"] = utcnow()
    seal_run(run_dir, index, "failed" if failed else "succeeded")
    echo_summary(outcomes, records_of, plan=params.effective_dry_run, echo=echo)
    if failed and params.effective_dry_run and params.target != "lab":
        run_dir = set_aside_failed_plan(run_dir)
        echo(f"this plan failed: kept in {run_dir}, outside the audit chain of '{params.cluster_name}'")
    return run_dir, not failed


def echo_summary(outcomes: list[NotebookOutcome], records_of: dict[str, dict | None], *, plan: bool,
                 echo: Callable[[str], None]) -> None:
    def shown(status: str) -> str:  # in a plan, a notebook that failed is one whose plan could not be finished
        return "not planned" if plan and status == "failed" else status

    rows = [run_summary.summarize(o.name, shown(o.status), o.duration_s, records_of.get(o.name),
                                  o.error and (f"could not plan: {o.error}" if plan else o.error)) for o in outcomes]
    echo("")
    echo(run_summary.table(rows))
    if plan:
        planned = run_summary.planned_actions(records_of)
        echo("")
        echo(f"plan mode: nothing was changed. {len(planned)} planned action(s), in order:")
        for line in planned or ["  (none)"]:
            echo(line)


def set_aside_failed_plan(run_dir: Path) -> Path:
    """Move a failed plan out of the chain that ``runbook verify`` walks (``<cluster>/failed-plans/<run_id>``)."""
    target = run_dir.parent / SET_ASIDE / run_dir.name
    target.parent.mkdir(exist_ok=True)
    shutil.move(str(run_dir), target)
    return target


class ProgressTail:
    """Echoes the lines a notebook's kernel appends to its progress file while it runs.

    After ``quiet_s`` without a line it says the notebook is still running, so a silent stretch (many
    reads, a slow check) never looks like a hang.
    """

    def __init__(self, path: Path, echo: Callable[[str], None], every_s: float = 0.5, *, label: str = "",
                 quiet_s: float = 30.0) -> None:
        self.path, self.echo, self.every_s = path, echo, every_s
        self.label, self.quiet_s = label, quiet_s
        self.started = self.last = time.monotonic()
        self.offset = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.done.wait(self.every_s):
            self._drain()
            if time.monotonic() - self.last >= self.quiet_s:
                self.last = time.monotonic()
                self.echo(f"{self.label} | still running, {self.last - self.started:.0f} s so far")

    def _drain(self) -> None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            self.last = time.monotonic()
            self.echo(line)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        self._drain()


def _seal_after_write_error(run_dir: Path, index: dict) -> None:
    """The record could not be written (a full disk): seal what is there, with the space set aside for it."""
    with contextlib.suppress(RecordWriteError):  # else the next run of this cluster seals it (still "running")
        seal_run(run_dir, index, "failed")


def check_out_dir(out_dir: Path) -> None:
    """One-line errors for an output directory that cannot hold a run, before anything is changed."""
    probe = out_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise RunbookError(f"--out {out_dir}: {probe} is a file, not a directory; choose a directory for the records")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunbookError(f"--out {out_dir}: {probe} is not writable by {operator_identity()}; choose a writable "
                           "directory for the records")


def run_has_ended(run_dir: Path) -> bool:
    """True when the run's own record says it ended (or it was killed): its lease may be taken over."""
    try:
        index = json.loads((run_dir / RUN_INDEX).read_text())
    except (OSError, ValueError):
        return False
    return index.get("status") in ("succeeded", "failed", "interrupted") or is_dead(index, holding_lock=False)


def _first_line(exc: BaseException) -> str:
    """``TalosError: talosctl exited 1 on lab-cp-2: ...`` for a failed cell, else the exception's text."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {str(evalue).splitlines()[0] if evalue else ''}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
