"""Waits and reads of readiness the steps share: a Deployment's ready replicas, Deployments ready."""

from __future__ import annotations

from .. import kinds, kube
from ..session import Session
from ..waiting import wait_until


def _ready_replicas(dep: dict | None) -> int:
    return int(((dep or {}).get("status") or {}).get("readyReplicas") or 0)


def deployment_ready(session: Session, namespace: str, name: str) -> int:
    """The ready replicas of a Deployment now (0 when it does not exist)."""
    return _ready_replicas(kube.get_object(session.kube(), kinds.DEPLOYMENT.path(name, namespace)))


def deployments_ready(session: Session, namespace: str, selector: str, what: str) -> list[dict]:
    """Until every Deployment matching ``selector`` (at least one) has a ready replica."""
    api = session.kube()

    def probe():
        deps = kube.list_objects(api, kinds.DEPLOYMENT.collection(namespace), selector)
        return bool(deps) and all(_ready_replicas(d) >= 1 for d in deps), deps

    return wait_until(probe, what=f"{what} ready", timeout=session.params.node_timeout,
                      describe=lambda deps: ", ".join(f"{d['metadata']['name']} ready="
                                                      f"{(d.get('status') or {}).get('readyReplicas', 0)}" for d in deps)
                      or "no deployment yet")
