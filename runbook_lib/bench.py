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
from typing import Any

import pandas as pd

from . import manifests
from .errors import ParseError

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


# --------------------------------------------------------------------------- field helpers


def _number(section: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> float:
    value = section.get(key)
    if value is None:
        if required:
            raise ParseError(_TOOL, f"{path}.{key} missing", field=f"{path}.{key}")
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError(_TOOL, f"{path}.{key}: expected a number, got {value!r}", field=f"{path}.{key}")
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float: no real measurement
        raise ParseError(_TOOL, f"{path}.{key}: {value} is out of range", field=f"{path}.{key}") from None


def _int_or_none(section: Mapping[str, Any], key: str, path: str) -> int | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParseError(_TOOL, f"{path}.{key}: expected an integer, got {value!r}", field=f"{path}.{key}")
    if not -(2**63) <= value < 2**63:  # fio's counters are 64-bit
        raise ParseError(_TOOL, f"{path}.{key}: {value} does not fit a 64-bit integer", field=f"{path}.{key}")
    return value


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ParseError(_TOOL, f"{path}: expected an object, got {type(value).__name__}", field=path)
    return value


def _latency(section: Mapping[str, Any], name: str, path: str) -> tuple[Mapping[str, Any] | None, float, str]:
    """Latency stats for ``name`` (``lat``/``clat``) and the divisor that gives microseconds.

    fio 3 writes ``<name>_ns`` in nanoseconds; fio 2 wrote ``<name>`` in microseconds.
    """
    for key, per_us in ((f"{name}_ns", 1000.0), (name, 1.0)):
        if section.get(key) is not None:
            return _mapping(section[key], f"{path}.{key}"), per_us, f"{path}.{key}"
    return None, math.nan, path


def _percentiles(stats: Mapping[str, Any] | None, per_us: float, path: str) -> dict[str, float]:
    """p50/p99/p99.9 in µs; NaN when fio did not compute them (clat_percentiles=0)."""
    out = {column: math.nan for column, _ in _PERCENTILES}
    if stats is None or stats.get("percentile") is None:
        return out
    table = _mapping(stats["percentile"], f"{path}.percentile")
    by_value: dict[float, Any] = {}
    for key, value in table.items():
        try:
            by_value[round(float(key), 6)] = value
        except ValueError as exc:
            raise ParseError(_TOOL, f"{path}.percentile: key {key!r} is not a number",
                             field=f"{path}.percentile") from exc
    for column, pct in _PERCENTILES:
        value = by_value.get(round(pct, 6))
        if value is None:
            continue
        out[column] = _number({str(pct): value}, str(pct), f"{path}.percentile") / per_us
    return out


def _has_io(section: Mapping[str, Any], path: str) -> tuple[bool, int | None, int | None]:
    io_bytes = _int_or_none(section, "io_bytes", path)
    if io_bytes is None and (kib := _int_or_none(section, "io_kbytes", path)) is not None:
        io_bytes = _int_or_none({"io_kbytes": kib * 1024}, "io_kbytes", path)
    total_ios = _int_or_none(section, "total_ios", path)
    if io_bytes is None and total_ios is None:
        raise ParseError(_TOOL, f"{path}: neither io_bytes nor total_ios present", field=f"{path}.io_bytes")
    return (total_ios or 0) > 0 or (io_bytes or 0) > 0, io_bytes, total_ios


def _direction_row(section: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    has_io, io_bytes, total_ios = _has_io(section, path)
    if not has_io:
        return None
    bw = _number(section, "bw_bytes", path)
    if math.isnan(bw):
        bw = _number(section, "bw", path, required=True) * 1024  # fio < 3: KiB/s
    lat, lat_div, lat_path = _latency(section, "lat", path)
    clat, clat_div, clat_path = _latency(section, "clat", path)
    row = {
        "iops": _number(section, "iops", path, required=True),
        "bw_bytes": bw,
        "lat_mean_us": _number(lat, "mean", lat_path) / lat_div if lat is not None else math.nan,
        "lat_stddev_us": _number(lat, "stddev", lat_path) / lat_div if lat is not None else math.nan,
        "lat_max_us": _number(lat, "max", lat_path) / lat_div if lat is not None else math.nan,
        "clat_mean_us": _number(clat, "mean", clat_path) / clat_div if clat is not None else math.nan,
        "runtime_ms": _int_or_none(section, "runtime", path),
        "io_bytes": io_bytes,
        "total_ios": total_ios,
    }
    row.update(_percentiles(clat, clat_div, clat_path))
    return row


def _job_rows(job: Any, index: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    path = f"jobs[{index}]"
    job = _mapping(job, path)
    name = job.get("jobname")
    if not isinstance(name, str):
        raise ParseError(
            _TOOL, f"{path}.jobname missing" if name is None else f"{path}.jobname: expected a string",
            field=f"{path}.jobname",
        )
    error = _int_or_none(job, "error", path)
    groupid = _int_or_none(job, "groupid", path)
    rows = []
    for direction in DIRECTIONS:
        if job.get(direction) is None:
            continue
        dpath = f"{path}.{direction}"
        row = _direction_row(_mapping(job[direction], dpath), dpath)
        if row is not None:
            rows.append(
                {
                    "job": name,
                    "job_index": index,
                    "groupid": groupid,
                    "direction": direction,
                    "error": error,
                    **row,
                }
            )
    summary = {"job": name, "job_index": index, "error": error, "has_io": bool(rows)}
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
    doc = extract_fio_json(output)
    jobs = doc["jobs"]
    if not isinstance(jobs, list):
        raise ParseError(_TOOL, f"jobs: expected a list, got {type(jobs).__name__}", field="jobs")
    rows: list[dict[str, Any]] = []
    summaries = []
    for index, job in enumerate(jobs):
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
    frame.attrs["fio_version"] = doc.get("fio version")
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
    from . import kube

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
    from . import kube, manifests
    from .errors import RunbookError
    from .linstor import resources_frame
    from .piraeus import linstor
    from .waiting import wait_until

    bench = session.params.bench
    api = session.kube()
    ex = session.executor
    pvc = bench_claim(bench, cls)
    frames, topo, node = [], {"peers": 0, "local_replica": True, "node": None, "replicas": 0}, None
    ex.call(lambda: kube.server_side_apply(api, pvc), step=f"benchmark PVC for {cls}", target=f"PersistentVolumeClaim/{pvc['metadata']['name']}",
            manifest=manifests.to_yaml([pvc]), command=["kubectl", "apply", "-f", "-"])
    jobs = []
    try:
        for i in range(1, bench.iterations + 1):
            job = fio_job(bench, cls, i, node, [n.name for n in session.storage_nodes])
            jobs.append(job)
            ex.call(lambda job=job: kube.server_side_apply(api, job), step=f"fio Job {cls} #{i}",
                    target=f"Job/{job['metadata']['name']}", manifest=manifests.to_yaml([job]),
                    command=["kubectl", "apply", "-f", "-"])
            if session.dry_run:
                continue
            timeout = session.params.node_timeout + 2 * expected_seconds(bench) + bench.size_bytes / 50e6
            obj = wait_until(lambda job=job: _job_done(api, job), what=f"fio Job {job['metadata']['name']} finished",
                             timeout=timeout, describe=_job_state)
            pods = kube.list_objects(api, f"/api/v1/namespaces/{bench.namespace}/pods",
                                     label_selector=f"job-name={job['metadata']['name']}")
            pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "") if pods else None
            log = kube.pod_log(api, bench.namespace, pod["metadata"]["name"]) if pod else "(no pod)"
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
                topo = _topology(session, api, pvc, node, resources_frame, linstor)
        return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), topo
    finally:
        for obj in [*jobs, pvc]:
            ex.call(lambda obj=obj: _delete(api, obj), step=f"delete benchmark {obj['kind']} for {cls}",
                    target=f"{obj['kind']}/{obj['metadata']['name']}", command=["kubectl", "delete", "-f", "-"])


def _delete(api: Any, obj: dict) -> None:
    from . import kube

    try:  # Jobs: take their pods with them (the API default for batch/v1 Jobs is to orphan them)
        kube.request(api, "DELETE", kube.object_path(obj), query=[("propagationPolicy", "Background")])
    except kube.ApiCallError as err:
        if err.status != 404:
            raise


def _topology(session: Any, api: Any, pvc: dict, node: str | None, resources_frame: Any, linstor: Any) -> dict:
    from . import kube

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
    from .storage_classes import require_classes

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
