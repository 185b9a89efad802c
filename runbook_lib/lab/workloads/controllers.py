"""The workload controllers: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, the garbage collector and their status."""

from __future__ import annotations

import copy
import json
from typing import Any

from ..cluster import Lab
from ..kubernetes.objects import (
    apply,
    condition,
    delete,
    get,
    objects,
    owned_by,
    owner_ref,
    pod_ready,
    record_event,
    rtype,
    safe_suffix,
    set_condition,
    set_status,
    update,
)
from ..kubernetes.store import now_iso
from ..kubernetes.types import ApiError, ResourceType
from .kubelet import MAX_EVENTS
from .scheduler import node_eligible

# Types the lab's store does not register by default but these controllers need.
EXTRA_TYPES = (
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",)),
    ResourceType("storage.k8s.io", "v1", "csinodes", "CSINode", False),
)


def register_types(store: Any) -> None:
    """Serve the extra built-in types these controllers write (ReplicaSet, CSINode)."""
    for rt in EXTRA_TYPES:
        if (rt.group, rt.plural) not in store.types:
            store.register(rt)


def reconcile(lab: Lab, now: float) -> None:
    """One pass of the workload controllers (the scheduler and the kubelet run after them, see :mod:`..assembly`)."""
    _forget_host_changes(lab)
    _garbage_collect(lab)
    _deployments(lab)
    _replicasets(lab)
    _statefulsets(lab)
    _daemonsets(lab)
    _jobs(lab)


def _forget_host_changes(lab: Lab) -> None:
    """A reboot remounts Talos volumes: forget mounts released by pods before it."""
    st = lab.workloads.state
    for name, node in lab.talos.nodes.items():
        if st.host_boot.get(name) != node.boot_id:
            st.host_boot[name] = node.boot_id
            st.unmounted.pop(name, None)


def _garbage_collect(lab: Lab) -> None:
    """Dependents of deleted owners go (background propagation); a deleted CRD takes its objects."""
    uids = {o["metadata"].get("uid") for o in lab.kube.objects.values()}
    for obj in list(lab.kube.objects.values()):
        refs = obj["metadata"].get("ownerReferences") or []
        if refs and not any(r.get("uid") in uids for r in refs):
            delete(lab, obj)
    crds = {(o["spec"].get("group"), o["spec"].get("names", {}).get("plural"))
            for o in objects(lab, "apiextensions.k8s.io", "customresourcedefinitions")}
    seen = lab.workloads.state.crd_types
    for key in crds:
        if list(key) not in seen:
            seen.append(list(key))
    events = objects(lab, "", "events")
    if len(events) > MAX_EVENTS:  # the API server's event TTL, by count: the oldest go first
        for ev in sorted(events, key=lambda e: e.get("lastTimestamp") or "")[: len(events) - MAX_EVENTS]:
            delete(lab, ev)
    for group, plural in [tuple(k) for k in seen]:  # only types that came from a CRD (apiextensions)
        key = (group, plural)
        if key in crds:
            continue
        seen.remove([group, plural])
        if key not in lab.kube.types:
            continue
        for okey in [k for k in lab.kube.objects if (k[0], k[1]) == key]:
            obj = lab.kube.objects[okey]
            if obj["metadata"].get("finalizers"):
                lab.kube.objects.pop(okey, None)  # the CRD's deletion does not wait for their finalizers
            else:
                delete(lab, obj)
        lab.kube.types.pop(key, None)


def _template_hash(template: dict) -> str:
    """``pod-template-hash``: a stable hash of the pod template in the safe alphabet."""
    return safe_suffix(json.dumps(template, sort_keys=True, default=str), 10)


def _new_name(lab: Lab, prefix: str) -> str:
    st = lab.workloads.state
    st.counter += 1
    seed = lab.options.get("seed", 1)
    return f"{prefix}-{safe_suffix(f'{prefix}:{st.counter}:{seed}', 5)}"


def _pod_from_template(template: dict, name: str, namespace: str, owner: dict, extra_labels: dict | None = None) -> dict:
    meta = copy.deepcopy(template.get("metadata") or {})
    labels = {**(meta.get("labels") or {}), **(extra_labels or {})}
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "annotations": meta.get("annotations") or {}, "ownerReferences": [owner_ref(owner)]},
        "spec": copy.deepcopy(template.get("spec") or {}),
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }
    spec = pod["spec"]
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("serviceAccountName", spec.get("serviceAccountName", "default"))
    # DefaultTolerationSeconds admission plugin
    tol = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tol):
            tol.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    return pod


def _create_pod(lab: Lab, pod: dict) -> dict | None:
    rt = rtype(lab, "", "v1", "pods")
    try:
        return lab.kube.create(rt, pod["metadata"]["namespace"], pod)
    except ApiError:
        return None


def _live(pod: dict) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _deployments(lab: Lab) -> None:
    for dep in objects(lab, "apps", "deployments"):
        ns = dep["metadata"]["namespace"]
        template = dep["spec"].get("template") or {}
        h = _template_hash(template)
        rs_name = f"{dep['metadata']['name']}-{h}"
        replicas = int(dep["spec"].get("replicas", 1) if dep["spec"].get("replicas") is not None else 1)
        owned = [rs for rs in objects(lab, "apps", "replicasets", ns) if owned_by(rs, dep)]
        tmpl = copy.deepcopy(template)
        tmpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
        desired = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "namespace": ns, "labels": {**(tmpl["metadata"]["labels"])},
                         "annotations": {"deployment.kubernetes.io/revision": str(1 + len([r for r in owned if r["metadata"]["name"] != rs_name]))},
                         "ownerReferences": [owner_ref(dep)]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {**((dep["spec"].get("selector") or {}).get("matchLabels") or {}), "pod-template-hash": h}},
                     "template": tmpl},
        }
        existing = get(lab, "apps", "replicasets", ns, rs_name)
        if existing is not None:
            desired["metadata"]["annotations"] = existing["metadata"].get("annotations", {})
        apply(lab, "apps", "v1", "replicasets", desired)
        for rs in owned:
            if rs["metadata"]["name"] != rs_name and rs["spec"].get("replicas", 0) != 0:
                update(lab, rs, lambda o: o["spec"].__setitem__("replicas", 0))


def _replicasets(lab: Lab) -> None:
    for rs in objects(lab, "apps", "replicasets"):
        ns = rs["metadata"]["namespace"]
        want = int(rs["spec"].get("replicas", 1))
        pods = [p for p in objects(lab, "", "pods", ns) if owned_by(p, rs) and not p["metadata"].get("deletionTimestamp")]
        active = [p for p in pods if _live(p)]
        for _ in range(want - len(active)):
            _create_pod(lab, _pod_from_template(rs["spec"]["template"], _new_name(lab, rs["metadata"]["name"]), ns, rs))
        if len(active) > want:
            for p in sorted(active, key=lambda p: (pod_ready(p), p["metadata"]["creationTimestamp"]))[: len(active) - want]:
                delete(lab, p)
        ready = sum(1 for p in active if pod_ready(p))
        status = {"replicas": len(active), "fullyLabeledReplicas": len(active), "observedGeneration": rs["metadata"].get("generation", 1)}
        if ready:
            status.update({"readyReplicas": ready, "availableReplicas": ready})
        set_status(lab, rs, status)


def _statefulsets(lab: Lab) -> None:
    for sts in objects(lab, "apps", "statefulsets"):
        ns, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        want = int(sts["spec"].get("replicas", 1))
        pods = {p["metadata"]["name"]: p for p in objects(lab, "", "pods", ns) if owned_by(p, sts)}
        for i in range(want):
            pname = f"{name}-{i}"
            if pname in pods:
                if not pod_ready(pods[pname]) and sts["spec"].get("podManagementPolicy", "OrderedReady") == "OrderedReady":
                    break
                continue
            for tmpl in sts["spec"].get("volumeClaimTemplates") or []:
                claim = f"{tmpl['metadata']['name']}-{pname}"
                if get(lab, "", "persistentvolumeclaims", ns, claim) is None:
                    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                           "metadata": {"name": claim, "namespace": ns, "labels": dict((sts["spec"].get("selector") or {}).get("matchLabels") or {})},
                           "spec": copy.deepcopy(tmpl.get("spec") or {}), "status": {"phase": "Pending"}}
                    lab.kube.create(rtype(lab, "", "v1", "persistentvolumeclaims"), ns, pvc)
            pod = _pod_from_template(sts["spec"]["template"], pname, ns, sts,
                                     {"statefulset.kubernetes.io/pod-name": pname, "apps.kubernetes.io/pod-index": str(i)})
            pod["spec"]["hostname"] = pname
            vols = pod["spec"].setdefault("volumes", [])
            for tmpl in sts["spec"].get("volumeClaimTemplates") or []:
                vols.append({"name": tmpl["metadata"]["name"], "persistentVolumeClaim": {"claimName": f"{tmpl['metadata']['name']}-{pname}"}})
            _create_pod(lab, pod)
            if sts["spec"].get("podManagementPolicy", "OrderedReady") == "OrderedReady":
                break
        for pname, pod in pods.items():
            idx = pname.rsplit("-", 1)[-1]
            if idx.isdigit() and int(idx) >= want:
                delete(lab, pod)
        live = [p for p in pods.values() if _live(p)]
        ready = sum(1 for p in live if pod_ready(p))
        status = {"replicas": len(live), "currentReplicas": len(live), "updatedReplicas": len(live),
                  "observedGeneration": sts["metadata"].get("generation", 1), "availableReplicas": ready}
        if ready:
            status["readyReplicas"] = ready
        set_status(lab, sts, status)


def _daemonsets(lab: Lab) -> None:
    nodes = objects(lab, "", "nodes")
    for ds in objects(lab, "apps", "daemonsets"):
        ns = ds["metadata"]["namespace"]
        template = ds["spec"].get("template") or {}
        h = _template_hash(template)
        pods = [p for p in objects(lab, "", "pods", ns) if owned_by(p, ds)]
        by_node: dict[str, list[dict]] = {}
        for p in pods:
            by_node.setdefault(p["spec"].get("nodeName") or "", []).append(p)
        spec = template.get("spec") or {}
        # DaemonSet pods tolerate NoSchedule-free conditions of unhealthy nodes (daemon controller defaults)
        wanted = []
        for node in nodes:
            dspec = {**spec, "tolerations": (spec.get("tolerations") or []) + [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}
            ok, _ = node_eligible(node, dspec)
            if ok:
                wanted.append(node["metadata"]["name"])
        for nname in wanted:
            current = [p for p in by_node.get(nname, []) if not p["metadata"].get("deletionTimestamp")]
            stale = [p for p in current if (p["metadata"].get("labels") or {}).get("controller-revision-hash") != h]
            for p in stale:
                delete(lab, p)  # OnDelete/RollingUpdate collapsed: replace at once
            if not current or stale:
                pod = _pod_from_template(template, _new_name(lab, ds["metadata"]["name"]), ns, ds,
                                         {"controller-revision-hash": h, "pod-template-generation": str(ds["metadata"].get("generation", 1))})
                pod["spec"]["nodeName"] = nname  # scheduled with matchFields metadata.name affinity in real k8s
                aff = pod["spec"].setdefault("affinity", {}).setdefault("nodeAffinity", {})
                aff["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [nname]}]}]}
                pod["spec"]["tolerations"] += [t for t in (
                    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
                    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"})]
                created = _create_pod(lab, pod)
                if created is not None:
                    record_event(lab, created, "Scheduled", f"Successfully assigned {ns}/{pod['metadata']['name']} to {nname}",
                                 component="default-scheduler")
        for nname, plist in by_node.items():
            if nname not in wanted:
                for p in plist:
                    delete(lab, p)
        live = [p for p in objects(lab, "", "pods", ns) if owned_by(p, ds) and not p["metadata"].get("deletionTimestamp")]
        ready = sum(1 for p in live if pod_ready(p))
        status = {"currentNumberScheduled": len(live), "desiredNumberScheduled": len(wanted), "numberMisscheduled": 0,
                  "numberReady": ready, "observedGeneration": ds["metadata"].get("generation", 1),
                  "updatedNumberScheduled": sum(1 for p in live if (p["metadata"].get("labels") or {}).get("controller-revision-hash") == h)}
        if ready:
            status["numberAvailable"] = ready
        if len(wanted) - ready > 0:
            status["numberUnavailable"] = len(wanted) - ready
        set_status(lab, ds, status)


def _jobs(lab: Lab) -> None:
    for job in objects(lab, "batch", "jobs"):
        ns = job["metadata"]["namespace"]
        spec = job["spec"]
        completions = int(spec.get("completions", 1) or 1)
        backoff = int(spec.get("backoffLimit", 6) if spec.get("backoffLimit") is not None else 6)
        pods = [p for p in objects(lab, "", "pods", ns) if owned_by(p, job)]
        succeeded = sum(1 for p in pods if p["status"].get("phase") == "Succeeded")
        failed = sum(1 for p in pods if p["status"].get("phase") == "Failed")
        active = [p for p in pods if _live(p)]
        status = dict(job.get("status") or {})
        conds = list(status.get("conditions") or [])
        done = any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conds)
        uid = job["metadata"]["uid"]
        if not done and succeeded >= completions:
            conds = set_condition(conds, {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                                          "message": "Reached expected number of succeeded pods"})
            conds = set_condition(conds, {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                                          "message": "Reached expected number of succeeded pods"})
            status["completionTime"] = now_iso()
            record_event(lab, job, "Completed", "Job completed", component="job-controller")
        elif not done and failed > backoff:
            conds = set_condition(conds, {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                                          "message": "Job has reached the specified backoff limit"})
            conds = set_condition(conds, {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                          "message": "Job has reached the specified backoff limit"})
            record_event(lab, job, "BackoffLimitExceeded", "Job has reached the specified backoff limit",
                         type_="Warning", component="job-controller")
        elif not done and not active:
            tmpl = copy.deepcopy(spec.get("template") or {})
            labels = {"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
                      "batch.kubernetes.io/job-name": job["metadata"]["name"], "job-name": job["metadata"]["name"]}
            pod = _pod_from_template(tmpl, _new_name(lab, job["metadata"]["name"]), ns, job, labels)
            created = _create_pod(lab, pod)
            if created is not None:
                record_event(lab, job, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}", component="job-controller")
        status.update({"active": len(active), "succeeded": succeeded, "failed": failed, "ready": sum(1 for p in active if pod_ready(p))})
        status.setdefault("startTime", now_iso())
        status = {k: v for k, v in status.items() if v not in (0, None) or k in ("ready",)}
        if conds:
            status["conditions"] = conds
        status["terminating"] = 0
        set_status(lab, job, status)


def workload_status(lab: Lab, now: float) -> None:
    _workload_status(lab)


def _workload_status(lab: Lab) -> None:
    for dep in objects(lab, "apps", "deployments"):
        ns = dep["metadata"]["namespace"]
        h = _template_hash(dep["spec"].get("template") or {})
        rss = [rs for rs in objects(lab, "apps", "replicasets", ns) if owned_by(rs, dep)]
        want = int(dep["spec"].get("replicas", 1) if dep["spec"].get("replicas") is not None else 1)
        total = sum(int((rs.get("status") or {}).get("replicas", 0)) for rs in rss)
        ready = sum(int((rs.get("status") or {}).get("readyReplicas", 0)) for rs in rss)
        new_rs = next((rs for rs in rss if rs["metadata"]["name"].endswith(h)), None)
        updated = int(((new_rs or {}).get("status") or {}).get("replicas", 0))
        status = {"observedGeneration": dep["metadata"].get("generation", 1), "replicas": total, "updatedReplicas": updated}
        if ready:
            status.update({"readyReplicas": ready, "availableReplicas": ready})
        if total - ready > 0:
            status["unavailableReplicas"] = total - ready
        conds = list((dep.get("status") or {}).get("conditions") or [])
        avail = ready >= want
        conds = set_condition(conds, {"type": "Available", "status": "True" if avail else "False",
                                      "reason": "MinimumReplicasAvailable" if avail else "MinimumReplicasUnavailable",
                                      "message": "Deployment has minimum availability." if avail else "Deployment does not have minimum availability.",
                                      "lastUpdateTime": now_iso()})
        rs_name = new_rs["metadata"]["name"] if new_rs else dep["metadata"]["name"]
        done = avail and updated == want
        conds = set_condition(conds, {"type": "Progressing", "status": "True",
                                      "reason": "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
                                      "message": f'ReplicaSet "{rs_name}" has successfully progressed.' if done else f'ReplicaSet "{rs_name}" is progressing.',
                                      "lastUpdateTime": now_iso()})
        for c in conds:  # lastUpdateTime only moves with the status, like the deployment controller
            old = condition((dep.get("status") or {}).get("conditions"), c["type"])
            if old and old.get("status") == c["status"] and old.get("reason") == c["reason"]:
                c["lastUpdateTime"] = old.get("lastUpdateTime", c["lastUpdateTime"])
        status["conditions"] = conds
        set_status(lab, dep, status)
