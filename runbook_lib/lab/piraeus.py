"""The Piraeus operator v2 in the lab: its Helm chart, its CRDs and its reconcilers.

Sources (reference notes on Piraeus/LINSTOR §1-§2, piraeus-operator ``internal/controller``
and ``pkg/resources``, the chart's ``_helpers.tpl``):

- The chart ``oci://ghcr.io/piraeusdatastore/piraeus-operator/piraeus`` deploys only the
  operator: Deployment ``<fullname>-controller-manager`` (fullname = the release name when it
  contains the chart name ``piraeus``, else ``<release>-piraeus``), its image ConfigMap,
  webhook certificate Secret and RBAC. The ``piraeus.io/v1`` CRDs come with it only with
  ``installCRDs=true`` (default false).
- The operator reconciles a cluster-scoped ``LinstorCluster`` into Deployment
  ``linstor-controller`` + Service ``linstor-controller`` (port 3370 ``api``), Deployment
  ``linstor-csi-controller``, DaemonSets ``linstor-csi-node`` and ``ha-controller``, CSIDriver
  ``linstor.csi.linbit.com`` and one ``LinstorSatellite`` per selected node; each
  LinstorSatellite becomes DaemonSet ``linstor-satellite.<node>`` built from the default
  satellite pod (init containers ``drbd-module-loader``/``drbd-shutdown-guard``, host paths for
  modules, systemd, dbus, ``/etc/lvm``) patched by the matching
  ``LinstorSatelliteConfiguration``s' ``podTemplate`` and ``patches`` (Pod patches target the
  DaemonSet's pod template since v2.4.0).
- Conditions follow ``pkg/conditions``: every type starts ``Unknown``/``NotObserved``;
  ``AddSuccess`` -> True/``AsExpected``, ``AddError`` -> False/``Error`` with ``Error: <err>``,
  ``AddUnknown`` -> Unknown/``Unknown``; sorted by type, with ``observedGeneration``.
- Storage pools of a satellite (``reconcileStoragePools``): a pool with ``source.hostDevices``
  that does not exist yet is first created as a device pool; if that fails the error is only
  logged and a plain storage pool is created anyway, which LINSTOR then reports in error. The
  operator never retries the device pool while that pool exists: delete the pool (REST
  ``DELETE /v1/nodes/{node}/storage-pools/{pool}``) after fixing the device.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import drbd
from . import workloads as wl
from .kubeapi import ApiError, strategic_merge
from .linstor.constants import CONTROLLER_VERSION
from .linstor.controller import LinstorController
from .linstor.providers import SatelliteFacts
from .linstor.return_codes import MASK_ERROR, LinstorError, api_rc, ret_code
from .state import SavedState
from .talos import block_links

CHART_REF = "oci://ghcr.io/piraeusdatastore/piraeus-operator/piraeus"
CHART_NAME = "piraeus"
# Chart versions the lab's registry serves (2.9.0 from the operator repo, 2.10.2 vendored by
# cozystack; 2.10.6 is only pinned by third-party configs). The newest is the default.
CHART_VERSIONS = ("2.9.0", "2.10.2", "2.10.6")
GROUP = "piraeus.io"
PROJECT = "piraeus-datastore"
DRIVER = "linstor.csi.linbit.com"
MANAGED_BY = "Aux/piraeus.io/managed-by"
LAST_APPLIED = "Aux/piraeus.io/last-applied"
OPERATOR_NAME = "piraeus-operator"
APPLIED_CONFIGS = "piraeus.io/applied-configurations"
T_CONNECT = 2.0  # a ready satellite is connected to the controller this long after

# Controller properties the operator enforces (pkg/vars/defaults.go at v2.6.0). After LINSTOR
# 1.31 the operator replaced auto-quorum by on-no-quorum (PR #795); the exact key is
# unverified, the lab uses DrbdOptions/Resource/on-no-quorum=suspend-io.
DEFAULT_CONTROLLER_PROPS = {
    "DrbdOptions/Net/rr-conflict": "retry-connect",
    "DrbdOptions/Resource/on-suspended-primary-outdated": "force-secondary",
    "DrbdOptions/Resource/on-no-data-accessible": "suspend-io",
    "DrbdOptions/Resource/on-no-quorum": "suspend-io",
    "DrbdOptions/AutoEvictAllowEviction": "false",
}

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


# ----------------------------------------------------------------------------- CRDs


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


# ----------------------------------------------------------------------------- the chart


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


# ----------------------------------------------------------------------------- operator state


@dataclass
class OperatorState(SavedState):
    """What the operator/satellite models remember across passes (lab time)."""

    ready_since: dict[str, float] = field(default_factory=dict)  # node -> satellite container ready since
    logged: list[str] = field(default_factory=list)  # messages already written to logs


def _log_once(lab: Any, ns: str, pod: dict | None, container: str, text: str) -> None:
    if pod is None:
        return
    key = f"{pod['metadata']['uid']}:{container}:{text}"
    state: OperatorState = lab.operator
    if key in state.logged:
        return
    state.logged.append(key)
    del state.logged[:-500]
    wl.append_log(lab, ns, pod["metadata"]["name"], container, text)


# ----------------------------------------------------------------------------- the whole storage stack


def reconcile_cluster(lab: Any, now: float) -> None:
    """One pass of every controller the storage stack needs, in dependency order."""
    if not lab.api_available():
        return
    from . import csi, ha_controller

    st = lab.workloads.state
    if lab.kube.rv == st.last_rv and now < st.next_due:
        return
    ctl = lab.linstor
    ctl.partitioned = lab.faults.partitioned
    ctl.now_ms = _wall_ms
    for _ in range(3):  # converge chains (deployment -> pod -> operator -> ...) within one tick
        rv = lab.kube.rv
        for step in (lambda: wl.reconcile(lab, now, force=True), lambda: sync_linstor(lab, now),
                     lambda: reconcile_operator(lab, now), lambda: csi.reconcile(lab, now),
                     lambda: ha_controller.reconcile(lab, now)):
            try:
                step()
            except Exception:  # noqa: BLE001 - a model bug must not take the whole lab (and its API) down
                _report_bug(lab)
        if lab.kube.rv == rv:
            break
    st.last_rv = lab.kube.rv
    st.next_due = now + wl.RECONCILE_PERIOD


def _report_bug(lab: Any) -> None:
    """Write a controller's crash to the server log (once per distinct traceback)."""
    import sys
    import traceback

    text = traceback.format_exc()
    key = "bug:" + hashlib.sha1(text.encode()).hexdigest()
    if key not in lab.operator.logged:
        lab.operator.logged.append(key)
        print(f"lab storage controllers: unexpected error (the lab keeps running):\n{text}", file=sys.stderr, flush=True)


def _wall_ms() -> int:
    import time

    return int(time.time() * 1000)


def operator_namespace(lab: Any) -> str | None:
    """Namespace of a running, ready Piraeus operator (None when none runs)."""
    for dep in wl.objects(lab, "apps", "deployments"):
        labels = dep["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/component") == OPERATOR_NAME and int((dep.get("status") or {}).get("readyReplicas", 0)) > 0:
            return dep["metadata"]["namespace"]
    return None


def _operator_pod(lab: Any, ns: str) -> dict | None:
    return next((p for p in wl.pods_of(lab, ns, {"app.kubernetes.io/component": OPERATOR_NAME}) if wl.pod_ready(p)), None)


def controller_pod(lab: Any, ns: str) -> dict | None:
    """The ready LINSTOR controller pod, if any."""
    return next((p for p in wl.pods_of(lab, ns, {"app.kubernetes.io/component": "linstor-controller"})
                 if wl.pod_ready(p) and not p["metadata"].get("deletionTimestamp")), None)


def linstor_service(lab: Any) -> tuple[str, dict] | None:
    """(namespace, Service) of the LINSTOR controller that the operator deployed."""
    for svc in wl.objects(lab, "", "services"):
        if svc["metadata"]["name"] == "linstor-controller" and \
                (svc["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "linstor-controller":
            return svc["metadata"]["namespace"], svc
    return None


def api_reachable(lab: Any) -> tuple[bool, str]:
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


# ----------------------------------------------------------------------------- LINSTOR <- hosts


def sync_linstor(lab: Any, now: float) -> None:
    """Satellites connect when their pod is ready and report host facts (DRBD itself: :mod:`.drbd`)."""
    ctl = lab.linstor
    state: OperatorState = lab.operator
    found = linstor_service(lab)
    controller_up = found is not None and controller_pod(lab, found[0]) is not None
    ns = found[0] if found else None
    satellites = wl.running_by_node(lab, ns, {"app.kubernetes.io/component": "linstor-satellite"}) if ns else {}
    for name, node in ctl.nodes.items():
        facts = wl.node_facts(lab, name)
        pod = satellites.get(name)
        ready = bool(controller_up and facts and facts.up and facts.ready and pod is not None)
        if ready:
            state.ready_since.setdefault(name, now)
        else:
            state.ready_since.pop(name, None)
        online = ready and now >= state.ready_since[name] + T_CONNECT
        sat = None
        if online and facts is not None:
            from .linstor.providers import DeviceInfo

            devices = {p: DeviceInfo(p, facts.sizes.get(p, 0), sig, facts.mounted.get(p))
                       for p, sig in facts.partitions.items()}
            drbd = facts.drbd_version if facts.drbd_loaded and facts.usermode_helper_disabled else None
            sat = SatelliteFacts(drbd_version=drbd, zfs=facts.zfs_loaded, devices=devices)
            if node.online is False and pod is not None and not drbd:
                _log_once(lab, ns, pod, "linstor-satellite",
                          "WARN  LINSTOR/Satellite - SYSTEM - DRBD version has to be >= 9. Current DRBD version: 0.0.0")
        ctl.set_online(name, online, sat)
        for pool in ctl.pools.get(name, {}).values():
            pool.full = lab.faults.has("pool-full", name)


# ----------------------------------------------------------------------------- operator


def reconcile_operator(lab: Any, now: float) -> None:
    ns = operator_namespace(lab)
    if ns is None or wl.rtype(lab, GROUP, "v1", "linstorclusters") is None:
        return
    clusters = wl.objects(lab, GROUP, "linstorclusters")
    if not clusters:
        return
    lcluster = clusters[0]
    op_pod = _operator_pod(lab, ns)
    conds = _new_conditions()
    try:
        nodes = _satellite_nodes(lab, lcluster)
        applied = _apply_cluster_resources(lab, lcluster, ns, nodes)
        _add_success(conds, "Applied", "Resources applied")
    except ApiError as err:
        _add_error(conds, "Applied", err.message)
        applied = {}
    for sat in wl.objects(lab, GROUP, "linstorsatellites"):
        if wl.owned_by(sat, lcluster):
            _reconcile_satellite(lab, sat, ns, now, op_pod)
    status = _cluster_state(lab, lcluster, ns, conds, applied)
    _write_conditions(lab, lcluster, conds, status)


def _new_conditions() -> dict[str, dict]:
    return {t: {"status": "Unknown", "reason": "NotObserved", "messages": []} for t in ("Applied", "Available", "Configured")}


_PRIORITY = {"NotObserved": 0, "AsExpected": 1, "Completed": 2, "InProgress": 3, "Unknown": 4, "Error": 5}


def _add_success(conds: dict, ctype: str, message: str) -> None:
    c = conds.setdefault(ctype, {"status": "Unknown", "reason": "NotObserved", "messages": []})
    c["messages"].append(message)
    if _PRIORITY[c["reason"]] < _PRIORITY["AsExpected"]:
        c["status"], c["reason"] = "True", "AsExpected"


def _add_error(conds: dict, ctype: str, err: str) -> None:
    c = conds.setdefault(ctype, {"status": "Unknown", "reason": "NotObserved", "messages": []})
    c["messages"].append(f"Error: {err}")
    if _PRIORITY[c["reason"]] < _PRIORITY["Error"]:
        c["status"], c["reason"] = "False", "Error"


def _add_unknown(conds: dict, ctype: str, message: str) -> None:
    c = conds.setdefault(ctype, {"status": "Unknown", "reason": "NotObserved", "messages": []})
    c["messages"].append(message)
    if _PRIORITY[c["reason"]] < _PRIORITY["Unknown"]:
        c["status"], c["reason"] = "Unknown", "Unknown"


def _write_conditions(lab: Any, obj: dict, conds: dict, extra: dict | None = None) -> None:
    status = copy.deepcopy(obj.get("status") or {})
    current = status.get("conditions") or []
    gen = obj["metadata"].get("generation", 1)
    for ctype in sorted(conds):
        c = conds[ctype]
        current = wl.set_condition(current, {"type": ctype, "status": c["status"], "reason": c["reason"],
                                             "message": "\n".join(c["messages"]), "observedGeneration": gen})
    status["conditions"] = sorted(current, key=lambda c: c["type"])
    status.update(extra or {})
    wl.set_status(lab, obj, status)


def _satellite_nodes(lab: Any, lcluster: dict) -> list[dict]:
    spec = lcluster.get("spec") or {}
    selector = spec.get("nodeSelector") or {}
    affinity = spec.get("nodeAffinity")
    out = []
    for node in wl.objects(lab, "", "nodes"):
        labels = node["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            continue
        if affinity and not any(wl._term_matches(node, t) for t in affinity.get("nodeSelectorTerms") or []):
            continue
        out.append(node)
    return out


def _labels(lcluster: dict, component: str) -> dict:
    return {"app.kubernetes.io/component": component, "app.kubernetes.io/instance": lcluster["metadata"]["name"],
            "app.kubernetes.io/name": PROJECT}


def _tolerations() -> list[dict]:
    return [{"key": "drbd.linbit.com/lost-quorum", "effect": "NoSchedule"},
            {"key": "drbd.linbit.com/force-io-error", "effect": "NoSchedule"}]


def _apply(lab: Any, group: str, version: str, plural: str, obj: dict, owner: dict) -> dict | None:
    obj["metadata"]["ownerReferences"] = [wl.owner_ref(owner)]
    return wl.apply(lab, group, version, plural, obj)


def _component_template(lab: Any, lcluster: dict, key: str, template: dict) -> dict:
    """Apply ``LinstorCluster.spec.<component>.podTemplate`` as a strategic-merge patch.

    The cluster's ``nodeAffinity`` goes into every component's pods first, as the operator's
    ``Cluster*NodeAffinityPatch`` does (piraeus-operator ``internal/controller/linstorcluster_controller.go``).
    """
    affinity = (lcluster.get("spec") or {}).get("nodeAffinity")
    if affinity:
        template = strategic_merge(template, {"spec": {"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": affinity}}}})
    patch = ((lcluster.get("spec") or {}).get(key) or {}).get("podTemplate")
    return strategic_merge(template, patch) if patch else template


def _enabled(lcluster: dict, key: str) -> bool:
    return ((lcluster.get("spec") or {}).get(key) or {}).get("enabled", True) is not False


def _apply_cluster_resources(lab: Any, lcluster: dict, ns: str, nodes: list[dict]) -> dict[str, list[str]]:
    """Controller, CSI, HA controller and one LinstorSatellite per selected node."""
    spec = lcluster.get("spec") or {}
    url = f"http://linstor-controller.{ns}.svc:3370"
    env_ctl = [{"name": "LS_CONTROLLERS", "value": url}]
    if _enabled(lcluster, "controller") and not spec.get("externalController"):
        labels = _labels(lcluster, "linstor-controller")
        _apply(lab, "", "v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "linstor-controller-config", "namespace": ns, "labels": labels},
               "data": {"linstor.toml": '[db]\n  connection_url = "k8s"\n'}}, lcluster)
        tmpl = {"metadata": {"labels": labels, "annotations": {"kubectl.kubernetes.io/default-container": "linstor-controller"}},
                "spec": {"serviceAccountName": "linstor-controller", "enableServiceLinks": False,
                         "nodeSelector": spec.get("nodeSelector") or {}, "tolerations": _tolerations() + (spec.get("tolerations") or []),
                         "containers": [{"name": "linstor-controller", "image": IMAGES["linstor-controller"],
                                         "args": ["startController"],
                                         "ports": [{"containerPort": 3370, "name": "api", "protocol": "TCP"}],
                                         "startupProbe": {"httpGet": {"path": "/health", "port": "api"}, "failureThreshold": 30, "periodSeconds": 10},
                                         "livenessProbe": {"httpGet": {"path": "/health", "port": "api"}},
                                         "volumeMounts": [{"mountPath": "/etc/linstor", "name": "etc-linstor", "readOnly": True},
                                                          {"mountPath": "/tmp", "name": "tmp"}]}],
                         "volumes": [{"name": "etc-linstor", "configMap": {"name": "linstor-controller-config"}},
                                     {"name": "tmp", "emptyDir": {}}]}}
        _apply(lab, "apps", "v1", "deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "linstor-controller", "namespace": ns, "labels": labels},
               "spec": {"replicas": int((spec.get("controller") or {}).get("replicas", 1)), "strategy": {"type": "Recreate"},
                        "selector": {"matchLabels": labels},
                        "template": _component_template(lab, lcluster, "controller", tmpl)}}, lcluster)
        svc_ip = "10.96." + ".".join(str(b) for b in hashlib.sha256(ns.encode()).digest()[:2])
        existing = wl.get(lab, "", "services", ns, "linstor-controller")
        _apply(lab, "", "v1", "services", {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "linstor-controller", "namespace": ns, "labels": labels},
               "spec": {"type": "ClusterIP", "clusterIP": (existing or {}).get("spec", {}).get("clusterIP", svc_ip),
                        "ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4"], "selector": labels,
                        "ports": [{"name": "api", "port": 3370, "protocol": "TCP", "targetPort": "api"}]}}, lcluster)
    if _enabled(lcluster, "csiController"):
        labels = _labels(lcluster, "linstor-csi-controller")
        sidecars = [{"name": n, "image": IMAGES[n], "args": ["--csi-address=$(ADDRESS)", "--v=1"],
                     "volumeMounts": [{"mountPath": "/var/lib/csi/sockets/pluginproxy/", "name": "socket-dir"}]}
                    for n in ("csi-attacher", "csi-provisioner", "csi-snapshotter", "csi-resizer", "csi-livenessprobe")]
        tmpl = {"metadata": {"labels": labels, "annotations": {"kubectl.kubernetes.io/default-container": "linstor-csi"}},
                "spec": {"serviceAccountName": "linstor-csi-controller", "priorityClassName": "system-cluster-critical",
                         "tolerations": _tolerations(),
                         "initContainers": [{"name": "linstor-wait-api-online", "image": IMAGES["linstor-csi"],
                                             "command": ["/linstor-wait-until", "api-online"], "env": env_ctl}],
                         "containers": [{"name": "linstor-csi", "image": IMAGES["linstor-csi"],
                                         "args": ["--csi-endpoint=unix://$(ADDRESS)", "--node=$(KUBE_NODE_NAME)",
                                                  "--linstor-endpoint=$(LS_CONTROLLERS)", "--log-level=info"],
                                         "env": env_ctl, "volumeMounts": [{"mountPath": "/var/lib/csi/sockets/pluginproxy/", "name": "socket-dir"}]}]
                         + sidecars,
                         "volumes": [{"name": "socket-dir", "emptyDir": {}}]}}
        _apply(lab, "apps", "v1", "deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "linstor-csi-controller", "namespace": ns, "labels": labels},
               "spec": {"replicas": int((spec.get("csiController") or {}).get("replicas", 1)), "selector": {"matchLabels": labels},
                        "template": _component_template(lab, lcluster, "csiController", tmpl)}}, lcluster)
        _apply(lab, "storage.k8s.io", "v1", "csidrivers", {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
               "metadata": {"name": DRIVER, "labels": _labels(lcluster, "linstor-csi")},
               "spec": {"attachRequired": True, "podInfoOnMount": True, "requiresRepublish": False, "seLinuxMount": True,
                        "storageCapacity": True, "fsGroupPolicy": "ReadWriteOnceWithFSType", "volumeLifecycleModes": ["Persistent"]}},
               lcluster)
    if _enabled(lcluster, "csiNode"):
        labels = _labels(lcluster, "linstor-csi-node")
        tmpl = {"metadata": {"labels": labels, "annotations": {"kubectl.kubernetes.io/default-container": "linstor-csi"}},
                "spec": {"serviceAccountName": "linstor-csi-node", "priorityClassName": "system-node-critical",
                         "tolerations": _tolerations() + [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                         "initContainers": [{"name": "linstor-wait-node-online", "image": IMAGES["linstor-csi"],
                                             "command": ["/linstor-wait-until", "satellite-online", "$(KUBE_NODE_NAME)"], "env": env_ctl}],
                         "containers": [{"name": "linstor-csi", "image": IMAGES["linstor-csi"], "securityContext": {"privileged": True},
                                         "args": ["--csi-endpoint=unix://$(CSI_ENDPOINT)", "--node=$(KUBE_NODE_NAME)",
                                                  "--linstor-endpoint=$(LS_CONTROLLERS)"], "env": env_ctl,
                                         "volumeMounts": [{"mountPath": "/csi", "name": "plugin-dir"},
                                                          {"mountPath": "/var/lib/kubelet", "name": "publish-dir", "mountPropagation": "Bidirectional"},
                                                          {"mountPath": "/dev", "name": "device-dir"}]},
                                        {"name": "csi-node-driver-registrar", "image": IMAGES["csi-node-driver-registrar"],
                                         "volumeMounts": [{"mountPath": "/csi", "name": "plugin-dir"}, {"mountPath": "/registration", "name": "registration-dir"}]},
                                        {"name": "csi-livenessprobe", "image": IMAGES["csi-livenessprobe"],
                                         "volumeMounts": [{"mountPath": "/csi", "name": "plugin-dir"}]}],
                         "volumes": [{"name": "device-dir", "hostPath": {"path": "/dev", "type": "Directory"}},
                                     {"name": "plugin-dir", "hostPath": {"path": f"/var/lib/kubelet/plugins/{DRIVER}", "type": "DirectoryOrCreate"}},
                                     {"name": "publish-dir", "hostPath": {"path": "/var/lib/kubelet", "type": "Directory"}},
                                     {"name": "registration-dir", "hostPath": {"path": "/var/lib/kubelet/plugins_registry", "type": "Directory"}}]}}
        _apply(lab, "apps", "v1", "daemonsets", {"apiVersion": "apps/v1", "kind": "DaemonSet",
               "metadata": {"name": "linstor-csi-node", "namespace": ns, "labels": labels},
               "spec": {"selector": {"matchLabels": labels}, "template": _component_template(lab, lcluster, "csiNode", tmpl)}}, lcluster)
    if _enabled(lcluster, "highAvailabilityController"):
        labels = _labels(lcluster, "ha-controller")
        tmpl = {"metadata": {"labels": labels},
                "spec": {"serviceAccountName": "ha-controller", "priorityClassName": "system-node-critical", "tolerations": _tolerations(),
                         "containers": [{"name": "ha-controller", "image": IMAGES["ha-controller"], "args": ["/agent", "--v=1"],
                                         "securityContext": {"privileged": True, "readOnlyRootFilesystem": True},
                                         "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8000}}}]}}
        _apply(lab, "apps", "v1", "daemonsets", {"apiVersion": "apps/v1", "kind": "DaemonSet",
               "metadata": {"name": "ha-controller", "namespace": ns, "labels": labels},
               "spec": {"selector": {"matchLabels": labels},
                        "template": _component_template(lab, lcluster, "highAvailabilityController", tmpl)}}, lcluster)
    # satellites
    configs = sorted(wl.objects(lab, GROUP, "linstorsatelliteconfigurations"), key=lambda c: c["metadata"]["name"])
    applied: dict[str, list[str]] = {}
    wanted = set()
    for node in nodes:
        name = node["metadata"]["name"]
        sat_spec, matched = merge_satellite_configurations(node, configs)
        applied[name] = matched
        wanted.add(name)
        sat_spec["clusterRef"] = {"name": lcluster["metadata"]["name"]}
        _apply(lab, GROUP, "v1", "linstorsatellites", {"apiVersion": f"{GROUP}/v1", "kind": "LinstorSatellite",
               "metadata": {"name": name, "labels": _labels(lcluster, "linstor-satellite"),
                            "annotations": {APPLIED_CONFIGS: ",".join(matched)}},
               "spec": sat_spec}, lcluster)
    for sat in wl.objects(lab, GROUP, "linstorsatellites"):
        if wl.owned_by(sat, lcluster) and sat["metadata"]["name"] not in wanted:
            wl.delete(lab, sat)
    for cfg in configs:
        to = sorted(n for n, m in applied.items() if cfg["metadata"]["name"] in m)
        conds = wl.set_condition((cfg.get("status") or {}).get("conditions") or [],
                                 {"type": "Applied", "status": "True", "reason": "AsExpected", "message": "",
                                  "observedGeneration": cfg["metadata"].get("generation", 1)})
        wl.set_status(lab, cfg, {**(cfg.get("status") or {}), "conditions": conds, "appliedTo": to, "matched": len(to)})
    return applied


def _node_matches(node: dict, cfg: dict) -> bool:
    spec = cfg.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    affinity = spec.get("nodeAffinity")
    return not (affinity and not any(wl._term_matches(node, t) for t in affinity.get("nodeSelectorTerms") or []))


def merge_satellite_configurations(node: dict, configs: list[dict]) -> tuple[dict, list[str]]:
    """``merge.SatelliteConfigurations``: configs in name order; pools and properties by name,
    patches appended, a ``podTemplate`` becomes a patch on the satellite pod."""
    pools: dict[str, dict] = {}
    props: dict[str, dict] = {}
    patches: list[dict] = []
    extra: dict[str, Any] = {}
    matched = []
    for cfg in configs:
        if not _node_matches(node, cfg):
            continue
        matched.append(cfg["metadata"]["name"])
        spec = cfg.get("spec") or {}
        for p in spec.get("storagePools") or []:
            pools[p.get("name", "")] = copy.deepcopy(p)
        for p in spec.get("properties") or []:
            props[p.get("name", "")] = copy.deepcopy(p)
        if spec.get("podTemplate"):
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "satellite"}, **copy.deepcopy(spec["podTemplate"])}
            patches.append({"target": {"kind": "Pod", "name": "satellite"}, "patch": json.dumps(pod)})  # JSON is YAML
        patches += copy.deepcopy(spec.get("patches") or [])
        for key in ("internalTLS", "ipFamilies", "deletionPolicy", "evacuationStrategy"):
            if spec.get(key) is not None:
                extra[key] = copy.deepcopy(spec[key])
    out = {"storagePools": list(pools.values()), "properties": list(props.values()), "patches": patches, **extra}
    return out, matched


def pool_kind(pool: dict) -> tuple[str, str] | None:
    """(LINSTOR provider kind, backing pool name) of a ``storagePools`` entry (``PoolName()``)."""
    name = pool.get("name", "")
    if "lvmPool" in pool:
        return "LVM", (pool["lvmPool"] or {}).get("volumeGroup") or name
    if "lvmThinPool" in pool:
        lv = (pool["lvmThinPool"] or {}).get("thinPool") or name
        vg = (pool["lvmThinPool"] or {}).get("volumeGroup") or f"linstor_{lv}"
        return "LVM_THIN", f"{vg}/{lv}"
    if "zfsPool" in pool:
        return "ZFS", (pool["zfsPool"] or {}).get("zPool") or name
    if "zfsThinPool" in pool:
        return "ZFS_THIN", (pool["zfsThinPool"] or {}).get("zPool") or name
    if "filePool" in pool:
        return "FILE", (pool["filePool"] or {}).get("directory") or f"/var/lib/linstor-pools/{name}"
    if "fileThinPool" in pool:
        return "FILE_THIN", (pool["fileThinPool"] or {}).get("directory") or f"/var/lib/linstor-pools/{name}"
    return None


def satellite_pod_template(lcluster: dict, node: str) -> dict:
    """The operator's default satellite pod (pkg/resources/satellite, structure paraphrased):
    what it mounts from the host is what makes it fail on Talos without the patch."""
    labels = _labels(lcluster, "linstor-satellite")
    return {
        "metadata": {"labels": labels, "annotations": {"kubectl.kubernetes.io/default-container": "linstor-satellite"}},
        "spec": {
            "automountServiceAccountToken": False, "enableServiceLinks": False, "serviceAccountName": "satellite",
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}},
            "initContainers": [
                {"name": "drbd-module-loader", "image": IMAGES["drbd-module-loader"],
                 "env": [{"name": "LB_FAIL_IF_USERMODE_HELPER_NOT_DISABLED", "value": "yes"},
                         {"name": "LB_DRBD_MIN_LOADED_VERSION", "value": "9"}],
                 "securityContext": {"capabilities": {"add": ["SYS_MODULE"], "drop": ["ALL"]}, "readOnlyRootFilesystem": True},
                 "volumeMounts": [{"mountPath": "/lib/modules", "name": "lib-modules", "readOnly": True},
                                  {"mountPath": "/usr/src", "name": "usr-src", "readOnly": True},
                                  {"mountPath": "/tmp", "name": "tmp"}]},
                {"name": "drbd-shutdown-guard", "image": IMAGES["drbd-shutdown-guard"],
                 "securityContext": {"privileged": True, "readOnlyRootFilesystem": True},
                 "volumeMounts": [{"mountPath": "/run/systemd/system/", "name": "run-systemd-system"},
                                  {"mountPath": "/run/drbd-shutdown-guard", "name": "run-drbd-shutdown-guard"},
                                  {"mountPath": "/run/dbus/system_bus_socket", "name": "systemd-bus-socket"}]}],
            "containers": [
                {"name": "linstor-satellite", "image": IMAGES["linstor-satellite"], "args": ["startSatellite"],
                 "env": [{"name": "LB_FORCE_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                 "ports": [{"containerPort": 3366, "name": "linstor", "protocol": "TCP"}],
                 "securityContext": {"privileged": True, "readOnlyRootFilesystem": True,
                                     "capabilities": {"add": ["NET_ADMIN", "SYS_ADMIN"], "drop": ["ALL"]}},
                 "volumeMounts": [{"mountPath": "/etc/linstor", "name": "satellite-config", "readOnly": True},
                                  {"mountPath": "/dev", "name": "dev"},
                                  {"mountPath": "/var/log/linstor-satellite", "name": "var-log-linstor-satellite"},
                                  {"mountPath": "/var/lib/drbd", "name": "var-lib-drbd"},
                                  {"mountPath": "/var/lib/linstor.d", "name": "var-lib-linstor-d"},
                                  {"mountPath": "/etc/lvm/archive", "name": "etc-lvm-archive"},
                                  {"mountPath": "/etc/lvm/backup", "name": "etc-lvm-backup"},
                                  {"mountPath": "/run", "name": "run"}, {"mountPath": "/tmp", "name": "tmp"}]},
                {"name": "drbd-reactor", "image": IMAGES["drbd-reactor"],
                 "ports": [{"containerPort": 9942, "name": "prometheus", "protocol": "TCP"}],
                 "volumeMounts": [{"mountPath": "/etc/drbd-reactor.d", "name": "reactor-config", "readOnly": True}]}],
            "volumes": [
                {"name": "lib-modules", "hostPath": {"path": "/lib/modules", "type": "Directory"}},
                {"name": "usr-src", "hostPath": {"path": "/usr/src", "type": "Directory"}},
                {"name": "dev", "hostPath": {"path": "/dev", "type": "Directory"}},
                {"name": "etc-lvm-archive", "hostPath": {"path": "/etc/lvm/archive", "type": "DirectoryOrCreate"}},
                {"name": "etc-lvm-backup", "hostPath": {"path": "/etc/lvm/backup", "type": "DirectoryOrCreate"}},
                {"name": "var-lib-linstor-d", "hostPath": {"path": "/var/lib/linstor.d", "type": "DirectoryOrCreate"}},
                {"name": "var-lib-drbd", "hostPath": {"path": "/var/lib/drbd", "type": "DirectoryOrCreate"}},
                {"name": "run-systemd-system", "hostPath": {"path": "/run/systemd/system/", "type": "Directory"}},
                {"name": "run-drbd-shutdown-guard", "hostPath": {"path": "/run/drbd-shutdown-guard", "type": "DirectoryOrCreate"}},
                {"name": "systemd-bus-socket", "hostPath": {"path": "/run/dbus/system_bus_socket", "type": "Socket"}},
                {"name": "var-log-linstor-satellite", "hostPath": {"path": "/var/log/linstor-satellite", "type": "DirectoryOrCreate"}},
                {"name": "satellite-config", "configMap": {"name": f"{node}-satellite-config", "defaultMode": 0o440}},
                {"name": "reactor-config", "configMap": {"name": f"{node}-reactor-config", "defaultMode": 0o440}},
                {"name": "tmp", "emptyDir": {}}, {"name": "run", "emptyDir": {}}],
            "restartPolicy": "Always",
            "tolerations": [{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}] + _tolerations(),
        },
    }


def _apply_patches(ds: dict, patches: list[dict]) -> dict:
    """Kustomize patches on the satellite DaemonSet; Pod targets patch its pod template (v2.4.0)."""
    from .kubeapi import json_patch

    for p in patches:
        target = p.get("target") or {}
        raw = p.get("patch") or ""
        try:
            body = _load_patch(raw) if isinstance(raw, str) else raw
        except yaml.YAMLError as exc:
            raise ApiError(422, "Invalid", f"failed to parse patch: {exc}") from exc
        kind, name = target.get("kind"), target.get("name")
        if kind == "Pod" and name in (None, "satellite"):
            if isinstance(body, list):
                doc = {"metadata": ds["spec"]["template"].get("metadata", {}), "spec": ds["spec"]["template"]["spec"]}
                ds["spec"]["template"] = json_patch(doc, body)
            else:
                body = {k: v for k, v in (body or {}).items() if k in ("metadata", "spec")}
                body.get("metadata", {}).pop("name", None)
                ds["spec"]["template"] = strategic_merge(ds["spec"]["template"], body)
        elif kind == "DaemonSet" and name in (None, "linstor-satellite", ds["metadata"]["name"]):
            if isinstance(body, list):
                ds = json_patch(ds, body)
            else:
                body = {k: v for k, v in (body or {}).items() if k in ("metadata", "spec")}
                body.get("metadata", {}).pop("name", None)
                ds = strategic_merge(ds, body)
    return ds


def _load_patch(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return yaml.safe_load(raw)


def validate_pod_template(kind: str, name: str, template: dict) -> list[str]:
    """The API server's pod-spec checks that patches most often break (volume references)."""
    spec = template.get("spec") or {}
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    errors = []
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            for j, m in enumerate(c.get("volumeMounts") or []):
                if m.get("name") not in volumes:
                    errors.append(f"spec.template.spec.{group}[{i}].volumeMounts[{j}].name: Not found: \"{m.get('name')}\"")
    if not spec.get("containers"):
        errors.append("spec.template.spec.containers: Required value")
    return errors


def _satellite_daemonset(lab: Any, lcluster: dict, sat: dict, ns: str) -> dict:
    """The satellite DaemonSet for a LinstorSatellite (memoized per object version)."""
    key = f"ds:{sat['metadata']['uid']}:{sat['metadata']['resourceVersion']}:{lcluster['metadata']['uid']}:{ns}"
    cache = lab.workloads.cache
    if key not in cache:
        for old in [k for k in cache if k.startswith(f"ds:{sat['metadata']['uid']}:")]:
            del cache[old]
        cache[key] = _build_satellite_daemonset(lcluster, sat, ns)
    return copy.deepcopy(cache[key])


def _build_satellite_daemonset(lcluster: dict, sat: dict, ns: str) -> dict:
    node = sat["metadata"]["name"]
    labels = _labels(lcluster, "linstor-satellite")
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": f"linstor-satellite.{node}", "namespace": ns, "labels": labels},
          "spec": {"selector": {"matchLabels": labels}, "template": satellite_pod_template(lcluster, node),
                   "updateStrategy": {"type": "RollingUpdate"}}}
    return _apply_patches(ds, (sat.get("spec") or {}).get("patches") or [])


def _reconcile_satellite(lab: Any, sat: dict, ns: str, now: float, op_pod: dict | None) -> None:
    node_name = sat["metadata"]["name"]
    lcluster = next((c for c in wl.objects(lab, GROUP, "linstorclusters")
                     if c["metadata"]["name"] == ((sat.get("spec") or {}).get("clusterRef") or {}).get("name")), None)
    if lcluster is None:
        return
    conds = _new_conditions()
    node = wl.get(lab, "", "nodes", None, node_name)
    if node is None:
        _write_conditions(lab, sat, conds)
        return
    try:
        for cm in ("satellite-config", "reactor-config"):
            data = ({"linstor_satellite.toml": '[netcom]\n  type = "plain"\n  port = 3366\n'} if cm == "satellite-config"
                    else {"prometheus.toml": '[[prometheus]]\nenums = true\naddress = "[::]:9942"\n'})
            _apply(lab, "", "v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": f"{node_name}-{cm}", "namespace": ns, "labels": _labels(lcluster, "linstor-satellite")},
                   "data": data}, sat)
        ds = _satellite_daemonset(lab, lcluster, sat, ns)
        errors = validate_pod_template("DaemonSet", ds["metadata"]["name"], ds["spec"]["template"])
        if errors:
            detail = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
            raise ApiError(422, "Invalid", f'DaemonSet.apps "{ds["metadata"]["name"]}" is invalid: {detail}')
        _apply(lab, "apps", "v1", "daemonsets", ds, sat)
        _add_success(conds, "Applied", "Resources applied")
    except ApiError as err:
        _add_error(conds, "Applied", err.message)
        _log_once(lab, ns, op_pod, "manager", f'ERROR\tReconciler error\t{{"controller": "linstorsatellite", "name": "{node_name}", '
                                              f'"error": {json.dumps(err.message)}}}')
    status: dict[str, Any] = {}
    ok, err = api_reachable(lab)
    if not ok:
        _add_error(conds, "Available", err)
        _add_unknown(conds, "Configured", "Controller unreachable")
    else:
        pod = next((p for p in wl.pods_of(lab, ns, {"app.kubernetes.io/component": "linstor-satellite"})
                    if p["spec"].get("nodeName") == node_name and not p["metadata"].get("deletionTimestamp")), None)
        ctl = lab.linstor
        if pod is None:
            _add_error(conds, "Available", f'Pod "linstor-satellite.{node_name}" not found')
            _add_unknown(conds, "Configured", "Missing Pod")
        elif not (pod.get("status") or {}).get("podIPs"):
            _add_error(conds, "Available", "missing IP address on pod")
            _add_unknown(conds, "Configured", "missing IP address on pod")
        else:
            props = _node_properties(node, (sat.get("spec") or {}).get("properties") or [])
            lnode = ctl.create_or_update_node(node_name, pod["status"]["podIPs"][0]["ip"], props, net_name="default-ipv4")
            if lnode.online:
                _add_success(conds, "Available", "satellite online")
                try:
                    _reconcile_pools(lab, sat, node_name, ns, op_pod, pod)
                    _add_success(conds, "Configured", "Pools configured")
                except LinstorError as exc:
                    _add_error(conds, "Configured", _golinstor_error(exc))
                view = ctl.node_json(lnode)
                status["storageProviders"] = view.get("storage_providers", [])
                status["deviceLayers"] = view.get("resource_layers", [])
            else:
                _add_error(conds, "Available", "satellite not online")
        pools = [p for p in ctl.pools.get(node_name, {}).values() if p.kind != "DISKLESS"]
        total = sum(ctl.pool_space(p)[0] for p in pools) * 1024
        free = sum(ctl.pool_space(p)[1] for p in pools) * 1024
        status.update({"availableCapacityBytes": total, "freeCapacityBytes": free,
                       "capacity": f"{(total - free) // 2**30}/{total // 2**30}GiB",
                       "numberOfVolumes": sum(1 for rd in ctl.rds.values() if node_name in rd.replicas),
                       "numberOfSnapshots": sum(1 for ss in ctl.snapshots.values() for s in ss.values() if node_name in s.nodes)})
    _write_conditions(lab, sat, conds, status)


def _golinstor_error(exc: LinstorError) -> str:
    """How golinstor's ApiCallError prints (message, plus cause/details when present)."""
    parts = []
    for rc in exc.rcs:
        text = f"Message: '{rc['message']}'"
        if rc.get("cause"):
            text += f"; Cause: '{rc['cause']}'"
        if rc.get("details"):
            text += f"; Details: '{rc['details']}'"
        parts.append(text)
    return "; ".join(parts)


def _node_properties(node: dict, props: list[dict]) -> dict[str, str]:
    """``utils.ResolveNodeProperties`` for value / valueFrom.nodeFieldRef, plus topology labels."""
    labels = node["metadata"].get("labels") or {}
    annotations = node["metadata"].get("annotations") or {}
    out = {f"Aux/topology/{k}": v for k, v in labels.items()}
    for p in props:
        if "value" in p:
            value: str | None = p["value"]
        else:
            ref = ((p.get("valueFrom") or {}).get("nodeFieldRef") or "")
            if ref == "metadata.name":
                value = node["metadata"]["name"]
            elif ref.startswith("metadata.labels['"):
                value = labels.get(ref[len("metadata.labels['"):-2])
            elif ref.startswith("metadata.annotations['"):
                value = annotations.get(ref[len("metadata.annotations['"):-2])
            else:
                value = None
        if value in (None, "") and p.get("optional"):
            continue
        out[p["name"]] = value or ""
    out[MANAGED_BY] = OPERATOR_NAME
    return out


def _reconcile_pools(lab: Any, sat: dict, node: str, ns: str, op_pod: dict | None, sat_pod: dict) -> None:
    """``reconcileStoragePools`` (see the module docstring for the device-pool rule)."""
    ctl = lab.linstor
    expected = set()
    for pool in (sat.get("spec") or {}).get("storagePools") or []:
        name = pool.get("name", "")
        expected.add(name)
        kind = pool_kind(pool)
        if kind is None:
            raise LinstorError([api_rc(ret_code(221, MASK_ERROR), f"Must specify exactly 1 type of storage pool ({name})")], 400)
        provider, backing = kind
        props = {MANAGED_BY: OPERATOR_NAME, "StorDriver/StorPoolName": backing}
        for p in pool.get("properties") or []:
            if "value" in p:
                props[p["name"]] = p["value"]
        props[LAST_APPLIED] = json.dumps(sorted(k for k in props if k != LAST_APPLIED))
        existing = ctl.pools.get(node, {}).get(name)
        devices = [block_links.resolve_on(lab, node, d) for d in ((pool.get("source") or {}).get("hostDevices")) or []]
        if existing is None and devices:
            try:
                _rcs, signatures = ctl.create_device_pool(node, provider, backing, devices, name, props)
                for dev, sig in signatures.items():
                    wl.set_block_signature(lab, node, dev, sig)
                _log_once(lab, ns, sat_pod, "linstor-satellite",
                          f"INFO  LINSTOR/Satellite - SYSTEM - Created {provider} storage pool '{name}' on {' '.join(devices)}")
            except LinstorError as exc:
                _log_once(lab, ns, op_pod, "manager", f'ERROR\tfailed to create device pool\t{{"pool": {json.dumps(pool)}, '
                                                      f'"error": {json.dumps(_golinstor_error(exc))}}}')
                for rc in exc.rcs:
                    _log_once(lab, ns, sat_pod, "linstor-satellite",
                              f"ERROR LINSTOR/Satellite - SYSTEM - {rc['message']} [Report number {(rc.get('error_report_ids') or ['-'])[0]}]"
                              + (f"\n{rc['details']}" if rc.get("details") else ""))
            existing = ctl.pools.get(node, {}).get(name)
        if existing is None:
            ctl.create_storage_pool(node, name, provider, props, backing_kib=None)
            existing = ctl.pools[node][name]
            if existing.error:
                _log_once(lab, ns, sat_pod, "linstor-satellite",
                          f"ERROR LINSTOR/Satellite - SYSTEM - Failed to query free space from storage pool [Report number "
                          f"{existing.error['error_report_ids'][0]}]")
        changed = {k: v for k, v in props.items() if existing.props.get(k) != v}
        if changed:
            ctl.modify_storage_pool(node, name, changed, [])
    for pool in list(ctl.pools.get(node, {}).values()):
        if pool.props.get(MANAGED_BY) == OPERATOR_NAME and pool.name not in expected:
            ctl.delete_storage_pool(node, pool.name)


def _cluster_state(lab: Any, lcluster: dict, ns: str, conds: dict, applied: dict) -> dict:
    ok, detail = api_reachable(lab)
    status: dict[str, Any] = {}
    if not ok:
        _add_error(conds, "Available", detail)
        _add_unknown(conds, "Configured", "Controller unreachable")
        return status
    v = CONTROLLER_VERSION
    status["version"] = v["version"]
    _add_success(conds, "Available", f"Controller {v['version']} (API: {v['rest_api_version']}, Git: {v['git_hash']}) reachable at '{detail}'")
    ctl = lab.linstor
    expected = dict(DEFAULT_CONTROLLER_PROPS)
    for p in (lcluster.get("spec") or {}).get("properties") or []:
        if "value" in p:
            expected[p["name"]] = p["value"]
    expected[MANAGED_BY] = OPERATOR_NAME
    expected[LAST_APPLIED] = json.dumps(sorted(k for k in expected if k != LAST_APPLIED))
    changed = {k: v for k, v in expected.items() if ctl.props.get(k) != v}
    if changed:
        ctl.modify_props(changed)
    _add_success(conds, "Configured", "Properties applied")
    sats = [s for s in wl.objects(lab, GROUP, "linstorsatellites") if wl.owned_by(s, lcluster)]
    running = sum(1 for s in sats if (wl.condition((s.get("status") or {}).get("conditions"), "Available") or {}).get("status") == "True")
    pools = [p for ps in ctl.pools.values() for p in ps.values() if p.kind != "DISKLESS"]
    total = sum(ctl.pool_space(p)[0] for p in pools) * 1024
    free = sum(ctl.pool_space(p)[1] for p in pools) * 1024
    status.update({"scheduledSatellites": len(sats), "runningSatellites": running, "satellites": f"{running}/{len(sats)}",
                   "availableCapacityBytes": total, "freeCapacityBytes": free,
                   "capacity": f"{(total - free) // 2**30}/{total // 2**30}GiB",
                   "numberOfVolumes": sum(1 for rd in ctl.rds.values() if rd.volumes),
                   "numberOfSnapshots": sum(len(s) for s in ctl.snapshots.values())})
    for pod in wl.pods_of(lab, ns, {"app.kubernetes.io/component": "linstor-csi-node"}):
        if not wl.pod_ready(pod):
            _add_unknown(conds, "Configured", f"CSI node pod '{pod['metadata']['name']}' not ready")
        elif wl.get(lab, "storage.k8s.io", "csinodes", None, pod["spec"].get("nodeName", "")) is None:
            _add_error(conds, "Configured", f'failed to get CSI Node: csinodes.storage.k8s.io "{pod["spec"].get("nodeName")}" not found')
    return status


# ----------------------------------------------------------------------------- runner


class PiraeusRunner:
    """Init containers of the Piraeus pods that wait for LINSTOR (``linstor-wait-until``)."""

    def run(self, lab: Any, pod: dict, container: dict, node: str, now: float) -> wl.RunResult | None:
        cmd = container.get("command") or []
        if not cmd or not str(cmd[0]).endswith("linstor-wait-until"):
            return None
        what = cmd[1] if len(cmd) > 1 else ""
        ok, _ = api_reachable(lab)
        if what == "satellite-online":
            lnode = lab.linstor.nodes.get(node)
            ok = ok and lnode is not None and lnode.online
        if ok:
            return wl.RunResult(0, f"linstor-wait-until: {what}: done", 0.5)
        return wl.RunResult(0, "", 0.0, pending=True)


# ----------------------------------------------------------------------------- wiring into the lab


def attach(lab: Any, data: dict | None = None) -> None:
    """Give a Lab its storage stack: workload controllers, LINSTOR, operator and CSI state.

    ``data`` is what :func:`state_dict` saved (None for a fresh lab).
    """
    from . import csi

    data = data or {}
    wl.register_types(lab.kube)
    lab.workloads = wl.Workloads(wl.WorkloadState.from_dict(data.get("workloads")),
                                 runners=[PiraeusRunner(), wl.ShellRunner()], volume_hooks=[csi.volume_hook])
    saved = data.get("linstor")
    lab.linstor = LinstorController.from_dict(saved) if saved else LinstorController(seed=int(lab.options.get("seed", 1)))
    lab.operator = OperatorState.from_dict(data.get("operator"))
    lab.csi = csi.CsiState.from_dict(data.get("csi"))
    lab.drbd = drbd.DrbdState.from_dict(data.get("drbd"))
    lab.linstor.link = lambda rd, a, b: drbd.link_up(lab, rd, a, b)
    lab.linstor.quorum_enforced = lambda: drbd.quorum_enforced(lab)
    lab.linstor.alive = lambda node: drbd.node_up(lab, node)
    lab.linstor.split_brain = lambda rd, a, b: drbd.split_brain(lab, rd, a, b)


def state_dict(lab: Any) -> dict:
    return {"workloads": lab.workloads.to_dict(), "linstor": lab.linstor.to_dict(),
            "operator": lab.operator.to_dict(), "csi": lab.csi.to_dict(), "drbd": lab.drbd.to_dict()}
