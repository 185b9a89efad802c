"""The record of a notebook run outside ``runbook run`` (JupyterLab, VS Code, ``jupyter nbconvert --execute``).

Such a run gets its own run directory, ``outputs/<cluster>/<run_id>/``, like a headless run:

- ``.<notebook>.record.json``: the record (actions, checks, results), saved before every change,
  as under ``runbook run`` (:mod:`runbook_lib.runs`);
- ``<notebook>.ipynb``: the cells this kernel executed, in execution order, with what they printed,
  displayed and returned (captured in the kernel through IPython's ``pre_run_cell``/``post_run_cell``
  events, a copy of ``sys.stdout``/``sys.stderr`` and of the display publisher), and the record as
  ``metadata.runbook``; rewritten after every cell, so a run left half-way still has its notebook;
- ``run.json``: written when the session begins (``running``), after every cell, and sealed (hashes,
  journal) after the cell that calls ``finish()``; chained to the cluster's previous run, so
  ``runbook verify`` checks it as it checks a headless run. A kernel that dies before ``finish()``
  leaves a ``running`` run that the next ``runbook run`` of the cluster marks ``interrupted``.

``nbformat`` is imported by the methods that build cells (importing it costs seconds: its validator
loads ``jsonschema``), so a session under ``runbook run``, which records no notebook here, never pays it.

What the front end alone shows is not captured: widget state (pickers), and cells run before the session
began are kept only as their source. The front end's own saved copy of the notebook stays where it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .record import Record
from .runs import (
    RUN_INDEX,
    SET_ASIDE,
    make_run_dir,
    mark_notebook,
    previous_run,
    record_path,
    seal_run,
    sha256_file,
    start_run,
    write_notebook,
)

OUT_ENV = "RUNBOOK_OUT"


def outputs_root(cwd: Path | None = None) -> Path:
    """``$RUNBOOK_OUT``, else ``outputs/`` beside the ``notebooks/`` folder the kernel runs in (or below cwd)."""
    if os.environ.get(OUT_ENV):
        return Path(os.environ[OUT_ENV]).expanduser()
    cwd = (cwd or Path.cwd()).resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "notebooks").is_dir():
            return folder / "outputs"
    return cwd / "outputs"


def front_end(namespace: dict) -> str:
    ipython = sys.modules.get("IPython")
    if ipython is None or ipython.get_ipython() is None:
        return "a Python process without a notebook (only the record is kept)"
    if namespace.get("__vsc_ipynb_file__"):
        return "VS Code"
    if os.environ.get("JPY_SESSION_NAME"):
        return "Jupyter server (JupyterLab, Notebook)"
    return "a Jupyter kernel client (nbconvert --execute, nbclient, nbmake)"


class _Tee:
    """A stream that writes through and keeps a copy for the current cell."""

    def __init__(self, stream: Any, sink: list[str]) -> None:
        self._stream, self._sink = stream, sink

    def write(self, text: str) -> int:
        self._sink.append(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@dataclass
class _Cell:
    source: str
    count: int | None
    outputs: list = field(default_factory=list)


@dataclass
class InteractiveRun:
    notebook: str
    run_dir: Path
    record: Record
    index: dict
    front_end: str
    cells: list[_Cell] = field(default_factory=list)
    _current: _Cell | None = None
    _streams: dict = field(default_factory=dict)
    _failed_cell: bool = False
    final_status: str | None = None
    sealed: bool = False
    _shell: Any = None
    _original_publish: Any = None

    @property
    def notebook_path(self) -> Path:
        return self.run_dir / f"{self.notebook}.ipynb"

    def where(self) -> str:
        """The first cell's note: where the record goes and what it keeps."""
        kept = "its cells' sources and outputs after each cell" if self._shell is not None else "no cells (no notebook)"
        return (f"record: {self.run_dir} (an interactive run from {self.front_end}; actions and checks are saved as "
                f"they happen, {kept}; check it with: runbook verify {self.run_dir})")

    # -- capture (IPython events)
    def attach(self, shell: Any) -> None:
        """Follow the kernel's cells from now on; the cell running ``Session.begin`` is the first."""
        shell.events.register("pre_run_cell", self._pre)
        shell.events.register("post_run_cell", self._post)
        import nbformat

        publisher = shell.display_pub
        original = publisher.publish

        def publish(data, metadata=None, *args, **kwargs):
            if self._current is not None and not kwargs.get("update"):  # an update redraws an earlier output
                self._flush_streams()
                self._current.outputs.append(nbformat.v4.new_output("display_data", data=dict(data),
                                                                    metadata=dict(metadata or {})))
            return original(data, metadata, *args, **kwargs)

        publisher.publish = publish
        self._original_publish = original
        current = shell.user_ns.get("In", [""])[-1] if shell.user_ns.get("In") else ""
        self._begin_cell(current, getattr(shell, "execution_count", None))
        self._shell = shell

    def detach(self) -> None:
        """Stop following the kernel's cells (a new session began in this kernel)."""
        if self._shell is None:
            return
        self._end_cell()
        self._current = None
        self._shell.events.unregister("pre_run_cell", self._pre)
        self._shell.events.unregister("post_run_cell", self._post)
        self._shell.display_pub.publish = self._original_publish

    def _begin_cell(self, source: str, count: int | None) -> None:
        self._current = _Cell(source, count)
        self.cells.append(self._current)
        for name in ("stdout", "stderr"):
            sink: list[str] = []
            stream = getattr(sys, name)
            self._streams[name] = (stream, sink)
            setattr(sys, name, _Tee(stream, sink))

    def _flush_streams(self) -> None:
        import nbformat

        for name, (_stream, sink) in self._streams.items():
            if sink:
                self._current.outputs.append(nbformat.v4.new_output("stream", name=name, text="".join(sink)))
                sink.clear()

    def _end_cell(self) -> None:
        if self._current is None:
            return
        self._flush_streams()
        for name, (stream, _sink) in self._streams.items():
            setattr(sys, name, stream)
        self._streams = {}

    def _pre(self, info: Any) -> None:
        if self.sealed:
            return
        self._begin_cell(getattr(info, "raw_cell", "") or "", getattr(self._shell, "execution_count", None))

    def _post(self, result: Any) -> None:
        import nbformat

        if self.sealed:
            return
        self._end_cell()
        if result.result is not None and self._current is not None:
            data, metadata = self._shell.display_formatter.format(result.result)
            self._current.outputs.append(nbformat.v4.new_output(
                "execute_result", data=data, metadata=metadata, execution_count=self._current.count))
        error = result.error_in_exec or result.error_before_exec
        if error is not None and self._current is not None:
            self._failed_cell = True
            self._current.outputs.append(nbformat.v4.new_output(
                "error", ename=type(error).__name__, evalue=str(error), traceback=[]))
        self._current = None
        self.save()
        if self.final_status is not None:
            self._seal()

    # -- files
    def save(self) -> None:
        """Write the notebook and its entry in ``run.json`` (its hash) as they are now."""
        import nbformat

        if self.sealed:
            return
        nb = nbformat.v4.new_notebook()
        nb.metadata["runbook"] = self.record.to_dict()
        nb.metadata["runbook_capture"] = {"front_end": self.front_end, "captured": (
            "cells executed in this kernel from Session.begin on, in order, with their stdout, stderr, displays "
            "and results; widget state and the front end's own copy are not included")}
        for cell in self.cells:
            code = nbformat.v4.new_code_cell(cell.source, execution_count=cell.count)
            code.outputs = list(cell.outputs)
            nb.cells.append(code)
        # secrets out of every cell and output, as `runbook run` masks its notebooks at every save
        write_notebook(self.notebook_path, self.record.redactor.deep(nb))
        status = self.final_status or ("failed" if self._failed_cell else "running")
        mark_notebook(self.run_dir, self.index, self.notebook, status, sha256_file(self.notebook_path))

    def finish(self, status: str) -> None:
        """The session ended: seal the run after this cell's output is in (at once without IPython)."""
        self.final_status = status
        if self._shell is None:
            self.save()
            self._seal()

    def _seal(self) -> None:
        status = self.final_status or "failed"
        seal_run(self.run_dir, self.index, status)
        self.sealed = True
        if status == "failed" and self.index.get("dry_run") and self.index.get("target") != "lab":
            # a failed plan changed nothing and approves nothing: kept, but outside the cluster's audit chain
            target = self.run_dir.parent / SET_ASIDE / self.run_dir.name
            target.parent.mkdir(exist_ok=True)
            os.replace(self.run_dir, target)
            self.run_dir = target
            print(f"this plan failed: kept in {target}, outside the audit chain")


_ACTIVE: InteractiveRun | None = None


def start(notebook: str, record: Record, *, cluster_name: str, target: str, dry_run: bool, operator: str,
          namespace: dict) -> InteractiveRun:
    """Open the run directory of an interactive run and point the record at it.

    A session begun again in the same kernel ends the earlier run there: sealed ``interrupted``.
    """
    global _ACTIVE
    if _ACTIVE is not None and not _ACTIVE.sealed:
        earlier, _ACTIVE = _ACTIVE, None
        earlier.detach()
        earlier.final_status = "interrupted"
        earlier.save()
        earlier._seal()
        print(f"the earlier run of this kernel ({earlier.run_dir.name}) ends here, interrupted: the session began again")
    cluster_dir = outputs_root() / cluster_name
    run_dir = make_run_dir(cluster_dir, record.run_id)
    if target == "lab":
        (run_dir / ".gitignore").write_text("# lab rehearsal: not an audit record of a real cluster\n*\n")
    prev = previous_run(cluster_dir, record.run_id)
    params_text = json.dumps(record.to_dict()["parameters"], sort_keys=True)
    index = {
        "schema": 1, "run_id": record.run_id, "cluster_name": cluster_name, "target": target, "dry_run": dry_run,
        "params_file": None, "params_sha256": hashlib.sha256(params_text.encode()).hexdigest(),
        "operator": operator, "started_at": record.started_at, "finished_at": None, "status": "running",
        "previous_run_sha256": sha256_file(prev / RUN_INDEX) if prev else None,
        "interactive": front_end(namespace), "notebooks": [],
    }
    start_run(run_dir, index, [notebook])
    record.path = record_path(run_dir, notebook)
    run = InteractiveRun(notebook, run_dir, record, index, front_end(namespace))
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and hasattr(shell, "events"):
        run.attach(shell)
    run.save()
    _ACTIVE = run
    return run
