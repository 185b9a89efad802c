"""Scale: the lab and the library's status and capacity views at 3, 30 and 300 nodes.

For each size the benchmark builds a lab cluster of that many nodes with LINSTOR running on
every node (a storage pool per node and one 3-replica volume per node), saves it as a lab
state, starts the real lab server from it in a private lab directory, and then calls the
library's views over HTTP exactly as a notebook does: Kubernetes node states (one list
call) and the LINSTOR nodes, storage-pool and resource views (through the Kubernetes service
proxy) with their DataFrames. The lab counts every API call it serves per endpoint, so
"calls per view" is what the server saw, not what the client meant to do.

Building the state skips the runbooks that would get there (01-03 on 300 nodes would take
an hour of talosctl calls): it drives the lab's own models directly. Everything measured
afterwards is the real server and the real library.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIZES = (3, 30, 300)
NAMESPACE = "piraeus-datastore"
POOL = "linstor-pool"
REPEAT = 5


@dataclass
class ViewFigure:
    view: str
    calls: int
    rows: int
    median_s: float


@dataclass
class SizeResult:
    nodes: int
    build_s: float  # building the state in-process (models, not the server)
    start_s: float  # lab server start from the saved state until it answers
    state_mib: float
    rss_mib: float | None
    tick_ms: float  # mean cost of one lab tick at this size
    idle_cpu_pct: float  # share of an idle lab's wall time spent in ticks (one every 25 ms)
    views: list[ViewFigure]


def node_list(n: int) -> list[dict]:
    """3 control planes, the rest workers, addresses like a `talosctl cluster create` lab."""
    out = []
    for i in range(n):
        role = "controlplane" if i < 3 else "worker"
        name = f"lab-cp-{i + 1}" if i < 3 else f"lab-w-{i - 2}"
        out.append({"name": name, "address": f"10.5.{(i + 2) // 250}.{(i + 2) % 250 + 2}", "role": role})
    return out


def _objects(n: int) -> list[tuple[str, str, str | None, dict]]:
    """The Kubernetes objects of a running LINSTOR: namespace, controller Service and pod, one satellite per node."""
    labels = {"app.kubernetes.io/component": "linstor-controller"}
    running = {"phase": "Running", "podIP": "10.244.0.10",
               "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}]}
    objs: list[tuple[str, str, str | None, dict]] = [
        ("", "namespaces", None, {"metadata": {"name": NAMESPACE, "labels": {
            "pod-security.kubernetes.io/enforce": "privileged"}}}),
        ("", "services", NAMESPACE, {"metadata": {"name": "linstor-controller", "labels": labels},
                                     "spec": {"selector": labels, "clusterIP": "10.96.0.10",
                                              "ports": [{"name": "api", "port": 3370, "targetPort": 3370}]}}),
        ("", "pods", NAMESPACE, {"metadata": {"name": "linstor-controller-0", "labels": labels},
                                 "spec": {"nodeName": "lab-cp-1", "containers": [{"name": "linstor-controller",
                                                                                   "image": "linstor-controller"}]},
                                 "status": running}),
    ]
    for node in node_list(n):
        objs.append(("", "pods", NAMESPACE, {
            "metadata": {"name": f"linstor-satellite-{node['name']}",
                         "labels": {"app.kubernetes.io/component": "linstor-satellite"}},
            "spec": {"nodeName": node["name"], "containers": [{"name": "linstor-satellite", "image": "linstor-satellite"}]},
            "status": running}))
    return objs


def build_state(n: int, lab_dir: Path) -> dict:
    """A lab of ``n`` Ready nodes with LINSTOR online on each; written to ``lab_dir`` like a stopped lab."""
    from runbook_lib.lab import control
    from runbook_lib.lab.assembly import STATE_FILE, create_lab
    from runbook_lib.lab.linstor.providers import SatelliteFacts

    options = {**control.default_options(), "nodes": node_list(n)}
    lab = create_lab(options)
    with lab.lock:
        lab.clock.origin += 3600.0  # an hour later: every node booted and Ready
        lab.tick()
        for group, plural, ns, body in _objects(n):
            lab.kube.create(lab.kube.resolve(group, "v1", plural), ns, body)
        ctl = lab.linstor
        ctl.ensure_defaults()
        ctl.create_resource_group("bench", {"place_count": 3, "storage_pool": POOL}, {})
        for node in options["nodes"]:
            ctl.create_or_update_node(node["name"], node["address"], {})
            ctl.set_online(node["name"], True, SatelliteFacts(drbd_version="9.2.14", zfs=True))
            ctl.create_storage_pool(node["name"], POOL, "ZFS_THIN", {"StorDriver/StorPoolName": POOL},
                                    backing_kib=400 * 1024 * 1024)
        for i in range(n):
            name = f"pvc-bench-{i:04d}"
            ctl.create_resource_definition(name, "bench", 1024 * 1024, ["DRBD", "STORAGE"])
            ctl.autoplace(name, 3, storage_pools=[POOL])
        lab_dir.mkdir(parents=True, exist_ok=True)
        (lab_dir / "options.json").write_text(json.dumps(options))
        (lab_dir / STATE_FILE).write_text(json.dumps(lab.to_dict()))
    return options


def _stats(url: str) -> dict:
    import httpx

    return httpx.get(f"{url}/lab/v1/stats", timeout=30).json()


def _calls(before: dict, after: dict) -> int:
    return sum(after["calls"].values()) - sum(before["calls"].values())


def measure_view(url: str, name: str, fn: Callable[[], Any]) -> ViewFigure:
    """Calls the lab served for one view (first run) and the median time of REPEAT runs."""
    before = _stats(url)
    result = fn()
    calls = _calls(before, _stats(url))
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return ViewFigure(name, calls, len(result), statistics.median(times))


def views(connection: dict) -> dict[str, Callable[[], Any]]:
    """The library's status and capacity views, called the way the notebooks call them."""
    from runbook_lib import kube
    from runbook_lib.linstor import LinstorClient, resources_frame, storage_pools_frame

    api = kube.connect(connection["kubeconfig"])
    http = kube.http_client(api)
    client = LinstorClient.via_service_proxy(http, NAMESPACE)
    return {
        "node states (kube.node_states)": lambda: kube.node_states(api),
        "satellite pods (list, label selector)": lambda: kube.list_objects(
            api, f"/api/v1/namespaces/{NAMESPACE}/pods", label_selector="app.kubernetes.io/component=linstor-satellite"),
        "LINSTOR nodes (/v1/nodes)": lambda: client.nodes(),
        "storage pools (/v1/view/storage-pools + frame)": lambda: storage_pools_frame(client.storage_pools()),
        "resources (/v1/view/resources + frame)": lambda: resources_frame(client.resources()),
    }


def measure_size(n: int, echo=print) -> SizeResult:
    from runbook_lib.lab import control

    with tempfile.TemporaryDirectory(prefix=f"runbook-bench-scale-{n}-") as tmp:
        d = Path(tmp) / "lab"
        t0 = time.monotonic()
        options = build_state(n, d)
        build_s = time.monotonic() - t0
        state_mib = (d / "state.json").stat().st_size / 2**20
        t0 = time.monotonic()
        try:
            connection = control.start(options, d, timeout=300)
            start_s = time.monotonic() - t0
            url = connection["url"]
            before = _stats(url)
            time.sleep(2.0)  # idle: only the ticker runs
            after = _stats(url)
            ticks = after["ticks"] - before["ticks"]
            busy = after["tick_seconds"] - before["tick_seconds"]
            tick_ms = 1000 * busy / ticks if ticks else float("nan")
            figures = [measure_view(url, name, fn) for name, fn in views(connection).items()]
            rss = _stats(url).get("rss_bytes")
        finally:
            control.stop(d)
    res = SizeResult(n, build_s, start_s, state_mib, rss / 2**20 if rss else None, tick_ms, 100 * busy / 2.0, figures)
    echo(f"scale: {n} nodes measured")
    return res


def report(results: list[SizeResult]) -> list[str]:
    out = ["Scale: calls and median time per view (calls counted by the lab server)"]
    names = [v.view for v in results[0].views]
    out.append("  " + f"{'view':<48}" + "".join(f"{f'{r.nodes} nodes':>22}" for r in results))
    for i, name in enumerate(names):
        cells = "".join(f"{f'{r.views[i].calls} calls {1000 * r.views[i].median_s:7.1f} ms':>22}" for r in results)
        out.append(f"  {name:<48}{cells}")
    out.append("  " + f"{'rows (nodes / pools / resources)':<48}"
               + "".join(f"{'/'.join(str(v.rows) for v in r.views):>22}" for r in results))
    out.append("  lab: " + "; ".join(
        f"{r.nodes} nodes: start {r.start_s:.1f}s, tick {r.tick_ms:.2f} ms (ticking {min(100.0, r.idle_cpu_pct):.0f}% of idle time), "
        f"state {r.state_mib:.1f} MiB, RSS {r.rss_mib:.0f} MiB" for r in results))
    constant = all(len({r.views[i].calls for r in results}) == 1 for i in range(len(names)))
    out.append(f"  calls per view constant across sizes: {'yes' if constant else 'NO'}")
    return out


def measure(echo=print, sizes: tuple[int, ...] = SIZES) -> list[SizeResult]:
    return [measure_size(n, echo) for n in sizes]
