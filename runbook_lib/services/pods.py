"""The one-shot pod runner: wait until a pod (or a Job's pod) has finished and read its log."""

from __future__ import annotations

from dataclasses import dataclass

from .. import kinds, kube
from ..session import Session
from ..waiting import wait_until

FINISHED = ("Succeeded", "Failed")


def phase(obj: dict | None) -> str:
    """A pod's ``status.phase``; ``absent`` for no pod."""
    return ((obj or {}).get("status") or {}).get("phase", "absent")


def describe(obj: dict | None) -> str:
    """The phase and the messages of the pod's conditions (why it is not running yet)."""
    reasons = [c.get("message") for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c.get("message")]
    return f"{phase(obj)} {'; '.join(reasons)}".strip()


@dataclass
class PodRun:
    """How a one-shot pod ended: its last object, phase and log (None when it could not be read)."""

    obj: dict | None
    log: str | None

    @property
    def phase(self) -> str:
        return phase(self.obj)

    @property
    def succeeded(self) -> bool:
        return self.phase == "Succeeded"

    def text(self) -> str:
        return (self.log or "").strip()


def wait_finished(session: Session, pod: dict, *, what: str, timeout: float | None = None,
                  log_timeout: float | None = None) -> PodRun:
    """Until ``pod`` is Succeeded or Failed (up to ``timeout``, default ``node_timeout``); then its log."""
    api = session.kube()
    path = kube.object_path(pod)

    def probe() -> tuple[bool, dict | None]:
        obj = kube.get_object(api, path)
        return phase(obj) in FINISHED, obj

    final = wait_until(probe, what=what, timeout=session.params.node_timeout if timeout is None else timeout,
                       describe=describe)
    meta = pod["metadata"]
    return PodRun(final, kube.pod_log(api, meta.get("namespace", "default"), meta["name"], timeout=log_timeout))


def job_run(session: Session, job: dict) -> PodRun:
    """The latest pod of a finished Job and its log (``obj`` None when the Job left no pod)."""
    api = session.kube()
    ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
    found = kube.list_objects(api, kinds.POD.collection(ns), label_selector=f"job-name={name}")
    pod = max(found, key=lambda p: p["metadata"].get("creationTimestamp") or "") if found else None
    return PodRun(pod, kube.pod_log(api, ns, pod["metadata"]["name"]) if pod else None)
