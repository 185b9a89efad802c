"""fio results as a pandas DataFrame.

The benchmark notebook runs fio with ``--output-format=json`` (or ``json+``) and needs the
same few numbers from every run: IOPS, bandwidth and latency percentiles per job and
direction. fio's JSON is stable across 3.x but its surroundings are not: warnings such as
``note: both iodepth >= 1 and synchronous I/O engine are selected...`` or ``fio: ...`` land
before the JSON when stderr is merged, so the parser looks for the JSON document itself.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any

import pandas as pd
from pydantic import Field, PlainValidator

from . import kube, manifests, wire
from .errors import ParseError, RunbookError
from .linstor import resources_frame
from .services.clients import linstor
from .services.objects import create, delete
from .services.pods import job_run
from .services.preconditions import require_classes
from .waiting import wait_until

_TOOL = "fio"
DIRECTIONS: tuple[str, ...] = ("read", "write", "trim")

FIO_COLUMNS: tuple[str, ...] = (
    "job",
    "job_index",
    "groupid",
    "direction",
    "iops",
    "bw_bytes",
    "lat_mean_us",
    "lat_stddev_us",
    "lat_max_us",
    "clat_mean_us",
    "clat_p50_us",
    "clat_p99_us",
    "clat_p999_us",
    "runtime_ms",
    "io_bytes",
    "total_ios",
    "error",
)
_INT_COLUMNS = ("job_index", "groupid", "runtime_ms", "io_bytes", "total_ios", "error")

# (column, percentile) pairs read from clat percentiles.
_PERCENTILES: tuple[tuple[str, float], ...] = (
    ("clat_p50_us", 50.0),
    ("clat_p99_us", 99.0),
    ("clat_p999_us", 99.9),
)
_JSON_START = re.compile(r"^[ \t]*\{", re.MULTILINE)


# --------------------------------------------------------------------------- locating the JSON


def _line_col(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    return f"line {line}"


def extract_fio_json(output: str) -> dict[str, Any]:
    """The fio result object in ``output``, skipping any text fio printed around it.

    Every line that starts with ``{`` is a candidate; the last one that decodes to an
    object with ``jobs`` wins (``--status-interval`` prints interim results first, the
    final one last). Raises :class:`ParseError` naming the problem otherwise.
    """
    if not isinstance(output, str):
        raise ParseError(_TOOL, f"expected text, got {type(output).__name__}")
    if not output.strip():
        raise ParseError(_TOOL, "output is empty (did fio run? check its stderr)")
    decoder = json.JSONDecoder()
    found: dict[str, Any] | None = None
    first_error: str | None = None
    pos = 0
    while match := _JSON_START.search(output, pos):
        start = match.end() - 1
        try:
            value, end = decoder.raw_decode(output, start)
        except json.JSONDecodeError as exc:
            if first_error is None:
                first_error = (
                    f"malformed JSON starting at {_line_col(output, start)}: "
                    f"{exc.msg} at {_line_col(output, exc.pos)} column {exc.colno}"
                )
            pos = match.end()
            continue
        if isinstance(value, dict) and "jobs" in value:
            found = value
        pos = end
    if found is not None:
        return found
    if first_error:
        raise ParseError(_TOOL, first_error)
    first = output.strip().splitlines()[0][:120]
    raise ParseError(
        _TOOL,
        f"no JSON result object with 'jobs' found (first line: {first!r}); run fio with --output-format=json",
    )


# --------------------------------------------------------------------------- the wire model


def _percentile_table(value: Any) -> dict[float, float]:
    """``{"50.000000": 123, ...}`` -> ``{50.0: 123.0}``; every key a percentile, every value a number."""
    if not isinstance(value, Mapping):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    table = {}
    for key, number in value.items():
        try:
            pct = round(float(key), 6)
        except ValueError:
            raise ValueError(f"key {key!r} is not a number") from None
        try:
            table[pct] = wire.number(number)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return table


Percentiles = Annotated[dict[float, float], PlainValidator(_percentile_table)]


class Latency(wire.WireModel):
    """``lat_ns``/``clat_ns`` (fio 3, nanoseconds) or ``lat``/``clat`` (fio 2, microseconds)."""

    mean: wire.Number | None = None
    stddev: wire.Number | None = None
    max: wire.Number | None = None
    percentile: Percentiles | None = None


class Direction(wire.WireModel):
    """One direction (read, write, trim) of a job."""

    iops: wire.Number | None = None
    bw_bytes: wire.Number | None = None
    bw: wire.Number | None = None  # fio < 3: KiB/s
    io_bytes: wire.Int64 | None = None
    io_kbytes: wire.Int64 | None = None
    total_ios: wire.Int64 | None = None
    runtime: wire.Int64 | None = None
    lat_ns: Latency | None = None
    lat: Latency | None = None
    clat_ns: Latency | None = None
    clat: Latency | None = None

    def latency(self, name: str) -> tuple[Latency | None, float]:
        """Stats for ``name`` (``lat``/``clat``) and the divisor that gives microseconds."""
        for stats, per_us in ((getattr(self, f"{name}_ns"), 1000.0), (getattr(self, name), 1.0)):
            if stats is not None:
                return stats, per_us
        return None, math.nan


class Job(wire.WireModel):
    jobname: wire.Text
    error: wire.Int64 | None = None
    groupid: wire.Int64 | None = None
    read: Direction | None = None
    write: Direction | None = None
    trim: Direction | None = None


class FioResult(wire.WireModel):
    """What we read of fio's JSON result: the jobs and the version."""

    jobs: list[Job]
    fio_version: str | None = Field(default=None, alias="fio version")


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _direction_row(section: Direction, path: str) -> dict[str, Any] | None:
    io_bytes = section.io_bytes
    if io_bytes is None and section.io_kbytes is not None:
        io_bytes = section.io_kbytes * 1024
        if io_bytes > wire.INT64_MAX:
            raise ParseError(_TOOL, f"{path}.io_kbytes: {io_bytes} does not fit a 64-bit integer",
                             field=f"{path}.io_kbytes")
    if io_bytes is None and section.total_ios is None:
        raise ParseError(_TOOL, f"{path}: neither io_bytes nor total_ios present", field=f"{path}.io_bytes")
    if not ((section.total_ios or 0) > 0 or (io_bytes or 0) > 0):
        return None
    if section.iops is None:
        raise ParseError(_TOOL, f"{path}.iops missing", field=f"{path}.iops")
    bw = section.bw_bytes
    if bw is None:
        if section.bw is None:
            raise ParseError(_TOOL, f"{path}.bw missing", field=f"{path}.bw")
        bw = section.bw * 1024
    lat, lat_div = section.latency("lat")
    clat, clat_div = section.latency("clat")
    row = {
        "iops": section.iops,
        "bw_bytes": bw,
        "lat_mean_us": _nan(lat.mean) / lat_div if lat is not None else math.nan,
        "lat_stddev_us": _nan(lat.stddev) / lat_div if lat is not None else math.nan,
        "lat_max_us": _nan(lat.max) / lat_div if lat is not None else math.nan,
        "clat_mean_us": _nan(clat.mean) / clat_div if clat is not None else math.nan,
        "runtime_ms": section.runtime,
        "io_bytes": io_bytes,
        "total_ios": section.total_ios,
    }
    table = (clat.percentile if clat is not None else None) or {}
    row.update({column: table[round(pct, 6)] / clat_div if round(pct, 6) in table else math.nan
                for column, pct in _PERCENTILES})
    return row


def _job_rows(job: Job, index: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows = []
    for direction in DIRECTIONS:
        section = getattr(job, direction)
        if section is None:
            continue
        row = _direction_row(section, f"jobs[{index}].{direction}")
        if row is not None:
            rows.append({"job": job.jobname, "job_index": index, "groupid": job.groupid, "direction": direction,
                         "error": job.error, **row})
    summary = {"job": job.jobname, "job_index": index, "error": job.error, "has_io": bool(rows)}
    return rows, summary


def parse_fio(output: str) -> pd.DataFrame:
    """One row per (job, direction with I/O) from fio ``--output-format=json`` or ``json+`` text.

    Columns, in this order: ``job`` (jobname), ``job_index`` (position in ``jobs``, which
    tells apart the clones ``numjobs`` creates under one name), ``groupid``, ``direction``
    (read/write/trim), ``iops``, ``bw_bytes`` (bytes/s), ``lat_mean_us``,
    ``lat_stddev_us``, ``lat_max_us`` (total latency, from ``lat_ns``), ``clat_mean_us``,
    ``clat_p50_us``, ``clat_p99_us``, ``clat_p999_us`` (from ``clat_ns.percentile``),
    ``runtime_ms``, ``io_bytes``, ``total_ios``, ``error`` (the job's error code).

    A direction has I/O when ``total_ios`` or ``io_bytes`` is positive. Percentiles fio
    did not compute are NaN. A job with no I/O at all has no row, so it is listed in
    ``frame.attrs["jobs"]`` (``job``, ``job_index``, ``error``, ``has_io``) together with
    ``frame.attrs["fio_version"]``: check it to catch a job that failed before any I/O.
    """
    result = wire.parse(_TOOL, FioResult, extract_fio_json(output))
    rows: list[dict[str, Any]] = []
    summaries = []
    for index, job in enumerate(result.jobs):
        job_rows, summary = _job_rows(job, index)
        rows.extend(job_rows)
        summaries.append(summary)
    frame = pd.DataFrame(rows, columns=list(FIO_COLUMNS))
    for column in FIO_COLUMNS:
        if column in _INT_COLUMNS:
            frame[column] = frame[column].astype("Int64")
        elif column not in ("job", "direction"):
            frame[column] = frame[column].astype("float64")
    frame.attrs["jobs"] = summaries
    frame.attrs["fio_version"] = result.fio_version
    return frame


# =========================================================================== 07-benchmarks
#
# The matrix (kbench's iops/bandwidth/latency jobs plus Vitastor's T1Q1 fsync write) runs as
# one fio process per Job: global options first, then one stonewalled ``--name=`` section per
# pattern, so the jobs run one after the other on the same file. Always ``--direct=1`` (no page
# cache) and never ``gtod_reduce`` (it switches off the latency figures).

LINK_PAYLOAD = 0.9415  # TCP payload share of Ethernet line rate at MTU 1500 (IPv4, timestamps)
IDLE_CPU_MIN = 40.0  # kbench: CPU idleness below this in the latency test means CPU starvation


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


def cpu_idleness(output: str) -> float:
    """System CPU idleness (%) fio reports with ``--idle-prof``; NaN when it was not asked for."""
    try:
        doc = extract_fio_json(output)
    except ParseError:
        return math.nan
    value = (doc.get("cpu_idleness") or {}).get("system")
    return float(value) if isinstance(value, int | float) else math.nan


def label_run(frame: pd.DataFrame, cls: str, iteration: int, *, idle: float = math.nan) -> pd.DataFrame:
    """``parse_fio`` rows of one matrix run, tagged with class, iteration and pattern details."""
    out = frame[frame["job"].isin(list(PATTERNS))].copy()
    out.insert(0, "storage_class", cls)
    out.insert(1, "iteration", iteration)
    out["metric"] = out["job"].map(lambda j: PATTERNS[j].metric)
    out["iodepth"] = out["job"].map(lambda j: PATTERNS[j].iodepth)
    out["bs_bytes"] = out["job"].map(lambda j: _block(PATTERNS[j].bs))
    # time per I/O as the application sees it (includes the fsync for the fsync job)
    out["op_lat_us"] = out["iodepth"] * 1e6 / out["iops"]
    out["cpu_idle_pct"] = idle
    return out.rename(columns={"job": "pattern"})


def _block(bs: str) -> int:
    return int(bs[:-1]) * 1024 if bs.endswith("k") else int(bs)


HEADLINE = {"iops": "iops", "bw": "bw_bytes", "lat": "op_lat_us"}


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (class, pattern): medians over iterations, plus the spread of the headline figure.

    ``value`` is the headline (IOPS, bytes/s or µs per I/O); ``spread_pct`` is (max - min) / median.
    """
    rows = []
    for (cls, pattern), part in results.groupby(["storage_class", "pattern"], sort=False):
        p = PATTERNS[pattern]
        values = part[HEADLINE[p.metric]].astype(float)
        median = float(values.median())
        rows.append({
            "storage_class": cls, "pattern": pattern, "metric": p.metric, "direction": p.direction,
            "iterations": len(part), "value": median, "value_min": float(values.min()), "value_max": float(values.max()),
            "spread_pct": float((values.max() - values.min()) / median * 100) if median else math.nan,
            "iops": float(part["iops"].median()), "bw_mb_s": float(part["bw_bytes"].median() / 1e6),
            "lat_mean_us": float(part["lat_mean_us"].median()), "op_lat_us": float(part["op_lat_us"].median()),
            "clat_p50_us": float(part["clat_p50_us"].median()), "clat_p99_us": float(part["clat_p99_us"].median()),
            "clat_p999_us": float(part["clat_p999_us"].median()), "cpu_idle_pct": float(part["cpu_idle_pct"].median()),
        })
    return pd.DataFrame(rows)


def _better(metric: str, value: float, base: float, tolerance: float) -> bool:
    """True when ``value`` beats ``base`` by more than ``tolerance`` (higher IOPS/bw, lower latency)."""
    if metric == "lat":
        return value < base * (1 - tolerance)
    return value > base * (1 + tolerance)


def compare(summary: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """kbench's comparison: each class's headline vs the baseline class, ``change_pct`` = (x - base) / base."""
    base = summary[summary["storage_class"] == baseline].set_index("pattern")["value"]
    out = summary[["storage_class", "pattern", "metric", "value"]].copy()
    out["baseline"] = out["pattern"].map(base)
    out["change_pct"] = (out["value"] - out["baseline"]) / out["baseline"] * 100
    return out[out["storage_class"] != baseline].reset_index(drop=True)


def red_flags(summary: pd.DataFrame, baseline: str, *, tolerance: float = 0.05) -> pd.DataFrame:
    """kbench's three signs of a bad measurement, one row per finding.

    - reads faster than the local baseline: a cache answers, not the disks;
    - writes faster than the local baseline: writes are acknowledged before they are safe (not crash-consistent);
    - CPU idleness under 40 % in a latency job (when fio reports it with ``--idle-prof``): CPU starvation.
    ``tolerance`` absorbs run-to-run noise.
    """
    rows = []
    base = summary[summary["storage_class"] == baseline].set_index("pattern")
    for _, r in summary.iterrows():
        if r["storage_class"] != baseline and r["pattern"] in base.index:
            b = float(base.loc[r["pattern"], "value"])
            if _better(r["metric"], r["value"], b, tolerance):
                kind = "cache" if r["direction"] == "read" else "not crash-consistent"
                why = (f"{r['pattern']}: {_fmt(r['metric'], r['value'])} beats the {baseline} baseline "
                       f"{_fmt(r['metric'], b)}")
                rows.append({"storage_class": r["storage_class"], "pattern": r["pattern"], "flag": kind, "detail": why})
        idle = r.get("cpu_idle_pct", math.nan)
        if r["metric"] == "lat" and not math.isnan(idle) and idle < IDLE_CPU_MIN:
            rows.append({"storage_class": r["storage_class"], "pattern": r["pattern"], "flag": "CPU starvation",
                         "detail": f"CPU idleness {idle:.0f} % < {IDLE_CPU_MIN:.0f} %"})
    return pd.DataFrame(rows, columns=["storage_class", "pattern", "flag", "detail"])


def _fmt(metric: str, value: float) -> str:
    return {"iops": f"{value:,.0f} IOPS", "bw": f"{value / 1e6:,.1f} MB/s", "lat": f"{value:,.1f} µs"}[metric]


def size_rule(summary: pd.DataFrame, size_bytes: int, factor: float = 25.0) -> pd.DataFrame:
    """kbench: the fio file must be at least ``factor`` x the best bandwidth (bytes/s) of the class."""
    rows = []
    for cls, part in summary.groupby("storage_class", sort=False):
        best = float((part["bw_mb_s"] * 1e6).max())
        need = best * factor
        rows.append({"storage_class": cls, "best_bw_mb_s": best / 1e6, "required_gib": need / 2**30,
                     "size_gib": size_bytes / 2**30, "ok": size_bytes >= need})
    return pd.DataFrame(rows)


def link_payload_bytes(link_mbps: float) -> float:
    """TCP payload bandwidth of an Ethernet link (bytes/s): 1000 Mbit/s -> ~117.7 MB/s."""
    return link_mbps * 1e6 / 8 * LINK_PAYLOAD


def ceilings(summary: pd.DataFrame, baseline: str, topology: Mapping[str, Mapping[str, Any]], *,
             link_mbps: float, rtt_us: float | None) -> pd.DataFrame:
    """The physical limits of each replicated class, estimated from the baseline and the network.

    ``topology[cls]`` gives ``peers`` (diskful replicas a write is sent to besides the consumer's
    own) and ``local_replica`` (the consumer holds a diskful replica). The primary sends every
    write to each peer over one link, so sequential writes cannot exceed
    ``min(local bw, link / peers)``; a protocol-C QD1 write cannot be faster than the local write
    plus one round trip. ``ratio`` is measured / limit: above 1 for a ceiling (or below 1 for a
    floor) the measurement contradicts the physics (a cache, or fewer copies than believed).
    """
    base = summary[summary["storage_class"] == baseline].set_index("pattern")
    link = link_payload_bytes(link_mbps)
    rows = []
    for cls, part in summary.groupby("storage_class", sort=False):
        if cls == baseline:
            continue
        topo = topology.get(cls) or {}
        peers = int(topo.get("peers", 0))
        local = bool(topo.get("local_replica", True))
        got = part.set_index("pattern")

        def add(pattern: str, kind: str, limit: float, basis: str, cls: str = cls, got: pd.DataFrame = got) -> None:
            if pattern not in got.index or math.isnan(limit):
                return
            value = float(got.loc[pattern, "value"])
            rows.append({"storage_class": cls, "pattern": pattern, "kind": kind, "metric": PATTERNS[pattern].metric,
                         "measured": value, "limit": limit, "ratio": value / limit, "basis": basis})

        def bval(pattern: str) -> float:
            return float(base.loc[pattern, "value"]) if pattern in base.index else math.nan

        if peers:
            add("seqwrite-bw", "ceiling", min(bval("seqwrite-bw"), link / peers),
                f"min(local {bval('seqwrite-bw') / 1e6:.0f} MB/s, link {link / 1e6:.1f} MB/s / {peers} peers)")
            add("randwrite-iops", "ceiling", min(bval("randwrite-iops"), link / (4096 * peers)),
                f"min(local IOPS, link / (4 KiB x {peers} peers))")
        else:
            add("seqwrite-bw", "ceiling", bval("seqwrite-bw"), "local disk")
        read_limit = bval("seqread-bw") if local else min(bval("seqread-bw"), link)
        add("seqread-bw", "ceiling", read_limit, "local replica" if local else "min(local, link): diskless consumer")
        if rtt_us is not None and peers:
            for pattern in ("randwrite-lat", "randwrite-fsync-lat"):
                add(pattern, "floor", bval(pattern) + rtt_us, f"local {bval(pattern):.0f} µs + RTT {rtt_us:.0f} µs")
    return pd.DataFrame(rows, columns=["storage_class", "pattern", "kind", "metric", "measured", "limit", "ratio", "basis"])


def ceiling_violations(table: pd.DataFrame, tolerance: float = 0.05) -> pd.DataFrame:
    """Rows where a measurement beats its physical limit by more than ``tolerance``."""
    over = (table["kind"] == "ceiling") & (table["ratio"] > 1 + tolerance)
    under = (table["kind"] == "floor") & (table["ratio"] < 1 - tolerance)
    return table[over | under]


# --------------------------------------------------------------------------- running the Jobs


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


def report_table(summary: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """The readable summary: headline per class and pattern, change vs the baseline, percentiles, spread."""
    change = compare(summary, baseline).set_index(["storage_class", "pattern"])["change_pct"]
    rows = []
    for _, r in summary.iterrows():
        key = (r["storage_class"], r["pattern"])
        rows.append({"class": r["storage_class"], "pattern": r["pattern"], "result": _fmt(r["metric"], r["value"]),
                     f"change vs {baseline}": f"{change[key]:+.1f} %" if key in change.index else "baseline",
                     "p50 µs": round(r["clat_p50_us"], 1), "p99 µs": round(r["clat_p99_us"], 1),
                     "p99.9 µs": round(r["clat_p999_us"], 1), "spread %": round(r["spread_pct"], 1)})
    return pd.DataFrame(rows)


def limits_table(limits: pd.DataFrame) -> pd.DataFrame:
    """The ceilings/floors with units, for display."""
    return pd.DataFrame([{"class": r["storage_class"], "pattern": r["pattern"], "kind": r["kind"],
                          "measured": _fmt(r["metric"], r["measured"]), "limit": _fmt(r["metric"], r["limit"]),
                          "measured / limit": round(r["ratio"], 3), "basis": r["basis"]} for _, r in limits.iterrows()])
