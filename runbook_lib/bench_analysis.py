"""Benchmark analysis, pure: fio rows labelled, summarized, compared with the baseline and the network's limits."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from .bench_matrix import PATTERNS
from .errors import ParseError
from .fio import extract_fio_json

LINK_PAYLOAD = 0.9415  # TCP payload share of Ethernet line rate at MTU 1500 (IPv4, timestamps)
IDLE_CPU_MIN = 40.0  # kbench: CPU idleness below this in the latency test means CPU starvation


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
