"""Applying, creating and deleting Kubernetes objects, each change with its record (the executor's)."""

from __future__ import annotations

from .. import kube, manifests
from ..session import Session


def _target(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def apply(session: Session, manifest: dict, *, step: str, destructive: str | None = None) -> None:
    """Server-side apply ``manifest`` unless the live object already matches (then: unchanged)."""
    api = session.kube()
    live = kube.get_object(api, kube.object_path(manifest))
    text = manifests.to_yaml([manifest])
    if not kube.differs(live, manifest):
        session.executor.unchanged(step=step, target=_target(manifest), kind="kube", manifest=text)
        return
    session.executor.call(lambda: kube.server_side_apply(api, manifest), step=step, target=_target(manifest),
                          manifest=text, destructive=destructive,
                          command=["kubectl", "apply", "--server-side", "-f", "-"])


def create(session: Session, obj: dict, step: str) -> None:
    """Server-side apply a test object and record it, without comparing first (test PVCs, pods, Jobs)."""
    api = session.kube()
    session.executor.call(lambda: kube.server_side_apply(api, obj), step=step, target=_target(obj),
                          manifest=manifests.to_yaml([obj]), command=["kubectl", "apply", "-f", "-"])


def delete(session: Session, obj: dict, step: str, *, propagation: str | None = None) -> None:
    """Delete ``obj`` and record it; already gone is fine.

    ``propagation="Background"`` for Jobs: the API default for ``batch/v1`` Jobs orphans their pods.
    """
    api = session.kube()
    query = [("propagationPolicy", propagation)] if propagation else None

    def call() -> None:
        try:
            kube.request(api, "DELETE", kube.object_path(obj), query=query)
        except kube.ApiCallError as err:
            if err.status != 404:
                raise

    session.executor.call(call, step=step, target=_target(obj), command=["kubectl", "delete", "-f", "-"])
