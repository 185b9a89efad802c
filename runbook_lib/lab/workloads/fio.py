"""A performance model for the lab's volumes and a pod runner that answers ``fio`` in fio's JSON.

The model (:class:`PerfModel`) is the lab's ground truth, served at ``GET /lab/v1/perf`` so tests
can compare what 07-benchmarks estimates with what is really there:

- one NVMe disk per node: QD1 service time per direction, sequential bandwidth, an IOPS cap
  at high queue depth and the cost of a cache flush (``fsync``); drawn once from the lab seed;
- the replication network: 1 GbE payload bandwidth (94.15 % of line rate) and a round-trip time;
- DRBD protocol C: a write completes when the local disk and every peer have it, so it pays one
  round trip plus the transfer, and the primary sends every write to each diskful peer over the
  same link; reads are served by the local replica (or over the network from a diskless node).

:class:`FioRunner` plays containers whose command runs ``fio``: it reads the fio options the
runbook passes (global options, then one ``--name=`` section per job), finds the pod's volume
(PVC -> PV -> LINSTOR resource and its replicas) and writes fio-3.x ``--output-format=json``
output with seeded noise. The jobs "run" ramp + runtime lab seconds each. Like fio (filesetup.c), the IO
file is laid out only when it is missing or smaller than ``size``; the laid-out file stays on the volume, so
the next run on the same PVC starts measuring at once.
"""

from __future__ import annotations

import json
import math
import random
import re
import shlex
import time
from dataclasses import asdict, dataclass
from statistics import NormalDist

from ...lab_options import NETWORK_RTT_US
from ..cluster import Lab
from ..kubernetes.quantity import quantity_bytes
from .state import RunResult
from .volume_data import Mounted, entry_size, mounted_at, put_file

FIO_VERSION = "fio-3.33"
GBE_PAYLOAD = 0.9415  # TCP payload share of Ethernet line rate at MTU 1500
PERCENTILES = ("1.000000", "5.000000", "10.000000", "20.000000", "30.000000", "40.000000", "50.000000",
               "60.000000", "70.000000", "80.000000", "90.000000", "95.000000", "99.000000", "99.500000",
               "99.900000", "99.950000", "99.990000")
DRBD_HEADER = 64  # bytes of DRBD data-packet header per request on the wire
PAGE_CACHE_BYTES = 16 * 2**30  # buffered reads of a file smaller than this come from RAM


@dataclass(frozen=True)
class PerfModel:
    """Ground truth of the lab's I/O path (bytes/s, µs, IOPS)."""

    disk_read_bw: float
    disk_write_bw: float
    disk_read_lat_us: float  # 4k-class random read service time at QD1, before transfer time
    disk_write_lat_us: float  # write into the drive's cache
    disk_flush_us: float  # a cache flush (no power-loss protection)
    disk_read_iops: float  # cap at high queue depth
    disk_write_iops: float
    link_mbps: float  # replication link line rate
    link_bw: float  # its TCP payload bandwidth (bytes/s)
    rtt_us: float
    drbd_write_overhead_us: float = 15.0
    drbd_read_overhead_us: float = 5.0
    drbd_bw_efficiency: float = 0.97
    noise: float = 0.02  # +- share of seeded noise on every throughput figure

    @classmethod
    def from_seed(cls, seed: int) -> PerfModel:
        rng = random.Random(f"lab-perf-{seed}")
        link_mbps = 1000.0
        return cls(
            disk_read_bw=1500e6 * rng.uniform(0.9, 1.1), disk_write_bw=1000e6 * rng.uniform(0.9, 1.1),
            disk_read_lat_us=80.0 * rng.uniform(0.9, 1.1), disk_write_lat_us=25.0 * rng.uniform(0.9, 1.1),
            disk_flush_us=600.0 * rng.uniform(0.8, 1.2), disk_read_iops=300e3, disk_write_iops=200e3,
            link_mbps=link_mbps, link_bw=link_mbps * 1e6 / 8 * GBE_PAYLOAD, rtt_us=NETWORK_RTT_US,
        )

    def qd1_write_us(self, bs: int) -> float:
        """Local 4k-style QD1 write latency (the baseline the 07 floor starts from)."""
        return self.disk_write_lat_us + bs / self.disk_write_bw * 1e6

    def truth(self) -> dict:
        return {**asdict(self), "local_qd1_write_4k_us": self.qd1_write_us(4096),
                "local_qd1_read_4k_us": self.disk_read_lat_us + 4096 / self.disk_read_bw * 1e6}


def model(lab: Lab) -> PerfModel:
    cached = lab.workloads.cache.get("perf")
    if cached is None:
        cached = lab.workloads.cache["perf"] = PerfModel.from_seed(int(lab.options.get("seed", 1)))
    return cached


@dataclass
class Volume:
    size: int | None  # bytes; None when unknown (no PVC)
    drbd: bool
    peers: int  # diskful peers a write is sent to
    local_replica: bool  # the consumer's node holds a diskful replica


def volume_of(lab: Lab, node: str, found: Mounted | None) -> Volume:
    """The volume a consumer on ``node`` does IO on, as the performance model needs it."""
    if found is None:
        return Volume(None, False, 0, True)
    cap = ((found.claim.get("status") or {}).get("capacity") or {}).get("storage")
    size = quantity_bytes(cap) if cap else None
    rd = lab.linstor.rds.get(found.handle) if found.handle else None
    if rd is None:
        return Volume(size, False, 0, True)
    diskful = [n for n, r in rd.replicas.items() if not r.diskless]
    local = node in diskful
    return Volume(size, rd.drbd, len(diskful) - (1 if local else 0) if rd.drbd else 0, local or not rd.drbd)


_SUFFIX = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
KNOWN = {"name", "rw", "readwrite", "bs", "blocksize", "iodepth", "fsync", "runtime", "ramp_time", "size", "numjobs",
         "direct", "ioengine", "filename", "directory", "output-format", "time_based", "stonewall", "randrepeat",
         "verify", "group_reporting", "gtod_reduce", "invalidate", "end_fsync", "idle-prof", "thread", "clat_percentiles"}
PATTERNS = {"read", "write", "randread", "randwrite"}


class FioUsageError(Exception):
    pass


def _bytes(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([a-zA-Z]*)", text.strip())
    if not m or m.group(2).lower() not in _SUFFIX:
        raise FioUsageError(f"fio: failed parsing value '{text}'")
    return int(float(m.group(1)) * _SUFFIX[m.group(2).lower()])


def _seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(s|ms|m|us)?", text.strip())
    if not m:
        raise FioUsageError(f"fio: failed parsing time '{text}'")
    return float(m.group(1)) * {"s": 1, None: 1, "ms": 1e-3, "m": 60, "us": 1e-6}[m.group(2)]


def parse_args(args: list[str]) -> tuple[dict, list[dict]]:
    """fio's command line as (global options, [job options]); ``--name`` starts a job."""
    glob: dict[str, str] = {}
    jobs: list[dict[str, str]] = []
    for arg in args:
        if not arg.startswith("--"):
            raise FioUsageError(f"fio: job files are not modelled by the lab (got {arg!r}); pass options")
        key, _, value = arg[2:].partition("=")
        if key not in KNOWN:
            raise FioUsageError(f"fio: unrecognized option '--{key}'")
        if key == "name":
            jobs.append({"name": value})
        elif jobs:
            jobs[-1][key] = value or "1"
        else:
            glob[key] = value or "1"
    if not jobs:
        raise FioUsageError("fio: need at least one job (--name=...)")
    return glob, jobs


def fio_argv(container: dict) -> list[str] | None:
    """The fio words of the container's command (``fio ...`` or ``sh -c '... && fio ...'``)."""
    argv = list(container.get("command") or []) + list(container.get("args") or [])
    if not argv:
        return None
    if argv[0].rsplit("/", 1)[-1] == "fio":
        return argv
    if argv[0].rsplit("/", 1)[-1] in ("sh", "bash") and "-c" in argv:
        for part in re.split(r"&&|;|\n|\|\|", argv[-1]):
            words = shlex.split(part.strip()) if part.strip() else []
            if words and words[0] == "exec":
                words = words[1:]
            if words and words[0].rsplit("/", 1)[-1] == "fio":
                return words
    return None


class FioRunner:
    """Answers ``fio`` from the performance model; anything else goes to the next runner."""

    def run(self, lab: Lab, pod: dict, container: dict, node: str, now: float) -> RunResult | None:
        argv = fio_argv(container)
        if argv is None:
            return None
        try:
            glob, jobs = parse_args(argv[1:])
            return self._run(lab, pod, container, node, glob, jobs)
        except FioUsageError as exc:
            return RunResult(1, str(exc), 0.5)

    def _run(self, lab: Lab, pod: dict, container: dict, node: str, glob: dict, jobs: list[dict]) -> RunResult:
        first = {**glob, **jobs[0]}
        path = first.get("filename") or (first.get("directory", "/") + "/" + first["name"])
        found = mounted_at(lab, pod, container, path)
        seed = f"{lab.options.get('seed', 1)}/{pod['metadata']['name']}"
        where = found.stored_at if found else None
        kept = lab.workloads.state.volume_data.get(where[0], {}).get(where[1]) if where else None
        existing = entry_size(kept) if kept else 0
        code, text, took = render(model(lab), volume_of(lab, node, found), glob, jobs, seed, existing=existing)
        size = _bytes(first.get("size", "1g"))
        if where and code == 0 and existing < size:  # the laid-out file: pseudo-random content, like fio's buffers
            put_file(lab, where[0], where[1], {"seed": f"fio/{where[0]}{where[1]}", "size": size}, size - existing)
        return RunResult(code, text, took)


def render(perf: PerfModel, vol: Volume, glob: dict, jobs: list[dict], seed: str,
           existing: int = 0) -> tuple[int, str, float]:
    """fio's result for ``jobs`` on ``vol`` whose IO file has ``existing`` bytes: (exit code, output text, lab
    seconds it takes)."""
    if glob.get("output-format") != "json":
        raise FioUsageError("lab fio: only --output-format=json is modelled")
    results, took = [], 0.0
    for index, job in enumerate(jobs):
        opts = {**glob, **job}
        rw = opts.get("rw") or opts.get("readwrite") or "read"
        if rw not in PATTERNS:
            raise FioUsageError(f"lab fio: rw={rw} is not modelled (read, write, randread, randwrite)")
        size = _bytes(opts.get("size", "1g"))
        if vol.size is not None and size > vol.size:
            return 1, (f"fio: pid=1, err=28/file:filesetup.c:240, func=write, error=No space left on device\n"
                       f"{opts['name']}: Laying out IO file ({size} bytes) failed"), took + 1.0
        ramp, runtime = _seconds(opts.get("ramp_time", "0")), _seconds(opts.get("runtime", "10"))
        if index == 0 and existing < size:
            took += (size - existing) / perf.disk_write_bw  # laying out the file (fio extends a short one)
        took += ramp + runtime
        results.append(job_json(perf, vol, opts, rw, size, runtime, index, random.Random(f"{seed}/{index}")))
    now = time.time()
    doc = {"fio version": FIO_VERSION, "timestamp": int(now), "timestamp_ms": int(now * 1000),
           "time": time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(now)), "jobs": results,
           "disk_util": [{"name": "nvme0n1", "read_ios": 0, "write_ios": 0, "read_merges": 0, "write_merges": 0,
                          "read_ticks": 0, "write_ticks": 0, "in_queue": 0, "util": 99.0}]}
    return 0, json.dumps(doc, indent=2), took


def service(perf: PerfModel, vol: Volume, direction: str, bs: int, fsync: bool, direct: bool, size: int) -> tuple[float, float]:
    """(QD1 latency µs of the I/O itself, extra µs per I/O for the fsync after it)."""
    if direction == "read":
        if not direct and size <= PAGE_CACHE_BYTES:
            return 2.0 + bs / 8e9 * 1e6, 0.0  # page cache
        lat = perf.disk_read_lat_us + bs / perf.disk_read_bw * 1e6
        if vol.drbd:
            lat += perf.drbd_read_overhead_us
            if not vol.local_replica:
                lat += perf.rtt_us + bs / perf.link_bw * 1e6
        return lat, 0.0
    local = perf.disk_write_lat_us + bs / perf.disk_write_bw * 1e6
    if not direct:
        local = 3.0 + bs / 8e9 * 1e6  # buffered: the page cache acknowledges
    lat = local
    if vol.drbd and vol.peers:
        remote = perf.rtt_us + bs / perf.link_bw * 1e6 + perf.disk_write_lat_us
        lat = max(local, remote) + perf.drbd_write_overhead_us
    flush = 0.0
    if fsync:
        flush = perf.disk_flush_us + (perf.rtt_us + 10.0 if vol.drbd and vol.peers else 0.0)
    return lat, flush


def throughput_iops(perf: PerfModel, vol: Volume, direction: str, bs: int, depth: int, lat: float, flush: float) -> float:
    per_io = lat + flush
    caps = [depth / (per_io * 1e-6)]
    if direction == "read":
        caps += [perf.disk_read_iops, perf.disk_read_bw / bs]
        if vol.drbd:
            caps = [c * perf.drbd_bw_efficiency for c in caps]
            if not vol.local_replica:
                caps.append(perf.link_bw / (bs + DRBD_HEADER))
    else:
        caps += [perf.disk_write_iops, perf.disk_write_bw / bs]
        if vol.drbd and vol.peers:
            caps = [c * perf.drbd_bw_efficiency for c in caps]
            caps.append(perf.link_bw / ((bs + DRBD_HEADER) * vol.peers))
    return min(caps)


def _lat_stats(mean_ns: float, cv: float, n: int, rng: random.Random, *, percentiles: bool) -> dict:
    sigma = math.sqrt(math.log(1 + cv * cv))
    mu = math.log(mean_ns) - sigma * sigma / 2
    nd = NormalDist()

    def q(p: float) -> int:
        z = nd.inv_cdf(min(p, 0.999999))
        tail = 1.0 + (0.5 if p >= 0.999 else 0.0) + (1.5 if p >= 0.9999 else 0.0)
        return int(math.exp(mu + sigma * z) * tail)

    out = {"min": int(mean_ns * 0.35), "max": int(mean_ns * (8 + 4 * rng.random())), "mean": mean_ns,
           "stddev": mean_ns * cv, "N": n}
    if percentiles:
        out["percentile"] = {key: q(float(key) / 100) for key in PERCENTILES}
    return out


def _zero_dir() -> dict:
    zero = {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0}
    return {"io_bytes": 0, "io_kbytes": 0, "bw_bytes": 0, "bw": 0, "iops": 0.0, "runtime": 0, "total_ios": 0,
            "short_ios": 0, "drop_ios": 0, "slat_ns": dict(zero), "clat_ns": dict(zero), "lat_ns": dict(zero),
            "bw_min": 0, "bw_max": 0, "bw_agg": 0.0, "bw_mean": 0.0, "bw_dev": 0.0, "bw_samples": 0, "iops_min": 0,
            "iops_max": 0, "iops_mean": 0.0, "iops_stddev": 0.0, "iops_samples": 0}


def job_json(perf: PerfModel, vol: Volume, opts: dict, rw: str, size: int, runtime: float, index: int,
             rng: random.Random) -> dict:
    direction = "read" if "read" in rw else "write"
    bs = _bytes(opts.get("bs") or opts.get("blocksize") or "4k")
    depth = int(opts.get("iodepth", "1"))
    if opts.get("ioengine", "psync") in ("psync", "sync", "pvsync"):
        depth = 1  # synchronous engines never have more than one I/O in flight
    numjobs = int(opts.get("numjobs", "1"))
    fsync = int(opts.get("fsync", "0")) > 0
    direct = opts.get("direct", "0") == "1"
    gtod = opts.get("gtod_reduce", "0") == "1"
    lat, flush = service(perf, vol, direction, bs, fsync, direct, size)
    iops = throughput_iops(perf, vol, direction, bs, depth, lat, flush) * numjobs
    iops *= 1 + rng.uniform(-perf.noise, perf.noise)
    runtime_ms = int(runtime * 1000)
    total = max(1, int(iops * runtime))
    # Little's law: with ``depth`` I/Os in flight, each waits depth/iops (minus the fsync share).
    mean_lat_ns = max(lat, depth * numjobs / iops * 1e6 - flush) * 1000
    cv = 0.22 if not vol.drbd else 0.35
    sec = _zero_dir()
    bw_bytes = int(iops * bs)
    sec.update({"io_bytes": total * bs, "io_kbytes": total * bs // 1024, "bw_bytes": bw_bytes, "bw": bw_bytes // 1024,
                "iops": iops, "runtime": runtime_ms, "total_ios": total,
                "bw_min": int(bw_bytes / 1024 * 0.9), "bw_max": int(bw_bytes / 1024 * 1.1), "bw_agg": 100.0,
                "bw_mean": bw_bytes / 1024, "bw_dev": bw_bytes / 1024 * 0.03, "bw_samples": max(1, int(runtime * 2)),
                "iops_min": int(iops * 0.9), "iops_max": int(iops * 1.1), "iops_mean": iops, "iops_stddev": iops * 0.03,
                "iops_samples": max(1, int(runtime * 2))})
    if not gtod:
        slat = 1500.0 + 500 * rng.random()
        sec["slat_ns"] = {"min": 600, "max": 90000, "mean": slat, "stddev": slat / 2, "N": total}
        sec["clat_ns"] = _lat_stats(mean_lat_ns - slat, cv, total, rng, percentiles=True)
        sec["lat_ns"] = _lat_stats(mean_lat_ns, cv, total, rng, percentiles=False)
    sync = {"total_ios": 0, "lat_ns": {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0}}
    if fsync and direction == "write":
        sync = {"total_ios": total, "lat_ns": _lat_stats(flush * 1000, 0.3, total, rng, percentiles=not gtod)}
    job_options = {k: v for k, v in opts.items() if k not in ("output-format",)}
    return {
        "jobname": opts["name"], "groupid": index if opts.get("stonewall") else 0, "error": 0, "eta": 0,
        "elapsed": int(runtime + _seconds(opts.get("ramp_time", "0"))) + 1, "job options": job_options,
        "read": sec if direction == "read" else _zero_dir(), "write": sec if direction == "write" else _zero_dir(),
        "trim": _zero_dir(), "sync": sync, "job_runtime": runtime_ms * numjobs,
        "usr_cpu": round(2 + 6 * rng.random(), 6), "sys_cpu": round(10 + 20 * rng.random(), 6),
        "ctx": total, "majf": 0, "minf": 30,
        "iodepth_level": {"1": 100.0 if depth == 1 else 0.1, "2": 0.0, "4": 0.0, "8": 0.0, "16": 0.0, "32": 0.0,
                          ">=64": 0.0 if depth == 1 else 99.9},
        "latency_depth": depth, "latency_target": 0, "latency_percentile": 100.0, "latency_window": 0,
    }

