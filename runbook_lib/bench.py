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
            raise ParseError(_TOOL, f"{path}.{key} missing")
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError(_TOOL, f"{path}.{key}: expected a number, got {value!r}")
    return float(value)


def _int_or_none(section: Mapping[str, Any], key: str, path: str) -> int | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParseError(_TOOL, f"{path}.{key}: expected an integer, got {value!r}")
    return value


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ParseError(_TOOL, f"{path}: expected an object, got {type(value).__name__}")
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
            raise ParseError(_TOOL, f"{path}.percentile: key {key!r} is not a number") from exc
    for column, pct in _PERCENTILES:
        value = by_value.get(round(pct, 6))
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParseError(_TOOL, f"{path}.percentile[{pct}]: expected a number, got {value!r}")
        out[column] = float(value) / per_us
    return out


def _has_io(section: Mapping[str, Any], path: str) -> tuple[bool, int | None, int | None]:
    io_bytes = _int_or_none(section, "io_bytes", path)
    if io_bytes is None and (kib := _int_or_none(section, "io_kbytes", path)) is not None:
        io_bytes = kib * 1024
    total_ios = _int_or_none(section, "total_ios", path)
    if io_bytes is None and total_ios is None:
        raise ParseError(_TOOL, f"{path}: neither io_bytes nor total_ios present")
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
            _TOOL, f"{path}.jobname missing" if name is None else f"{path}.jobname: expected a string"
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
        raise ParseError(_TOOL, f"jobs: expected a list, got {type(jobs).__name__}")
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
