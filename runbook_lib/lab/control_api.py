"""The lab's own control endpoints (``/lab/v1/...``) as a route table: status, live options, faults, power, perf, stats.

``runbook lab`` and the lab's tool shims call them (see :mod:`.control`). Every route runs with the lab's
lock held, after a tick, and returns (HTTP status, JSON-able answer).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..lab_options import LIVE_OPTIONS
from .cluster import Lab
from .workloads.fio import model as perf_model

Route = Callable[[Lab, "re.Match[str]", bytes], tuple[int, Any]]


def _status(lab: Lab, m: re.Match[str], body: bytes) -> tuple[int, Any]:
    now = lab.clock.now()
    nodes = [{"name": n.name, "address": n.address, "role": n.role, "up": n.is_up(now),
              "ready": n.kubelet_ready(now), "stage": n.stage, "talos_version": n.talos_version}
             for n in lab.talos.nodes.values()]
    return 200, {"pid": os.getpid(), "lab_time": now, "time_scale": lab.clock.scale, "nodes": nodes,
                 "faults": lab.faults.to_list(), "stats": lab.stats, "etcd_quorum": lab.api_available(),
                 "options": {k: lab.options.get(k) for k in LIVE_OPTIONS}}


def _set_options(lab: Lab, m: re.Match[str], body: bytes) -> tuple[int, Any]:
    req = json.loads(body or b"{}")
    unknown = sorted(set(req) - set(LIVE_OPTIONS))
    if unknown:
        return 400, {"error": f"lab options {', '.join(unknown)} are fixed when the lab is created: "
                              "run `runbook lab reset -f <params>` to change them"}
    lab.options.update(req)
    lab.mark_dirty()
    return 200, {k: lab.options.get(k) for k in LIVE_OPTIONS}


def _list_faults(lab: Lab, m: re.Match[str], body: bytes) -> tuple[int, Any]:
    return 200, lab.faults.to_list()


def _add_fault(lab: Lab, m: re.Match[str], body: bytes) -> tuple[int, Any]:
    req = json.loads(body or b"{}")
    try:
        for key in ("node", "peer"):
            if req.get(key) and req[key] not in lab.talos.nodes:
                raise ValueError(f"unknown {key} {req[key]!r}; lab nodes: {', '.join(lab.talos.nodes)}")
        fault = lab.faults.add(req["kind"], req.get("node"), req.get("peer"), req.get("count"))
    except ValueError as exc:
        return 400, {"error": str(exc)}
    lab.mark_dirty()
    lab.tick()
    return 201, fault.__dict__


def _clear_faults(lab: Lab, m: re.Match[str], body: bytes) -> tuple[int, Any]:
    cleared = lab.faults.clear()
    lab.mark_dirty()
    lab.tick()
    return 200, [f.__dict__ for f in cleared]


def _remove_fault(lab: Lab, m: re.Match[str], body: bytes) -> tuple[int, Any]:
    ref = m.group(1)
    fault = lab.faults.remove(int(ref) if ref.isdigit() else -1)
    if fault is None:
        return 404, {"error": f"no fault #{ref}; see `runbook lab fault list`"}
    lab.mark_dirty()
    lab.tick()
    return 200, fault.__dict__


def _power_on(lab: Lab, m: re.Match[str], body: bytes) -> tuple[int, Any]:
    node = lab.talos.nodes.get(m.group(1))
    if node is None:
        return 404, {"error": f"unknown node; lab nodes: {', '.join(lab.talos.nodes)}"}
    lab.talos.power_on(node, lab.clock.now())
    lab.mark_dirty()
    return 200, {"node": node.name, "power": node.power}


def _helm_fault(lab: Lab, m: re.Match[str], body: bytes) -> tuple[int, Any]:
    """The helm shim consumes one use of a helm-fail fault per call."""
    failed = lab.faults.take("helm-fail")
    if failed:
        lab.mark_dirty()
    return 200, {"fail": failed}


def _perf(lab: Lab, m: re.Match[str], body: bytes) -> tuple[int, Any]:
    """The performance model's ground truth (07-benchmarks' tests compare against it)."""
    return 200, perf_model(lab).truth()


def _stats(lab: Lab, m: re.Match[str], body: bytes) -> tuple[int, Any]:
    """For the benchmarks: API calls, the ticker's cost, milestones, memory."""
    return 200, {**lab.perf_stats(), "rss_bytes": rss_bytes()}


#: (method or None for any, path pattern, route); the first match answers. Shutdown is the server's own.
ROUTES: tuple[tuple[str | None, re.Pattern[str], Route], ...] = (
    (None, re.compile(r"/lab/v1/status"), _status),
    ("PATCH", re.compile(r"/lab/v1/options"), _set_options),
    ("GET", re.compile(r"/lab/v1/faults"), _list_faults),
    ("POST", re.compile(r"/lab/v1/faults"), _add_fault),
    ("DELETE", re.compile(r"/lab/v1/faults"), _clear_faults),
    ("DELETE", re.compile(r"/lab/v1/faults/(.*)"), _remove_fault),
    ("POST", re.compile(r"/lab/v1/nodes/([^/]*)/power-on"), _power_on),
    ("POST", re.compile(r"/lab/v1/helm/fault"), _helm_fault),
    ("GET", re.compile(r"/lab/v1/perf"), _perf),
    ("GET", re.compile(r"/lab/v1/stats"), _stats),
)


def handle(lab: Lab, method: str, path: str, body: bytes) -> tuple[int, Any]:
    for verb, pattern, route in ROUTES:
        m = pattern.fullmatch(path)
        if m is not None and verb in (None, method):
            return route(lab, m, body)
    return 404, {"error": f"no such lab endpoint {method} {path}"}


def rss_bytes() -> int | None:
    """Resident memory of the lab process (Linux), for the scale benchmark."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
