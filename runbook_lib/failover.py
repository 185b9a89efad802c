"""Notebook 06: a failover drill that proves no acknowledged write is lost.

The drill, in the order the notebook runs it:

1. **Preconditions** (nothing changes until they hold): the class places three diskful
   replicas (or two and a tie-breaker), the HA controller runs on every replica's node,
   LINSTOR has ``quorum majority`` on the writer's resource with ``on-no-quorum suspend-io``,
   every replica is UpToDate, and the node to fault is not the last healthy one. Before the first
   fault, and again right before each scenario's: its approval (``drill <node>``,
   ``quorum-loss <writer's node>``), no scenario taking down an etcd majority (refused on a real
   cluster and with ``lab.enforce_safety``), the cluster-wide storage gate of
   :mod:`.storage_gates`, and an etcd snapshot when a control-plane node is faulted.
2. **A writer** (a Deployment of one busybox pod on the replicated class) appends
   sequence-numbered, checksummed records to a file, fsyncs each and only then prints
   ``ack <record>``. The runbook collects the acknowledgements from the pod logs as it goes.
3. **The fault** hits the writer's node: ``talosctl reboot`` (the failure test) or ``shutdown``
   (a planned-maintenance test: Talos cordons and drains first), approval ``drill <node>``, or in
   the lab a power loss (``node-down``) or a network cut (``isolate``) through ``runbook lab fault``.
   One observer loop timestamps every phase: node NotReady, the HA controller's
   ``drbd.linbit.com/lost-quorum`` taint, the pod running elsewhere, writes acknowledged again,
   the node back, the resync done.
4. **The node comes back** (fault cleared, node powered on, or its reboot finishing), in a
   ``finally`` so a failed step never leaves it down.
5. **Quorum loss**: both other replicas' nodes go away at once. The writer's primary has no
   quorum, so I/O must freeze (``suspend-io``) rather than go on alone; when the nodes return
   the writes resume and nothing diverged.
6. **Verification**: the writer is stopped and a reader pod on every diskful replica's node
   reads the record file by digest (only blocks that differ from the acknowledged records are
   read line by line, in bounded ranges: no log cap or rotation can drop a record). Every
   acknowledged record must be there, unchanged, in every copy; the copies must be identical;
   checksums must match. Lost and diverged records are named and counted.

Times are cluster seconds from the cluster's own timestamps (a node condition's
``lastTransitionTime``, the taint's ``timeAdded``, the container's ``startedAt``, the writer's
record stamps); what carries no timestamp is timed by the observer's first sighting, put on the
cluster's clock through the API server's ``Date`` header (:mod:`.cluster_time`). In the lab that
clock runs ``lab.time_scale`` times faster than the host's, so the numbers read like a real cluster's.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pandas as pd
import urllib3
import yaml
from kubernetes.client.rest import ApiException

from . import kinds, kube, storage_gates
from .cluster_time import ClusterClock, parse_date_header, parse_time
from .csi import PROVISIONER
from .drill_records import (
    MAX_BLOCKS,
    READER_SCRIPT,
    WRITER_SCRIPT,
    CopyReading,
    Entry,
    Verdict,
    expected_lines,
    judge,
    parse_acks,
    parse_reader,
)
from .errors import PreconditionFailed, RunbookError
from .etcd_backup import snapshot_before
from .linstor import resources_frame
from .services.clients import linstor
from .services.objects import create
from .services.pods import wait_finished
from .session import Session
from .talos import NodeRef
from .waiting import wait_until

MOUNT = "/data"
RECORDS = f"{MOUNT}/records.log"
NAME = "runbook-failover"
APP_LABEL = {"app.kubernetes.io/name": NAME}
TAINT = "drbd.linbit.com/lost-quorum"
POLL = 0.02  # seconds between observations: the lab runs 100x faster than a cluster



# ----------------------------------------------------------------------------- manifests (pure)


def writer_claim(name: str, namespace: str, storage_class: str, size: str) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace,
                                                                              "labels": dict(APP_LABEL)},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                     "resources": {"requests": {"storage": size}}}}


def writer_deployment(name: str, namespace: str, claim: str, image: str, interval_s: float, replicas: int = 1,
                      prefer: tuple[str, list[str]] | None = None, only: list[str] | None = None) -> dict:
    """The writer; ``prefer`` = (operator, nodes): ``("In", [n])`` to start on ``n``, ``("NotIn", ns)`` to keep off them.

    A preference, not a rule: after the fault the pod must be free to go anywhere among ``only`` (the storage
    nodes: the drill faults the writer's node, and a compute-only node is never touched).
    """
    labels = {**APP_LABEL, "app.kubernetes.io/component": "writer"}
    node_affinity: dict = {}
    if prefer:
        node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = [{"weight": 100, "preference": {
            "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": prefer[0], "values": prefer[1]}]}}]
    if only:
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": sorted(only)}]}]}
    affinity = {"nodeAffinity": node_affinity} if node_affinity else None
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"replicas": replicas, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 10, **({"affinity": affinity} if affinity else {}),
                                           "containers": [{"name": "writer", "image": image,
                                                           "command": ["sh", "-c", WRITER_SCRIPT],
                                                           "env": [{"name": "RECORDS", "value": RECORDS},
                                                                   {"name": "INTERVAL", "value": f"{interval_s:g}"}],
                                                           "volumeMounts": [{"name": "data", "mountPath": MOUNT}]}],
                                           "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}}}


def reader_pod(name: str, namespace: str, claim: str, image: str, node: str, digests: str, lines: str) -> dict:
    """Reads the record file on ``node`` (a diskful replica: DRBD serves the read from that disk).

    It prints block digests and a few bounded ranges of lines (``READER_SCRIPT``), never the whole file:
    what it prints stays far below any log cap or rotation, however long the drill ran.
    """
    env = {"RECORDS": RECORDS, "DIGESTS": digests, "LINES": lines, "MAX_BLOCKS": str(MAX_BLOCKS)}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": {
                **APP_LABEL, "app.kubernetes.io/component": "reader"}},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "nodeName": node,
                     "tolerations": [{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}],
                     "containers": [{"name": "reader", "image": image, "command": ["sh", "-c", READER_SCRIPT],
                                     "env": [{"name": k, "value": v} for k, v in env.items()],
                                     "volumeMounts": [{"name": "data", "mountPath": MOUNT, "readOnly": True}]}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}]}}


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (the writer's and reader's scripts) as literal blocks, readable as the shell sees them."""

    def ignore_aliases(self, data: object) -> bool:  # shared label dicts print in full, not as &id001 anchors
        return True


_LiteralDumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def manifests_yaml(docs: list[dict]) -> str:
    """The manifests as YAML a reader can follow: scripts as literal blocks, not one escaped line."""
    return "---\n".join(yaml.dump(d, Dumper=_LiteralDumper, sort_keys=False) for d in docs)


# ----------------------------------------------------------------------------- the cluster, observed


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


@dataclass
class Writer:
    claim: dict
    deployment: dict
    pv: str | None = None  # the LINSTOR resource (named after the PV)
    acks: dict[str, Entry] = field(default_factory=dict)  # record line -> entry, as acknowledged in the logs
    records: dict[int, Entry] = field(default_factory=dict)  # the file as read back (verification)
    readers: list[dict] = field(default_factory=list)  # reader pods created (kept with failover.keep_test_objects)
    logs_read: float = 0.0

    @property
    def namespace(self) -> str:
        return self.deployment["metadata"]["namespace"]


class Observer:
    """Polls nodes, the writer's pods, its LINSTOR resource and the writer's acknowledgements."""

    def __init__(self, session: Session, writer: Writer) -> None:
        self.session, self.writer = session, writer
        self.api = session.kube()
        self.scale = session.params.lab.time_scale if session.params.target == "lab" else 1.0
        self.samples: list[dict] = []  # resync progress
        self.looks: list[float] = []  # when each observation was taken
        self.clock = ClusterClock(rate=self.scale)  # the lab's clock runs time_scale times faster

    def look(self) -> Snapshot:
        snap = Snapshot(at=time.time())
        self.looks.append(snap.at)
        try:
            items = self._get(kinds.NODE.collection()).get("items") or []
            snap.node_objs = {n["metadata"]["name"]: n for n in items}
            snap.nodes = {name: _node_state(n) for name, n in snap.node_objs.items()}
            selector = ",".join(f"{k}={v}" for k, v in {**APP_LABEL, "app.kubernetes.io/component": "writer"}.items())
            snap.pods = self._get(kinds.POD.collection(self.writer.namespace), [("labelSelector", selector)])["items"]
            if self.writer.pv:
                raw = linstor(self.session).resources_of(self.writer.pv)
                snap.replicas = resources_frame(raw)
                snap.standalone = standalone_connections(raw)
        except (RunbookError, ApiException, OSError, ValueError, KeyError, urllib3.exceptions.HTTPError, httpx.HTTPError):
            snap.api = False  # an outage is an observation, not an error (quorum loss takes the API with it)
        if snap.api and time.time() - self.writer.logs_read > 0.05:
            self.collect_acks(snap.pods)
        if snap.replicas is not None:
            self.samples.append({"t": snap.at, "replicas": snap.sync_progress()})
        return snap

    def _get(self, path: str, query: list[tuple[str, str]] | None = None) -> dict:
        """One GET, no retries (an outage is an observation); its ``Date`` header bounds the cluster's clock."""
        _, url, headers, _, _ = self.api.param_serialize("GET", path, query_params=query or [],
                                                         header_params={"Accept": "application/json"},
                                                         auth_settings=["BearerToken"])
        sent = time.time()
        resp = self.api.call_api("GET", url, header_params=headers, _request_timeout=10)
        resp.read()
        if resp.status >= 400:
            raise kube.ApiCallError("GET", path, resp.status, resp.data.decode(errors="replace")[:300])
        self.clock.sample(sent, time.time(), parse_date_header(resp.headers.get("Date")))
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


# ----------------------------------------------------------------------------- preconditions


@dataclass
class Preconditions:
    storage_class: dict
    ha_ready: dict[str, bool]  # node -> an HA controller agent runs there


def check_setup(session: Session) -> Preconditions:
    """The class, the HA controller and the approvals, before anything is created.

    On a real cluster (or with ``lab.enforce_safety``) ``failover.node`` must name the node to fault,
    so ``drill <node>`` and ``quorum-loss <node>`` are checked here, before the first change.
    """
    api = session.kube()
    p = session.params
    if p.enforces_safety and p.failover.node is None:
        raise PreconditionFailed("failover.node: set the node to fault (the writer starts there); on a real cluster "
                                 "the drill's approvals must name a known node before anything starts")
    if p.failover.node:
        _approvals(session, "failover", p.failover.node, "failover drill")
        if p.failover.quorum_loss:
            _approvals(session, "quorum-loss", p.failover.node, "quorum-loss drill")
    sc = kube.get_object(api, kinds.STORAGE_CLASS.path(p.failover.storage_class))
    if sc is None:
        raise PreconditionFailed(f"StorageClass {p.failover.storage_class!r} does not exist: run 04-storage-classes first "
                                 "(or set failover.storage_class)")
    params = sc.get("parameters") or {}
    replicas = int(params.get(f"{PROVISIONER}/placementCount", params.get(f"{PROVISIONER}/autoPlace", "1")))
    session.check(f"class {p.failover.storage_class} places at least 2 diskful replicas", replicas >= 2 and sc.get("provisioner") == PROVISIONER,
                  f"{sc.get('provisioner')}, placementCount {replicas}", f"{PROVISIONER}, 3 (or 2 + a tie-breaker)")
    if replicas < 2:
        raise PreconditionFailed(f"StorageClass {p.failover.storage_class!r} keeps {replicas} replica: there is nothing to fail over to")
    if p.failover.quorum_loss:
        _refuse_certain_etcd_loss(session, replicas)
    pods = kube.list_objects(api, kinds.POD.collection(p.piraeus.namespace), "app.kubernetes.io/component=ha-controller")
    ready = {pod["spec"].get("nodeName"): kube.condition(pod, "Ready").get("status") == "True" for pod in pods}
    storage_nodes = [n.name for n in session.storage_nodes]
    ok = all(ready.get(n) for n in storage_nodes)
    session.check("HA controller runs on every node", ok, {n: ready.get(n, False) for n in storage_nodes}, "Ready everywhere")
    if not ok:
        raise PreconditionFailed("the Piraeus HA controller (DaemonSet ha-controller) is not ready on every node: without it a "
                                 "crashed node's pod waits ~15 minutes for Kubernetes to give up its volume. Check "
                                 "LinstorCluster.spec.highAvailabilityController and the ha-controller pods.")
    return Preconditions(sc, ready)


def linstor_property(session: Session, resource: str, key: str) -> tuple[str | None, str]:
    """A DRBD option as the resource gets it: its definition, its group, or the controller (value, where)."""
    client = linstor(session)
    rd = client.resource_definition(resource)
    if key in (rd.get("props") or {}):
        return rd["props"][key], "resource definition"
    group = rd.get("resource_group_name")
    if group:
        rg = client.resource_group(group)
        if key in (rg.get("props") or {}):
            return rg["props"][key], f"resource group {group}"
    ctrl = client.controller_properties()
    return (ctrl.get(key), "controller") if key in ctrl else (None, "unset")


def check_resource(session: Session, writer: Writer, snap: Snapshot, target: str) -> None:
    """Replica layout, quorum and sync state of the writer's volume; the target is not the last healthy node."""
    replicas = snap.replicas if snap.replicas is not None else pd.DataFrame()
    diskful = snap.diskful()
    tiebreakers = int(replicas["tiebreaker"].astype(bool).sum()) if not replicas.empty else 0
    layout_ok = len(diskful) >= 3 or (len(diskful) == 2 and tiebreakers >= 1)
    session.check("three diskful replicas, or two and a tie-breaker", layout_ok,
                  f"{len(diskful)} diskful ({', '.join(diskful['node']) if not diskful.empty else '-'}), {tiebreakers} tie-breaker",
                  ">= 3 diskful, or 2 + 1 tie-breaker")
    quorum, where = linstor_property(session, writer.pv or "", "DrbdOptions/Resource/quorum")
    session.check("quorum majority on the resource", quorum == "majority", f"{quorum} ({where})", "majority")
    policy, where = linstor_property(session, writer.pv or "", "DrbdOptions/Resource/on-no-quorum")
    session.check("a primary without quorum suspends I/O", policy == "suspend-io", f"{policy} ({where})", "suspend-io")
    session.check("every diskful replica UpToDate and connected", snap.in_sync(),
                  ", ".join(f"{r['node']}={r['disk_state']}" for r in snap.sync_progress()), "all UpToDate")
    if target in control_nodes(session):
        print(f"note: {target} runs the LINSTOR or CSI controller; a replacement pod can only attach once Kubernetes "
              "has rescheduled them (about 5 minutes after the node goes NotReady by default)")
    healthy = [n for n in diskful["node"] if n != target and snap.ready(n)] if not diskful.empty else []
    session.check(f"{target} is not the last healthy replica", bool(healthy), healthy, "another Ready node with an UpToDate replica")
    if not (layout_ok and quorum == "majority" and policy == "suspend-io" and snap.in_sync() and healthy):
        raise PreconditionFailed("the drill would not prove anything (or would risk data) with this setup: see the failed "
                                 "checks above. Quorum comes from the class (04-storage-classes); wait for resyncs to finish.")


# ----------------------------------------------------------------------------- the writer


def control_nodes(session: Session) -> list[str]:
    """Where the LINSTOR controller and the CSI controller run: attaching a volume anywhere needs both."""
    pods = kube.list_objects(session.kube(), kinds.POD.collection(session.params.piraeus.namespace),
                             "app.kubernetes.io/component in (linstor-controller,linstor-csi-controller)")
    return sorted({p["spec"]["nodeName"] for p in pods if p["spec"].get("nodeName")})


def render_writer(session: Session) -> Writer:
    """The claim and the Deployment.

    Unless ``failover.node`` names a node, the writer prefers a node that runs neither the LINSTOR controller
    nor the CSI controller: if their node fails, attaching the volume elsewhere waits until Kubernetes
    reschedules them (about five minutes by default), which is a drill of its own.
    """
    f = session.params.failover
    avoid = [] if f.node else control_nodes(session)
    prefer = ("In", [f.node]) if f.node else ("NotIn", avoid) if avoid else None
    return Writer(claim=writer_claim(f"{NAME}-data", f.namespace_test, f.storage_class, f.test_size),
                  deployment=writer_deployment(f"{NAME}-writer", f.namespace_test, f"{NAME}-data", f.image,
                                               f.write_interval_s, prefer=prefer,
                                               only=[n.name for n in session.storage_nodes]))


def start_writer(session: Session, writer: Writer, obs: Observer) -> Snapshot:
    """Claim, Deployment, and a steady stream of acknowledged records."""
    create(session, writer.claim, "writer claim")
    create(session, writer.deployment, "writer Deployment")
    if session.dry_run:
        return Snapshot(at=time.time())
    api = session.kube()
    timeout = session.params.node_timeout
    obs.until(lambda s: s.writer() is not None, "writer pod running", timeout)
    pvc = kube.get_object(api, kube.object_path(writer.claim)) or {}
    writer.pv = (pvc.get("spec") or {}).get("volumeName")
    steady = session.params.failover.steady_s / obs.scale
    begin = time.time()
    return obs.until(lambda s: s.replicas is not None and time.time() - begin >= steady and len(writer.acks) > 0,
                     "writer acknowledging records", timeout)


def stop_writer(session: Session, writer: Writer, obs: Observer) -> None:
    """Scale the writer to zero (its last acknowledgements collected first) and wait until its pods are gone."""
    obs.collect_acks(obs.look().pods)
    stopped = {**writer.deployment, "spec": {**writer.deployment["spec"], "replicas": 0}}
    create(session, stopped, "stop the writer (replicas 0)")
    if not session.dry_run:
        obs.until(lambda s: s.api and not s.pods, "writer pods gone", session.params.node_timeout)


# ----------------------------------------------------------------------------- faults


def _lab(session: Session, method: str, path: str, body: dict | None, *, step: str, target: str, cli: list[str],
         sent_at: list[tuple[float, float, float | None]] | None = None) -> dict:
    """A call to the lab's control API (what ``runbook lab ...`` does), recorded with that command.

    HTTP rather than the CLI: starting a process takes long enough to blur the phase timings.
    """

    def call() -> dict:
        sent = time.time()  # after the record was written: the change happens between here and the answer
        resp = httpx.request(method, session.connection["url"] + path, json=body, timeout=30)
        if sent_at is not None:
            sent_at.append((sent, time.time(), parse_date_header(resp.headers.get("Date"))))
        if resp.status_code >= 400:
            raise RunbookError(f"lab: {' '.join(cli)}: {resp.json().get('error', resp.text)}")
        return resp.json()

    return session.executor.call(call, step=step, target=target, kind="lab", command=["runbook", "lab", *cli]) or {}


def inject(session: Session, fault: str, node: NodeRef, *, step: str, approval: str = "drill",
           approval_target: str | None = None, sent_at: list[tuple[float, float, float | None]] | None = None,
           ) -> list[int | None]:
    """Fault ``node``; the lab fault ids to remove later (empty for talosctl faults).

    ``approval``/``approval_target``: the ``confirm`` entry the talosctl fault needs (``drill <node>``,
    or ``quorum-loss <writer's node>`` for the quorum-loss scenario's peers).
    """
    if fault == "reboot":
        session.talos.reboot(node, step=step, approval=approval, approval_target=approval_target)
        return []
    if fault == "shutdown":
        session.talos.shutdown(node, step=step, approval=approval, approval_target=approval_target)
        return []
    if session.params.target != "lab":
        raise RunbookError(f"failover.fault {fault!r} exists only in the lab")
    pairs = [(node.name, None)] if fault == "node-down" else [(node.name, n.name) for n in session.nodes if n.name != node.name]
    kind = "node-down" if fault == "node-down" else "partition"  # isolate: cut the node off from every peer
    ids = []
    for name, peer in pairs:
        cli = ["fault", "add", kind, "--node", name] + (["--peer", peer] if peer else [])
        ids.append(_lab(session, "POST", "/lab/v1/faults", {"kind": kind, "node": name, "peer": peer}, sent_at=sent_at,
                        step=step, target=name, cli=cli).get("id"))  # None in plan mode
    return ids


def restore(session: Session, fault: str, node: NodeRef, fault_ids: list[int | None], *,
            sent_at: list[tuple[float, float, float | None]] | None = None) -> None:
    """Bring ``node`` back: remove the lab faults, power it on, or let its reboot finish."""
    for fid in fault_ids:
        _lab(session, "DELETE", f"/lab/v1/faults/{fid}", None, step=f"bring {node.name} back", target=node.name,
             cli=["fault", "remove", str(fid) if fid is not None else "<id>"], sent_at=sent_at)
    if fault == "shutdown":
        if session.params.target == "lab":
            _lab(session, "POST", f"/lab/v1/nodes/{node.name}/power-on", None, step=f"power on {node.name}",
                 target=node.name, cli=["power-on", node.name])
        else:
            print(f"==> power {node.name} ({node.address}) on now (BMC, power button); waiting up to "
                  f"{session.params.node_timeout:.0f}s for it to come back")


#: what each fault tests (Talos's shutdown cordons and drains first: maintenance, not a failure)
FAULT_LABELS = {
    "reboot": "failure test: talosctl reboot takes the node away without draining it",
    "shutdown": "planned-maintenance test, not a failure test: Talos cordons and drains the node, then powers it off",
    "node-down": "failure test (lab): the node loses power",
    "isolate": "failure test (lab): the node is cut off from every peer",
}


def _approvals(session: Session, scenario: str, home: str, step: str) -> None:
    """``drill <node>`` for the failover scenario, ``quorum-loss <writer's node>`` for the quorum-loss one."""
    session.executor.require_approval("drill" if scenario == "failover" else "quorum-loss", home, step)


def etcd_members_lost(session: Session, down: list[str]) -> list[str]:
    """The control-plane nodes among ``down`` when they are a majority of the etcd members (else [])."""
    members = [n.name for n in session.nodes if n.role == "controlplane"]
    lost = [n for n in down if n in members]
    # etcd keeps quorum while a majority (n // 2 + 1) of its n members is up: it tolerates (n - 1) // 2 down
    return lost if members and len(lost) > (len(members) - 1) // 2 else []


def refuse_etcd_majority(session: Session, down: list[str], step: str) -> None:
    """A drill never takes down a majority of etcd (on a real cluster or with ``lab.enforce_safety``)."""
    lost = etcd_members_lost(session, down)
    if not lost:
        return
    members = [n.name for n in session.nodes if n.role == "controlplane"]
    text = (f"{step} would take down {len(lost)} of {len(members)} etcd members ({', '.join(lost)}; members: "
            f"{', '.join(members)}): etcd and the Kubernetes API stop and every replicated volume freezes")
    if not session.params.enforces_safety:
        print(f"note: {text}. The relaxed lab rehearses it; a real cluster (or lab.enforce_safety) refuses it.")
        return
    session.check(f"{step} keeps an etcd majority", False, ", ".join(lost) + " down", "a majority of etcd members up")
    raise PreconditionFailed(f"{text}. Set failover.quorum_loss: false, or run the drill where its replicas' nodes "
                             "are not an etcd majority (more control-plane nodes, or volumes on workers).")


def _before_fault(session: Session, scenario: str, fault: str, nodes: list[NodeRef], *, home: str,
                  exempt: list[str]) -> None:
    """Right before a scenario's first fault: its approval, etcd, the cluster-wide storage gate, etcd snapshots."""
    step = f"{scenario} drill ({fault} {', '.join(n.name for n in nodes)})"
    print(f"{scenario}: {fault} is a {FAULT_LABELS[fault]}")
    _approvals(session, scenario, home, step)
    refuse_etcd_majority(session, [n.name for n in nodes], step)
    storage_gates.before_down(session, [n.name for n in nodes], step=step, exempt=exempt)
    snapshot_before(session, nodes, step=step)


def _refuse_certain_etcd_loss(session: Session, replicas: int) -> None:
    """Before anything is created: the quorum-loss scenario takes ``replicas - 1`` other nodes down; when too few
    of the candidates are workers, that is an etcd majority wherever the replicas land."""
    home = session.params.failover.node or ""
    others = [n for n in session.storage_nodes if n.name != home]  # replicas live on storage nodes only
    workers = [n for n in others if n.role != "controlplane"]
    certain = max(0, min(replicas - 1, len(others)) - len(workers))
    cps = [n.name for n in others if n.role == "controlplane"]
    if certain and etcd_members_lost(session, cps[:certain]):
        refuse_etcd_majority(session, cps if certain == len(cps) else cps[:certain], "the quorum-loss drill")


def check_scenarios(session: Session, writer: Writer, before: Snapshot) -> list[str]:
    """Preflight of the scenarios, before the first fault: approvals, etcd majority, the storage gate.

    Returns the scenarios that will run (``failover``, and ``quorum-loss`` when enabled).
    """
    f = session.params.failover
    target = f.node or before.writer_node() or session.storage_nodes[0].name
    _approvals(session, "failover", target, "failover drill")
    refuse_etcd_majority(session, [target], "the failover drill")
    scenarios = ["failover"]
    if f.quorum_loss:
        home = before.writer_node() or target
        peers = [n for n in before.diskful()["node"] if n != home]
        _approvals(session, "quorum-loss", home, "quorum-loss drill")
        refuse_etcd_majority(session, peers, "the quorum-loss drill")
        scenarios.append("quorum-loss")
    if not session.dry_run:
        storage_gates.before_down(session, [target], step="the failover drill", exempt=[writer.pv] if writer.pv else [])
    for name in scenarios:
        fault = f.fault if name == "failover" else f.quorum_loss_fault
        print(f"{name}: {fault}, a {FAULT_LABELS[fault]}")
    return scenarios


# ----------------------------------------------------------------------------- the drill


OBSERVED = "observer (first seen)"  # the fallback source: as precise as the observer's polling
FAULT_SOURCE = "the fault request's answer (Date header)"


@dataclass
class DrillResult:
    """One scenario's phases, each on the cluster's clock with the timestamp it came from."""

    scenario: str
    fault: str
    nodes: list[str]
    start: float  # the observer's clock just before the fault was injected
    clock: ClusterClock = field(default_factory=ClusterClock)
    #: {"phase", "at" (cluster clock) or "wall" (observer clock, converted at the end), "source", "detail"}
    phases: list[dict] = field(default_factory=list)
    stall_s: float | None = None
    resync: dict = field(default_factory=dict)
    #: span (cluster clock) in which the writer must not have written: quorum loss, no quorum observed
    frozen: list[float] = field(default_factory=list)

    #: the fault on the cluster's clock, when its request's answer dated it (the lab's control API)
    fault_time: float | None = None

    @property
    def t0(self) -> float:
        """The fault on the cluster's clock."""
        return self.fault_time if self.fault_time is not None else self.clock.at(self.start)

    def fault_at(self, obs: Observer, requests: list[tuple[float, float, float | None]]) -> None:
        """Time the fault by its first request: it took effect after the request left and before the answer, in
        the whole second the answer's ``Date`` names; without a ``Date``, when the request left."""
        if not requests:
            return
        sent, received, date = requests[0]
        self.start = sent
        for r in requests:
            obs.clock.sample(*r)
        if date is not None:
            lo, hi = max(obs.cluster(sent), date), min(obs.cluster(received), date + 1.0)
            self.fault_time = (lo + hi) / 2 if lo <= hi else date + 0.5

    def mark(self, phase: str, at: float | None, detail: str = "", source: str = OBSERVED, *, wall: float | None = None,
             replace: bool = False) -> None:
        """Record ``phase`` once: at cluster time ``at`` (from ``source``), else first seen at observer time ``wall``."""
        if at is None and wall is None:
            return
        if replace:
            self.phases = [p for p in self.phases if p["phase"] != phase]
        if not any(p["phase"] == phase for p in self.phases):
            self.phases.append({"phase": phase, "at": at, "wall": wall, "source": source if at is not None else OBSERVED,
                                "detail": detail})

    def seen(self, phase: str, s: Snapshot, stamp: float | None, source: str, detail: str = "") -> None:
        """``phase`` as an object's timestamp tells it, else as the observation ``s`` first showed it."""
        self.mark(phase, stamp, detail, source, wall=s.at)

    def time_of(self, phase: str) -> float | None:
        """When ``phase`` happened, on the cluster's clock."""
        ph = next((p for p in self.phases if p["phase"] == phase), None)
        if ph is None:
            return None
        return ph["at"] if ph["at"] is not None else self.clock.at(ph["wall"])

    def seconds(self, phase: str) -> float | None:
        """Cluster seconds from the fault to ``phase`` (a phase caused by the fault is never before it: timestamps
        are whole seconds, so one stamped in the fault's second would otherwise read up to -1 s)."""
        at = self.time_of(phase)
        if at is None:
            return None
        delta = at - self.t0
        return round(max(delta, 0.0) if phase not in BEFORE_FAULT else delta, 1)

    def frame(self) -> pd.DataFrame:
        rows = [{"phase": p["phase"], "seconds": self.seconds(p["phase"]), "source": p["source"], "detail": p["detail"]}
                for p in self.phases]
        frame = pd.DataFrame(rows, columns=["phase", "seconds", "source", "detail"])
        return frame.sort_values("seconds", kind="stable").reset_index(drop=True).assign(scenario=self.scenario)


BEFORE_FAULT = {"last write before the stall"}


def _node(session: Session, name: str) -> NodeRef:
    return next(n for n in session.nodes if n.name == name)


def _watch(obs: Observer, done: Callable[[Snapshot], bool], what: str, timeout: float,
           marks: Callable[[Snapshot], None] | None = None) -> Snapshot:
    """Observe until ``done``, letting ``marks`` timestamp the phases each observation shows."""
    def check(s: Snapshot) -> bool:
        if marks is not None:
            marks(s)
        return done(s)

    return obs.until(check, what, timeout)


@contextmanager
def _leaves_writer(writer: Writer):
    """A failed scenario leaves the writer running for inspection: say so, and how to go on."""
    try:
        yield
    except RunbookError as err:
        err.add_note(f"The writer (Deployment {writer.namespace}/{writer.deployment['metadata']['name']}) and its claim "
                     f"{writer.claim['metadata']['name']} are left in place with their data; re-running 06 continues with "
                     "them, or delete both when done.")
        raise


def failover(session: Session, writer: Writer, obs: Observer, before: Snapshot) -> DrillResult:
    """Fault the writer's node; time every phase; bring the node back whatever happens."""
    with _leaves_writer(writer):
        return _failover(session, writer, obs, before)


def quorum_loss(session: Session, writer: Writer, obs: Observer, before: Snapshot) -> DrillResult:
    """Both other replicas' nodes go away at once: the writer's I/O must freeze, then resume."""
    with _leaves_writer(writer):
        return _quorum_loss(session, writer, obs, before)


def _failover(session: Session, writer: Writer, obs: Observer, before: Snapshot) -> DrillResult:
    p = session.params
    f = p.failover
    target = _node(session, f.node or before.writer_node() or session.storage_nodes[0].name)
    _before_fault(session, "failover", f.fault, [target], home=target.name, exempt=[])
    timeout = p.node_timeout
    res = DrillResult("failover", f.fault, [target.name], start=time.time(), clock=obs.clock)
    fault_ids: list[int | None] = []
    if session.dry_run:
        restore(session, f.fault, target, inject(session, f.fault, target, step=f"fault: {f.fault} {target.name}"))
        return res
    try:
        res.start = time.time()
        sent: list[tuple[float, float, float | None]] = []
        fault_ids = inject(session, f.fault, target, step=f"fault: {f.fault} {target.name}", sent_at=sent)
        res.fault_at(obs, sent)
        res.mark("fault injected", res.fault_time, f"{f.fault} {target.name}", FAULT_SOURCE, wall=res.start)
        moved: dict[str, str] = {}

        def marks(s: Snapshot) -> None:
            if s.api and not s.ready(target.name):
                res.seen("node NotReady", s, s.ready_since(target.name, False), "Node Ready condition lastTransitionTime",
                         target.name)
            if s.tainted(target.name):
                res.seen("lost-quorum taint", s, s.taint_added(target.name), "taint timeAdded", f"{TAINT} on {target.name}")
            node = s.writer_node()
            if node and node != target.name:
                pod = s.writer()
                moved.setdefault("pod", pod["metadata"]["name"])
                res.seen("pod running elsewhere", s, s.started(pod), "container startedAt", f"{moved['pod']} on {node}")
            first = min((a.stamp for a in writer.acks.values() if moved and a.pod == moved["pod"]), default=None)
            if first is not None:
                res.seen("writes acknowledged again", s, first, "writer's record stamp", f"by {moved['pod']}")

        def done(s: Snapshot) -> bool:
            if target.name != before.writer_node():
                return True  # the writer was elsewhere: nothing to move
            if f.fault == "reboot" and s.ready(target.name) and s.writer_node() == target.name:
                return any(a.stamp > obs.cluster(s.at) - 1.0 for a in writer.acks.values())  # back before a failover
            return any(ph["phase"] == "writes acknowledged again" for ph in res.phases)

        _watch(obs, done, "the writer to run and write elsewhere", timeout, marks)
    finally:
        restore(session, f.fault, target, fault_ids)
    _watch(obs, lambda s: s.api and s.ready(target.name) and not s.tainted(target.name), f"{target.name} back", timeout,
           lambda s: res.seen("node back", s, s.ready_since(target.name, True), "Node Ready condition lastTransitionTime",
                              target.name) if s.api and s.ready(target.name) else None)
    _await_resync(obs, res, timeout)
    return res


def _quorum_loss(session: Session, writer: Writer, obs: Observer, before: Snapshot) -> DrillResult:
    p = session.params
    fault = p.failover.quorum_loss_fault
    home = before.writer_node()
    peers = [_node(session, n) for n in before.diskful()["node"] if n != home]
    _before_fault(session, "quorum-loss", fault, peers, home=home or "", exempt=[writer.pv] if writer.pv else [])
    res = DrillResult("quorum-loss", fault, [n.name for n in peers], start=time.time(), clock=obs.clock)
    ids: dict[str, list[int | None]] = {}
    if session.dry_run:
        return res
    acked_before = max((a.seq for a in writer.acks.values()), default=0)
    names = [n.name for n in peers]
    seen: list[float] = []  # observer times at which the quorum was seen gone

    def without_quorum(s: Snapshot) -> bool:
        """What the observer can vouch for: the API is gone, or the writer's replica has no connected peer."""
        if not s.api:
            return True
        mine = s.diskful()
        mine = mine[mine["node"] == home] if not mine.empty else mine
        return not mine.empty and int(mine["connected_peers"].fillna(0).iloc[0]) == 0

    def marks(s: Snapshot) -> None:
        if without_quorum(s):
            res.mark("quorum lost", None, "Kubernetes API unavailable" if not s.api else f"{home} has no peer", wall=s.at)
            seen.append(s.at)

    sent: list[tuple[float, float, float | None]] = []  # the fault requests, then the removal requests
    restored: list[tuple[float, float, float | None]] = []
    try:
        res.start = time.time()
        for peer in peers:
            ids[peer.name] = inject(session, fault, peer, step=f"quorum loss: {fault} {peer.name}", approval="quorum-loss",
                                    approval_target=home, sent_at=sent)
        res.fault_at(obs, sent)
        res.mark("fault injected", res.fault_time, f"{fault} {', '.join(names)}", FAULT_SOURCE, wall=res.start)
        # the outage lasts steady_s (at least 10 s) from the last peer's fault, when quorum is surely gone: on a
        # busy machine injecting the faults one by one takes cluster seconds of its own
        hold, lost_at = max(p.failover.steady_s, 10.0) / obs.scale, time.time()
        _watch(obs, lambda s: time.time() - lost_at >= hold and bool(seen), "the outage to take hold",
               hold + p.node_timeout, marks)
    finally:
        for peer in peers:
            restore(session, fault, peer, ids.get(peer.name, []), sent_at=restored)

    def back(s: Snapshot) -> bool:
        marks(s)
        ok = s.api and all(s.ready(n) for n in names)
        if ok:
            stamps = [s.ready_since(n, True) for n in names]
            res.seen("nodes back", s, max(stamps) if None not in stamps else None,  # type: ignore[type-var]
                     "Node Ready condition lastTransitionTime", ", ".join(names))
        return ok

    _watch(obs, back, "both nodes back", p.node_timeout)
    # no record may carry a time inside the span the observer saw without quorum, shrunk by how far its view
    # of the cluster's clock can be off (and a second: the writer's stamp is taken before its write)
    margin = obs.clock.uncertainty() + 1.0
    res.frozen = [obs.cluster(seen[0]) + margin, obs.cluster(seen[-1]) - margin] if seen else []
    if len(sent) == len(peers) and restored and fault == "node-down":
        # better than sightings (a busy observer looks seldom): the lab's answers date the outage. No quorum from
        # the last peer's power loss until the first removal request left; nothing reconnects before that.
        for r in sent + restored:
            obs.clock.sample(*r)
        _, received, date = sent[-1]
        lost = min(obs.cluster(received), date + 1.0) if date is not None else obs.cluster(received)
        res.frozen = [lost + margin, obs.cluster(restored[0][0]) - margin]
    after = res.frozen[-1] if res.frozen else res.t0
    _watch(obs, lambda s: any(a.seq > acked_before and a.stamp > after for a in writer.acks.values()),
           "writes to resume", p.node_timeout)
    _await_resync(obs, res, p.node_timeout)
    return res


def _await_resync(obs: Observer, res: DrillResult, timeout: float) -> None:
    """Wait for every replica UpToDate. LINSTOR's API carries no time for it: the observer's first sight it is."""
    s = obs.until(lambda s: s.api and (s.in_sync() or bool(s.standalone)), "every replica UpToDate again", timeout)
    session = obs.session
    if s.standalone:
        session.check(f"{res.scenario}: resync completes", False, f"split brain, connections StandAlone: {', '.join(s.standalone)}",
                      "all replicas UpToDate (a split brain needs a human: drbdadm connect --discard-my-data on the victim)")
        return
    res.mark("resync done", None, "every diskful replica UpToDate", wall=s.at)
    back = res.seconds("node back") if res.scenario == "failover" else res.seconds("nodes back")
    done = res.seconds("resync done")
    res.resync = {"seconds": round(done - back, 1) if back is not None and done is not None else None}
    session.check(f"{res.scenario}: resync completes", True, f"all UpToDate {res.resync['seconds']} s after the node was back",
                  "all replicas UpToDate")


def finalize(session: Session, results: list[DrillResult], writer: Writer, obs: Observer) -> None:
    """Timings from the records themselves (the writer's clock), once the file has been read back.

    The I/O stall is the longest gap between consecutive records after the fault: the phase table shows
    both of its ends (the last write before the fault, writes again), so the stall is their difference.
    For quorum loss, no record may carry a time inside the span in which the observer saw the quorum gone.
    """
    entries = {e.line: e for e in [*writer.records.values(), *writer.acks.values()]}
    ordered = sorted(entries.values(), key=lambda e: e.stamp)
    for i, res in enumerate(results):
        t0 = res.t0
        end = results[i + 1].t0 if i + 1 < len(results) else float("inf")
        pairs = [(b.stamp - a.stamp, a, b) for a, b in zip(ordered, ordered[1:], strict=False) if t0 <= b.stamp < end]
        if not pairs:
            continue
        gap, last, first = max(pairs, key=lambda x: x[0])
        res.stall_s = round(gap, 1)
        label = "writes acknowledged again" if res.scenario == "failover" else "writes resumed"
        res.mark("last write before the stall", last.stamp, f"record {last.seq} by {last.pod}", "writer's record stamp")
        res.mark(label, first.stamp, f"record {first.seq} by {first.pod}, after a {res.stall_s} s stall",
                 "writer's record stamp", replace=True)
        back = res.time_of("node back" if res.scenario == "failover" else "nodes back")
        if back is not None and res.resync.get("seconds") is not None:
            # what the returning node missed: the records written while it was away (a lower bound of the data
            # DRBD resyncs, which also covers the file system's own blocks)
            missed = [e for e in entries.values() if t0 <= e.stamp <= back]
            kib = round(sum(len(e.line) + 1 for e in missed) / 1024, 1)
            # LINSTOR's REST API shows no out-of-sync size (drbdsetup status does), so no rate is claimed
            res.resync.update(records=len(missed), kib_at_least=kib)
        if res.scenario == "quorum-loss":
            span = res.frozen if len(res.frozen) == 2 and res.frozen[0] < res.frozen[1] else None
            inside = [e for e in entries.values() if span and span[0] < e.stamp < span[1]]
            session.check("no write completed while quorum was lost (suspend-io)", span is not None and not inside,
                          f"{len(inside)} records inside the outage" + (f" (first: {min(e.seq for e in inside)})" if inside else "")
                          if span else "the outage was too short to tell on the cluster's clock",
                          "0: I/O froze instead of going on alone")


# ----------------------------------------------------------------------------- verification and cleanup


MAX_READ_ROUNDS = 20  # reader pods per replica before its copy counts as unreadable (a healthy drill needs 2)


def read_copies(session: Session, writer: Writer, nodes: list[str]) -> dict[str, list[Entry | None] | None]:
    """Each replica's records, read on its node by digest: only blocks that differ from the acknowledged
    records are read line by line, in bounded rounds, so a file of any length is read whole."""
    expected = expected_lines(list(writer.acks.values()))
    copies: dict[str, list[Entry | None] | None] = {}
    for node in nodes:
        reading = CopyReading()
        for round_ in range(MAX_READ_ROUNDS):
            digests, lines = reading.request()
            out = _run_reader(session, writer, node, round_, digests, lines)
            if session.dry_run:
                break
            if out is None:
                break  # it could not attach or promote there: that copy is unreadable
            reading.absorb(parse_reader(out), expected)
            if reading.done:
                break
        if not session.dry_run:  # plan mode reads nothing: no copy, rather than an unreadable one
            copies[node] = reading.entries() if reading.done else None
    return copies


def _run_reader(session: Session, writer: Writer, node: str, round_: int, digests: str, lines: str) -> str | None:
    """One reader pod on ``node``: its log when it succeeded, else None. Kept with failover.keep_test_objects."""
    f = session.params.failover
    pod = reader_pod(f"{NAME}-read-{round_}-{node}"[:63], writer.namespace, writer.claim["metadata"]["name"], f.image,
                     node, digests, lines)
    _delete_and_wait(session, pod, f"earlier reader on {node}")  # a kept reader of an earlier run holds old output
    create(session, pod, f"reader pod on {node} ({'digests ' + digests if digests else ''}{' lines ' + lines if lines else ''})")
    if session.dry_run:
        return None

    out = None
    try:
        run = wait_finished(session, pod, what=f"reader on {node}", timeout=min(120.0, session.params.node_timeout),
                            log_timeout=5)
        if run.succeeded:
            out = run.log
    except RunbookError:
        pass
    writer.readers.append(pod)
    if not f.keep_test_objects:
        _delete_and_wait(session, pod, f"reader on {node}")
    return out


def _delete_and_wait(session: Session, obj: dict, what: str) -> None:
    """Delete ``obj`` if it exists and wait until it is gone (plan mode: nothing to look at, nothing planned)."""
    api = session.kube()
    if session.dry_run or kube.get_object(api, kube.object_path(obj)) is None:
        return
    session.executor.call(lambda: kube.delete_object(api, obj), step=f"delete {what}",
                          target=f"{obj['kind']}/{obj['metadata']['name']}", command=["kubectl", "delete", obj["kind"].lower(),
                                                                                     obj["metadata"]["name"]])
    if not session.dry_run:
        wait_until(lambda: (kube.get_object(api, kube.object_path(obj)) is None, None), what=f"{what} gone",
                   timeout=session.params.node_timeout)


def verify(session: Session, writer: Writer, obs: Observer) -> Verdict:
    stop_writer(session, writer, obs)
    snap = obs.look()
    nodes = list(snap.diskful()["node"]) if not snap.diskful().empty else []
    copies = read_copies(session, writer, nodes)
    for lines in copies.values():
        writer.records.update({e.seq: e for e in lines or [] if e is not None and e.valid and e.seq not in writer.records})
    verdict = judge(list(writer.acks.values()), copies)
    session.check("every acknowledged record on every replica, unchanged", not verdict.lost,
                  f"{verdict.lost_records} of {verdict.acknowledged} acknowledged records lost: {'; '.join(verdict.lost)}"
                  if verdict.lost else f"{verdict.acknowledged} acknowledged, none lost", "none lost")
    session.check("replicas hold identical records", not verdict.diverged and not verdict.unreadable,
                  verdict.diverged + [f"unreadable on {n}" for n in verdict.unreadable] or "identical", "identical")
    session.check("every record's checksum matches", not verdict.corrupt, verdict.corrupt or "all match", "all match")
    return verdict


def cleanup(session: Session, writer: Writer) -> None:
    if session.params.failover.keep_test_objects:
        readers = ", ".join(p["metadata"]["name"] for p in writer.readers) or "none"
        print(f"keeping the writer, its claim and data, and the reader pods ({readers}) (failover.keep_test_objects); "
              "a re-run of 06 replaces the reader pods")
        return
    api = session.kube()
    for obj in (writer.deployment, writer.claim):
        session.executor.call(lambda obj=obj: kube.delete_object(api, obj), step=f"delete {obj['kind']} {obj['metadata']['name']}",
                              target=f"{obj['kind']}/{obj['metadata']['name']}", command=["kubectl", "delete", "-f", "-"])
        if not session.dry_run:  # the claim goes only once no pod uses it; a re-run must not find it terminating
            wait_until(lambda obj=obj: (kube.get_object(api, kube.object_path(obj)) is None, None),
                       what=f"{obj['kind']} {obj['metadata']['name']} deleted", timeout=session.params.node_timeout)


# ----------------------------------------------------------------------------- results


def phases_frame(results: list[DrillResult]) -> pd.DataFrame:
    return pd.concat([r.frame() for r in results], ignore_index=True) if results else pd.DataFrame()


def summary_frame(results: list[DrillResult], verdict: Verdict | None) -> pd.DataFrame:
    """One row per scenario; every time in it is a phase of :func:`phases_frame` or a difference of two."""
    rows = []
    for r in results:
        back = "writes acknowledged again" if r.scenario == "failover" else "writes resumed"
        rows.append({"scenario": r.scenario, "fault": f"{r.fault} {', '.join(r.nodes)}",
                     "writes back (s after the fault)": r.seconds(back), "I/O stall (s)": r.stall_s,
                     "resync (s after the node was back)": r.resync.get("seconds"),
                     "records to resync": r.resync.get("records"), "record KiB to resync": r.resync.get("kib_at_least"),
                     "lost records": verdict.lost_records if verdict else None,
                     "integrity": (verdict.summary() if verdict else "not verified")})
    return pd.DataFrame(rows)


def resync_frame(obs: Observer, results: list[DrillResult]) -> pd.DataFrame:
    """Replicas not UpToDate over time, per scenario (from the observer's samples)."""
    rows = []
    for r in results:
        for sample in obs.samples:
            if sample["t"] < r.start:
                continue
            behind = [x["node"] for x in sample["replicas"] if x["disk_state"] != "UpToDate"]
            rows.append({"scenario": r.scenario, "seconds": round(obs.cluster(sample["t"]) - r.t0, 1),
                         "UpToDate replicas": len(sample["replicas"]) - len(behind), "behind": ", ".join(behind)})
    return pd.DataFrame(rows)
