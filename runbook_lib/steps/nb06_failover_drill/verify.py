"""Verification and cleanup: the writer stopped, every replica's copy read back and judged, test objects removed."""

from __future__ import annotations

from ... import kube
from ...drill_records import (
    CopyReading,
    Entry,
    Verdict,
    expected_lines,
    judge,
    parse_reader,
)
from ...services.objects import create
from ...session import Session
from ...waiting import wait_until
from .manifests import NAME, reader_pod
from .observe import Observer
from .reader_run import ReaderRun, run_reader
from .writer import Writer


def stop_writer(session: Session, writer: Writer, obs: Observer) -> None:
    """Scale the writer to zero (its last acknowledgements collected first) and wait until its pods are gone."""
    obs.collect_acks(obs.look().pods)
    stopped = {**writer.deployment, "spec": {**writer.deployment["spec"], "replicas": 0}}
    create(session, stopped, "stop the writer (replicas 0)")
    if not session.dry_run:
        obs.until(lambda s: s.api and not s.pods, "writer pods gone", session.params.node_timeout)


MAX_READ_ROUNDS = 20  # reader pods per replica before its copy counts as unreadable (a healthy drill needs 2)


def read_copies(session: Session, writer: Writer, nodes: list[str],
                unreadable: dict[str, str] | None = None) -> dict[str, list[Entry | None] | None]:
    """Each replica's records, read on its node by digest: only blocks that differ from the acknowledged
    records are read line by line, in bounded rounds, so a file of any length is read whole.

    ``unreadable`` receives, for each copy that could not be read, why (the reader pod's fate).
    """
    expected = expected_lines(list(writer.acks.values()))
    copies: dict[str, list[Entry | None] | None] = {}
    for node in nodes:
        reading = CopyReading()
        why = None
        for round_ in range(MAX_READ_ROUNDS):
            digests, lines = reading.request()
            run = _run_reader(session, writer, node, round_, digests, lines)
            if session.dry_run:
                break
            if run.log is None:
                why = run.reason  # it could not attach or promote there, or was evicted: that copy is unreadable
                break
            reading.absorb(parse_reader(run.log), expected)
            if reading.done:
                break
        if not session.dry_run:  # plan mode reads nothing: no copy, rather than an unreadable one
            copies[node] = reading.entries() if reading.done else None
            if not reading.done and unreadable is not None:
                unreadable[node] = why or f"still differing after {MAX_READ_ROUNDS} reader pods"
    return copies


def _run_reader(session: Session, writer: Writer, node: str, round_: int, digests: str, lines: str) -> ReaderRun:
    """One reader pod on ``node``: its log, or why there is none. Kept with failover.keep_test_objects."""
    f = session.params.failover
    pod = reader_pod(f"{NAME}-read-{round_}-{node}"[:63], writer.namespace, writer.claim["metadata"]["name"], f.image,
                     node, digests, lines)
    _delete_and_wait(session, pod, f"earlier reader on {node}")  # a kept reader of an earlier run holds old output
    create(session, pod, f"reader pod on {node} ({'digests ' + digests if digests else ''}{' lines ' + lines if lines else ''})")
    if session.dry_run:
        return ReaderRun(None, "plan mode")
    run = run_reader(session, pod, what=f"reader on {node}", timeout=min(120.0, session.params.node_timeout))
    if run.log is None:
        print(f"reader on {node}: {run.reason}")
    writer.readers.append(pod)
    if not f.keep_test_objects:
        _delete_and_wait(session, pod, f"reader on {node}")
    return run


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
    why: dict[str, str] = {}
    copies = read_copies(session, writer, nodes, why)
    for lines in copies.values():
        writer.records.update({e.seq: e for e in lines or [] if e is not None and e.valid and e.seq not in writer.records})
    verdict = judge(list(writer.acks.values()), copies)
    session.check("every acknowledged record on every replica, unchanged", not verdict.lost,
                  f"{verdict.lost_records} of {verdict.acknowledged} acknowledged records lost: {'; '.join(verdict.lost)}"
                  if verdict.lost else f"{verdict.acknowledged} acknowledged, none lost", "none lost")
    session.check("replicas hold identical records", not verdict.diverged and not verdict.unreadable,
                  verdict.diverged + [f"unreadable on {n}" + (f": {why[n]}" if n in why else "") for n in verdict.unreadable]
                  or "identical", "identical")
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
