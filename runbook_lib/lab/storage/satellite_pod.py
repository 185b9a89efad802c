"""The satellite pod: the default template, LinstorSatelliteConfiguration merges and patches, and its validation."""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from ..cluster import Lab
from ..kubernetes.patches import json_patch, strategic_merge
from ..kubernetes.types import ApiError
from ..workloads.scheduler import term_matches
from .chart import IMAGES, PROJECT


def component_labels(lcluster: dict, component: str) -> dict:
    return {"app.kubernetes.io/component": component, "app.kubernetes.io/instance": lcluster["metadata"]["name"],
            "app.kubernetes.io/name": PROJECT}


def satellite_tolerations() -> list[dict]:
    return [{"key": "drbd.linbit.com/lost-quorum", "effect": "NoSchedule"},
            {"key": "drbd.linbit.com/force-io-error", "effect": "NoSchedule"}]


def _node_matches(node: dict, cfg: dict) -> bool:
    spec = cfg.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    affinity = spec.get("nodeAffinity")
    return not (affinity and not any(term_matches(node, t) for t in affinity.get("nodeSelectorTerms") or []))


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


def satellite_pod_template(lcluster: dict, node: str) -> dict:
    """The operator's default satellite pod (pkg/resources/satellite, structure paraphrased):
    what it mounts from the host is what makes it fail on Talos without the patch."""
    labels = component_labels(lcluster, "linstor-satellite")
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
            "tolerations": [{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}] + satellite_tolerations(),
        },
    }


def _apply_patches(ds: dict, patches: list[dict]) -> dict:
    """Kustomize patches on the satellite DaemonSet; Pod targets patch its pod template (v2.4.0)."""
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


def satellite_daemonset(lab: Lab, lcluster: dict, sat: dict, ns: str) -> dict:
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
    labels = component_labels(lcluster, "linstor-satellite")
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": f"linstor-satellite.{node}", "namespace": ns, "labels": labels},
          "spec": {"selector": {"matchLabels": labels}, "template": satellite_pod_template(lcluster, node),
                   "updateStrategy": {"type": "RollingUpdate"}}}
    return _apply_patches(ds, (sat.get("spec") or {}).get("patches") or [])
