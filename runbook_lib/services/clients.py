"""The clients a session's steps share: helm with the session's kubeconfig, LINSTOR's REST API."""

from __future__ import annotations

from .. import kinds, kube
from ..helm import Helm
from ..linstor import LinstorClient
from ..session import Session


def helm(session: Session) -> Helm:
    """``helm`` as the connection names it, with the session's kubeconfig, recording through its executor."""
    return Helm(session.executor, session.connection["helm"], session.connection.get("kubeconfig"))


def linstor(session: Session) -> LinstorClient:
    """LINSTOR's REST API through the Kubernetes service proxy (HTTPS when ``apiTLS`` is set)."""
    p = session.params.piraeus
    service = "https:linstor-controller:3371" if p.api_tls else "linstor-controller:3370"
    return LinstorClient(kube.http_client(session.kube()), kinds.service_proxy(p.namespace, service))
