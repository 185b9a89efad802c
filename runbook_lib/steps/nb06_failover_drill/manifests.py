"""The drill's manifests, pure: the writer's claim and Deployment, the reader pod, and their YAML."""

from __future__ import annotations

import yaml

from ...drill_records import (
    MAX_BLOCKS,
    READER_SCRIPT,
    WRITER_SCRIPT,
)

MOUNT = "/data"
RECORDS = f"{MOUNT}/records.log"
NAME = "runbook-failover"
APP_LABEL = {"app.kubernetes.io/name": NAME}
TAINT = "drbd.linbit.com/lost-quorum"


def writer_claim(name: str, namespace: str, storage_class: str, size: str) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace,
                                                                              "labels": dict(APP_LABEL)},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                     "resources": {"requests": {"storage": size}}}}


def writer_deployment(name: str, namespace: str, claim: str, image: str, interval_s: float, replicas: int = 1,
                      prefer: tuple[str, list[str]] | None = None, only: list[str] | None = None) -> dict:
    """The writer; ``prefer`` = (operator, nodes): ``("In", [n])`` to start on ``n``, ``("NotIn", ns)`` to keep off them.

    A preference, not a rule: after the fault the pod must be free to go anywhere among ``only`` (the storage
    nodes: the drill faults the writer's node, and a compute-only node is never touched).
    """
    labels = {**APP_LABEL, "app.kubernetes.io/component": "writer"}
    node_affinity: dict = {}
    if prefer:
        node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = [{"weight": 100, "preference": {
            "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": prefer[0], "values": prefer[1]}]}}]
    if only:
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": sorted(only)}]}]}
    affinity = {"nodeAffinity": node_affinity} if node_affinity else None
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"replicas": replicas, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 10, **({"affinity": affinity} if affinity else {}),
                                           "containers": [{"name": "writer", "image": image,
                                                           "command": ["sh", "-c", WRITER_SCRIPT],
                                                           "env": [{"name": "RECORDS", "value": RECORDS},
                                                                   {"name": "INTERVAL", "value": f"{interval_s:g}"}],
                                                           "volumeMounts": [{"name": "data", "mountPath": MOUNT}]}],
                                           "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}}}


def reader_pod(name: str, namespace: str, claim: str, image: str, node: str, digests: str, lines: str) -> dict:
    """Reads the record file on ``node`` (a diskful replica: DRBD serves the read from that disk).

    It prints block digests and a few bounded ranges of lines (``READER_SCRIPT``), never the whole file:
    what it prints stays far below any log cap or rotation, however long the drill ran.
    """
    env = {"RECORDS": RECORDS, "DIGESTS": digests, "LINES": lines, "MAX_BLOCKS": str(MAX_BLOCKS)}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": {
                **APP_LABEL, "app.kubernetes.io/component": "reader"}},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "nodeName": node,
                     "tolerations": [{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}],
                     "containers": [{"name": "reader", "image": image, "command": ["sh", "-c", READER_SCRIPT],
                                     "env": [{"name": k, "value": v} for k, v in env.items()],
                                     "volumeMounts": [{"name": "data", "mountPath": MOUNT, "readOnly": True}]}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}]}}


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (the writer's and reader's scripts) as literal blocks, readable as the shell sees them."""

    def ignore_aliases(self, data: object) -> bool:  # shared label dicts print in full, not as &id001 anchors
        return True


_LiteralDumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def manifests_yaml(docs: list[dict]) -> str:
    """The manifests as YAML a reader can follow: scripts as literal blocks, not one escaped line."""
    return "---\n".join(yaml.dump(d, Dumper=_LiteralDumper, sort_keys=False) for d in docs)
