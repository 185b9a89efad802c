"""The next notebook's kernel, started while the one before runs (runbook_lib.kernels), through real kernels.

A kernel started ahead must run its notebook exactly as one papermill starts: the notebook's environment and
working directory, an empty namespace, execution counts from 1, and the kernel gone when the notebook ends.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from runbook_lib import kernels
from runbook_lib.processes import alive
from runbook_lib.runner import _register_engine
from tests.figure_checks import needs_browser

CELLS = [
    "import os, sys\n"
    "print(os.environ['AHEAD_MARK'], os.getcwd())\n"
    "print('warm' if 'runbook_lib.sizes' in sys.modules else 'cold')\n"
    "print(sorted(k for k in globals() if k.startswith('_runbook') or k == 'sizes'))",
    "from runbook_lib import sizes\nprint(sizes.__name__)",
]


def _notebook(path, cells=CELLS):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def sockets():
    """The kernels' sockets, in a short path as the runner's are (a Unix socket's path has at most 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="kernels-") as d:
        yield d


def _ahead(tmp_path, notebook, sockets, env_later=False, **env):
    manager_class = kernels.ipc_kernel_manager(sockets)
    return kernels.KernelAhead(manager_class, env={**os.environ, **env}, cwd=str(tmp_path),
                               warm_up=kernels.warm_up_code(notebook), env_later=env_later)


def _gone(pid, timeout=30.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


def _text(nb, index):
    return "".join(o.get("text", "") for o in nb.cells[index].outputs)


def test_a_kernel_started_ahead_runs_its_notebook_as_a_kernel_of_its_own(tmp_path, sockets) -> None:
    src = _notebook(tmp_path / "n.ipynb")
    ahead = _ahead(tmp_path, src, sockets, AHEAD_MARK="for-this-notebook")
    manager = ahead.take()
    assert manager is not None, ahead.problem
    pid = manager.provisioner.pid
    _register_engine()
    nb = pm.execute_notebook(str(src), str(tmp_path / "out.ipynb"), engine_name="runbook", kernel_name="python3",
                             progress_bar=False, cwd=str(tmp_path), km=manager)
    assert _text(nb, 0).split("\n")[:3] == [f"for-this-notebook {tmp_path}", "warm", "[]"]
    assert _text(nb, 1).strip() == "runbook_lib.sizes"
    assert [c.execution_count for c in nb.cells] == [1, 2]
    assert _gone(pid), "the notebook owns the kernel started ahead: it ends with the notebook"


def test_a_kernel_not_taken_is_shut_down_once_started_or_while_it_starts(tmp_path, sockets) -> None:
    src = _notebook(tmp_path / "n.ipynb")
    started, starting = _ahead(tmp_path, src, sockets, AHEAD_MARK="x"), _ahead(tmp_path, src, sockets, AHEAD_MARK="y")
    starting.discard()  # at once: its kernel is still starting, and is shut down once it has
    started._thread.join(120)
    started.discard()
    starting._thread.join(120)
    assert started.pid and starting.pid
    assert _gone(started.pid) and _gone(starting.pid)
    assert starting.take() is None  # discarded is discarded


LATE_CELLS = [
    "import os, sys\n"
    "print(os.environ.get('AHEAD_MARK'), os.environ.get('LATE_MARK'))\n"
    "print('warm' if 'runbook_lib.sizes' in sys.modules else 'cold')\n"
    "print(sorted(k for k in globals() if k.startswith('_runbook')))",
    "import subprocess, sys\n"
    "print(subprocess.run([sys.executable, '-c', 'import os; print(os.environ[\"LATE_MARK\"])'],"
    " capture_output=True, text=True).stdout.strip())",
    "from runbook_lib import sizes",
]


def test_a_first_kernel_gets_the_rest_of_its_environment_before_it_is_handed_over(tmp_path, sockets) -> None:
    """The run's first kernel starts before the lab and the figure server are known (runbook_lib.runner): what
    they add to its environment is there for its cells and for the processes they start."""
    src = _notebook(tmp_path / "n.ipynb", LATE_CELLS)
    ahead = _ahead(tmp_path, src, sockets, env_later=True, AHEAD_MARK="early")
    with pytest.raises(RuntimeError, match="complete_env"):
        ahead.take()
    ahead.complete_env({"LATE_MARK": "late 'quoted' \"value\""})
    manager = ahead.take()
    assert manager is not None, ahead.problem
    _register_engine()
    nb = pm.execute_notebook(str(src), str(tmp_path / "out.ipynb"), engine_name="runbook", kernel_name="python3",
                             progress_bar=False, cwd=str(tmp_path), km=manager)
    assert _text(nb, 0).split("\n")[:3] == ["early late 'quoted' \"value\"", "warm", "[]"]
    assert _text(nb, 1).strip() == "late 'quoted' \"value\""
    assert [c.execution_count for c in nb.cells] == [1, 2, 3]


def test_a_first_kernel_discarded_before_its_environment_is_complete_leaves_nothing_behind(tmp_path, sockets) -> None:
    """A run refused at the lock (or interrupted while it connects) never completes its first kernel's environment:
    ``discard(wait=True)`` returns once that kernel is gone, also in the middle of its warm-up."""
    src = _notebook(tmp_path / "n.ipynb")
    ahead = _ahead(tmp_path, src, sockets, env_later=True, AHEAD_MARK="x")
    deadline = time.monotonic() + 60
    while ahead.pid is None and time.monotonic() < deadline:
        time.sleep(0.01)
    ahead.discard(wait=True)
    assert ahead.pid and _gone(ahead.pid, timeout=5.0)
    assert not ahead._thread.is_alive(), "its warm-up noticed the kernel's end"
    assert ahead.take() is None  # discarded is discarded


def test_a_first_kernel_discarded_as_it_launches_is_not_left_behind(tmp_path, sockets) -> None:
    """Discarded before its process even exists: ``discard(wait=True)`` waits for the process, then ends it."""
    src = _notebook(tmp_path / "n.ipynb")
    ahead = _ahead(tmp_path, src, sockets, env_later=True, AHEAD_MARK="x")
    ahead.discard(wait=True)
    assert ahead.pid and _gone(ahead.pid, timeout=5.0)


def test_waiting_for_a_kernel_already_discarded_while_it_launches_still_waits(tmp_path, sockets) -> None:
    """The run's loop discards the kernel it has not taken, and the run then waits for its first kernel: when that
    is the same kernel, still starting, the second call waits for its process and ends it."""
    src = _notebook(tmp_path / "n.ipynb")
    ahead = _ahead(tmp_path, src, sockets, env_later=True, AHEAD_MARK="x")
    ahead.discard()
    ahead.discard(wait=True)
    assert ahead.pid and _gone(ahead.pid, timeout=5.0)
    assert not ahead._thread.is_alive()


def test_a_warm_up_that_fails_costs_only_the_head_start(tmp_path, sockets) -> None:
    src = _notebook(tmp_path / "n.ipynb", ["from runbook_lib import no_such_module"])
    ahead = _ahead(tmp_path, src, sockets, AHEAD_MARK="x")
    assert ahead.take() is None and "ImportError" in ahead.problem
    assert ahead.pid and _gone(ahead.pid)


def test_a_kernel_that_dies_during_its_warm_up_costs_only_the_head_start(tmp_path, sockets) -> None:
    """A kernel killed (out of memory, say) while it imports: the warm-up notices it between short waits for the
    reply, so the notebook starts its own kernel at once instead of after the warm-up's whole timeout."""
    ahead = kernels.KernelAhead(kernels.ipc_kernel_manager(sockets), env={**os.environ}, cwd=str(tmp_path),
                                warm_up="import time\ntime.sleep(600)\n")
    deadline = time.monotonic() + 60
    while ahead.pid is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(2.0)  # ready, and in the middle of its warm-up cell (or still getting ready)
    os.kill(ahead.pid, signal.SIGKILL)
    assert ahead.take() is None
    assert "died" in ahead.problem, ahead.problem


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (by each process's parent in /proc/<pid>/stat)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent and p not in found]
        found.update(kids)
        todo += kids
    return found


@needs_browser
def test_a_kernel_that_started_its_figure_browser_ends_with_it(tmp_path, sockets) -> None:
    """The warm-up of a notebook that draws figures starts the browser; a kernel not taken leaves none behind."""
    src = _notebook(tmp_path / "n.ipynb", ["from runbook_lib import viz"])
    ahead = _ahead(tmp_path, src, sockets, AHEAD_MARK="x")
    ahead._thread.join(120)
    assert ahead.pid and not ahead.problem, ahead.problem
    deadline = time.monotonic() + 60
    while not (below := _descendants(ahead.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert below, "the warm-up starts the figures' browser"
    ahead.discard()
    assert all(_gone(pid) for pid in below | {ahead.pid})


def test_a_kernel_slow_to_answer_at_start_is_waited_for(tmp_path, sockets) -> None:
    """On a busy machine a starting kernel can miss jupyter_client's heartbeat: that is not a dead kernel."""
    src = _notebook(tmp_path / "n.ipynb")
    ahead = _ahead(tmp_path, src, sockets, AHEAD_MARK="x")
    deadline = time.monotonic() + 60
    while ahead.pid is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(ahead.pid, signal.SIGSTOP)  # the kernel answers nothing for a while, as under load
    time.sleep(3)
    os.kill(ahead.pid, signal.SIGCONT)
    manager = ahead.take()
    assert manager is not None, ahead.problem
    kernels._shut_down(manager)
    assert _gone(ahead.pid)


FIRST_CALLS = """
import json, sys
from pathlib import Path
from runbook_lib import kernels
exec(kernels.warm_up_code(Path(sys.argv[1])), {})
before = set(sys.modules)
from runbook_lib import kube
api = kube.connect(sys.argv[2])
assert kube.node_states(api), "the lab lists its nodes"
assert kube.pod_log(api, "default", "no-such-pod") is None
kube.list_objects(api, "/api/v1/pods")
kube.http_client(api).close()
print(json.dumps(sorted(set(sys.modules) - before)))
"""


@pytest.mark.parametrize("name", ["01-partition", "08-storage-health"])
def test_after_the_warm_up_a_notebook_s_first_api_calls_import_no_client_module(name, fresh_lab) -> None:
    """The clients the library imports on first use (runbook_lib.warm_up) are imported ahead, and the calls
    every notebook makes first need nothing more: no typed API module or model of the kubernetes client."""
    import json
    import subprocess
    import sys

    from runbook_lib.runner import notebooks_dir

    out = subprocess.run([sys.executable, "-c", FIRST_CALLS, str(notebooks_dir() / f"{name}.ipynb"),
                          str(fresh_lab.kubeconfig)], capture_output=True, text=True, timeout=120, check=True).stdout
    late = [m for m in json.loads(out) if m.split(".")[0] in ("kubernetes", "httpx", "httpcore", "urllib3")]
    assert late == []
