"""The benchmark matrix and its manifests, pure: fio's patterns, its argv, the PVC and Job per class.

The matrix (kbench's iops/bandwidth/latency jobs plus Vitastor's T1Q1 fsync write) runs as
one fio process per Job: global options first, then one stonewalled ``--name=`` section per
pattern, so the jobs run one after the other on the same file. Always ``--direct=1`` (no page
cache) and never ``gtod_reduce`` (it switches off the latency figures).
"""

from __future__ import annotations

import math
from typing import Any

from . import manifests


class Pattern:
    """One fio job of the matrix. ``metric`` is the figure it is judged by: iops, bw or lat."""

    __slots__ = ("name", "rw", "bs", "iodepth", "fsync", "metric")

    def __init__(self, name: str, rw: str, bs: str, iodepth: int, fsync: bool, metric: str) -> None:
        self.name, self.rw, self.bs, self.iodepth, self.fsync, self.metric = name, rw, bs, iodepth, fsync, metric

    @property
    def direction(self) -> str:
        return "read" if "read" in self.rw else "write"

    def options(self) -> list[str]:
        opts = [f"--name={self.name}", "--stonewall", f"--rw={self.rw}", f"--bs={self.bs}", f"--iodepth={self.iodepth}"]
        return opts + (["--fsync=1"] if self.fsync else [])


MATRIX: tuple[Pattern, ...] = (
    Pattern("randread-iops", "randread", "4k", 64, False, "iops"),
    Pattern("randwrite-iops", "randwrite", "4k", 64, False, "iops"),
    Pattern("seqread-bw", "read", "128k", 64, False, "bw"),
    Pattern("seqwrite-bw", "write", "128k", 64, False, "bw"),
    Pattern("randread-lat", "randread", "4k", 1, False, "lat"),
    Pattern("randwrite-lat", "randwrite", "4k", 1, False, "lat"),
    Pattern("randwrite-fsync-lat", "randwrite", "4k", 1, True, "lat"),
)
PATTERNS = {p.name: p for p in MATRIX}
FIO_FILE = "/data/fio-bench.bin"


def fio_command(bench: Any, filename: str = FIO_FILE) -> list[str]:
    """The fio argv for the whole matrix (``bench`` is :class:`runbook_lib.params.Bench`)."""
    glob = ["fio", "--output-format=json", "--direct=1", "--ioengine=libaio", f"--filename={filename}",
            f"--size={bench.size_bytes}", "--time_based", f"--ramp_time={bench.ramp_time:g}s",
            f"--runtime={bench.runtime:g}s", "--randrepeat=0", "--verify=0", "--invalidate=1"]
    return glob + [opt for p in MATRIX for opt in p.options()]


def fio_problems(argv: list[str]) -> list[str]:
    """What is wrong with a fio command line for benchmarking (empty when fine)."""
    problems = []
    if "--direct=1" not in argv:
        problems.append("--direct=1 missing: the page cache would be measured")
    if "--output-format=json" not in argv:
        problems.append("--output-format=json missing: results cannot be parsed")
    if any(a.startswith("--gtod_reduce") and not a.endswith("=0") for a in argv):
        problems.append("gtod_reduce switches off latency measurement")
    return problems


def expected_seconds(bench: Any) -> float:
    """How long one matrix runs (ramp + runtime per job), without laying out the file."""
    return len(MATRIX) * (bench.ramp_time + bench.runtime)


def claim_name(cls: str) -> str:
    return f"runbook-bench-{cls}"


def bench_claim(bench: Any, cls: str) -> dict:
    """A PVC of class ``cls`` big enough for the fio file (plus filesystem overhead)."""
    gib = math.ceil(bench.size_bytes * 1.1 / 2**30) + 1
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim_name(cls), "namespace": bench.namespace, "labels": {"app.kubernetes.io/name": "runbook-bench"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                     "resources": {"requests": {"storage": f"{gib}Gi"}}}}


def fio_job(bench: Any, cls: str, iteration: int, node: str | None = None, nodes: list[str] | None = None) -> dict:
    """A batch/v1 Job that runs the matrix once on the class's PVC (pinned to ``node`` when given, else on one
    of ``nodes``, the storage nodes)."""
    fio = " ".join(fio_command(bench))
    script = f"{bench.install} >/dev/null 2>&1 && exec {fio}" if bench.install.strip() else f"exec {fio}"
    spec: dict[str, Any] = {
        "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "fio", "image": bench.image, "command": ["sh", "-c", script],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name(cls)}}],
    }
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    elif nodes:
        spec["affinity"] = manifests.on_nodes(nodes)
    name = f"runbook-fio-{cls}-{iteration}"
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": bench.namespace, "labels": {"app.kubernetes.io/name": "runbook-bench"}},
            "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 3600,
                     "template": {"metadata": {"labels": {"app.kubernetes.io/name": "runbook-bench"}}, "spec": spec}}}
