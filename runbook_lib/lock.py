"""One run per cluster at a time: a ``coordination.k8s.io`` Lease held while a run changes things.

The lease lives in the cluster, so it holds across machines. Its holder identity names the
operator and the run; it is renewed while the run lives and expires ``duration`` seconds
after its holder stops renewing (a crashed run does not lock the cluster forever). A run
that finds the lease held by another live run is refused, told who holds it and since when.
A lease left behind by a run whose own record says it ended (its release failed, or it was
killed) is taken over at once instead of blocking the next run until it expires. An API
that cannot be reached is a one-line :class:`RunbookError`, never a client traceback.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from urllib3.exceptions import HTTPError as TransportError

from . import kinds, kube
from .errors import RunbookError

LEASE_NAMESPACE = "kube-system"
LEASE_NAME = "runbook-lock"
LEASE_PATH = kinds.LEASE.collection(LEASE_NAMESPACE)


class LockHeld(RunbookError):
    """Another run holds the cluster's lock."""


def _now() -> datetime:
    return datetime.now(UTC)


def _micro(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # Kubernetes MicroTime


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _unreachable(api: object, exc: Exception) -> RunbookError:
    host = getattr(getattr(api, "configuration", None), "host", "the cluster")
    reason = getattr(exc, "reason", None) or exc
    return RunbookError(f"cannot reach the Kubernetes API at {host} to take the run lock ({type(reason).__name__}): "
                        "check that the cluster is up and that the kubeconfig points at it")


def _holder_run(holder: str) -> str | None:
    match = re.fullmatch(r".+ run (\S+)", holder or "")
    return match.group(1) if match else None


@dataclass
class ClusterLock:
    api: object
    holder: str
    duration: int
    #: answers whether the run with that ID has ended (its lease may be taken over)
    finished: Callable[[str], bool] | None = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def _lease(self, acquired: str, renewed: datetime, version: str | None) -> dict:
        meta: dict = {"name": LEASE_NAME, "namespace": LEASE_NAMESPACE}
        if version:
            meta["resourceVersion"] = version
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": {"holderIdentity": self.holder, "leaseDurationSeconds": self.duration,
                         "acquireTime": acquired, "renewTime": _micro(renewed)}}

    def acquire(self) -> None:
        try:
            self._acquire()
        except TransportError as exc:
            raise _unreachable(self.api, exc) from None

    def _acquire(self) -> None:
        live = kube.get_object(self.api, f"{LEASE_PATH}/{LEASE_NAME}")
        now = _now()
        if live is None:
            try:
                kube.request(self.api, "POST", LEASE_PATH, body=self._lease(_micro(now), now, None))
            except kube.ApiCallError as err:
                if err.status == 409:  # someone created it between our read and our write
                    return self._acquire()
                raise
        else:
            spec = live.get("spec") or {}
            holder, renewed = spec.get("holderIdentity"), _parse(spec.get("renewTime"))
            ttl = int(spec.get("leaseDurationSeconds") or self.duration)
            expired = holder is None or renewed is None or renewed + timedelta(seconds=ttl) < now
            holder_run = _holder_run(holder)
            if not expired and holder != self.holder and holder_run and self.finished and self.finished(holder_run):
                expired = True  # its run ended (the release failed, or it was killed): nothing holds it any more
            if holder != self.holder and not expired:
                raise LockHeld(
                    f"the cluster is locked by {holder} since {spec.get('acquireTime')} (last renewed "
                    f"{spec.get('renewTime')}); wait for that run to finish, or, if it died, for the lock to expire "
                    f"{ttl}s after its last renewal (Lease {LEASE_NAMESPACE}/{LEASE_NAME})")
            acquired = spec.get("acquireTime") if holder == self.holder else _micro(now)
            try:
                kube.request(self.api, "PUT", f"{LEASE_PATH}/{LEASE_NAME}",
                             body=self._lease(acquired, now, live["metadata"]["resourceVersion"]))
            except kube.ApiCallError as err:
                if err.status == 409:
                    return self._acquire()  # re-read: the other writer may hold it now
                raise
        self._thread = threading.Thread(target=self._renew, daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.duration / 3):
            try:
                live = kube.get_object(self.api, f"{LEASE_PATH}/{LEASE_NAME}")
                if not live or (live.get("spec") or {}).get("holderIdentity") != self.holder:
                    return
                spec = live["spec"]
                kube.request(self.api, "PUT", f"{LEASE_PATH}/{LEASE_NAME}",
                             body=self._lease(spec.get("acquireTime"), _now(), live["metadata"]["resourceVersion"]))
            except (RunbookError, TransportError):
                continue  # a missed renewal is retried; the lease only expires after `duration`

    def release(self) -> None:
        self._stop.set()
        release(self.api, self.holder)

    def release_quietly(self) -> str | None:
        """Release after any failure; a release that fails is a sentence, not an exception.

        The next run finds this run's record ended and takes the lease over (see :meth:`acquire`).
        """
        try:
            self.release()
        except (RunbookError, TransportError) as exc:
            return (f"could not release the run lock (Lease {LEASE_NAMESPACE}/{LEASE_NAME}: {str(exc).splitlines()[0]}); "
                    f"the next run takes it over, or it expires {self.duration}s after its last renewal")
        return None


def release(api: object, holder: str) -> None:
    """Delete the lease if ``holder`` holds it."""
    live = kube.get_object(api, f"{LEASE_PATH}/{LEASE_NAME}")
    if live and (live.get("spec") or {}).get("holderIdentity") == holder:
        try:
            kube.request(api, "DELETE", f"{LEASE_PATH}/{LEASE_NAME}")
        except kube.ApiCallError as err:
            if err.status != 404:
                raise


def holder_identity(operator: str, run_id: str) -> str:
    return f"{operator} run {run_id}"


def take(api: object, operator: str, run_id: str, duration: int = 120,
         finished: Callable[[str], bool] | None = None) -> ClusterLock:
    lock = ClusterLock(api, holder_identity(operator, run_id), duration, finished)
    lock.acquire()
    return lock
