"""The snapshot-controller Helm chart: the snapshot.storage.k8s.io CRDs and the controller Deployment."""

from __future__ import annotations

import copy

GROUP = "snapshot.storage.k8s.io"


CHART_NAME = "snapshot-controller"


CHART_REF = "oci://ghcr.io/piraeusdatastore/helm-charts/snapshot-controller"


CHART_VERSIONS = {"5.2.0": "v8.6.0"}  # chart -> snapshot-controller appVersion (reference notes §3)


def crd(kind: str, plural: str, namespaced: bool, short: list[str]) -> dict:
    # Written for the lab (schema kept open); the real chart ships the full external-snapshotter CRDs.
    version = {"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{GROUP}", "annotations": {"api-approved.kubernetes.io":
                                                                      "https://github.com/kubernetes-csi/external-snapshotter/pull/1150"}},
            "spec": {"group": GROUP, "scope": "Namespaced" if namespaced else "Cluster",
                     "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": plural[:-1],
                               "shortNames": short},
                     "versions": [version, {**copy.deepcopy(version), "name": "v1beta1", "served": False, "storage": False}]}}


def render_chart(release: str, namespace: str, version: str, values: dict) -> list[dict]:
    image = f"registry.k8s.io/sig-storage/snapshot-controller:{CHART_VERSIONS[version]}"
    labels = {"app.kubernetes.io/name": CHART_NAME, "app.kubernetes.io/instance": release}
    docs: list[dict] = []
    if str((values.get("controller") or {}).get("enabled", True)).lower() != "false":
        if str(values.get("installCRDs", True)).lower() != "false":
            docs += [crd("VolumeSnapshotClass", "volumesnapshotclasses", False, ["vsclass", "vsclasses"]),
                     crd("VolumeSnapshotContent", "volumesnapshotcontents", False, ["vsc", "vscs"]),
                     crd("VolumeSnapshot", "volumesnapshots", True, ["vs"])]
        docs += [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": f"{release}-controller", "labels": labels}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": f"{release}-runner", "labels": labels},
             "rules": [{"apiGroups": [GROUP], "resources": ["volumesnapshotclasses", "volumesnapshots",
                                                            "volumesnapshotcontents", "volumesnapshots/status",
                                                            "volumesnapshotcontents/status"], "verbs": ["*"]},
                       {"apiGroups": [""], "resources": ["persistentvolumeclaims", "persistentvolumes", "events"],
                        "verbs": ["get", "list", "watch", "update", "patch", "create"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": f"{release}-role", "labels": labels},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"{release}-runner"},
             "subjects": [{"kind": "ServiceAccount", "name": f"{release}-controller", "namespace": namespace}]},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"{release}-controller", "labels": labels},
             "spec": {"replicas": int((values.get("controller") or {}).get("replicaCount", 1)),
                      "selector": {"matchLabels": labels},
                      "template": {"metadata": {"labels": labels},
                                   "spec": {"serviceAccountName": f"{release}-controller",
                                            "containers": [{"name": "snapshot-controller", "image": image,
                                                            "args": ["--v=2", "--leader-election=true"]}]}}}},
        ]
    return docs
