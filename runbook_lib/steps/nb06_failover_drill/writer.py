"""The drill's writer: its objects rendered from the parameters, and the records it acknowledged."""

from __future__ import annotations

from dataclasses import dataclass, field

from ... import kinds, kube
from ...drill_records import (
    Entry,
)
from ...session import Session
from .manifests import NAME, writer_claim, writer_deployment


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
