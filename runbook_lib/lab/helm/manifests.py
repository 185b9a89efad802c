"""Applying a chart's manifests: create or update in helm's kind order, delete what an upgrade dropped, --wait."""

from __future__ import annotations

import contextlib
import json
import time

import yaml

from .args import HelmError
from .cluster import RESOURCES, Cluster

ORDER = ["CustomResourceDefinition", "Namespace", "ServiceAccount", "Secret", "ConfigMap", "ClusterRole",
         "ClusterRoleBinding", "Role", "RoleBinding", "Service", "DaemonSet", "Deployment"]


def _owned(obj: dict, release: str, namespace: str) -> bool:
    meta = obj.get("metadata") or {}
    ann, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    return (ann.get("meta.helm.sh/release-name") == release and ann.get("meta.helm.sh/release-namespace") == namespace
            and labels.get("app.kubernetes.io/managed-by") == "Helm")


def apply_manifests(cluster: Cluster, docs: list[dict], release: str, namespace: str, verb: str) -> None:
    for doc in sorted(docs, key=lambda d: ORDER.index(d["kind"]) if d["kind"] in ORDER else len(ORDER)):
        meta = doc.setdefault("metadata", {})
        meta.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "Helm"
        meta.setdefault("annotations", {}).update({"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace})
        ns = namespace if RESOURCES.get((doc["apiVersion"], doc["kind"]), ("", "", True))[2] else ""
        if ns:
            meta["namespace"] = ns
        path = cluster.path(doc, namespace)
        current = cluster.request("GET", path)
        if current.status_code == 200:
            existing = current.json()
            if not _owned(existing, release, namespace):
                raise HelmError(
                    f"{verb}Unable to continue with install: {doc['kind']} \"{meta['name']}\" in namespace \"{ns}\" exists and cannot "
                    f"be imported into the current release: invalid ownership metadata; label validation error: missing key "
                    f"\"app.kubernetes.io/managed-by\": must be set to \"Helm\"; annotation validation error: missing key "
                    f"\"meta.helm.sh/release-name\": must be set to \"{release}\"; annotation validation error: missing key "
                    f"\"meta.helm.sh/release-namespace\": must be set to \"{namespace}\"")
            doc = json.loads(json.dumps(doc))
            doc["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            resp = cluster.request("PUT", path, doc)
        else:
            resp = cluster.request("POST", cluster.path(doc, namespace, named=False), doc)
        if resp.status_code >= 400:
            message = resp.json().get("message", resp.text) if resp.headers.get("content-type", "").startswith("application/json") else resp.text
            raise HelmError(f"{verb}failed to create resource: {message}")


def delete_manifests(cluster: Cluster, docs: list[dict], namespace: str) -> None:
    for doc in sorted(docs, key=lambda d: -(ORDER.index(d["kind"]) if d["kind"] in ORDER else len(ORDER))):
        with contextlib.suppress(HelmError):
            cluster.request("DELETE", cluster.path(doc, namespace))


def wait_ready(cluster: Cluster, docs: list[dict], namespace: str, timeout: float, verb: str) -> None:
    deadline = time.monotonic() + timeout
    for doc in docs:
        if doc["kind"] not in ("Deployment", "DaemonSet"):
            continue
        while True:
            resp = cluster.request("GET", cluster.path(doc, namespace))
            status = resp.json().get("status", {}) if resp.status_code == 200 else {}
            if doc["kind"] == "Deployment":
                want = (resp.json().get("spec") or {}).get("replicas", 1) if resp.status_code == 200 else 1
                ready = status.get("readyReplicas", 0) >= want and status.get("updatedReplicas", 0) >= want
            else:
                ready = status.get("numberReady", 0) >= status.get("desiredNumberScheduled", 1)
            if ready:
                break
            if time.monotonic() > deadline:
                raise HelmError(f"{verb}context deadline exceeded")
            time.sleep(0.05)


def manifest_text(docs: list[dict]) -> str:
    return "".join(f"---\n# Source: piraeus/templates/{d['kind'].lower()}.yaml\n{yaml.safe_dump(d, sort_keys=False)}" for d in docs)


def manifest_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]
