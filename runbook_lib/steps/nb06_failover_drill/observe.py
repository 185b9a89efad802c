"""Observing the cluster during the drill: nodes, the writer's pods, its replicas and acknowledgements."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pandas as pd
import urllib3
from kubernetes.client.rest import ApiException

from ... import kinds, kube
from ...cluster_time import ClusterClock, parse_date_header, parse_time
from ...drill_records import (
    parse_acks,
)
from ...errors import RunbookError
from ...linstor import resources_frame
from ...services.clients import linstor
from ...session import Session
from ...waiting import wait_until
from .manifests import APP_LABEL, TAINT
from .writer import Writer

POLL = 0.02  # seconds between observations: the lab runs 100x faster than a cluster


@dataclass
class Snapshot:
    """One observation: what the runbook saw at ``at`` (wall clock)."""

    at: float
    api: bool = True
    nodes: dict[str, kube.NodeState] = field(default_factory=dict)
    pods: list[dict] = field(default_factory=list)
    replicas: pd.DataFrame | None = None
    standalone: list[str] = field(default_factory=list)  # "node/peer" connections DRBD gave up on (split brain)
    node_objs: dict[str, dict] = field(default_factory=dict)  # the Node objects (their transition timestamps)
    #: (sent, received), wall clock, of the answer this observation rests on: the failed request when the API was
    #: unavailable, else the replicas' (what was seen held at some instant between the two)
    answered: tuple[float, float] | None = None

    def ready_since(self, node: str, ready: bool) -> float | None:
        """When ``node``'s Ready condition last turned (not) ready, on the cluster's clock; None if it is not so now."""
        cond = kube.condition(self.node_objs.get(node), "Ready")
        if not cond or (cond.get("status") == "True") != ready:
            return None
        return parse_time(cond.get("lastTransitionTime"))

    def taint_added(self, node: str) -> float | None:
        taints = ((self.node_objs.get(node) or {}).get("spec") or {}).get("taints") or []
        return next((parse_time(t.get("timeAdded")) for t in taints if t.get("key") == TAINT), None)

    def started(self, pod: dict) -> float | None:
        """When the writer container of ``pod`` started running (its ``startedAt``), on the cluster's clock."""
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        running = next((((c.get("state") or {}).get("running") or {}) for c in statuses if c.get("name") == "writer"), {})
        return parse_time(running.get("startedAt"))

    def writer(self) -> dict | None:
        running = [p for p in self.pods if not p["metadata"].get("deletionTimestamp")
                   and (p.get("status") or {}).get("phase") == "Running"
                   and kube.condition(p, "Ready").get("status") == "True"]
        return running[0] if running else None

    def writer_node(self) -> str | None:
        pod = self.writer()
        return pod["spec"].get("nodeName") if pod else None

    def ready(self, node: str) -> bool:
        return node in self.nodes and self.nodes[node].ready == "True"

    def tainted(self, node: str) -> bool:
        return node in self.nodes and TAINT in self.nodes[node].taints

    def diskful(self) -> pd.DataFrame:
        if self.replicas is None or self.replicas.empty:
            return pd.DataFrame(columns=["node", "disk_state", "diskless", "tiebreaker", "connected_peers", "disconnected_peers"])
        return self.replicas[~self.replicas["diskless"].astype(bool)]

    def in_sync(self) -> bool:
        d = self.diskful()
        return (not d.empty and bool((d["disk_state"] == "UpToDate").all())
                and bool((d["disconnected_peers"].fillna(0) == 0).all()))

    def sync_progress(self) -> list[dict]:
        d = self.diskful()
        return [{"node": r.node, "disk_state": r.disk_state} for r in d.itertuples()]


class Observer:
    """Polls nodes, the writer's pods, its LINSTOR resource and the writer's acknowledgements."""

    def __init__(self, session: Session, writer: Writer) -> None:
        self.session, self.writer = session, writer
        self.api = session.kube()
        self.scale = session.params.lab.time_scale if session.params.target == "lab" else 1.0
        self.samples: list[dict] = []  # resync progress
        self.looks: list[float] = []  # when each observation was taken
        self.clock = ClusterClock(rate=self.scale)  # the lab's clock runs time_scale times faster
        self._asked: tuple[float, float] | None = None  # the last request's (sent, received)

    def look(self) -> Snapshot:
        snap = Snapshot(at=time.time())
        self.looks.append(snap.at)
        self._asked = None  # an observation rests on its own requests only
        try:
            items = self._get(kinds.NODE.collection()).get("items") or []
            snap.node_objs = {n["metadata"]["name"]: n for n in items}
            snap.nodes = {name: _node_state(n) for name, n in snap.node_objs.items()}
            selector = ",".join(f"{k}={v}" for k, v in {**APP_LABEL, "app.kubernetes.io/component": "writer"}.items())
            snap.pods = self._get(kinds.POD.collection(self.writer.namespace), [("labelSelector", selector)])["items"]
            if self.writer.pv:
                sent = time.time()
                self._asked = (sent, sent)
                raw = linstor(self.session).resources_of(self.writer.pv)
                self._asked = (sent, time.time())
                snap.replicas = resources_frame(raw)
                snap.standalone = standalone_connections(raw)
            snap.answered = self._asked
        except (RunbookError, ApiException, OSError, ValueError, KeyError, urllib3.exceptions.HTTPError, httpx.HTTPError):
            snap.api = False  # an outage is an observation, not an error (quorum loss takes the API with it)
            snap.answered = (self._asked[0], time.time()) if self._asked else (snap.at, time.time())
        if snap.api and time.time() - self.writer.logs_read > 0.05:
            self.collect_acks(snap.pods)
        if snap.replicas is not None:
            self.samples.append({"t": snap.at, "replicas": snap.sync_progress()})
        return snap

    def _get(self, path: str, query: list[tuple[str, str]] | None = None) -> dict:
        """One GET, no retries (an outage is an observation); its ``Date`` header bounds the cluster's clock, an
        error's too (an API server without etcd still answers, dated)."""
        _, url, headers, _, _ = self.api.param_serialize("GET", path, query_params=query or [],
                                                         header_params={"Accept": "application/json"},
                                                         auth_settings=["BearerToken"])
        sent = time.time()
        self._asked = (sent, sent)
        resp = self.api.call_api("GET", url, header_params=headers, _request_timeout=10)
        resp.read()
        self._asked = (sent, time.time())
        self.clock.sample(*self._asked, parse_date_header(resp.headers.get("Date")))
        if resp.status >= 400:
            raise kube.ApiCallError("GET", path, resp.status, resp.data.decode(errors="replace")[:300])
        return json.loads(resp.data)

    def cluster(self, wall: float) -> float:
        """An observer time on the cluster's clock."""
        return self.clock.at(wall)

    def collect_acks(self, pods: list[dict]) -> None:
        for pod in pods:
            log = _log(self.api, pod["metadata"]["namespace"], pod["metadata"]["name"])
            for e in parse_acks(log or ""):
                self.writer.acks.setdefault(e.line, e)
        self.writer.logs_read = time.time()

    def until(self, done: Callable[[Snapshot], bool], what: str, timeout: float) -> Snapshot:
        """Observe until ``done``; the error names what was awaited, how long, and the last observation."""
        return wait_until(lambda: (done(s := self.look()), s), what=what, timeout=timeout, describe=describe,
                          interval=POLL, max_interval=POLL * 5)

    def clock_uncertainty_s(self) -> float | None:
        """How far the observer's view of the cluster's clock can be off (None before any dated answer)."""
        u = self.clock.uncertainty()
        return round(u, 2) if math.isfinite(u) else None

    def resolution_s(self) -> float:
        """Median time between observations, in cluster seconds: how precise the fallback (first-seen) times are."""
        gaps = sorted(b - a for a, b in zip(self.looks, self.looks[1:], strict=False))
        return round(gaps[len(gaps) // 2] * self.scale, 2) if gaps else 0.0


def _node_state(node: dict) -> kube.NodeState:
    ready = next((c.get("status") for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
                 "Unknown")
    return kube.NodeState(name=node["metadata"]["name"], ready=ready or "Unknown",
                          taints=[t.get("key") for t in (node.get("spec") or {}).get("taints") or []],
                          os_image=((node.get("status") or {}).get("nodeInfo") or {}).get("osImage", ""))


def standalone_connections(resources: list[dict]) -> list[str]:
    """``node/peer`` pairs whose DRBD connection is StandAlone: a split brain waits for a human."""
    out = []
    for r in resources:
        conns = (((r.get("layer_object") or {}).get("drbd") or {}).get("connections") or {})
        out += [f"{r.get('node_name')}/{peer}" for peer, c in sorted(conns.items()) if (c or {}).get("message") == "StandAlone"]
    return out


def describe(s: Snapshot) -> str:
    if not s.api:
        return "Kubernetes API unavailable"
    nodes = ", ".join(f"{n}={st.ready}{'+lost-quorum' if TAINT in st.taints else ''}" for n, st in sorted(s.nodes.items()))
    pods = ", ".join(f"{p['metadata']['name']}@{p['spec'].get('nodeName')}:{(p.get('status') or {}).get('phase')}" for p in s.pods)
    reps = ", ".join(f"{r['node']}={r['disk_state']}" for r in s.sync_progress())
    return f"nodes {nodes}; writer pods {pods or 'none'}; replicas {reps or 'unknown'}"


def _log(api, namespace: str, name: str) -> str | None:
    """None when the node's kubelet (or the API server) is unreachable: try again later."""
    return kube.pod_log(api, namespace, name, timeout=5)
