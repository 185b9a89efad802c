"""Reaction time: how long after the lab reaches a state the runbook's wait returns.

On a fresh 3-node lab (private lab directory) the benchmark makes each state happen for real
and waits for it with the library's own waits, as the runbooks do:

- node Ready: power a node off and on again (lab faults ``node-down`` then clear); the wait is
  the one 01 uses after a reset (``kube.node_states`` polled by ``waiting.wait_until``);
- pod Running: create a pod that the lab's kubelet starts; the wait polls the pod like 04/05;
- snapshot readyToUse: a VolumeSnapshot whose status an API client marks ready (as the
  snapshot-controller does); the wait is ``snapshots.wait_ready`` itself.

The lab records the real instant (``time.monotonic``, one clock for every process) at which each
object reached its state (``GET /lab/v1/stats`` milestones); the reaction is the wait's return
minus that instant.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPEAT = 5
TARGET_S = 0.5


@dataclass
class Reaction:
    what: str
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def worst(self) -> float:
        return max(self.samples)


def _milestone(url: str, what: str, name: str, after: float) -> float:
    import httpx

    for _ in range(100):
        stones = httpx.get(f"{url}/lab/v1/stats", timeout=30).json()["milestones"]
        hits = [m["at"] for m in stones if m["what"] == what and m["name"] == name and m["at"] >= after]
        if hits:
            return min(hits)
        time.sleep(0.05)
    raise RuntimeError(f"the lab recorded no {what!r} for {name}")


def node_ready(url: str, api: Any, lab_dir: Path, node: str) -> float:
    from runbook_lib.kube import node_states
    from runbook_lib.lab import control
    from runbook_lib.waiting import wait_until

    def state_is(value: str):
        def probe():
            state = node_states(api).get(node)
            return (state is not None and state.ready == value), state
        return probe

    control.fault_add("node-down", node, d=lab_dir)
    wait_until(state_is("Unknown"), what=f"{node} down", timeout=60)
    start = time.monotonic()
    control.fault_clear(d=lab_dir)
    wait_until(state_is("True"), what=f"{node} Ready", timeout=60)  # the wait 01 does after a reset
    returned = time.monotonic()
    return returned - _milestone(url, "node Ready", node, start)


def pod_running(url: str, api: Any, i: int) -> float:
    from runbook_lib import kube
    from runbook_lib.waiting import wait_until

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"reaction-{i}", "namespace": "default"},
           "spec": {"restartPolicy": "Never", "containers": [
               {"name": "c", "image": "docker.io/library/busybox:1.37", "command": ["sleep", "3600"]}]}}
    start = time.monotonic()
    kube.server_side_apply(api, pod)
    path = kube.object_path(pod)

    def probe():
        obj = kube.get_object(api, path)
        return ((obj or {}).get("status") or {}).get("phase") == "Running", obj

    wait_until(probe, what=f"pod {pod['metadata']['name']} Running", timeout=120)
    returned = time.monotonic()
    reaction = returned - _milestone(url, "pod Running", pod["metadata"]["name"], start)
    kube.request(api, "DELETE", path)
    return reaction


def snapshot_ready(url: str, api: Any, i: int, delay: float) -> float:
    from runbook_lib import kube
    from runbook_lib.steps import nb05_snapshots as snapshots

    vs = {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
          "metadata": {"name": f"reaction-{i}", "namespace": "default"},
          "spec": {"volumeSnapshotClassName": "none", "source": {"persistentVolumeClaimName": "none"}}}
    kube.server_side_apply(api, vs)
    path = kube.object_path(vs)

    def mark_ready() -> None:  # what the snapshot-controller does, `delay` seconds later
        time.sleep(delay)
        kube.request(api, "PATCH", path + "/status", body={"status": {"readyToUse": True}},
                     content_type="application/merge-patch+json")

    start = time.monotonic()
    threading.Thread(target=mark_ready, daemon=True).start()
    session = SimpleNamespace(kube=lambda: api, params=SimpleNamespace(node_timeout=60))
    snapshots.wait_ready(session, vs)  # the wait 05 does
    returned = time.monotonic()
    reaction = returned - _milestone(url, "snapshot readyToUse", vs["metadata"]["name"], start)
    kube.request(api, "DELETE", path)
    return reaction


def _snapshot_crd(api: Any) -> None:
    from runbook_lib import kube
    from runbook_lib.lab.storage.snapshot_chart import crd as _crd

    crd = _crd("VolumeSnapshot", "volumesnapshots", True, ["vs"])
    kube.request(api, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd)


def measure(echo=print, repeat: int = REPEAT) -> list[Reaction]:
    from runbook_lib import kube
    from runbook_lib.kube import node_states
    from runbook_lib.lab import control
    from runbook_lib.waiting import wait_until

    with tempfile.TemporaryDirectory(prefix="runbook-bench-reaction-") as tmp:
        d = Path(tmp) / "lab"
        try:
            conn = control.start(control.default_options(), d)
            api = kube.connect(conn["kubeconfig"])
            wait_until(lambda: (len([s for s in node_states(api).values() if s.ready == "True"]) == 3, None),
                       what="3 nodes Ready", timeout=120)
            _snapshot_crd(api)
            # The state arrives at varying points of the wait's polling: 0.1 to 2 s into it.
            delays = [0.1 + 1.9 * i / max(1, repeat - 1) for i in range(repeat)]
            out = [
                Reaction("node Ready (after power off/on)",
                         [node_ready(conn["url"], api, d, f"lab-cp-{1 + i % 3}") for i in range(repeat)]),
                Reaction("pod Running", [pod_running(conn["url"], api, i) for i in range(repeat)]),
                Reaction("snapshot readyToUse", [snapshot_ready(conn["url"], api, i, delays[i]) for i in range(repeat)]),
            ]
        finally:
            control.stop(d)
    echo("reaction: measured")
    return out


def report(results: list[Reaction]) -> list[str]:
    out = [f"Reaction: seconds from the lab reaching a state to the runbook's wait returning ({len(results[0].samples)} "
           f"samples each; target <= {TARGET_S} s)"]
    for r in results:
        ok = "meets target" if r.worst <= TARGET_S else "MISSES target"
        out.append(f"  {r.what:<34} median {r.median:5.3f} s, worst {r.worst:5.3f} s  ({ok})")
    return out
