"""Notebook 07's step: the fio matrix run as Kubernetes Jobs on each storage class, in order.

The pure parts live beside it: :mod:`..fio` (the fio parser, re-exported by
:mod:`runbook_lib.bench`, the documented home of ``parse_fio`` in CONTRACTS §4),
:mod:`..bench_matrix` (patterns and manifests) and :mod:`..bench_analysis` (summaries,
comparisons, limits, tables). Notebook 07 calls them through this module.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .. import kube
from ..bench_analysis import (
    HEADLINE,
    IDLE_CPU_MIN,
    LINK_PAYLOAD,
    ceiling_violations,
    ceilings,
    compare,
    cpu_idleness,
    label_run,
    limits_table,
    link_payload_bytes,
    red_flags,
    report_table,
    size_rule,
    summarize,
)
from ..bench_matrix import (
    FIO_FILE,
    MATRIX,
    PATTERNS,
    Pattern,
    bench_claim,
    claim_name,
    expected_seconds,
    fio_command,
    fio_job,
    fio_problems,
)
from ..errors import RunbookError
from ..fio import DIRECTIONS, FIO_COLUMNS, Direction, FioResult, Job, Latency, extract_fio_json, parse_fio
from ..linstor import resources_frame
from ..services.clients import linstor
from ..services.objects import create, delete
from ..services.pods import job_run
from ..services.preconditions import require_classes
from ..waiting import wait_until

__all__ = [
    "DIRECTIONS", "FIO_COLUMNS", "FIO_FILE", "HEADLINE", "IDLE_CPU_MIN", "LINK_PAYLOAD", "MATRIX", "PATTERNS", "Direction",
    "FioResult", "Job", "Latency", "Pattern", "bench_claim", "ceiling_violations", "ceilings", "claim_name", "compare",
    "cpu_idleness", "expected_seconds", "extract_fio_json", "fio_command", "fio_job", "fio_problems", "label_run",
    "limits_table", "link_payload_bytes", "parse_fio", "red_flags", "report_table", "run_class", "run_matrix",
    "size_rule", "summarize",
]


def _job_done(api: Any, job: dict) -> tuple[bool, dict | None]:
    obj = kube.get_object(api, kube.object_path(job))
    for ctype in ("Complete", "Failed"):
        if kube.condition(obj, ctype).get("status") == "True":
            return True, obj
    return False, obj


def _job_state(obj: dict | None) -> str:
    status = (obj or {}).get("status") or {}
    return f"active={status.get('active', 0)} succeeded={status.get('succeeded', 0)} failed={status.get('failed', 0)}"


def run_class(session: Any, cls: str) -> tuple[pd.DataFrame, dict]:
    """Run the matrix ``iterations`` times on a fresh PVC of ``cls``; (labelled rows, topology)."""
    bench = session.params.bench
    api = session.kube()
    pvc = bench_claim(bench, cls)
    frames, topo, node = [], {"peers": 0, "local_replica": True, "node": None, "replicas": 0}, None
    create(session, pvc, f"benchmark PVC for {cls}")
    jobs = []
    try:
        for i in range(1, bench.iterations + 1):
            job = fio_job(bench, cls, i, node, [n.name for n in session.storage_nodes])
            jobs.append(job)
            create(session, job, f"fio Job {cls} #{i}")
            if session.dry_run:
                continue
            timeout = session.params.node_timeout + 2 * expected_seconds(bench) + bench.size_bytes / 50e6
            obj = wait_until(lambda job=job: _job_done(api, job), what=f"fio Job {job['metadata']['name']} finished",
                             timeout=timeout, describe=_job_state)
            run = job_run(session, job)
            pod, log = run.obj, run.log or ("(no log)" if run.obj else "(no pod)")
            if kube.condition(obj, "Failed").get("status") == "True":
                tail = "\n".join(log.strip().splitlines()[-5:])
                raise RunbookError(f"fio Job {job['metadata']['name']} failed: {tail}")
            frame = parse_fio(log)
            failed = [j for j in frame.attrs.get("jobs", []) if j["error"] or not j["has_io"]]
            if failed:
                raise RunbookError(f"fio jobs without I/O or with errors in {job['metadata']['name']}: {failed}")
            frames.append(label_run(frame, cls, i, idle=cpu_idleness(log)))
            if node is None and pod is not None:
                node = pod["spec"].get("nodeName")
                topo = _topology(session, api, pvc, node)
        return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), topo
    finally:
        for obj in [*jobs, pvc]:  # Jobs take their pods with them
            delete(session, obj, f"delete benchmark {obj['kind']} for {cls}", propagation="Background")


def _topology(session: Any, api: Any, pvc: dict, node: str | None) -> dict:
    claim = kube.get_object(api, kube.object_path(pvc)) or {}
    volume = (claim.get("spec") or {}).get("volumeName")
    frame = resources_frame(linstor(session).resources())
    mine = frame[frame["resource"] == volume]
    diskful = mine[~mine["diskless"].astype(bool)]
    local = node in set(diskful["node"])
    replicas = len(diskful)
    drbd = replicas > 1 or bool(mine["diskless"].astype(bool).any())
    peers = (replicas - 1 if local else replicas) if drbd else 0
    return {"node": node, "replicas": replicas, "local_replica": local or not drbd, "peers": peers}


def run_matrix(session: Any) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Run every class of ``params.bench.classes`` in order; (all rows, topology per class)."""
    require_classes(session, list(session.params.bench.classes))  # before the first PVC: say to run 04 first
    for cls in session.params.bench.classes:  # every approval before the first PVC
        session.executor.require_approval("benchmark", cls, f"benchmark {cls}")
    frames, topology = [], {}
    for cls in session.params.bench.classes:
        print(f"{cls}: {session.params.bench.iterations} x {len(MATRIX)} fio jobs, about "
              f"{expected_seconds(session.params.bench):.0f} s each run")
        frame, topology[cls] = run_class(session, cls)
        frames.append(frame)
    frames = [f for f in frames if not f.empty]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), topology
