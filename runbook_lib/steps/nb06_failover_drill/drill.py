"""Running the drill: the writer started, each scenario's faults injected while the observer times its phases."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager

from ... import kube
from ...errors import RunbookError
from ...services.objects import create
from ...session import Session
from .faults import inject, inject_together, restore
from .manifests import TAINT
from .observe import Observer, Snapshot
from .preconditions import before_fault, node_ref
from .timings import FAULT_SOURCE, DrillResult
from .writer import Writer


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


def _span_margin(obs: Observer) -> float:
    """Cluster seconds the quorum-loss span is shrunk by at each end: how far the observer's view of the cluster's
    clock can be off, and a second (the writer takes its stamp before it writes)."""
    return obs.clock.uncertainty() + 1.0


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
    target = node_ref(session, f.node or before.writer_node() or session.storage_nodes[0].name)
    before_fault(session, "failover", f.fault, [target], home=target.name, exempt=[])
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
    peers = [node_ref(session, n) for n in before.diskful()["node"] if n != home]
    before_fault(session, "quorum-loss", fault, peers, home=home or "", exempt=[writer.pv] if writer.pv else [])
    res = DrillResult("quorum-loss", fault, [n.name for n in peers], start=time.time(), clock=obs.clock)
    ids: dict[str, list[int | None]] = {}
    if session.dry_run:
        inject_together(session, fault, peers, ids, step="quorum loss", approval="quorum-loss", approval_target=home)
        for peer in peers:
            restore(session, fault, peer, ids.get(peer.name, []))
        return res
    acked_before = max((a.seq for a in writer.acks.values()), default=0)
    names = [n.name for n in peers]
    seen: list[tuple[float, float]] = []  # the answers (sent, received) that showed the quorum gone

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
            seen.append(s.answered or (s.at, s.at))

    sent: list[tuple[float, float, float | None]] = []  # the fault requests, then the removal requests
    restored: list[tuple[float, float, float | None]] = []
    try:
        res.start = time.time()
        inject_together(session, fault, peers, ids, step="quorum loss", approval="quorum-loss", approval_target=home,
                        sent_at=sent)
        res.fault_at(obs, sent)
        res.mark("fault injected", res.fault_time, f"{fault} {', '.join(names)}", FAULT_SOURCE, wall=res.start)
        # the outage lasts steady_s (at least 10 s) from the last peer's fault, when quorum is surely gone: on a
        # busy machine injecting the faults one by one takes cluster seconds of its own. It lasts longer still
        # while the observer's view of the cluster's clock is coarse (a busy machine answers slowly): the span
        # checked below is shrunk by that uncertainty at both ends and must stay steady_s wide (fault_at has
        # already put the fault requests' answers into the observer's clock).
        hold, lost_at = max(p.failover.steady_s, 10.0) / obs.scale, time.time()

        def held(s: Snapshot) -> bool:
            margin = min(_span_margin(obs), p.node_timeout * obs.scale) / obs.scale
            # a reboot ends by itself: an outage the observer never saw is reported by the check below, not waited
            # for (the other faults last until they are removed)
            return time.time() - lost_at >= hold + 2 * margin and (bool(seen) or fault == "reboot")

        _watch(obs, held, "the outage to take hold", hold + 3 * p.node_timeout, marks)
    finally:
        for peer in peers:
            restore(session, fault, peer, ids.get(peer.name, []), sent_at=restored)

    def back(s: Snapshot) -> bool:
        marks(s)
        ok = s.api and all(s.ready(n) for n in names)
        if ok:
            stamps = [s.ready_since(n, True) for n in names]
            if None not in stamps:  # quorum (and the writes) can come back with the first node, before the last one
                at, first = min(zip(stamps, names, strict=True))  # type: ignore[type-var]
                res.seen("first node back", s, at, "Node Ready condition lastTransitionTime", first)
            res.seen("nodes back", s, max(stamps) if None not in stamps else None,  # type: ignore[type-var]
                     "Node Ready condition lastTransitionTime", ", ".join(names))
        return ok

    _watch(obs, back, "both nodes back", p.node_timeout)
    # no record may carry a time inside the span the observer saw without quorum: from the first such answer's
    # arrival to the last one's request, shrunk at both ends
    margin = _span_margin(obs)
    res.frozen = [obs.cluster(seen[0][1]) + margin, obs.cluster(seen[-1][0]) - margin] if seen else []
    if len(sent) == len(peers) and restored and fault == "node-down":
        # better than sightings (a busy observer looks seldom): the lab's answers date the outage. No quorum from
        # the last peer's power loss until the first removal request left; nothing reconnects before that.
        for r in restored:  # the fault requests were sampled by fault_at
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
