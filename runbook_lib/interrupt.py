"""Ctrl-C during ``runbook run``: interrupt the kernel as Jupyter's stop button does, then stop the run.

papermill runs in a worker thread, so the terminal's SIGINT reaches the main thread as
:class:`KeyboardInterrupt` instead of nbclient's own handler (which shuts the kernel down
mid-cell and leaves asyncio tracebacks behind). The main thread sends SIGINT to the kernel's
process group (the cell and the tool it is running), waits for the cell to end, which lets
the kernel record the interrupted change, and then raises :class:`KeyboardInterrupt`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

#: how long the kernel gets to record the interruption and papermill to save the notebook
GRACE_S = 60.0


def tracking(manager_class: type, managers: list) -> type:
    """``manager_class`` whose instances are appended to ``managers`` (so they can be interrupted)."""

    class Tracked(manager_class):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            managers.append(self)

    return Tracked


def _interrupt(manager: Any) -> None:
    pid = getattr(getattr(manager, "provisioner", None), "pid", None)
    if pid:
        with contextlib.suppress(OSError):
            os.killpg(os.getpgid(pid), signal.SIGINT)  # the kernel runs in a session of its own


def run_interruptibly(execute: Callable[[list], Any]) -> Any:
    """Call ``execute(managers)`` in a worker thread; Ctrl-C interrupts its kernels, then raises here."""
    managers: list = []
    outcome: dict[str, Any] = {}
    # An Event, not Thread.join: a join interrupted by Ctrl-C can mark a live thread stopped (CPython < 3.13).
    done = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = execute(managers)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread as is
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="papermill", daemon=True).start()
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        for manager in managers:
            _interrupt(manager)
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop waiting
            done.wait(GRACE_S)
        raise KeyboardInterrupt from None
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
