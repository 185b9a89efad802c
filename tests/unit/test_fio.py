"""Tests for runbook_lib.bench.parse_fio against real fio output.

The files in tests/data/fio/ were produced by fio 3.33 on a 16 MiB scratch file, with
stdout and stderr captured together (``> FILE 2>&1``), for example::

    fio --name=randread-psync --filename=/tmp/fiowork/testfile --size=16M --rw=randread \
        --bs=4k --iodepth=1 --ioengine=psync --runtime=1 --time_based --output-format=json

The exact command of every file is in tests/data/README.md. ``warning_before_json.json``
starts with the "note: both iodepth >= 1 and synchronous I/O engine..." line fio prints
for ``--iodepth=4 --ioengine=psync``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from runbook_lib.bench import parse_fio
from runbook_lib.errors import ParseError
from runbook_lib.fio import FIO_COLUMNS, extract_fio_json

DATA = Path(__file__).resolve().parents[1] / "data" / "fio"
FILES = sorted(p.name for p in DATA.glob("*.json"))


def _text(name: str) -> str:
    return (DATA / name).read_text()


def _raw(text: str) -> dict:
    """Independent extraction for the checks: the JSON starts at the first line that is '{'."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.rstrip() == "{")
    return json.loads("".join(lines[start:]))


def _expected_rows(raw: dict) -> list[tuple[str, str]]:
    return [
        (job["jobname"], direction)
        for job in raw["jobs"]
        for direction in ("read", "write", "trim")
        if job[direction]["total_ios"] > 0 or job[direction]["io_bytes"] > 0
    ]


def test_fixtures_exist() -> None:
    assert {
        "randread_4k_qd1_psync.json",
        "randread_4k_qd8_libaio.json",
        "randrw_70_30_psync.json",
        "randwrite_jsonplus.json",
        "multi_job_file.json",
        "warning_before_json.json",
        "randread_no_clat_percentiles.json",
    } <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_numbers_equal_the_raw_json(name: str) -> None:
    text = _text(name)
    raw = _raw(text)
    frame = parse_fio(text)
    assert list(frame.columns) == list(FIO_COLUMNS)
    assert list(zip(frame["job"], frame["direction"], strict=True)) == _expected_rows(raw)
    assert frame.attrs["fio_version"] == raw["fio version"]
    for _, row in frame.iterrows():
        job = raw["jobs"][row["job_index"]]
        section = job[row["direction"]]
        assert row["job"] == job["jobname"]
        assert row["groupid"] == job["groupid"]
        assert row["error"] == job["error"]
        assert row["iops"] == section["iops"]
        assert row["bw_bytes"] == section["bw_bytes"]
        assert row["runtime_ms"] == section["runtime"]
        assert row["io_bytes"] == section["io_bytes"]
        assert row["total_ios"] == section["total_ios"]
        assert row["lat_mean_us"] == section["lat_ns"]["mean"] / 1000
        assert row["lat_max_us"] == section["lat_ns"]["max"] / 1000
        assert row["lat_stddev_us"] == section["lat_ns"]["stddev"] / 1000
        assert row["clat_mean_us"] == section["clat_ns"]["mean"] / 1000
        percentiles = section["clat_ns"].get("percentile")
        for column, key in (
            ("clat_p50_us", "50.000000"),
            ("clat_p99_us", "99.000000"),
            ("clat_p999_us", "99.900000"),
        ):
            if percentiles is None:
                assert math.isnan(row[column])
            else:
                assert row[column] == percentiles[key] / 1000


def test_randrw_has_both_directions() -> None:
    frame = parse_fio(_text("randrw_70_30_psync.json"))
    assert list(frame["direction"]) == ["read", "write"]
    assert set(frame["job"]) == {"randrw"}
    # 70/30 mix: reads clearly dominate.
    read, write = frame["total_ios"]
    assert read > write > 0


def test_multi_job_file_gives_one_row_per_job() -> None:
    frame = parse_fio(_text("multi_job_file.json"))
    assert list(zip(frame["job"], frame["direction"], strict=True)) == [
        ("seq-write-128k", "write"),
        ("rand-read-4k", "read"),
    ]
    assert list(frame["job_index"]) == [0, 1]
    assert frame.attrs["jobs"] == [
        {"job": "seq-write-128k", "job_index": 0, "error": 0, "has_io": True},
        {"job": "rand-read-4k", "job_index": 1, "error": 0, "has_io": True},
    ]


def test_warning_line_before_json_is_skipped() -> None:
    text = _text("warning_before_json.json")
    assert text.startswith("note: both iodepth >= 1 and synchronous I/O engine")
    frame = parse_fio(text)
    assert len(frame) == 1 and frame["direction"].iloc[0] == "read"


def test_json_plus_output() -> None:
    text = _text("randwrite_jsonplus.json")
    assert '"bins"' in text
    frame = parse_fio(text)
    assert list(frame["direction"]) == ["write"]
    assert not frame[["clat_p50_us", "clat_p99_us", "clat_p999_us"]].isna().any().any()


def test_missing_percentiles_are_nan() -> None:
    frame = parse_fio(_text("randread_no_clat_percentiles.json"))
    assert frame[["clat_p50_us", "clat_p99_us", "clat_p999_us"]].isna().all().all()
    assert frame["iops"].iloc[0] > 0


def test_percentiles_are_ordered() -> None:
    frame = parse_fio(_text("randread_4k_qd1_psync.json"))
    row = frame.iloc[0]
    assert row["clat_p50_us"] <= row["clat_p99_us"] <= row["clat_p999_us"]


def test_fio_warnings_around_json_and_interim_results() -> None:
    text = _text("randread_4k_qd1_psync.json")
    raw = _raw(text)
    interim = json.loads(json.dumps(raw))
    interim["jobs"][0]["read"]["iops"] = 1.0
    noisy = "fio: some warning {not json\n" + json.dumps(interim) + "\n" + text + "\nfio: trailing line\n"
    frame = parse_fio(noisy)
    assert frame["iops"].iloc[0] == raw["jobs"][0]["read"]["iops"]  # the last result wins


def test_job_without_io_is_listed_in_attrs() -> None:
    raw = _raw(_text("randread_4k_qd1_psync.json"))
    failed = json.loads(json.dumps(raw["jobs"][0]))
    failed["jobname"] = "broken"
    failed["error"] = 5
    for direction in ("read", "write", "trim"):
        failed[direction]["io_bytes"] = 0
        failed[direction]["total_ios"] = 0
    raw["jobs"].append(failed)
    frame = parse_fio(json.dumps(raw))
    assert list(frame["job"]) == ["randread-psync"]
    assert frame.attrs["jobs"][1] == {"job": "broken", "job_index": 1, "error": 5, "has_io": False}


def test_numjobs_clones_are_told_apart() -> None:
    raw = _raw(_text("randread_4k_qd1_psync.json"))
    raw["jobs"].append(json.loads(json.dumps(raw["jobs"][0])))
    frame = parse_fio(json.dumps(raw))
    assert list(frame["job"]) == ["randread-psync", "randread-psync"]
    assert list(frame["job_index"]) == [0, 1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "output is empty"),
        ("fio: pid=0, err=2/file:filesetup.c:123, func=open, error=No such file\n", "no JSON result object"),
        ('{\n  "fio version" : "fio-3.33",\n  "jobs" : [\n', "malformed JSON starting at line 1"),
        ('{"no_jobs": true}', "no JSON result object with 'jobs'"),
        ('{"jobs": {}}', "jobs: expected a list"),
        ('{"jobs": [{"read": {}}]}', "jobs[0].jobname missing"),
        ('{"jobs": [{"jobname": "x", "read": []}]}', "jobs[0].read: expected an object"),
        ('{"jobs": [{"jobname": "x", "read": {"iops": 1}}]}', "jobs[0].read: neither io_bytes nor total_ios"),
        (
            '{"jobs": [{"jobname": "x", "read": {"io_bytes": 4096, "total_ios": 1, "iops": "fast", "bw_bytes": 1}}]}',
            "jobs[0].read.iops: expected a number",
        ),
        (
            '{"jobs": [{"jobname": "x", "read": {"io_bytes": 4096, "total_ios": 1, "bw_bytes": 1}}]}',
            "jobs[0].read.iops missing",
        ),
        (
            '{"jobs": [{"jobname": "x", "read": {"io_bytes": 4096, "total_ios": 1, "iops": 1, "bw_bytes": 1,'
            ' "clat_ns": {"mean": 1, "percentile": {"p50": 1}}}}]}',
            "jobs[0].read.clat_ns.percentile: key 'p50' is not a number",
        ),
    ],
)
def test_malformed_output_raises_parse_error(text: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_fio(text)
    assert info.value.tool == "fio"
    assert message in str(info.value)


def test_non_text_input() -> None:
    with pytest.raises(ParseError, match="expected text"):
        extract_fio_json(b"{}")  # type: ignore[arg-type]


def test_old_fio_microsecond_fields() -> None:
    """fio 2.x wrote ``lat``/``clat`` in µs and ``bw`` in KiB/s."""
    doc = {
        "jobs": [
            {
                "jobname": "old",
                "error": 0,
                "read": {
                    "io_bytes": 8192,
                    "iops": 2.0,
                    "bw": 8,
                    "runtime": 1000,
                    "lat": {"mean": 12.5, "max": 20, "stddev": 1},
                    "clat": {"mean": 10.0, "percentile": {"50.000000": 9, "99.000000": 15, "99.900000": 19}},
                },
            }
        ]
    }
    row = parse_fio(json.dumps(doc)).iloc[0]
    assert row["bw_bytes"] == 8 * 1024
    assert row["lat_mean_us"] == 12.5 and row["clat_p99_us"] == 15
    assert pd.isna(row["total_ios"]) and row["io_bytes"] == 8192


