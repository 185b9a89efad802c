"""The Piraeus operator's Helm chart: its CRDs, images and manifests as the lab's registry serves them."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import yaml

from ..linstor.constants import CONTROLLER_VERSION

OPERATOR_NAME = "piraeus-operator"  # the operator's component label and its LINSTOR properties' owner
CHART_REF = "oci://ghcr.io/piraeusdatastore/piraeus-operator/piraeus"


CHART_NAME = "piraeus"


# Chart versions the lab's registry serves (2.9.0 from the operator repo, 2.10.2 vendored by
# cozystack; 2.10.6 is only pinned by third-party configs). The newest is the default.
CHART_VERSIONS = ("2.9.0", "2.10.2", "2.10.6")


GROUP = "piraeus.io"


PROJECT = "piraeus-datastore"


# Images by component (tags approximate the v2.10 image config; the lab never pulls them).
IMAGES = {
    # the piraeus-server image tag is the LINSTOR version the controller reports
    "linstor-controller": f"quay.io/piraeusdatastore/piraeus-server:v{CONTROLLER_VERSION['version']}",
    "linstor-satellite": f"quay.io/piraeusdatastore/piraeus-server:v{CONTROLLER_VERSION['version']}",
    "drbd-reactor": "quay.io/piraeusdatastore/drbd-reactor:v1.9.0",
    "drbd-module-loader": "quay.io/piraeusdatastore/drbd9-noble:v9.2.15",
    "drbd-shutdown-guard": "quay.io/piraeusdatastore/drbd-shutdown-guard:v1.1.1",
    "linstor-csi": "quay.io/piraeusdatastore/piraeus-csi:v1.10.2",
    "ha-controller": "quay.io/piraeusdatastore/piraeus-ha-controller:v1.3.1",
    "csi-attacher": "registry.k8s.io/sig-storage/csi-attacher:v4.10.0",
    "csi-provisioner": "registry.k8s.io/sig-storage/csi-provisioner:v5.3.0",
    "csi-snapshotter": "registry.k8s.io/sig-storage/csi-snapshotter:v8.3.0",
    "csi-resizer": "registry.k8s.io/sig-storage/csi-resizer:v1.14.0",
    "csi-livenessprobe": "registry.k8s.io/sig-storage/livenessprobe:v2.17.0",
    "csi-node-driver-registrar": "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.15.0",
}


def _crd(kind: str, plural: str, columns: list[dict], status_props: dict) -> dict:
    """A minimal structural piraeus.io/v1 CRD (spec free-form, status with conditions)."""
    cond = {"type": "object", "required": ["lastTransitionTime", "message", "reason", "status", "type"],
            "properties": {"lastTransitionTime": {"type": "string", "format": "date-time"},
                           "message": {"type": "string", "maxLength": 32768},
                           "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
                           "reason": {"type": "string", "maxLength": 1024, "minLength": 1},
                           "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                           "type": {"type": "string", "maxLength": 316}}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "annotations": {"controller-gen.kubebuilder.io/version": "v0.18.0"}},
        "spec": {
            "group": GROUP, "scope": "Cluster",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
            "versions": [{
                "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                "additionalPrinterColumns": columns + [{"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"}],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "status": {"type": "object", "properties": {
                        "conditions": {"type": "array", "items": cond,
                                       "x-kubernetes-list-map-keys": ["type"], "x-kubernetes-list-type": "map"},
                        **status_props}}}}},
            }],
        },
    }


def _col(name: str, path: str, typ: str = "string", priority: int | None = None) -> dict:
    col = {"jsonPath": path, "name": name, "type": typ}
    if priority:
        col["priority"] = priority
    return col


def crds() -> list[dict]:
    """The four piraeus.io/v1 CRDs (names, scope, printer columns as in chart v2.10.2)."""
    cap = {"availableCapacityBytes": {"type": "integer", "format": "int64"}, "capacity": {"type": "string"},
           "freeCapacityBytes": {"type": "integer", "format": "int64"},
           "numberOfSnapshots": {"type": "integer", "format": "int32"}, "numberOfVolumes": {"type": "integer", "format": "int32"}}
    return [
        _crd("LinstorCluster", "linstorclusters", [
            _col("Available", ".status.conditions[?(@.type=='Available')].status"),
            _col("Configured", ".status.conditions[?(@.type=='Configured')].status"),
            _col("Version", ".status.version", priority=10), _col("Satellites", ".status.satellites"),
            _col("Used Capacity", ".status.capacity"), _col("Volumes", ".status.numberOfVolumes", "integer"),
            _col("Snapshots", ".status.numberOfSnapshots", "integer", 10)],
            {**cap, "runningSatellites": {"type": "integer"}, "satellites": {"type": "string"},
             "scheduledSatellites": {"type": "integer"}, "version": {"type": "string"}}),
        _crd("LinstorSatelliteConfiguration", "linstorsatelliteconfigurations", [
            _col("Selector", ".spec.nodeSelector"), _col("Applied", ".status.conditions[?(@.type=='Applied')].status"),
            _col("Matched", ".status.matched", "integer"), _col("Satellites", ".status.appliedTo", priority=10)],
            {"appliedTo": {"type": "array", "items": {"type": "string"}}, "matched": {"type": "integer", "format": "int64"}}),
        _crd("LinstorSatellite", "linstorsatellites", [
            _col("Connected", ".status.conditions[?(@.type=='Available')].status"),
            _col("Configured", ".status.conditions[?(@.type=='Configured')].status"),
            _col("Applied Configurations", ".metadata.annotations.piraeus\\.io/applied-configurations", priority=10),
            _col("Deletion Policy", ".spec.deletionPolicy"), _col("Used Capacity", ".status.capacity"),
            _col("Volumes", ".status.numberOfVolumes", "integer"), _col("Snapshots", ".status.numberOfSnapshots", "integer", 10),
            _col("Storage Providers", ".status.storageProviders", priority=10), _col("Device Layers", ".status.deviceLayers", priority=10)],
            {**cap, "deviceLayers": {"type": "array", "items": {"type": "string"}},
             "storageProviders": {"type": "array", "items": {"type": "string"}}}),
        _crd("LinstorNodeConnection", "linstornodeconnections", [
            _col("Configured", ".status.conditions[?(@.type=='Configured')].status")], {}),
    ]


def fullname(release: str) -> str:
    """``piraeus-operator.fullname`` from the chart's ``_helpers.tpl``."""
    name = release if CHART_NAME in release else f"{release}-{CHART_NAME}"
    return name[:63].rstrip("-")


def render_chart(release: str, namespace: str, version: str, values: dict) -> list[dict]:
    """The operator chart's manifests for ``values`` (the keys the lab honours: installCRDs,
    replicaCount, operator.resources, nodeSelector, tolerations)."""
    fn = fullname(release)
    app_version = f"v{version}"
    selector = {"app.kubernetes.io/component": OPERATOR_NAME, "app.kubernetes.io/name": PROJECT,
                "app.kubernetes.io/instance": release}
    labels = {"helm.sh/chart": f"{CHART_NAME}-{version}", **selector, "app.kubernetes.io/version": app_version,
              "app.kubernetes.io/managed-by": "Helm"}
    out: list[dict] = []
    if _truthy(values.get("installCRDs")):
        out += crds()
    images = {"base": "quay.io/piraeusdatastore", "components": {k: {"image": v.rsplit("/", 1)[-1].split(":")[0],
                                                                     "tag": v.rsplit(":", 1)[-1]} for k, v in IMAGES.items()}}
    cert = base64.b64encode(f"-----BEGIN CERTIFICATE-----\n{hashlib.sha256(fn.encode()).hexdigest()}\n-----END CERTIFICATE-----\n".encode()).decode()
    key = base64.b64encode(f"-----BEGIN RSA PRIVATE KEY-----\n{hashlib.sha256((fn + 'k').encode()).hexdigest()}\n-----END RSA PRIVATE KEY-----\n".encode()).decode()
    out += [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": fn, "namespace": namespace, "labels": labels}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{fn}-image-config", "namespace": namespace, "labels": labels},
         "data": {"0_piraeus_datastore_images.yaml": yaml.safe_dump(images, sort_keys=True)}},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
         "metadata": {"name": f"{fn}-tls", "namespace": namespace, "labels": labels},
         "data": {"ca.crt": cert, "tls.crt": cert, "tls.key": key}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": f"{fn}-controller-manager", "labels": labels},
         "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": f"{fn}-controller-manager", "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"{fn}-controller-manager"},
         "subjects": [{"kind": "ServiceAccount", "name": fn, "namespace": namespace}]},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{fn}-webhook-service", "namespace": namespace, "labels": labels},
         "spec": {"type": "ClusterIP", "ports": [{"port": 443, "protocol": "TCP", "targetPort": 9443}], "selector": selector}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": f"{fn}-controller-manager", "namespace": namespace, "labels": labels},
         "spec": {"replicas": int(values.get("replicaCount", 1)), "selector": {"matchLabels": selector},
                  "template": {"metadata": {"labels": selector, "annotations": {"kubectl.kubernetes.io/default-container": "manager"}},
                               "spec": {"containers": [{
                                   "name": "manager", "image": f"quay.io/piraeusdatastore/piraeus-operator:{app_version}",
                                   "command": ["/manager"], "args": ["--health-probe-bind-address=:8081", "--metrics-bind-address=0"],
                                   "env": [{"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                           {"name": "IMAGE_CONFIG_MAP_NAME", "value": f"{fn}-image-config"}],
                                   "ports": [{"containerPort": 9443, "name": "webhook-server", "protocol": "TCP"}],
                                   "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8081}, "initialDelaySeconds": 5, "periodSeconds": 10},
                                   "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8081}, "initialDelaySeconds": 15, "periodSeconds": 20},
                                   "resources": (values.get("operator") or {}).get("resources") or {},
                                   "volumeMounts": [{"mountPath": "/tmp/k8s-webhook-server/serving-certs", "name": "cert", "readOnly": True}]}],
                                   "serviceAccountName": fn, "terminationGracePeriodSeconds": 10,
                                   "priorityClassName": "system-cluster-critical",
                                   "nodeSelector": values.get("nodeSelector") or {}, "tolerations": values.get("tolerations") or [],
                                   "securityContext": {"runAsNonRoot": True},
                                   "volumes": [{"name": "cert", "secret": {"defaultMode": 420, "secretName": f"{fn}-tls"}}]}}}},
    ]
    return out


def chart_notes(values: dict) -> str:
    notes = ["Piraeus Operator installed."]
    if not _truthy(values.get("installCRDs")):
        notes.append("WARNING: the piraeus.io CRDs were not installed (installCRDs=false). Install them separately, "
                     "or re-run with --set installCRDs=true, before creating a LinstorCluster.")
    return "\n".join(notes) + "\n"


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"
