"""One reader pod run to its end: its log, or why it could not run (evicted, its volume not attachable or mountable).

A reader pod whose volume has no quorum on its node is evicted by the HA controller (Event
``VolumeWithoutQuorum``, piraeus-ha-controller ``reconcile_failover.go``): the pod is gone, and waiting
for it to finish would only wait out the timeout. A pod whose volume cannot attach or mount stays Pending
with ``FailedAttachVolume``/``FailedMount`` Events; the wait shows the newest of them while it lasts and
names it if the pod never starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from ... import kinds, kube
from ...errors import RunbookError, WaitTimeout
from ...services.pods import FINISHED, phase
from ...session import Session
from ...waiting import wait_until

#: Event reasons that say why a pod cannot start or was removed (kubelet, attach-detach controller, HA controller)
BLOCKING = ("VolumeWithoutQuorum", "FailedAttachVolume", "FailedMount", "FailedScheduling", "Evicted")


@dataclass
class ReaderRun:
    """How a reader pod ended: its log when it succeeded, else why not (``reason``)."""

    log: str | None
    reason: str | None = None


def pod_warnings(session: Session, pod: dict, uid: str | None = None) -> list[str]:
    """``reason: message`` of the Events that block or removed ``pod`` (this one: ``uid``, when known), oldest first.

    A pod of the same name from an earlier run has its own uid, so its Events are not this pod's.
    """
    meta = pod["metadata"]
    events = kube.list_objects(session.kube(), kinds.EVENT.collection(meta.get("namespace", "default")))

    def about(e: dict) -> bool:
        obj = e.get("involvedObject") or {}
        return (obj.get("kind") == "Pod" and obj.get("name") == meta["name"] and e.get("reason") in BLOCKING
                and (uid is None or obj.get("uid") in (None, uid)))

    mine = [e for e in events if about(e)]
    mine.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or (e.get("metadata") or {}).get("creationTimestamp") or "")
    return [f"{e.get('reason')}: {e.get('message', '')}".strip() for e in mine]


def run_reader(session: Session, pod: dict, *, what: str, timeout: float) -> ReaderRun:
    """Wait until ``pod`` has finished; stop at once if it disappears (it was evicted or deleted) and say why."""
    api = session.kube()
    path = kube.object_path(pod)
    warnings: list[str] = []  # the newest look at the pod's blocking Events
    uid: list[str] = []  # this pod's uid, once seen

    def probe() -> tuple[bool, dict | None]:
        obj = kube.get_object(api, path)
        if obj is not None and not uid:
            uid.append(obj["metadata"].get("uid", ""))
        if obj is None or phase(obj) == "Pending":  # removed, or not started: the Events say why
            warnings[:] = pod_warnings(session, pod, uid[0] if uid else None)
        return obj is None or phase(obj) in FINISHED, obj

    def describe(obj: dict | None) -> str:
        return f"{phase(obj)}; {warnings[-1]}" if warnings else phase(obj)

    try:
        final = wait_until(probe, what=what, timeout=timeout, describe=describe)
    except WaitTimeout:
        return ReaderRun(None, f"did not finish in {timeout:.0f} s" + (f" ({warnings[-1]})" if warnings else ""))
    except RunbookError as err:
        return ReaderRun(None, str(err).split("\n", 1)[0])
    why = f" ({warnings[-1]})" if warnings else ""
    if final is None:
        return ReaderRun(None, f"pod removed before it finished{why}")
    if phase(final) != "Succeeded":
        return ReaderRun(None, f"pod {phase(final)}{why}")
    meta = pod["metadata"]
    return ReaderRun(kube.pod_log(api, meta.get("namespace", "default"), meta["name"], timeout=5))
