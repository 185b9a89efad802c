"""The failover drill's record writer and reader, run by the lab's kubelet.

06 deploys a busybox loop (``runbook_lib.drill_records.WRITER_SCRIPT``, recognised here by its
marker) that appends one record per interval to a file on the volume, fsyncs it and only
then prints ``ack <record>``. The lab runs that loop as a process on the pod's node:

- A record is ``<seq> <unix time> <pod> <nonce> <sha256(body)[:16]>``; the time is the
  cluster's clock (the Talos epoch plus lab seconds, the clock every lab timestamp uses) at
  the moment it was formed, so gaps are what the cluster saw, in cluster seconds.
- The interval is the script's ``INTERVAL`` in lab seconds, but never less than
  :data:`MIN_REAL_INTERVAL` real seconds: ``sleep 0.2`` at ``time_scale`` 100 would otherwise be
  500 records per real second, and the record file (and the lab's state) would grow with how
  long a busy machine takes to run the drill.
- Each append goes through :func:`.drbd.append`: suspended I/O blocks the loop (the record
  is written and acknowledged when I/O resumes), an I/O error kills the container, which
  restarts after a back-off and continues after the last record it can read.
- The process lives on its node, not in the API: it dies with the node (power, reboot) or
  when the kubelet can tell the pod is gone; a node cut off from the API keeps running it.
"""

from __future__ import annotations

import hashlib
import math

from ...drill_records import MARKER, READER_MARKER
from ..cluster import Lab
from ..kubernetes import objects as ko
from ..storage import drbd
from .logs import append_log
from .state import RunResult
from .volume_data import resolve_path

RESTART_BACKOFF = 10.0  # lab seconds before a crashed container runs again
MAX_WRITES_PER_TICK = 5000
MIN_REAL_INTERVAL = 0.02  # real seconds between records at least: 50 per real second (2 cluster-s at scale 100)


def _writer_container(pod: dict) -> dict | None:
    for c in pod["spec"].get("containers") or []:
        if any(MARKER in str(word) for word in (c.get("command") or []) + (c.get("args") or [])):
            return c
    return None


def _env(container: dict, name: str, default: str) -> str:
    return next((str(e.get("value", default)) for e in container.get("env") or [] if e.get("name") == name), default)


def checksum(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _cluster_time(lab: Lab, t: float) -> float:
    """Lab time ``t`` on the cluster's clock (what ``date +%s`` prints on a lab node)."""
    return lab.talos.epoch + t


def tick(lab: Lab, now: float) -> None:
    writers: dict[str, dict] = lab.drbd.writers
    pods = {p["metadata"]["uid"]: p for p in ko.objects(lab, "", "pods")}
    for uid, pod in pods.items():
        if uid in writers or pod["metadata"].get("deletionTimestamp"):
            continue
        c = _writer_container(pod)
        rt = lab.workloads.state.pods.get(uid)
        if c is None or rt is None or rt.stage != "running" or rt.started.get(c["name"], now + 1) > now:
            continue
        path = _env(c, "RECORDS", "/data/records.log")
        target = resolve_path(lab, pod, c, path)
        if target is None:
            continue
        node = lab.talos.nodes[rt.node]
        writers[uid] = {"namespace": pod["metadata"]["namespace"], "pod": pod["metadata"]["name"], "container": c["name"],
                        "node": rt.node, "boot_id": node.boot_id, "rd": target[0], "path": target[1],
                        "interval": max(_interval(c), MIN_REAL_INTERVAL * lab.clock.scale), "next_at": rt.started[c["name"]],
                        "seq": None, "pending": None}
    for uid, w in list(writers.items()):
        node = lab.talos.nodes.get(w["node"])
        gone = uid not in pods and lab.node_reachable(w["node"])
        if node is None or not node.kubelet_ready(now) or node.boot_id != w["boot_id"] or gone:
            del writers[uid]
            continue
        _run(lab, w, now)


def _run(lab: Lab, w: dict, now: float) -> None:
    acks: list[tuple[float, str]] = []  # (lab time the line was printed, line)
    for _ in range(MAX_WRITES_PER_TICK):
        if w["next_at"] > now:
            break
        if w["pending"] is None:
            if w["seq"] is None:
                lines = drbd.read(lab, w["rd"], w["node"], w["path"])
                if lines is None:
                    break  # no UpToDate data reachable: the read blocks (on-no-data-accessible suspend-io)
                w["seq"] = _last_seq(lines)
            w["seq"] += 1
            nonce = checksum(f"{w['pod']}/{w['seq']}")[:12]
            body = f"{w['seq']} {_cluster_time(lab, w['next_at']):.6f} {w['pod']} {nonce}"
            w["pending"] = f"{body} {checksum(body)}"
        outcome = drbd.append(lab, w["rd"], w["node"], w["path"], w["pending"])
        if outcome == "blocked":
            w["blocked"] = True
            break
        if outcome == "error":
            acks.append((now, "sh: write error: I/O error"))
            w.update(seq=None, pending=None, next_at=now + RESTART_BACKOFF)
            break
        acks.append((now if w.get("blocked") else w["next_at"], f"ack {w['pending']}"))
        w["pending"] = None
        # after a freeze the loop sleeps from the moment the write returned
        w["next_at"] = (now if w.pop("blocked", False) else w["next_at"]) + w["interval"]
    for at, line in acks:
        append_log(lab, w["namespace"], w["pod"], w["container"], line, at=at)


def _interval(container: dict) -> float:
    try:
        value = float(_env(container, "INTERVAL", "1"))
    except ValueError:
        return 1.0  # busybox sleep would fail and the loop stop; the drill then sees no records at all
    return value if value > 0 else 0.0


def _last_seq(lines: list[str]) -> int:
    """The script's rule: the last line's first field, else the number of lines."""
    if not lines:
        return 0
    first = lines[-1].split(" ", 1)[0]
    return int(first) if first.isdigit() else len(lines)


class RecordReader:
    """Plays :data:`~runbook_lib.drill_records.READER_SCRIPT`: the replica's lines as DRBD serves them on the
    pod's node, digested block by block (``DIGESTS``) and printed for the ranges in ``LINES``."""

    def run(self, lab: Lab, pod: dict, container: dict, node: str, now: float) -> RunResult | None:
        if not any(READER_MARKER in str(w) for w in (container.get("command") or []) + (container.get("args") or [])):
            return None
        path = _env(container, "RECORDS", "/data/records.log")
        target = resolve_path(lab, pod, container, path)
        lines = drbd.read(lab, target[0], node, target[1]) if target else None
        if lines is None:
            return RunResult(1, f"grep: {path}: Input/output error", 0.5)  # no UpToDate data reachable
        out = [f"lines {len(lines)}"]
        max_blocks = int(_env(container, "MAX_BLOCKS", "1000"))
        for r in _env(container, "DIGESTS", "").split():
            a, rest = r.split("-", 1)
            b, size = rest.split(":", 1)
            first, last = int(a), min(int(b), len(lines))
            size = max(int(size), math.ceil((last - first + 1) / max_blocks))
            for i in range(first, last + 1, size):
                block = lines[i - 1:min(i + size - 1, last)]
                digest = hashlib.sha256("".join(x + "\n" for x in block).encode()).hexdigest()
                out.append(f"block {i} {i + len(block) - 1} {digest}")
        for r in _env(container, "LINES", "").split():
            a, b = (int(x) for x in r.split("-", 1))
            out += [f"line {i} {lines[i - 1]}" for i in range(a, min(b, len(lines)) + 1)]
        return RunResult(0, "\n".join(out), 0.5 + len(lines) / 200_000)  # sha256sum at ~20 MB/s of busybox
