"""07-benchmarks on the lab: its estimates of the physical limits match the lab's ground truth.

The lab's performance model (``GET /lab/v1/perf``) knows the disk's bandwidth and latency, the
link's payload bandwidth and the round trip. 07 never reads it: it measures the local baseline
and combines it with the parameters ``link_mbps`` / ``rtt_us`` and the replica count it reads
from LINSTOR. Each estimate must land within 10 % of the truth.

Runs 07 through the ``runbook`` command once for the module, on a copy of the cluster the e2e layer's
shared 01-04 run left (the two classes), at x1000 with its own seed.
"""

from __future__ import annotations

import httpx
import pytest

from runbook_lib.lab import control
from tests.lab_helpers import copy_lab, record, run_dir_of, runbook, write_params


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory, installed):
    root = tmp_path_factory.mktemp("bench")
    lab_dir, out = copy_lab(installed.lab, root / "lab", time_scale=1000.0, seed=7), root / "out"
    params = write_params(root / "params.yaml", lab={"time_scale": 1000.0, "seed": 7},
                          bench={"classes": ["local", "replicated"], "iterations": 2, "ramp_time": 2, "runtime": 10,
                                 "size": "48GiB", "size_factor": 25, "link_mbps": 1000, "rtt_us": 200})
    try:
        proc = runbook("run", "-f", str(params), "07", "--out", str(out), lab_dir=lab_dir, check=True)
        truth = httpx.get(control.connection(lab_dir)["url"] + "/lab/v1/perf", timeout=10).json()
        yield record(run_dir_of(proc), "07-benchmarks"), truth
    finally:
        control.remove(lab_dir)


def _limit(results: dict, pattern: str) -> dict:
    return next(r for r in results["limits"] if r["pattern"] == pattern and r["storage_class"] == "replicated")


def _value(results: dict, cls: str, pattern: str) -> float:
    return next(r["value"] for r in results["summary"] if r["pattern"] == pattern and r["storage_class"] == cls)


def test_07_passes_and_reads_the_replica_count_from_linstor(bench_run) -> None:
    rec, _ = bench_run
    assert rec["status"] == "succeeded"
    assert all(c["ok"] for c in rec["checks"]), [c for c in rec["checks"] if not c["ok"]]
    topo = rec["results"]["bench"]["topology"]
    assert topo["local"]["peers"] == 0 and topo["replicated"]["replicas"] == 3 and topo["replicated"]["peers"] == 2


def test_ceiling_and_floor_estimates_are_within_10_percent_of_the_lab_truth(bench_run) -> None:
    rec, truth = bench_run
    res = rec["results"]["bench"]
    peers = res["topology"]["replicated"]["peers"]
    header = 64  # DRBD bytes per request on the wire (lab model)
    expected = {
        "seqwrite-bw": min(truth["disk_write_bw"], truth["link_bw"] / peers),
        "randwrite-iops": min(truth["disk_write_iops"], truth["disk_write_bw"] / 4096,
                              truth["link_bw"] / ((4096 + header) * peers)),
        "seqread-bw": truth["disk_read_bw"],
        "randwrite-lat": truth["local_qd1_write_4k_us"] + truth["rtt_us"],
    }
    for pattern, want in expected.items():
        got = _limit(res, pattern)["limit"]
        assert got == pytest.approx(want, rel=0.10), (pattern, got, want)
    # the baseline itself measures the disk
    assert _value(res, "local", "seqwrite-bw") == pytest.approx(truth["disk_write_bw"], rel=0.10)
    assert _value(res, "local", "randwrite-lat") == pytest.approx(truth["local_qd1_write_4k_us"], rel=0.10)


def test_measurements_respect_the_limits_and_raise_no_red_flags(bench_run) -> None:
    rec, _ = bench_run
    res = rec["results"]["bench"]
    assert res["red_flags"] == []
    for row in res["limits"]:
        if row["kind"] == "ceiling":
            assert row["ratio"] <= 1.05, row
        else:
            assert row["ratio"] >= 0.95, row
