"""The API server's endpoints outside the object store: version, health, access reviews.

``/version``, ``/healthz``, ``/livez`` and ``/readyz`` are readable without credentials on a real
cluster (the ``system:public-info-viewer`` role); SelfSubjectAccessReview and SelfSubjectReview
answer for the caller, who in the lab is always allowed (the admin kubeconfig is ``system:masters``).
"""

from __future__ import annotations

import json
from typing import Any

from ..talos.constants import KUBERNETES_VERSION
from .types import ApiError

GIT_COMMIT = "0" * 40  # no real build: all zeros, so nobody mistakes it for a kubernetes/kubernetes commit
BUILD_DATE = "1970-01-01T00:00:00Z"
HEALTH_CHECKS = ("ping", "log", "etcd", "etcd-readiness", "informer-sync", "poststarthook/start-apiextensions-controllers",
                 "poststarthook/crd-informer-synced", "poststarthook/bootstrap-controller", "shutdown")
PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")


def version() -> dict:
    """``/version`` as the API server's version.Info (kr8s and client-go read every field)."""
    major, minor, _patch = KUBERNETES_VERSION.lstrip("v").split(".")
    return {"major": major, "minor": minor, "emulationMajor": major, "emulationMinor": minor,
            "minCompatibilityMajor": major, "minCompatibilityMinor": str(int(minor) - 1),
            "gitVersion": KUBERNETES_VERSION, "gitCommit": GIT_COMMIT, "gitTreeState": "clean",
            "buildDate": BUILD_DATE, "goVersion": "go1.25.5", "compiler": "gc", "platform": "linux/amd64"}


def is_public(path: str) -> bool:
    base = path.rstrip("/") or "/"
    return any(base == p or base.startswith(p + "/") for p in PUBLIC_PATHS)


def public(path: str, query: dict, etcd_ok: bool) -> tuple[int, str, bytes]:
    """Answer a public path: (code, content type, body)."""
    base = path.rstrip("/")
    if base == "/version":
        return 200, "application/json", json.dumps(version()).encode()
    check = base.split("/", 2)[2] if base.count("/") >= 2 else None
    checks = {c: (etcd_ok or not c.startswith("etcd")) for c in HEALTH_CHECKS}
    if base.startswith("/livez"):
        checks = {c: True for c in checks}  # liveness does not depend on etcd
    if check is not None:
        if check not in checks:
            return 404, "text/plain; charset=utf-8", b"404 page not found\n"
        return (200, "text/plain; charset=utf-8", b"ok") if checks[check] else (
            500, "text/plain; charset=utf-8", f"internal server error: {check} check failed\n".encode())
    healthy = all(checks.values())
    if "verbose" in query or not healthy:
        lines = [f"[{'+' if ok else '-'}]{c} {'ok' if ok else 'failed: reason withheld'}" for c, ok in checks.items()]
        name = base.lstrip("/")
        lines.append(f"{name} check passed" if healthy else f"{name} check failed")
        return (200 if healthy else 500), "text/plain; charset=utf-8", ("\n".join(lines) + "\n").encode()
    return 200, "text/plain; charset=utf-8", b"ok"


def review(group: str, plural: str, body: dict, user: tuple[str, list[str]]) -> dict:
    """POST a SelfSubjectAccessReview / SelfSubjectRulesReview / SelfSubjectReview: allowed, as the caller."""
    name, groups = user
    out: dict[str, Any] = {**body, "metadata": {**(body.get("metadata") or {}), "creationTimestamp": None}}
    if (group, plural) == ("authorization.k8s.io", "selfsubjectaccessreviews"):
        out["status"] = {"allowed": True, "reason": "RBAC: allowed by ClusterRoleBinding \"cluster-admin\" of "
                                                      "ClusterRole \"cluster-admin\" to Group \"system:masters\""}
    elif (group, plural) == ("authorization.k8s.io", "selfsubjectrulesreviews"):
        out["status"] = {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                         "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": False}
    elif (group, plural) == ("authentication.k8s.io", "selfsubjectreviews"):
        out["status"] = {"userInfo": {"username": name, "groups": [*groups, "system:authenticated"]}}
    else:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return out
