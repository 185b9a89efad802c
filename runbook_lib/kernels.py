"""The kernels of ``runbook run``: on Unix sockets, and each one started while the notebook before it runs.

A kernel takes a second or two to start and its notebook's first cell another to import the library.
:class:`KernelAhead` spends that time while the previous notebook waits on the cluster: it starts the
next notebook's kernel with exactly the environment and working directory that notebook gets, and
imports the ``runbook_lib`` modules the notebook imports and what they import on first use
(:mod:`runbook_lib.warm_up`), in a namespace of their own (the notebook's own namespace stays empty, its
cells run as written), and, for a notebook that draws figures, prepares their browser (nothing to start when
the run's figure server draws them, :mod:`runbook_lib.figure_server`). Nothing else of the notebook runs ahead.
Whatever goes wrong ahead only loses the head start: the kernel is shut down and the notebook
starts its own, as it would without one.

The first notebook's kernel starts before the run has connected to the lab, taken the cluster's lock and started
its figure server, so its start and imports overlap theirs. What only those steps know (where the lab and the
figure server are) reaches it through :meth:`KernelAhead.complete_env` after its imports and before its figures'
browser is prepared, so it has the environment its notebook gets before it is handed over.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import re
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import nbformat
from jupyter_core.utils import run_sync

#: what nbclient adds to a kernel it starts (``NotebookClient.ipython_hist_file``): no history on disk
KERNEL_ARGUMENTS = ["--HistoryManager.hist_file=:memory:"]
READY_TIMEOUT_S = 60  # nbclient's own startup timeout
WARM_UP_TIMEOUT_S = 120
#: the longest a kernel's start and warm-up take: ready, then up to three warm-up steps (imports, env, figures)
START_TIMEOUT_S = READY_TIMEOUT_S + 3 * WARM_UP_TIMEOUT_S

_IMPORTS_VIZ = re.compile(r"^from runbook_lib import .*\bviz\b|^import runbook_lib\.viz\b")
_LIBRARY_IMPORT = re.compile(r"^(from runbook_lib(\.[\w.]+)? import [\w., ]+|import runbook_lib(\.[\w.]+)?)$")


def ipc_kernel_manager(socket_dir: str) -> type:
    """Kernels of ``runbook run`` talk over Unix sockets, not plain-text loopback TCP (no ipykernel warning).

    The sockets live in ``socket_dir`` (the run's private temporary folder) under a name of their own:
    jupyter_client's default for ``ipc`` is ``kernel-ipc`` in the working directory, which two kernels
    (two runs side by side) would share.
    """
    from jupyter_client import AsyncKernelManager

    class IpcKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = os.path.join(socket_dir, f"kernel-{uuid.uuid4().hex[:8]}")

    return IpcKernelManager


def warm_up_parts(notebook: Path) -> tuple[str, str]:
    """What a kernel runs before ``notebook``, as (imports, figures), each in a function that binds no name of the
    notebook: its ``runbook_lib`` import lines and what those modules import on first use
    (:mod:`runbook_lib.warm_up`); when it draws figures (imports ``viz``), the start of the figures' browser,
    which needs the kernel's whole environment (whether the run's figure server draws). "" for a part it lacks."""
    nb = nbformat.read(notebook, as_version=4)
    lines = list(dict.fromkeys(ln.strip() for cell in nb.cells if cell.get("cell_type") == "code"
                               for ln in cell.get("source", "").splitlines() if _LIBRARY_IMPORT.match(ln.strip())))
    if not lines:
        return "", ""
    figures = ["from runbook_lib import figure_export", "figure_export.prepare()"] \
        if any(_IMPORTS_VIZ.search(ln) for ln in lines) else []
    return _in_function(lines + ["from runbook_lib import warm_up", "warm_up.import_declared()"]), _in_function(figures)


def warm_up_code(notebook: Path) -> str:
    """:func:`warm_up_parts` as one piece of code, the imports first."""
    return "".join(warm_up_parts(notebook))


def _in_function(lines: list[str]) -> str:
    """``lines`` run in a function that binds no name of the notebook's namespace; "" when there are none."""
    if not lines:
        return ""
    body = "".join(f"    {ln}\n" for ln in lines)
    return f"def _runbook_warm_up():\n{body}_runbook_warm_up()\ndel _runbook_warm_up\n"


def _env_code(extra: dict[str, str]) -> str:
    return _in_function(["import json, os", f"os.environ.update(json.loads({json.dumps(extra)!r}))"])


class KernelAhead:
    """The next notebook's kernel, started and warmed up on a thread of its own.

    ``manager_class`` is the run's kernel manager class; ``env`` and ``cwd`` are the ones the notebook's
    kernel gets. :meth:`take` hands the kernel over (its notebook then owns it); :meth:`discard` shuts
    down one that is not taken.
    """

    def __init__(self, manager_class: type, *, env: dict[str, str], cwd: str, warm_up: str, figures: str = "",
                 env_later: bool = False) -> None:
        """``warm_up`` runs first, then ``figures`` once the environment is complete; ``env_later``: part of the
        environment comes later, through :meth:`complete_env` (before :meth:`take`)."""
        self.manager_class, self.env, self.cwd = manager_class, env, cwd
        self.warm_up, self.figures = warm_up, figures
        self.manager: Any = None
        self.pid: int | None = None  # the kernel's process, once started
        self.problem: str | None = None
        self._lock = threading.Lock()
        self._ended = self._discarded = False
        self._late_env: dict[str, str] | None = None
        self._env_complete = threading.Event()
        if not env_later:
            self._env_complete.set()
        self._thread = threading.Thread(target=self._start, name="kernel-ahead", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        try:
            self.manager = self.manager_class(kernel_name="python3")
            run_sync(self.manager.start_kernel)(extra_arguments=list(KERNEL_ARGUMENTS), env=self.env, cwd=self.cwd)
            self.pid = getattr(self.manager.provisioner, "pid", None)
            self._warm_up()
        except Exception as exc:  # noqa: BLE001 - the notebook starts its own kernel instead
            self.problem = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._ended = True
            discarded = self._discarded
        if discarded:  # discarded while it started: it is shut down here, once started
            _shut_down(self.manager)

    def _warm_up(self) -> None:
        from jupyter_client.blocking import BlockingKernelClient

        # parent: "is the kernel alive?" is then its process's answer, as for nbclient's own client. Without one,
        # jupyter_client asks the heartbeat, which a kernel still starting on a busy machine has not answered yet
        # ("Kernel died before replying to kernel_info").
        client = BlockingKernelClient(**self.manager.get_connection_info(session=True),
                                      connection_file=self.manager.connection_file, parent=self.manager)
        client.start_channels()
        try:
            client.wait_for_ready(timeout=READY_TIMEOUT_S)
            self._execute(client, self.warm_up)
            self._env_complete.wait()
            with self._lock:
                if self._discarded:
                    return
            if self._late_env:
                self._execute(client, _env_code(self._late_env))
            self._execute(client, self.figures)
        finally:
            client.stop_channels()

    def _execute(self, client: Any, code: str) -> None:
        """Run ``code`` silently; a failure, a kernel that died meanwhile or ``WARM_UP_TIMEOUT_S`` is the problem.

        It waits for the reply in short slices and asks the kernel's process between them: jupyter_client's
        ``execute_interactive`` would wait out its whole timeout for a kernel that died (killed, out of memory)."""
        if not code or self.problem:
            return
        msg_id = client.execute(code, silent=True, store_history=False, allow_stdin=False)
        deadline = time.monotonic() + WARM_UP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                reply = client.get_shell_msg(timeout=0.2)
            except queue.Empty:
                if not _alive(self.manager):
                    self.problem = "its kernel died during the warm-up"
                    return
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                if reply["content"].get("status") != "ok":
                    self.problem = f"its warm-up failed: {reply['content'].get('ename', 'error')}"
                return
        self.problem = f"its warm-up took longer than {WARM_UP_TIMEOUT_S:.0f} s"

    def complete_env(self, extra: dict[str, str]) -> None:
        """The rest of the kernel's environment (``env_later``): set in the kernel before its figures' browser is
        prepared and before :meth:`take` hands it over."""
        self._late_env = dict(extra)
        self._env_complete.set()

    def take(self) -> Any:
        """The kernel's manager once its warm-up has ended, or None (and the kernel shut down) if it did not work."""
        if not self._env_complete.is_set():
            raise RuntimeError("KernelAhead.take before complete_env: the kernel's environment is not complete")
        self._thread.join(START_TIMEOUT_S)
        if self._thread.is_alive() or self.problem or not _alive(self.manager):
            self.discard()
            return None
        with self._lock:
            self._discarded = True  # taken: the notebook owns it now
        return self.manager

    def discard(self, *, wait: bool = False) -> None:
        """Shut the kernel down unless it was taken (after Ctrl-C or a failure; a warm-up that did not work).

        ``wait``: return only once it is gone, also when it is still starting, so a process about to exit leaves
        no kernel behind. A kernel still starting is killed then: it has only imported modules (its figures'
        browser starts after :meth:`complete_env`), and a refused run need not wait for its imports. That holds
        also after an earlier ``discard()`` left it starting (the run's loop discards what it has not taken)."""
        with self._lock:
            again, self._discarded = self._discarded, True
            ended = self._ended
        if not again:
            self._env_complete.set()  # a warm-up waiting for the rest of its environment ends now
            if ended:
                _shut_down(self.manager)
                return
        deadline = time.monotonic() + START_TIMEOUT_S
        killed = False
        while wait and self._thread.is_alive() and time.monotonic() < deadline:
            if self.pid and not killed:  # its warm-up notices within a fraction of a second, and its thread ends
                with contextlib.suppress(OSError):
                    os.kill(self.pid, signal.SIGKILL)
                killed = True
            self._thread.join(0.05)


def _shut_down(manager: Any) -> None:
    """A graceful end (the kernel closes its figure browser on the way out), killed after jupyter_client's wait."""
    if manager is None:
        return
    with contextlib.suppress(Exception):
        run_sync(manager.shutdown_kernel)(now=False)
    with contextlib.suppress(Exception):
        run_sync(manager.cleanup_resources)()


def _alive(manager: Any) -> bool:
    try:
        return manager is not None and manager.has_kernel and bool(run_sync(manager.is_alive)())
    except Exception:  # noqa: BLE001
        return False


class Reaper:
    """Kernels whose notebook has ended, shut down on threads of their own while the next notebook runs.

    A kernel's graceful end (its figure browser closed, its process gone) takes half a second or more,
    and nothing of the next notebook needs it. :meth:`wait` at the end of a run leaves no kernel behind.
    """

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def shut_down(self, manager: Any) -> None:
        thread = threading.Thread(target=_shut_down, args=(manager,), name="kernel-end", daemon=True)
        thread.start()
        self.threads.append(thread)

    def wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def execute_in(manager: Any, reaper: Reaper, nb_man: Any, kernel_name: str, *, log_output: bool = False,
               stdout_file: Any = None, stderr_file: Any = None, start_timeout: float = 60,
               execution_timeout: float | None = None, **kwargs: Any) -> Any:
    """papermill's ``NBClientEngine.execute_managed_notebook`` in a kernel started ahead.

    The notebook owns that kernel as nbclient owns one it starts (nbclient keeps a kernel it was handed
    running otherwise); at the end its channels close and ``reaper`` shuts it down.
    """
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    timeout = execution_timeout or kwargs.get("timeout")
    kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
    final = merge_kwargs(kwargs, timeout=timeout,
                         startup_timeout=start_timeout, kernel_name=kernel_name, log=logger, log_output=log_output,
                         stdout_file=stdout_file, stderr_file=stderr_file)
    client = _owning_client_class()(nb_man, km=manager, **final)
    client.owns_km, client.reaper = True, reaper
    return client.execute()


@functools.cache
def _owning_client_class() -> type:
    from papermill.clientwrap import PapermillNotebookClient

    class OwningClient(PapermillNotebookClient):
        """Ends its kernel as nbclient does, except that the reaper waits for the process to be gone."""

        reaper: Reaper

        async def _async_cleanup_kernel(self) -> None:
            manager, client = self.km, self.kc
            self.km = self.kc = None
            if client is not None:
                client.stop_channels()
            if manager is not None:
                self.reaper.shut_down(manager)

        _cleanup_kernel = run_sync(_async_cleanup_kernel)  # nbclient binds its sync twin to its own coroutine

    return OwningClient
