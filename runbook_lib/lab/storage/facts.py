"""Shared facts of the storage stack: the CSI driver's name, operator labels, and where the LINSTOR and CSI controllers run."""

from __future__ import annotations

from ..cluster import Lab
from ..kubernetes import objects as ko
from ..kubernetes.objects import pod_ready, pods_of
from .chart import OPERATOR_NAME

DRIVER = "linstor.csi.linbit.com"
MANAGED_BY = "Aux/piraeus.io/managed-by"


LAST_APPLIED = "Aux/piraeus.io/last-applied"




def operator_namespace(lab: Lab) -> str | None:
    """Namespace of a running, ready Piraeus operator (None when none runs)."""
    for dep in ko.objects(lab, "apps", "deployments"):
        labels = dep["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/component") == OPERATOR_NAME and int((dep.get("status") or {}).get("readyReplicas", 0)) > 0:
            return dep["metadata"]["namespace"]
    return None


def operator_pod(lab: Lab, ns: str) -> dict | None:
    return next((p for p in pods_of(lab, ns, {"app.kubernetes.io/component": OPERATOR_NAME}) if pod_ready(p)), None)


def controller_pod(lab: Lab, ns: str) -> dict | None:
    """The ready LINSTOR controller pod, if any."""
    return next((p for p in pods_of(lab, ns, {"app.kubernetes.io/component": "linstor-controller"})
                 if pod_ready(p) and not p["metadata"].get("deletionTimestamp")), None)


def linstor_service(lab: Lab) -> tuple[str, dict] | None:
    """(namespace, Service) of the LINSTOR controller that the operator deployed."""
    for svc in ko.objects(lab, "", "services"):
        if svc["metadata"]["name"] == "linstor-controller" and \
                (svc["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "linstor-controller":
            return svc["metadata"]["namespace"], svc
    return None


def api_reachable(lab: Lab) -> tuple[bool, str]:
    """Can clients reach the LINSTOR API through its Service? (ok, error as Go's HTTP client says it)"""
    found = linstor_service(lab)
    if found is None:
        return False, 'Get "http://linstor-controller:3370/v1/controller/version": dial tcp: lookup linstor-controller: no such host'
    ns, svc = found
    url = f"http://linstor-controller.{ns}.svc:3370"
    if controller_pod(lab, ns) is None:
        ip = (svc.get("spec") or {}).get("clusterIP", "10.96.0.10")
        return False, f'Get "{url}/v1/controller/version": dial tcp {ip}:3370: connect: connection refused'
    return True, url


def csi_controller_pod(lab: Lab) -> dict | None:
    for dep in ko.objects(lab, "apps", "deployments"):
        if dep["metadata"]["name"] == "linstor-csi-controller" and int((dep.get("status") or {}).get("readyReplicas", 0)):
            ns = dep["metadata"]["namespace"]
            return next((p for p in pods_of(lab, ns, {"app.kubernetes.io/component": "linstor-csi-controller"})
                         if pod_ready(p)), None)
    return None
