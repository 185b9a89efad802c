"""Signs of life during long waits: a bar in a notebook, readable lines in the terminal of ``runbook run``.

A notebook run interactively (JupyterLab, VS Code) shows a tqdm bar (``tqdm.auto``: a widget when
ipywidgets is there) while a wait lasts and leaves one line saying how it ended. Under
``runbook run`` the kernel has no terminal: it appends progress lines to the file named by
``$RUNBOOK_PROGRESS``, which the runner echoes (notebook, step, node, elapsed, what it waits
for), at most one line per :data:`LINE_EVERY_S` per wait, so neither the terminal nor the
executed notebook is flooded.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

PROGRESS_ENV = "RUNBOOK_PROGRESS"
#: a wait gets terminal lines only once it lasts this long (quick waits stay silent)
FIRST_LINE_AFTER_S = 3.0
#: seconds between two terminal lines of one wait or command
LINE_EVERY_S = 10.0
#: a notebook bar appears only for waits longer than this (no flicker for quick ones)
BAR_AFTER_S = 2.0


@dataclass
class Context:
    """Where the run is: set by the session (notebook) and the executor (the last step and its target)."""

    notebook: str = ""
    step: str = ""
    target: str = ""


CONTEXT = Context()


def set_notebook(name: str) -> None:
    CONTEXT.notebook = name


def set_step(step: str, target: str) -> None:
    CONTEXT.step, CONTEXT.target = step, target


def format_line(elapsed_s: float, message: str, context: Context = CONTEXT) -> str:
    """``06-failover-drill | upgrade lab-cp-1 [lab-cp-1] |   12s | waiting for ...``."""
    where = context.step + (f" [{context.target}]" if context.target and context.target not in context.step else "")
    parts = [p for p in (context.notebook, where) if p]
    return " | ".join([*parts, f"{elapsed_s:5.0f}s", message])


def emit(line: str) -> None:
    """Append one progress line for ``runbook run`` to echo; nothing outside such a run."""
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line.replace("\n", " ") + "\n")
    except OSError:
        pass  # progress is a courtesy; it never fails the run


def in_notebook_frontend() -> bool:
    """A kernel talking to a front end (not ``runbook run``, whose kernel reports to the terminal)."""
    if os.environ.get(PROGRESS_ENV):
        return False
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class Tracker:
    """Follows one wait: ``update(state)`` while it lasts, ``close(outcome)`` at its end.

    ``describe`` turns the state into text only when a line or the bar is due, so a
    fast-polling wait does not pay for formatting it.
    """

    def __init__(self, what: str, timeout: float, *, clock: Callable[[], float] = time.monotonic,
                 sink: Callable[[str], None] = emit, bar: bool | None = None) -> None:
        self.what = what
        self.timeout = timeout
        self.clock = clock
        self.sink = sink
        self.started = clock()
        self.last_line: float | None = None
        self.use_bar = in_notebook_frontend() if bar is None else bar
        self._bar = None

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def update(self, state: object, describe: Callable[[object], str] = str) -> None:
        now = self.clock()
        elapsed = now - self.started
        due = elapsed >= FIRST_LINE_AFTER_S if self.last_line is None else now - self.last_line >= LINE_EVERY_S
        if due:
            self.last_line = now
            self.sink(format_line(elapsed, f"waiting for {self.what} (timeout {self.timeout:.0f}s), "
                                           f"now: {_short(describe(state))}"))
        if self.use_bar and elapsed >= BAR_AFTER_S:
            self._show_bar(elapsed, describe(state))

    def _show_bar(self, elapsed: float, text: str) -> None:
        if self._bar is None:
            from tqdm.auto import tqdm  # imported on first use: most waits never need a bar

            self._bar = tqdm(total=max(1, round(self.timeout)), desc=self.what, unit="s", leave=False,
                             bar_format="{desc}: {n:.0f}/{total:.0f} s before the timeout {postfix}")
        self._bar.n = min(elapsed, self._bar.total)
        self._bar.set_postfix_str(_short(text, 80), refresh=False)
        self._bar.refresh()

    def close(self, outcome: str) -> str:
        """End the wait; return the line the notebook keeps (``lab-cp-1 Ready: reached after 12.3 s``)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        line = f"{self.what}: {outcome} after {self.elapsed:.1f} s"
        if self.last_line is not None or outcome != "reached":
            self.sink(format_line(self.elapsed, line))
        return line


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
