"""The scheduler: node eligibility (selectors, affinity, taints), PVC topology, and binding pods to nodes."""

from __future__ import annotations

from ..cluster import Lab
from ..kubernetes.objects import condition, get, objects, record_event, set_condition, update


def node_eligible(node: dict, spec: dict) -> tuple[bool, str]:
    """Does a pod spec fit a node by selector, required affinity and taints? (reason when not)"""
    labels = node["metadata"].get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False, "didn't match Pod's node affinity/selector"
    terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
    if terms and not any(term_matches(node, t) for t in terms):
        return False, "didn't match Pod's node affinity/selector"
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(spec.get("tolerations") or [], taint):
            return False, f"had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
    return True, ""


def term_matches(node: dict, term: dict) -> bool:
    labels = node["metadata"].get("labels") or {}
    for expr in term.get("matchExpressions") or []:
        if not _expr_matches(labels.get(expr["key"]), expr["key"] in labels, expr):
            return False
    for expr in term.get("matchFields") or []:
        value = node["metadata"]["name"] if expr["key"] == "metadata.name" else None
        if not _expr_matches(value, value is not None, expr):
            return False
    return bool(term.get("matchExpressions") or term.get("matchFields"))


def _expr_matches(value: str | None, present: bool, expr: dict) -> bool:
    op, values = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    return False


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t.get("key") == taint["key"]):
            return True
        if t.get("key") == taint["key"] and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def schedule(lab: Lab, now: float) -> None:
    nodes = objects(lab, "", "nodes")
    pods = objects(lab, "", "pods")
    load: dict[str, int] = {}
    for p in pods:
        if p["spec"].get("nodeName"):
            load[p["spec"]["nodeName"]] = load.get(p["spec"]["nodeName"], 0) + 1
    for pod in pods:
        if not pod.get("status"):  # API server defaulting on create
            pod = update(lab, pod, lambda o: o.__setitem__("status", {"phase": "Pending", "qosClass": "BestEffort"}))
        if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            continue
        if pod["spec"].get("schedulerName", "default-scheduler") != "default-scheduler":
            continue
        node, reasons, waiting = _pick_node(lab, pod, nodes, load)
        if node is None:
            if waiting:
                continue
            n = len(nodes)
            counted: dict[str, int] = {}
            for r in reasons:
                counted[r] = counted.get(r, 0) + 1
            detail = ", ".join(f"{c} node(s) {r}" if not r.startswith("pod has") else r for r, c in sorted(counted.items()))
            msg = f"0/{n} nodes are available: {detail}. preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling."
            _set_unschedulable(lab, pod, msg)
            continue
        bound = update(lab, pod, lambda o, n=node: (o["spec"].__setitem__("nodeName", n),
                                                    o.setdefault("status", {}).__setitem__("conditions", set_condition(
                                                        [c for c in o["status"].get("conditions", []) if c["type"] != "PodScheduled"],
                                                        {"type": "PodScheduled", "status": "True", "lastProbeTime": None}))))
        load[node] = load.get(node, 0) + 1
        record_event(lab, bound, "Scheduled", f"Successfully assigned {pod['metadata']['namespace']}/{pod['metadata']['name']} to {node}",
                     component="default-scheduler")


def _set_unschedulable(lab: Lab, pod: dict, msg: str) -> None:
    cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg, "lastProbeTime": None}
    old = condition(pod["status"].get("conditions"), "PodScheduled")
    if old and old.get("message") == msg:
        return
    update(lab, pod, lambda o: o["status"].__setitem__("conditions", set_condition(o["status"].get("conditions", []), cond)))
    record_event(lab, pod, "FailedScheduling", msg, type_="Warning", component="default-scheduler")


def _pick_node(lab: Lab, pod: dict, nodes: list[dict], load: dict[str, int]) -> tuple[str | None, list[str], bool]:
    """(node, reasons per rejected node, waiting-for-volume-binding)."""
    ns = pod["metadata"]["namespace"]
    claims = []
    for vol in pod["spec"].get("volumes") or []:
        pvc_ref = vol.get("persistentVolumeClaim")
        if not pvc_ref:
            continue
        pvc = get(lab, "", "persistentvolumeclaims", ns, pvc_ref["claimName"])
        if pvc is None:
            return None, [f'pod has unbound immediate PersistentVolumeClaims. persistentvolumeclaim "{pvc_ref["claimName"]}" not found'], False
        claims.append(pvc)
    reasons, fits = [], []
    for node in nodes:
        name = node["metadata"]["name"]
        ready = condition((node.get("status") or {}).get("conditions"), "Ready")
        if not ready or ready.get("status") != "True":
            key = "node.kubernetes.io/unreachable" if ready and ready.get("status") == "Unknown" else "node.kubernetes.io/not-ready"
            reasons.append(f"had untolerated taint {{{key}: }}")
            continue
        if (node.get("spec") or {}).get("unschedulable"):
            reasons.append("were unschedulable")
            continue
        ok, why = node_eligible(node, pod["spec"])
        if not ok:
            reasons.append(why)
            continue
        vol_ok, why = _volumes_fit(lab, claims, node)
        if not vol_ok:
            reasons.append(why)
            continue
        fits.append(name)
    if not fits:
        return None, reasons, False
    unbound_immediate = [c for c in claims if (c.get("status") or {}).get("phase") != "Bound" and _binding_mode(lab, c) != "WaitForFirstConsumer"]
    if unbound_immediate:
        return None, ["pod has unbound immediate PersistentVolumeClaims"] * 1, False
    by_name = {n["metadata"]["name"]: n for n in nodes}
    choice = min(fits, key=lambda n: (-_preference(by_name[n], pod["spec"]), load.get(n, 0), n))
    waiting = False
    for c in claims:
        if (c.get("status") or {}).get("phase") == "Bound":
            continue
        waiting = True
        ann = c["metadata"].get("annotations") or {}
        if ann.get("volume.kubernetes.io/selected-node") not in fits:
            update(lab, c, lambda o, n=choice: o["metadata"].setdefault("annotations", {}).__setitem__(
                "volume.kubernetes.io/selected-node", n))
    if waiting:
        return None, [], True
    return choice, [], False


def _preference(node: dict, spec: dict) -> int:
    """kube-scheduler's NodeAffinity score: the weights of the preferred terms the node matches."""
    terms = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("preferredDuringSchedulingIgnoredDuringExecution") or []
    return sum(int(t.get("weight", 0)) for t in terms if term_matches(node, t.get("preference") or {}))


def _binding_mode(lab: Lab, pvc: dict) -> str:
    sc_name = pvc["spec"].get("storageClassName")
    sc = get(lab, "storage.k8s.io", "storageclasses", None, sc_name) if sc_name else None
    return (sc or {}).get("volumeBindingMode", "Immediate")


def _volumes_fit(lab: Lab, claims: list[dict], node: dict) -> tuple[bool, str]:
    for pvc in claims:
        pv_name = pvc["spec"].get("volumeName")
        if not pv_name:
            continue
        pv = get(lab, "", "persistentvolumes", None, pv_name)
        terms = ((((pv or {}).get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms")
        if terms and not any(term_matches(node, t) for t in terms):
            return False, "had volume node affinity conflict"
    return True, ""
