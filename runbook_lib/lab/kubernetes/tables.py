"""Server-side printing: ``meta.k8s.io/v1`` Table answers for ``Accept: application/json;as=Table``.

kubectl asks every list and get for a Table and prints its columns as they come; without one it
prints NAME and AGE only. Columns and cells follow the API server's printers
(kubernetes/pkg/printers/internalversion/printers.go) for the built-in kinds the lab serves, and
custom resources use their CRD's ``additionalPrinterColumns``
(apiextensions-apiserver/pkg/registry/customresource/tableconvertor).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
_NAME_COL = {"name": "Name", "type": "string", "format": "name", "priority": 0,
             "description": "Name must be unique within a namespace."}


def wants_table(accept: str) -> bool:
    """Does the client prefer a Table (kubectl lists Table first, then plain JSON as a fallback)?"""
    first = accept.split(",")[0]
    return "as=Table" in first and "g=meta.k8s.io" in first


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: str | None, now: datetime | None = None) -> str:
    if not timestamp:
        return "<unknown>"
    when = datetime.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return human_duration(((now or datetime.now(UTC)) - when).total_seconds())


def _col(name: str, ctype: str = "string", priority: int = 0, description: str = "") -> dict:
    return {"name": name, "type": ctype, "format": "", "priority": priority, "description": description}


def _spec(o: dict) -> dict:
    return o.get("spec") or {}


def _status(o: dict) -> dict:
    return o.get("status") or {}


def _meta_age(o: dict) -> str:
    return age(o["metadata"].get("creationTimestamp"))


def _containers(o: dict) -> list[dict]:
    return ((_spec(o).get("template") or {}).get("spec") or {}).get("containers") or []


def _selector(o: dict) -> str:
    sel = _spec(o).get("selector") or {}
    labels = sel.get("matchLabels") or {}
    parts = [f"{k}={v}" for k, v in sorted(labels.items())]
    for expr in sel.get("matchExpressions") or []:
        parts.append(f"{expr['key']} {expr['operator'].lower()} ({','.join(expr.get('values') or [])})")
    return ",".join(parts) or "<none>"


def pod_status(o: dict) -> str:
    """printPod's STATUS: the phase, refined by container states and deletion."""
    st = _status(o)
    reason = st.get("reason") or st.get("phase") or "Pending"
    init = False
    for i, c in enumerate(st.get("initContainerStatuses") or []):
        state = c.get("state") or {}
        if (state.get("terminated") or {}).get("exitCode") == 0:
            continue
        if "terminated" in state:
            t = state["terminated"]
            reason = "Init:" + (t.get("reason") or (f"Signal:{t['signal']}" if t.get("signal") else f"ExitCode:{t.get('exitCode')}"))
        elif (state.get("waiting") or {}).get("reason") not in (None, "PodInitializing"):
            reason = "Init:" + state["waiting"]["reason"]
        else:
            reason = f"Init:{i}/{len(_spec(o).get('initContainers') or [])}"
        init = True
        break
    if not init:
        running = False
        for c in reversed(st.get("containerStatuses") or []):
            state = c.get("state") or {}
            if (state.get("waiting") or {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif (state.get("terminated") or {}).get("reason"):
                reason = state["terminated"]["reason"]
            elif "terminated" in state:
                t = state["terminated"]
                reason = f"Signal:{t['signal']}" if t.get("signal") else f"ExitCode:{t.get('exitCode')}"
            elif "running" in state and c.get("ready"):
                running = True
        if reason == "Completed" and running:
            reason = "Running" if any(cd.get("type") == "Ready" and cd.get("status") == "True"
                                      for cd in st.get("conditions") or []) else "NotReady"
    if o["metadata"].get("deletionTimestamp"):
        reason = "Unknown" if st.get("reason") == "NodeLost" else "Terminating"
    return reason


def _pod_row(o: dict) -> list:
    st = _status(o)
    statuses = st.get("containerStatuses") or []
    total = len(_spec(o).get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    gates = _spec(o).get("readinessGates") or []
    return [o["metadata"]["name"], f"{ready}/{total}", pod_status(o), restarts, _meta_age(o),
            st.get("podIP") or "<none>", _spec(o).get("nodeName") or "<none>",
            st.get("nominatedNodeName") or "<none>", f"{len(gates)}/{len(gates)}" if gates else "<none>"]


def _node_row(o: dict) -> list:
    st, spec = _status(o), _spec(o)
    ready = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), None)
    status = ["Ready" if ready and ready.get("status") == "True" else "NotReady"]
    if spec.get("unschedulable"):
        status.append("SchedulingDisabled")
    roles = sorted(k.split("/", 1)[1] for k in (o["metadata"].get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/") and k.split("/", 1)[1])
    addr = {a["type"]: a["address"] for a in st.get("addresses") or []}
    info = st.get("nodeInfo") or {}
    return [o["metadata"]["name"], ",".join(status), ",".join(roles) or "<none>", _meta_age(o),
            info.get("kubeletVersion", ""), addr.get("InternalIP", "<none>"), addr.get("ExternalIP", "<none>"),
            info.get("osImage", "<unknown>"), info.get("kernelVersion", "<unknown>"),
            info.get("containerRuntimeVersion", "<unknown>")]


def _workload_containers(o: dict) -> list:
    cs = _containers(o)
    return [",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)]


def _deployment_row(o: dict) -> list:
    st = _status(o)
    return [o["metadata"]["name"], f"{st.get('readyReplicas', 0)}/{_spec(o).get('replicas', 1)}",
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0), _meta_age(o),
            *_workload_containers(o), _selector(o)]


def _daemonset_row(o: dict) -> list:
    st = _status(o)
    node_sel = ((_spec(o).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    return [o["metadata"]["name"], st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0),
            st.get("numberReady", 0), st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
            ",".join(f"{k}={v}" for k, v in sorted(node_sel.items())) or "<none>", _meta_age(o),
            *_workload_containers(o), _selector(o)]


def _statefulset_row(o: dict) -> list:
    return [o["metadata"]["name"], f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 1)}",
            _meta_age(o), *_workload_containers(o)]


def _job_row(o: dict) -> list:
    st, spec = _status(o), _spec(o)
    conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
    status = ("Complete" if conds.get("Complete") == "True" else "Failed" if conds.get("Failed") == "True"
              else "Terminating" if o["metadata"].get("deletionTimestamp") else "Suspended"
              if conds.get("Suspended") == "True" else "Running")
    completions = f"{st.get('succeeded', 0)}/{spec.get('completions', 1)}"
    duration = ""
    if st.get("startTime"):
        end = st.get("completionTime")
        start = datetime.strptime(st["startTime"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        stop = datetime.strptime(end[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC) if end else datetime.now(UTC)
        duration = human_duration((stop - start).total_seconds())
    return [o["metadata"]["name"], status, completions, duration, _meta_age(o), *_workload_containers(o), _selector(o)]


def _service_row(o: dict) -> list:
    spec = _spec(o)
    ports = ",".join(f"{p['port']}/{p.get('protocol', 'TCP')}" if not p.get("nodePort")
                     else f"{p['port']}:{p['nodePort']}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    ext = ",".join(i.get("ip") or i.get("hostname", "") for i in (_status(o).get("loadBalancer") or {}).get("ingress") or [])
    stype = spec.get("type", "ClusterIP")
    return [o["metadata"]["name"], stype, spec.get("clusterIP") or "<none>",
            ext or ("<pending>" if stype == "LoadBalancer" else "<none>"), ports or "<none>", _meta_age(o),
            ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())) or "<none>"]


def _pvc_row(o: dict) -> list:
    spec, st = _spec(o), _status(o)
    phase = "Terminating" if o["metadata"].get("deletionTimestamp") else st.get("phase", "Pending")
    bound = phase == "Bound"
    return [o["metadata"]["name"], phase, spec.get("volumeName", ""),
            (st.get("capacity") or {}).get("storage", "") if bound else "",
            _access_modes(st.get("accessModes") if bound else None), spec.get("storageClassName") or "<unset>",
            spec.get("volumeAttributesClassName") or "<unset>", _meta_age(o), spec.get("volumeMode", "Filesystem")]


def _access_modes(modes: list | None) -> str:
    short = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
    return ",".join(short.get(m, m) for m in modes or [])


def _pv_row(o: dict) -> list:
    spec, st = _spec(o), _status(o)
    ref = spec.get("claimRef") or {}
    claim = f"{ref['namespace']}/{ref['name']}" if ref.get("name") else ""
    phase = "Terminating" if o["metadata"].get("deletionTimestamp") else st.get("phase", "Pending")
    return [o["metadata"]["name"], (spec.get("capacity") or {}).get("storage", ""), _access_modes(spec.get("accessModes")),
            spec.get("persistentVolumeReclaimPolicy", "Retain"), phase, claim, spec.get("storageClassName", ""),
            spec.get("volumeAttributesClassName") or "<unset>", st.get("reason", ""), _meta_age(o),
            spec.get("volumeMode", "Filesystem")]


def _storageclass_row(o: dict) -> list:
    name = o["metadata"]["name"]
    if (o["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true":
        name += " (default)"
    return [name, o.get("provisioner", ""), o.get("reclaimPolicy", "Delete"),
            o.get("volumeBindingMode", "Immediate"), bool(o.get("allowVolumeExpansion", False)), _meta_age(o)]


def _event_row(o: dict) -> list:
    inv = o.get("involvedObject") or {}
    last = o.get("lastTimestamp") or o.get("eventTime") or o["metadata"].get("creationTimestamp")
    first = o.get("firstTimestamp") or o.get("eventTime") or o["metadata"].get("creationTimestamp")
    src = o.get("source") or {}
    return [age(last), o.get("type", ""), o.get("reason", ""), f"{inv.get('kind', '').lower()}/{inv.get('name', '')}",
            inv.get("fieldPath", ""), ", ".join(v for v in (src.get("component"), src.get("host")) if v),
            o.get("message", ""), age(first), o.get("count", 1), o["metadata"]["name"]]


def _endpoints_row(o: dict) -> list:
    addrs = [f"{a['ip']}:{p['port']}" for s in o.get("subsets") or [] for a in s.get("addresses") or []
             for p in s.get("ports") or [{"port": ""}]]
    shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [o["metadata"]["name"], shown or "<none>", _meta_age(o)]


def _data_count(o: dict) -> int:
    return len(o.get("data") or {}) + len(o.get("binaryData") or {}) + len(o.get("stringData") or {})


def _rolebinding_row(o: dict) -> list:
    ref = o.get("roleRef") or {}
    subjects = o.get("subjects") or []

    def of(kind: str) -> str:
        return ", ".join((f"{s.get('namespace')}/{s['name']}" if kind == "ServiceAccount" else s["name"])
                         for s in subjects if s.get("kind") == kind)
    return [o["metadata"]["name"], f"{ref.get('kind', '')}/{ref.get('name', '')}", _meta_age(o),
            of("User"), of("Group"), of("ServiceAccount")]


_WORKLOAD_COLS = [_col("Containers", priority=1), _col("Images", priority=1), _col("Selector", priority=1)]
_BINDING_COLS = [_col("Role"), _col("Age"), _col("Users", priority=1), _col("Groups", priority=1),
                 _col("ServiceAccounts", priority=1)]
PRINTERS: dict[str, tuple[list[dict], Callable[[dict], list]]] = {
    "Pod": ([_NAME_COL, _col("Ready"), _col("Status"), _col("Restarts", "string"), _col("Age"),
             _col("IP", priority=1), _col("Node", priority=1), _col("Nominated Node", priority=1),
             _col("Readiness Gates", priority=1)], _pod_row),
    "Node": ([_NAME_COL, _col("Status"), _col("Roles"), _col("Age"), _col("Version"),
              _col("Internal-IP", priority=1), _col("External-IP", priority=1), _col("OS-Image", priority=1),
              _col("Kernel-Version", priority=1), _col("Container-Runtime", priority=1)], _node_row),
    "Namespace": ([_NAME_COL, _col("Status"), _col("Age")],
                  lambda o: [o["metadata"]["name"], _status(o).get("phase", "Active"), _meta_age(o)]),
    "Deployment": ([_NAME_COL, _col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"),
                    _col("Age"), *_WORKLOAD_COLS], _deployment_row),
    "DaemonSet": ([_NAME_COL, _col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"),
                   _col("Up-to-date", "integer"), _col("Available", "integer"), _col("Node Selector"), _col("Age"),
                   *_WORKLOAD_COLS], _daemonset_row),
    "StatefulSet": ([_NAME_COL, _col("Ready"), _col("Age"), *_WORKLOAD_COLS[:2]], _statefulset_row),
    "Job": ([_NAME_COL, _col("Status"), _col("Completions"), _col("Duration"), _col("Age"), *_WORKLOAD_COLS],
            _job_row),
    "Service": ([_NAME_COL, _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), _col("Age"),
                 _col("Selector", priority=1)], _service_row),
    "Endpoints": ([_NAME_COL, _col("Endpoints"), _col("Age")], _endpoints_row),
    "ConfigMap": ([_NAME_COL, _col("Data", "integer"), _col("Age")],
                  lambda o: [o["metadata"]["name"], _data_count(o), _meta_age(o)]),
    "Secret": ([_NAME_COL, _col("Type"), _col("Data", "integer"), _col("Age")],
               lambda o: [o["metadata"]["name"], o.get("type", "Opaque"), _data_count(o), _meta_age(o)]),
    "ServiceAccount": ([_NAME_COL, _col("Secrets", "integer"), _col("Age")],
                       lambda o: [o["metadata"]["name"], len(o.get("secrets") or []), _meta_age(o)]),
    "PersistentVolumeClaim": ([_NAME_COL, _col("Status"), _col("Volume"), _col("Capacity"), _col("Access Modes"),
                               _col("StorageClass"), _col("VolumeAttributesClass"), _col("Age"),
                               _col("VolumeMode", priority=1)], _pvc_row),
    "PersistentVolume": ([_NAME_COL, _col("Capacity"), _col("Access Modes"), _col("Reclaim Policy"), _col("Status"),
                          _col("Claim"), _col("StorageClass"), _col("VolumeAttributesClass"), _col("Reason"),
                          _col("Age"), _col("VolumeMode", priority=1)], _pv_row),
    "StorageClass": ([_NAME_COL, _col("Provisioner"), _col("ReclaimPolicy"), _col("VolumeBindingMode"),
                      _col("AllowVolumeExpansion", "boolean"), _col("Age")], _storageclass_row),
    "Event": ([_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Subobject", priority=1),
               _col("Source", priority=1), _col("Message"), _col("First Seen", priority=1),
               _col("Count", "integer", 1), _col("Name", priority=1)], _event_row),
    "Lease": ([_NAME_COL, _col("Holder"), _col("Age")],
              lambda o: [o["metadata"]["name"], _spec(o).get("holderIdentity", ""), _meta_age(o)]),
    "VolumeAttachment": ([_NAME_COL, _col("Attacher"), _col("PV"), _col("Node"), _col("Attached", "boolean"), _col("Age")],
                         lambda o: [o["metadata"]["name"], _spec(o).get("attacher", ""),
                                    (_spec(o).get("source") or {}).get("persistentVolumeName", ""),
                                    _spec(o).get("nodeName", ""), bool(_status(o).get("attached")), _meta_age(o)]),
    "CSIDriver": ([_NAME_COL, _col("AttachRequired", "boolean"), _col("PodInfoOnMount", "boolean"),
                   _col("StorageCapacity", "boolean"), _col("TokenRequests"), _col("RequiresRepublish", "boolean"),
                   _col("Modes"), _col("Age")],
                  lambda o: [o["metadata"]["name"], _spec(o).get("attachRequired", True),
                             _spec(o).get("podInfoOnMount", False), _spec(o).get("storageCapacity", False),
                             ",".join(t.get("audience", "") for t in _spec(o).get("tokenRequests") or []) or "<unset>",
                             _spec(o).get("requiresRepublish", False),
                             ",".join(_spec(o).get("volumeLifecycleModes") or ["Persistent"]), _meta_age(o)]),
    "ClusterRoleBinding": ([_NAME_COL, *_BINDING_COLS], _rolebinding_row),
    "RoleBinding": ([_NAME_COL, *_BINDING_COLS], _rolebinding_row),
}
_CREATED_AT = ([_NAME_COL, {**_col("Created At", "date"), "description": "the object's creation time"}],
               lambda o: [o["metadata"]["name"], o["metadata"].get("creationTimestamp")])


_FILTER = re.compile(r"^\?\(@\.([A-Za-z0-9_.]+)\s*==\s*['\"]?([^'\"]*)['\"]?\)$")


def jsonpath(obj: Any, path: str) -> list:
    """The values at a CRD printer column's JSONPath (``.a.b``, ``[n]``, ``[*]``, ``[?(@.k=='v')]``)."""
    tokens = re.findall(r"\.([^.\[\]]+)|\[([^\]]*)\]", path.strip().strip("{}"))
    values = [obj]
    for field, index in tokens:
        nxt: list = []
        for v in values:
            if field:
                if isinstance(v, dict) and field in v:
                    nxt.append(v[field])
            elif isinstance(v, list):
                if index == "*":
                    nxt.extend(v)
                elif index.lstrip("-").isdigit():
                    i = int(index)
                    if -len(v) <= i < len(v):
                        nxt.append(v[i])
                elif m := _FILTER.match(index):
                    key, want = m.groups()
                    nxt.extend(i for i in v if isinstance(i, dict) and str(_dig(i, key)) == want)
            elif isinstance(v, dict) and index.startswith(("'", '"')):
                key = index.strip("'\"")
                if key in v:
                    nxt.append(v[key])
        values = nxt
    return values


def _dig(obj: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _crd_columns(crd: dict, version: str) -> list[dict]:
    spec = crd.get("spec") or {}
    ver = next((v for v in spec.get("versions") or [] if v.get("name") == version), {})
    return ver.get("additionalPrinterColumns") or spec.get("additionalPrinterColumns") or []


def _cell(ctype: str, values: list) -> Any:
    if not values:
        return None
    value = values[0]
    if ctype == "date" and isinstance(value, str):
        return age(value)
    if ctype == "string":
        return value if isinstance(value, str) else _go_format(value)
    return value


def _go_format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_format(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_format(v) for v in value) + "]"
    return str(value)


def _printer_for(kind: str, crd: dict | None, version: str) -> tuple[list[dict], Callable[[dict], list]]:
    if crd is not None:
        cols = _crd_columns(crd, version)
        if not cols:
            cols = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
        defs = [_NAME_COL] + [{"name": c["name"], "type": c.get("type", "string"), "format": c.get("format", ""),
                               "description": c.get("description", ""), "priority": c.get("priority", 0)} for c in cols]
        return defs, lambda o: [o["metadata"]["name"]] + [_cell(c.get("type", "string"), jsonpath(o, c["jsonPath"]))
                                                         for c in cols]
    return PRINTERS.get(kind, _CREATED_AT)


def to_table(kind: str, answer: dict, *, crd: dict | None = None, version: str = "v1",
             include_object: str = "Metadata") -> dict:
    """A list or single object as a Table; rows carry the object (``Object``), its metadata or nothing."""
    is_list = "items" in answer
    items = answer["items"] if is_list else [answer]
    columns, row_of = _printer_for(kind, crd, version)
    rows = []
    for obj in items:
        row: dict[str, Any] = {"cells": row_of(obj)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
        rows.append(row)
    meta = dict(answer.get("metadata") or {}) if is_list else {"resourceVersion": answer["metadata"].get("resourceVersion", "")}
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": columns, "rows": rows}
