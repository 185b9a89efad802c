"""07-benchmarks analysis: comparison with the baseline, kbench's red flags, the size rule, the ceilings.

Frames come from ``parse_fio``: on the lab's generated fio JSON (``runbook_lib.lab.fio``, the same
command line the notebook runs) and on hand-made summaries for the edge cases.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from runbook_lib import bench_analysis, bench_matrix, fio
from runbook_lib.bench import parse_fio
from runbook_lib.bench_matrix import MATRIX
from runbook_lib.lab.workloads import fio as labfio
from runbook_lib.params import Bench

PERF = labfio.PerfModel.from_seed(1)
LOCAL = labfio.Volume(size=None, drbd=False, peers=0, local_replica=True)
REPLICATED = labfio.Volume(size=None, drbd=True, peers=2, local_replica=True)


def lab_output(vol: labfio.Volume, argv: list[str] | None = None, seed: str = "t") -> str:
    glob, jobs = labfio.parse_args((argv or bench_matrix.fio_command(Bench()))[1:])
    code, text, _ = labfio.render(PERF, vol, glob, jobs, seed)
    assert code == 0, text
    return text


def results(iterations: int = 3) -> pd.DataFrame:
    frames = [bench_analysis.label_run(parse_fio(lab_output(vol, seed=f"{cls}/{i}")), cls, i)
              for cls, vol in (("local", LOCAL), ("replicated", REPLICATED)) for i in range(1, iterations + 1)]
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- the lab's fio output


def test_parse_fio_reads_the_lab_output_of_the_whole_matrix() -> None:
    frame = parse_fio(lab_output(REPLICATED))
    assert list(frame["job"]) == [p.name for p in MATRIX]
    assert list(frame["direction"]) == [p.direction for p in MATRIX]
    assert frame.attrs["fio_version"] == "fio-3.33"
    assert all(j["has_io"] and j["error"] == 0 for j in frame.attrs["jobs"])
    assert frame[["iops", "bw_bytes", "lat_mean_us", "clat_p50_us", "clat_p99_us", "clat_p999_us"]].notna().all().all()
    assert (frame["clat_p50_us"] < frame["clat_p99_us"]).all() and (frame["clat_p99_us"] < frame["clat_p999_us"]).all()
    # bandwidth = IOPS x block size
    seq = frame.set_index("job").loc["seqwrite-bw"]
    assert seq["bw_bytes"] == pytest.approx(seq["iops"] * 128 * 1024, rel=1e-6)


def test_lab_fsync_job_has_a_sync_section_and_gtod_reduce_loses_latencies() -> None:
    doc = fio.extract_fio_json(lab_output(LOCAL))
    fsync = next(j for j in doc["jobs"] if j["jobname"] == "randwrite-fsync-lat")
    assert fsync["sync"]["total_ios"] > 0 and fsync["sync"]["lat_ns"]["mean"] > 0
    argv = [*bench_matrix.fio_command(Bench()), "--gtod_reduce=1"]
    assert bench_matrix.fio_problems(argv) == ["gtod_reduce switches off latency measurement"]
    glob, jobs = labfio.parse_args(argv[1:])
    jobs[-1]["gtod_reduce"] = "1"
    frame = parse_fio(labfio.render(PERF, LOCAL, glob, jobs, "g")[1])
    assert math.isnan(frame.iloc[-1]["clat_p99_us"]) and frame.iloc[-1]["iops"] > 0


def test_lab_fio_rejects_unknown_options_and_a_file_larger_than_the_volume() -> None:
    with pytest.raises(labfio.FioUsageError, match="unrecognized option '--sizee'"):
        labfio.parse_args(["--sizee=1g", "--name=x"])
    small = labfio.Volume(size=2**30, drbd=False, peers=0, local_replica=True)
    glob, jobs = labfio.parse_args(bench_matrix.fio_command(Bench())[1:])
    code, text, _ = labfio.render(PERF, small, glob, jobs, "s")
    assert code == 1 and "No space left on device" in text


def test_the_notebook_command_is_clean_and_reads_from_sh() -> None:
    cfg = Bench()
    assert bench_matrix.fio_problems(bench_matrix.fio_command(cfg)) == []
    job = bench_matrix.fio_job(cfg, "replicated", 2, node="lab-cp-1")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert labfio.fio_argv(container) == bench_matrix.fio_command(cfg)
    assert job["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "lab-cp-1"}
    claim = bench_matrix.bench_claim(cfg, "local")
    assert claim["spec"]["resources"]["requests"]["storage"] == "54Gi"  # 48 GiB + 10 % + 1


# --------------------------------------------------------------------------- summary and comparison


def test_summary_medians_spread_and_change_against_the_baseline() -> None:
    res = results()
    summary = bench_analysis.summarize(res)
    assert len(summary) == 2 * len(MATRIX) and set(summary["iterations"]) == {3}
    row = summary[(summary["storage_class"] == "local") & (summary["pattern"] == "randread-iops")].iloc[0]
    values = res[(res["storage_class"] == "local") & (res["pattern"] == "randread-iops")]["iops"]
    assert row["value"] == pytest.approx(values.median())
    assert row["spread_pct"] == pytest.approx((values.max() - values.min()) / values.median() * 100)
    change = bench_analysis.compare(summary, "local").set_index("pattern")
    assert set(change.index) == {p.name for p in MATRIX}
    sw = change.loc["seqwrite-bw"]
    assert sw["change_pct"] == pytest.approx((sw["value"] - sw["baseline"]) / sw["baseline"] * 100)
    assert sw["change_pct"] < -80  # 2 peers over 1 GbE against a ~1 GB/s disk
    assert change.loc["randwrite-lat", "change_pct"] > 0  # a replicated write pays a round trip


def _summary(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    out = []
    for cls, pattern, value in rows:
        p = bench_matrix.PATTERNS[pattern]
        out.append({"storage_class": cls, "pattern": pattern, "metric": p.metric, "direction": p.direction,
                    "value": value, "bw_mb_s": value / 1e6 if p.metric == "bw" else 1.0, "cpu_idle_pct": math.nan})
    return pd.DataFrame(out)


def test_red_flags_cache_unsafe_writes_and_cpu_starvation() -> None:
    s = _summary([("local", "randread-lat", 90.0), ("replicated", "randread-lat", 40.0),
                  ("local", "seqwrite-bw", 1000e6), ("replicated", "seqwrite-bw", 1500e6),
                  ("local", "randwrite-iops", 200e3), ("replicated", "randwrite-iops", 14e3)])
    flags = bench_analysis.red_flags(s, "local")
    assert list(zip(flags["pattern"], flags["flag"], strict=True)) == [
        ("randread-lat", "cache"), ("seqwrite-bw", "not crash-consistent")]
    s.loc[(s["storage_class"] == "replicated") & (s["pattern"] == "randread-lat"), "cpu_idle_pct"] = 30.0
    assert "CPU starvation" in set(bench_analysis.red_flags(s, "local")["flag"])


def test_red_flags_tolerate_noise_and_none_on_the_lab_model() -> None:
    s = _summary([("local", "seqread-bw", 1000e6), ("replicated", "seqread-bw", 1030e6)])
    assert bench_analysis.red_flags(s, "local").empty
    assert not bench_analysis.red_flags(s, "local", tolerance=0.0).empty
    assert bench_analysis.red_flags(bench_analysis.summarize(results()), "local").empty


def test_size_rule_is_25_times_the_best_bandwidth() -> None:
    s = _summary([("local", "seqread-bw", 2000e6), ("local", "seqwrite-bw", 1000e6)])
    rule = bench_analysis.size_rule(s, 48 * 2**30).iloc[0]
    assert rule["required_gib"] == pytest.approx(25 * 2000e6 / 2**30)  # 46.6 GiB
    assert bool(rule["ok"])
    assert not bool(bench_analysis.size_rule(s, 40 * 2**30).iloc[0]["ok"])
    assert not bool(bench_analysis.size_rule(s, 48 * 2**30, factor=30).iloc[0]["ok"])


# --------------------------------------------------------------------------- physical limits


def test_link_payload_of_1gbe() -> None:
    assert bench_analysis.link_payload_bytes(1000) == pytest.approx(117.7e6, rel=1e-3)
    assert bench_analysis.link_payload_bytes(10000) == pytest.approx(1177e6, rel=1e-3)


def test_ceilings_from_the_link_the_peers_and_the_round_trip() -> None:
    s = _summary([("local", "seqwrite-bw", 1000e6), ("replicated", "seqwrite-bw", 55e6),
                  ("local", "randwrite-iops", 200e3), ("replicated", "randwrite-iops", 14e3),
                  ("local", "seqread-bw", 1500e6), ("replicated", "seqread-bw", 1450e6),
                  ("local", "randwrite-lat", 30.0), ("replicated", "randwrite-lat", 280.0)])
    topo = {"replicated": {"peers": 2, "local_replica": True}}
    lim = bench_analysis.ceilings(s, "local", topo, link_mbps=1000, rtt_us=200).set_index("pattern")
    link = bench_analysis.link_payload_bytes(1000)
    assert lim.loc["seqwrite-bw", "limit"] == pytest.approx(link / 2)
    assert lim.loc["seqwrite-bw", "ratio"] == pytest.approx(55e6 / (link / 2))
    assert lim.loc["randwrite-iops", "limit"] == pytest.approx(link / (4096 * 2))
    assert lim.loc["seqread-bw", "limit"] == pytest.approx(1500e6)
    assert lim.loc["randwrite-lat", "kind"] == "floor" and lim.loc["randwrite-lat", "limit"] == pytest.approx(230.0)
    assert lim.loc["randwrite-lat", "ratio"] == pytest.approx(280 / 230)
    assert bench_analysis.ceiling_violations(lim.reset_index()).empty
    # a 10 GbE link moves the ceiling to the disk; a diskless consumer reads over the link
    ten = bench_analysis.ceilings(s, "local", {"replicated": {"peers": 3, "local_replica": False}}, link_mbps=10000, rtt_us=None)
    ten = ten.set_index("pattern")
    assert ten.loc["seqwrite-bw", "limit"] == pytest.approx(bench_analysis.link_payload_bytes(10000) / 3)
    assert ten.loc["seqread-bw", "limit"] == pytest.approx(bench_analysis.link_payload_bytes(10000))
    assert "randwrite-lat" not in ten.index  # no RTT, no floor


def test_a_result_above_its_ceiling_is_a_violation() -> None:
    s = _summary([("local", "seqwrite-bw", 1000e6), ("replicated", "seqwrite-bw", 110e6)])
    lim = bench_analysis.ceilings(s, "local", {"replicated": {"peers": 2}}, link_mbps=1000, rtt_us=None)
    assert list(bench_analysis.ceiling_violations(lim)["pattern"]) == ["seqwrite-bw"]
