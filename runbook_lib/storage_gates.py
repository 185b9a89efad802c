"""Storage gates for the steps that take a node away: ask LINSTOR before, and wait for it after.

Kubernetes ``Ready`` and ``talosctl health`` say nothing about DRBD, so 01's reset, 02's upgrade and
06's faults also pass these gates:

- :func:`before_down`: "may these nodes go down?" (:func:`storage_health.may_go_down`) on one fresh
  read; a refusal stops the step before it touches the node. It returns what each node held, for
- :func:`wait_back`: after the node returns, wait (up to ``node_timeout``, printing progress) until
  "is it back?" (:func:`storage_health.is_back`) says yes; otherwise stop the rollout at that node.

A gate that cannot read LINSTOR refuses: it never passes on missing data. The only way around a
gate is a cluster where LINSTOR is not installed yet (01 and 02 before 03), which
:func:`linstor_installed` detects from the controller's Service and the notebooks announce.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import httpx
import urllib3

from . import kinds, kube
from .errors import GateRefused, RunbookError, WaitTimeout
from .services.clients import linstor
from .session import Session
from .storage_health import StorageView, Verdict, is_back, may_go_down, read_view
from .waiting import wait_until

PROGRESS_EVERY_S = 10.0  # wall seconds between repeated progress lines while nothing changes
Held = dict[str, dict[str, bool]]  # node -> resource -> placed diskful


def linstor_installed(session: Session) -> bool:
    """Whether the LINSTOR controller's Service exists (Piraeus creates it with the LinstorCluster)."""
    ns = session.params.piraeus.namespace
    return kube.get_object(session.kube(), kinds.SERVICE.path("linstor-controller", ns)) is not None


def read(session: Session) -> StorageView:
    """One read of the storage view; a failure to read is a :class:`GateRefused` (a gate never passes blind)."""
    try:
        return read_view(linstor(session), session.kube())
    except (RunbookError, OSError, httpx.HTTPError, urllib3.exceptions.HTTPError) as err:
        raise GateRefused(f"cannot read LINSTOR's view of the replicas ({err}); a storage gate does not pass without "
                          "it: check the linstor-controller pod and the Kubernetes API, then run again",
                          ["linstor-controller"]) from None


def skip_reason(session: Session) -> str | None:
    """Why the gates do not apply here (LINSTOR not installed yet), or None: they apply.

    A LinstorCluster without the controller's Service in ``piraeus.namespace`` is not "not installed":
    a wrong namespace must not switch the gates off on a cluster that holds replicas.
    """
    if linstor_installed(session):
        return None
    ns = session.params.piraeus.namespace
    clusters = kube.list_objects(session.kube(), kinds.LINSTOR_CLUSTER.collection())
    if clusters:
        names = ", ".join(c["metadata"]["name"] for c in clusters)
        raise GateRefused(f"LinstorCluster {names} exists but there is no Service {ns}/linstor-controller: LINSTOR "
                          "may hold replicas here, so the storage gates cannot be skipped; set piraeus.namespace "
                          "to the namespace Piraeus runs in (or wait for the controller's Service), then run again",
                          ["linstor-controller"])
    return (f"LINSTOR is not installed yet (no Service {ns}/linstor-controller): no node holds a replica, so the "
            "storage gates are skipped; once 03 has run they apply to every node")


def before_down(session: Session, nodes: Sequence[str], *, step: str, exempt: Iterable[str] = (),
                optional: bool = False) -> Held:
    """Refuse (:class:`GateRefused`) unless ``nodes`` may go down now; return what each of them holds.

    ``optional``: a cluster without LINSTOR passes with nothing held (01 and 02 run before 03).
    """
    if optional and (reason := skip_reason(session)):
        print(f"{step}: {reason}")
        return {n: {} for n in nodes}
    view = read(session)
    verdict = may_go_down(view, list(nodes), exempt=exempt)
    _record(session, f"storage gate before {step}", verdict, "every replica there keeps a quorum of UpToDate, "
            "connected copies elsewhere; no resync; every satellite ONLINE")
    if not verdict.ok:
        raise GateRefused(f"{step} refused, nothing was changed on {', '.join(nodes)}. {verdict.explain()}",
                          verdict.resources())
    return {n: view.held_by(n) for n in nodes}


def wait_back(session: Session, node: str, held: dict[str, bool], *, step: str, timeout: float) -> None:
    """Wait until ``node`` is back with every replica it ``held``; else :class:`GateRefused` naming them.

    A read that fails while the node returns (the controller may be moving) counts as "not yet".
    """
    if not held and not linstor_installed(session):
        return
    last_print = [0.0, ""]

    def probe() -> tuple[bool, Verdict | str]:
        try:
            verdict = is_back(read(session), node, held)
        except GateRefused as err:
            return False, str(err).split(";", 1)[0]
        return verdict.ok or verdict.final, verdict

    def describe(state: Verdict | str) -> str:
        return state.explain() if isinstance(state, Verdict) else state

    def progress(state: Verdict | str) -> None:
        text = describe(state)
        gist = "; ".join(b.resource + " " + b.state.split(" ")[0] for b in state.blockers) if isinstance(
            state, Verdict) else text
        now = time.monotonic()
        if gist != last_print[1] or now - last_print[0] >= PROGRESS_EVERY_S:
            print(f"{step}: waiting for {node} to be back: {text}")
            last_print[:] = [now, gist]

    try:
        verdict = wait_until(probe, what=f"{node} back with every replica it held", timeout=timeout,
                             describe=describe, on_progress=progress, max_interval=0.5)
    except WaitTimeout as err:
        session.check(f"storage gate after {step}: {node} is back", False, err.last_state, _BACK)
        raise GateRefused(f"the rollout stops at {node}: {node} did not come back whole within {timeout:.0f}s; the "
                          f"nodes after it are left untouched. {err.last_state}",
                          sorted(set(held) | {"satellite"})) from None
    _record(session, f"storage gate after {step}", verdict, _BACK)
    if not verdict.ok:
        raise GateRefused(f"the rollout stops at {node}: it came back without the disks it had; the nodes after it are "
                          f"left untouched. {verdict.explain()}", verdict.resources())


_BACK = "satellite ONLINE; every replica it held diskful, UpToDate and connected again"


def _record(session: Session, name: str, verdict: Verdict, expected: str) -> None:
    observed = "yes" if verdict.ok else "; ".join(b.line() for b in verdict.blockers)
    session.check(f"{name}: {verdict.question}", verdict.ok, observed, expected)
