"""The Piraeus operator v2's LinstorCluster reconciler (its chart: :mod:`.chart`; satellites: :mod:`.satellites`).

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

import hashlib
import json
from typing import Any

from ..cluster import Lab
from ..kubernetes import objects as ko
from ..kubernetes.objects import owned_by, pod_ready, pods_of, rtype, set_condition
from ..kubernetes.patches import strategic_merge
from ..kubernetes.types import ApiError
from ..linstor.constants import CONTROLLER_VERSION
from ..workloads.scheduler import term_matches
from .chart import GROUP, IMAGES
from .facts import (
    DRIVER,
    LAST_APPLIED,
    MANAGED_BY,
    OPERATOR_NAME,
    api_reachable,
    operator_namespace,
    operator_pod,
)
from .owned import add_error, add_success, add_unknown, apply_owned, new_conditions, write_conditions
from .satellite_pod import component_labels, merge_satellite_configurations, satellite_tolerations
from .satellites import reconcile_satellite

APPLIED_CONFIGS = "piraeus.io/applied-configurations"

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


def reconcile_operator(lab: Lab, now: float) -> None:
    ns = operator_namespace(lab)
    if ns is None or rtype(lab, GROUP, "v1", "linstorclusters") is None:
        return
    clusters = ko.objects(lab, GROUP, "linstorclusters")
    if not clusters:
        return
    lcluster = clusters[0]
    op_pod = operator_pod(lab, ns)
    conds = new_conditions()
    try:
        nodes = _satellite_nodes(lab, lcluster)
        applied = _apply_cluster_resources(lab, lcluster, ns, nodes)
        add_success(conds, "Applied", "Resources applied")
    except ApiError as err:
        add_error(conds, "Applied", err.message)
        applied = {}
    for sat in ko.objects(lab, GROUP, "linstorsatellites"):
        if owned_by(sat, lcluster):
            reconcile_satellite(lab, sat, ns, now, op_pod)
    status = _cluster_state(lab, lcluster, ns, conds, applied)
    write_conditions(lab, lcluster, conds, status)


def _satellite_nodes(lab: Lab, lcluster: dict) -> list[dict]:
    spec = lcluster.get("spec") or {}
    selector = spec.get("nodeSelector") or {}
    affinity = spec.get("nodeAffinity")
    out = []
    for node in ko.objects(lab, "", "nodes"):
        labels = node["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            continue
        if affinity and not any(term_matches(node, t) for t in affinity.get("nodeSelectorTerms") or []):
            continue
        out.append(node)
    return out


def _component_template(lab: Lab, lcluster: dict, key: str, template: dict) -> dict:
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


def _apply_cluster_resources(lab: Lab, lcluster: dict, ns: str, nodes: list[dict]) -> dict[str, list[str]]:
    """Controller, CSI, HA controller and one LinstorSatellite per selected node."""
    spec = lcluster.get("spec") or {}
    url = f"http://linstor-controller.{ns}.svc:3370"
    env_ctl = [{"name": "LS_CONTROLLERS", "value": url}]
    if _enabled(lcluster, "controller") and not spec.get("externalController"):
        labels = component_labels(lcluster, "linstor-controller")
        apply_owned(lab, "", "v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "linstor-controller-config", "namespace": ns, "labels": labels},
               "data": {"linstor.toml": '[db]\n  connection_url = "k8s"\n'}}, lcluster)
        tmpl = {"metadata": {"labels": labels, "annotations": {"kubectl.kubernetes.io/default-container": "linstor-controller"}},
                "spec": {"serviceAccountName": "linstor-controller", "enableServiceLinks": False,
                         "nodeSelector": spec.get("nodeSelector") or {}, "tolerations": satellite_tolerations() + (spec.get("tolerations") or []),
                         "containers": [{"name": "linstor-controller", "image": IMAGES["linstor-controller"],
                                         "args": ["startController"],
                                         "ports": [{"containerPort": 3370, "name": "api", "protocol": "TCP"}],
                                         "startupProbe": {"httpGet": {"path": "/health", "port": "api"}, "failureThreshold": 30, "periodSeconds": 10},
                                         "livenessProbe": {"httpGet": {"path": "/health", "port": "api"}},
                                         "volumeMounts": [{"mountPath": "/etc/linstor", "name": "etc-linstor", "readOnly": True},
                                                          {"mountPath": "/tmp", "name": "tmp"}]}],
                         "volumes": [{"name": "etc-linstor", "configMap": {"name": "linstor-controller-config"}},
                                     {"name": "tmp", "emptyDir": {}}]}}
        apply_owned(lab, "apps", "v1", "deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "linstor-controller", "namespace": ns, "labels": labels},
               "spec": {"replicas": int((spec.get("controller") or {}).get("replicas", 1)), "strategy": {"type": "Recreate"},
                        "selector": {"matchLabels": labels},
                        "template": _component_template(lab, lcluster, "controller", tmpl)}}, lcluster)
        svc_ip = "10.96." + ".".join(str(b) for b in hashlib.sha256(ns.encode()).digest()[:2])
        existing = ko.get(lab, "", "services", ns, "linstor-controller")
        apply_owned(lab, "", "v1", "services", {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "linstor-controller", "namespace": ns, "labels": labels},
               "spec": {"type": "ClusterIP", "clusterIP": (existing or {}).get("spec", {}).get("clusterIP", svc_ip),
                        "ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4"], "selector": labels,
                        "ports": [{"name": "api", "port": 3370, "protocol": "TCP", "targetPort": "api"}]}}, lcluster)
    if _enabled(lcluster, "csiController"):
        labels = component_labels(lcluster, "linstor-csi-controller")
        sidecars = [{"name": n, "image": IMAGES[n], "args": ["--csi-address=$(ADDRESS)", "--v=1"],
                     "volumeMounts": [{"mountPath": "/var/lib/csi/sockets/pluginproxy/", "name": "socket-dir"}]}
                    for n in ("csi-attacher", "csi-provisioner", "csi-snapshotter", "csi-resizer", "csi-livenessprobe")]
        tmpl = {"metadata": {"labels": labels, "annotations": {"kubectl.kubernetes.io/default-container": "linstor-csi"}},
                "spec": {"serviceAccountName": "linstor-csi-controller", "priorityClassName": "system-cluster-critical",
                         "tolerations": satellite_tolerations(),
                         "initContainers": [{"name": "linstor-wait-api-online", "image": IMAGES["linstor-csi"],
                                             "command": ["/linstor-wait-until", "api-online"], "env": env_ctl}],
                         "containers": [{"name": "linstor-csi", "image": IMAGES["linstor-csi"],
                                         "args": ["--csi-endpoint=unix://$(ADDRESS)", "--node=$(KUBE_NODE_NAME)",
                                                  "--linstor-endpoint=$(LS_CONTROLLERS)", "--log-level=info"],
                                         "env": env_ctl, "volumeMounts": [{"mountPath": "/var/lib/csi/sockets/pluginproxy/", "name": "socket-dir"}]}]
                         + sidecars,
                         "volumes": [{"name": "socket-dir", "emptyDir": {}}]}}
        apply_owned(lab, "apps", "v1", "deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "linstor-csi-controller", "namespace": ns, "labels": labels},
               "spec": {"replicas": int((spec.get("csiController") or {}).get("replicas", 1)), "selector": {"matchLabels": labels},
                        "template": _component_template(lab, lcluster, "csiController", tmpl)}}, lcluster)
        apply_owned(lab, "storage.k8s.io", "v1", "csidrivers", {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
               "metadata": {"name": DRIVER, "labels": component_labels(lcluster, "linstor-csi")},
               "spec": {"attachRequired": True, "podInfoOnMount": True, "requiresRepublish": False, "seLinuxMount": True,
                        "storageCapacity": True, "fsGroupPolicy": "ReadWriteOnceWithFSType", "volumeLifecycleModes": ["Persistent"]}},
               lcluster)
    if _enabled(lcluster, "csiNode"):
        labels = component_labels(lcluster, "linstor-csi-node")
        tmpl = {"metadata": {"labels": labels, "annotations": {"kubectl.kubernetes.io/default-container": "linstor-csi"}},
                "spec": {"serviceAccountName": "linstor-csi-node", "priorityClassName": "system-node-critical",
                         "tolerations": satellite_tolerations() + [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
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
        apply_owned(lab, "apps", "v1", "daemonsets", {"apiVersion": "apps/v1", "kind": "DaemonSet",
               "metadata": {"name": "linstor-csi-node", "namespace": ns, "labels": labels},
               "spec": {"selector": {"matchLabels": labels}, "template": _component_template(lab, lcluster, "csiNode", tmpl)}}, lcluster)
    if _enabled(lcluster, "highAvailabilityController"):
        labels = component_labels(lcluster, "ha-controller")
        tmpl = {"metadata": {"labels": labels},
                "spec": {"serviceAccountName": "ha-controller", "priorityClassName": "system-node-critical", "tolerations": satellite_tolerations(),
                         "containers": [{"name": "ha-controller", "image": IMAGES["ha-controller"], "args": ["/agent", "--v=1"],
                                         "securityContext": {"privileged": True, "readOnlyRootFilesystem": True},
                                         "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8000}}}]}}
        apply_owned(lab, "apps", "v1", "daemonsets", {"apiVersion": "apps/v1", "kind": "DaemonSet",
               "metadata": {"name": "ha-controller", "namespace": ns, "labels": labels},
               "spec": {"selector": {"matchLabels": labels},
                        "template": _component_template(lab, lcluster, "highAvailabilityController", tmpl)}}, lcluster)
    # satellites
    configs = sorted(ko.objects(lab, GROUP, "linstorsatelliteconfigurations"), key=lambda c: c["metadata"]["name"])
    applied: dict[str, list[str]] = {}
    wanted = set()
    for node in nodes:
        name = node["metadata"]["name"]
        sat_spec, matched = merge_satellite_configurations(node, configs)
        applied[name] = matched
        wanted.add(name)
        sat_spec["clusterRef"] = {"name": lcluster["metadata"]["name"]}
        apply_owned(lab, GROUP, "v1", "linstorsatellites", {"apiVersion": f"{GROUP}/v1", "kind": "LinstorSatellite",
               "metadata": {"name": name, "labels": component_labels(lcluster, "linstor-satellite"),
                            "annotations": {APPLIED_CONFIGS: ",".join(matched)}},
               "spec": sat_spec}, lcluster)
    for sat in ko.objects(lab, GROUP, "linstorsatellites"):
        if owned_by(sat, lcluster) and sat["metadata"]["name"] not in wanted:
            ko.delete(lab, sat)
    for cfg in configs:
        to = sorted(n for n, m in applied.items() if cfg["metadata"]["name"] in m)
        conds = set_condition((cfg.get("status") or {}).get("conditions") or [],
                                 {"type": "Applied", "status": "True", "reason": "AsExpected", "message": "",
                                  "observedGeneration": cfg["metadata"].get("generation", 1)})
        ko.set_status(lab, cfg, {**(cfg.get("status") or {}), "conditions": conds, "appliedTo": to, "matched": len(to)})
    return applied


def _cluster_state(lab: Lab, lcluster: dict, ns: str, conds: dict, applied: dict) -> dict:
    ok, detail = api_reachable(lab)
    status: dict[str, Any] = {}
    if not ok:
        add_error(conds, "Available", detail)
        add_unknown(conds, "Configured", "Controller unreachable")
        return status
    v = CONTROLLER_VERSION
    status["version"] = v["version"]
    add_success(conds, "Available", f"Controller {v['version']} (API: {v['rest_api_version']}, Git: {v['git_hash']}) reachable at '{detail}'")
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
    add_success(conds, "Configured", "Properties applied")
    sats = [s for s in ko.objects(lab, GROUP, "linstorsatellites") if owned_by(s, lcluster)]
    running = sum(1 for s in sats if (ko.condition((s.get("status") or {}).get("conditions"), "Available") or {}).get("status") == "True")
    pools = [p for ps in ctl.pools.values() for p in ps.values() if p.kind != "DISKLESS"]
    total = sum(ctl.pool_space(p)[0] for p in pools) * 1024
    free = sum(ctl.pool_space(p)[1] for p in pools) * 1024
    status.update({"scheduledSatellites": len(sats), "runningSatellites": running, "satellites": f"{running}/{len(sats)}",
                   "availableCapacityBytes": total, "freeCapacityBytes": free,
                   "capacity": f"{(total - free) // 2**30}/{total // 2**30}GiB",
                   "numberOfVolumes": sum(1 for rd in ctl.rds.values() if rd.volumes),
                   "numberOfSnapshots": sum(len(s) for s in ctl.snapshots.values())})
    for pod in pods_of(lab, ns, {"app.kubernetes.io/component": "linstor-csi-node"}):
        if not pod_ready(pod):
            add_unknown(conds, "Configured", f"CSI node pod '{pod['metadata']['name']}' not ready")
        elif ko.get(lab, "storage.k8s.io", "csinodes", None, pod["spec"].get("nodeName", "")) is None:
            add_error(conds, "Configured", f'failed to get CSI Node: csinodes.storage.k8s.io "{pod["spec"].get("nodeName")}" not found')
    return status

