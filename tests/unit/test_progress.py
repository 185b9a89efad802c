"""Progress of long waits: rate-limited terminal lines with notebook, step, node, elapsed and what is awaited."""

from __future__ import annotations

import pytest

from runbook_lib import progress
from runbook_lib.errors import WaitTimeout
from runbook_lib.waiting import wait_until


class FakeClock:
    """Time advanced by the test, so nothing depends on how busy the machine is."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_quick_waits_stay_silent_long_ones_report_at_a_bounded_rate() -> None:
    lines: list[str] = []
    clock = FakeClock()
    progress.set_notebook("02-extensions-and-upgrade")
    progress.set_step("upgrade lab-cp-1", "lab-cp-1")
    tracker = progress.Tracker("lab-cp-1 Ready", 900, clock=clock, sink=lines.append, bar=False)
    for _ in range(10):  # 1 s of polling at 10 reads a second: nothing yet
        clock.t += 0.1
        tracker.update("NotReady")
    assert lines == []
    for _ in range(300):  # 30 s more: a first line after 3 s, then one per 10 s
        clock.t += 0.1
        tracker.update("NotReady (rebooting)")
    assert 3 <= len(lines) <= 4
    first = lines[0]
    assert first.startswith("02-extensions-and-upgrade | upgrade lab-cp-1 |")
    assert "waiting for lab-cp-1 Ready (timeout 900s), now: NotReady (rebooting)" in first
    assert tracker.close("reached").startswith("lab-cp-1 Ready: reached after 31.")
    assert "reached after" in lines[-1]


def test_progress_lines_go_to_the_file_runbook_run_echoes(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "progress.log"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(path))
    progress.emit("one\nline")
    assert path.read_text() == "one line\n"
    assert not progress.in_notebook_frontend()  # runbook run's kernel reports to the terminal, not to a bar


def test_a_timed_out_wait_reports_its_end(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "progress.log"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(path))
    with pytest.raises(WaitTimeout):
        wait_until(lambda: (False, "still down"), what="node back", timeout=0.05)
    assert "node back: timed out after" in path.read_text()


def test_the_runner_echoes_kernel_lines_and_says_when_a_notebook_is_quiet(tmp_path) -> None:
    import time

    from runbook_lib.runner import ProgressTail

    path = tmp_path / "p.log"
    path.write_text("")
    lines: list[str] = []
    tail = ProgressTail(path, lines.append, every_s=0.01, label="06-failover-drill", quiet_s=0.05)
    with path.open("a") as fh:
        fh.write("06-failover-drill | applied in 0.1 s: fault node-down [lab-w-1]\nhalf a li")
    deadline = time.monotonic() + 60  # a generous bound for a busy machine; nothing is timed
    while not any("still running" in line for line in lines) and time.monotonic() < deadline:
        time.sleep(0.01)
    tail.stop()
    assert lines[0] == "06-failover-drill | applied in 0.1 s: fault node-down [lab-w-1]"
    assert any(line.startswith("06-failover-drill | still running, ") for line in lines)
    assert not any("half a li" in line for line in lines)  # only complete lines


def test_cell_lines_name_the_section() -> None:
    import nbformat

    from runbook_lib.runner import cell_line

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"),
                                         nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_markdown_cell("## Rolling upgrade\nwhy"),
                                         nbformat.v4.new_code_cell("go()")])
    progress.set_notebook("02-extensions-and-upgrade")
    assert cell_line(nb, 3) == "02-extensions-and-upgrade | cell 2/2: Rolling upgrade"
