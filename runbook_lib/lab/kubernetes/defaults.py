"""API defaulting: the fields the API server fills in when a client leaves them out.

From the kinds' ``SetDefaults_*`` functions (kubernetes/pkg/apis/*/v1/defaults.go) and the admission
plugins every cluster runs (ServiceAccount, DefaultTolerationSeconds), for the kinds the lab serves.
Defaults only fill what is missing, so applying them twice changes nothing.
"""

from __future__ import annotations

from typing import Any

NOT_READY_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
]


def _fill(obj: dict, **values: Any) -> None:
    for key, value in values.items():
        obj.setdefault(key, value)


def _image_pull_policy(image: str) -> str:
    name = image.rsplit("/", 1)[-1]
    if "@" in name:
        return "IfNotPresent"
    tag = name.split(":", 1)[1] if ":" in name else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _container(c: dict) -> None:
    _fill(c, terminationMessagePath="/dev/termination-log", terminationMessagePolicy="File", resources={})
    if c.get("image"):
        c.setdefault("imagePullPolicy", _image_pull_policy(c["image"]))
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if isinstance(c.get(probe), dict):
            _fill(c[probe], timeoutSeconds=1, periodSeconds=10, successThreshold=1, failureThreshold=3)


def pod_spec(spec: dict, *, restart_policy: bool = True) -> None:
    """SetDefaults_PodSpec and its containers (a Job's template keeps a missing restartPolicy missing:
    the API server would default it to Always and then refuse the Job)."""
    if restart_policy:
        spec.setdefault("restartPolicy", "Always")
    _fill(spec, terminationGracePeriodSeconds=30, dnsPolicy="ClusterFirst",
          securityContext={}, schedulerName="default-scheduler", enableServiceLinks=True)
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        _container(c)
    for v in spec.get("volumes") or []:
        for source in ("configMap", "secret"):
            if isinstance(v.get(source), dict):
                v[source].setdefault("defaultMode", 420)


def _admitted_pod_spec(spec: dict) -> None:
    """What admission adds to a created pod: its service account and the not-ready/unreachable tolerations."""
    sa = spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", sa)
    tolerations = spec.setdefault("tolerations", [])
    for default in NOT_READY_TOLERATIONS:
        if not any(t.get("key") == default["key"] and t.get("effect") in (None, "NoExecute") for t in tolerations):
            tolerations.append(dict(default))
    _fill(spec, priority=0, preemptionPolicy="PreemptLowerPriority")


def _template(obj: dict, *, restart_policy: bool = True) -> None:
    tpl = (obj.get("spec") or {}).get("template")
    if isinstance(tpl, dict) and isinstance(tpl.get("spec"), dict):
        pod_spec(tpl["spec"], restart_policy=restart_policy)


def apply(kind: str, obj: dict) -> dict:
    """Fill in the defaults for ``kind`` (in place; returns ``obj``)."""
    spec = obj.get("spec")
    if kind == "Pod" and isinstance(spec, dict):
        pod_spec(spec)
        _admitted_pod_spec(spec)
    elif kind == "Deployment" and isinstance(spec, dict):
        _fill(spec, replicas=1, revisionHistoryLimit=10, progressDeadlineSeconds=600,
              strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        _template(obj)
    elif kind == "DaemonSet" and isinstance(spec, dict):
        _fill(spec, revisionHistoryLimit=10,
              updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        _template(obj)
    elif kind == "StatefulSet" and isinstance(spec, dict):
        _fill(spec, replicas=1, revisionHistoryLimit=10, podManagementPolicy="OrderedReady",
              updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
              persistentVolumeClaimRetentionPolicy={"whenDeleted": "Retain", "whenScaled": "Retain"})
        _template(obj)
    elif kind == "Job" and isinstance(spec, dict):
        _fill(spec, backoffLimit=6, completions=1, parallelism=1, completionMode="NonIndexed", suspend=False,
              manualSelector=False, podReplacementPolicy="TerminatingOrFailed")
        _template(obj, restart_policy=False)
    elif kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
    elif kind == "Service" and isinstance(spec, dict):
        _fill(spec, type="ClusterIP", sessionAffinity="None", internalTrafficPolicy="Cluster")
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            if "port" in p:
                p.setdefault("targetPort", p["port"])
    elif kind == "PersistentVolumeClaim" and isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")
    elif kind == "PersistentVolume" and isinstance(spec, dict):
        _fill(spec, volumeMode="Filesystem", persistentVolumeReclaimPolicy="Retain")
    elif kind == "StorageClass":
        _fill(obj, reclaimPolicy="Delete", volumeBindingMode="Immediate")
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
    return obj
