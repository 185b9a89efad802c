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

from . import wire
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
