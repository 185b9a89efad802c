"""Store helpers every controller shares: read, apply, update and delete objects, owners, conditions, Events, pod queries."""

from __future__ import annotations

import contextlib
import copy
import hashlib
from collections.abc import Callable, Iterable

from ..cluster import Lab
from .selectors import label_matcher
from .store import now_iso
from .types import ApiError, ResourceType

# kube-controller-manager's safe encoding alphabet for generated names (rand.SafeEncodeString).
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def rtype(lab: Lab, group: str, version: str, plural: str) -> ResourceType | None:
    try:
        return lab.kube.resolve(group, version, plural)
    except ApiError:
        return None


def objects(lab: Lab, group: str, plural: str, namespace: str | None = None) -> list[dict]:
    """Stored objects of one type (read-only views, sorted by namespace and name)."""
    out = [obj for (_g, _p, ns, _n), obj in lab.kube.objects.of_type(group, plural).items()
           if namespace is None or ns == namespace]
    out.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    return out


def get(lab: Lab, group: str, plural: str, namespace: str | None, name: str) -> dict | None:
    obj = lab.kube.objects.get((group, plural, namespace, name))
    if obj is None and namespace is not None:
        return None
    return obj


def apply(lab: Lab, group: str, version: str, plural: str, desired: dict, *, keep: Iterable[str] = ()) -> dict | None:
    """Create ``desired`` or bring the stored object to it (metadata labels/annotations/owners and
    every top-level field but ``status`` and ``keep``). Returns the stored object; None when the
    type is not served."""
    rt = rtype(lab, group, version, plural)
    if rt is None:
        return None
    meta = desired["metadata"]
    ns = meta.get("namespace") if rt.namespaced else None
    key = (group, plural, ns, meta["name"])
    current = lab.kube.objects.get(key)
    if current is None:
        return lab.kube.create(rt, ns, copy.deepcopy(desired))
    cmeta = current["metadata"]
    if all(cmeta.get(k) == meta[k] for k in ("labels", "annotations", "ownerReferences") if k in meta) and all(
            current.get(k) == v for k, v in desired.items() if k not in ("metadata", "status", "apiVersion", "kind") and k not in keep):
        return current  # nothing to change: no copy, no write
    last = lab.kube.last_applied.get(key)
    if last is not None and last[0] is current and last[1] == (desired, tuple(keep)):
        return current  # the object is as this very desired state left it
    new = copy.deepcopy(current)
    for k in ("labels", "annotations", "ownerReferences"):
        if k in meta:
            new["metadata"][k] = copy.deepcopy(meta[k])
    for k, v in desired.items():
        if k not in ("metadata", "status", "apiVersion", "kind") and k not in keep:
            new[k] = copy.deepcopy(v)
    out = lab.kube._store_update(rt, key, current, new)
    stored = lab.kube.objects.get(key)
    if stored is not None:
        lab.kube.last_applied[key] = (stored, (copy.deepcopy(desired), tuple(keep)))
    return out


def update(lab: Lab, obj: dict, mutate: Callable[[dict], None]) -> dict:
    """Apply ``mutate`` to a copy of a stored object and store it if it changed."""
    rt = lab.kube.type_for_kind(obj["apiVersion"], obj["kind"])
    meta = obj["metadata"]
    key = (rt.group, rt.plural, meta.get("namespace") if rt.namespaced else None, meta["name"])
    current = lab.kube.objects.get(key)
    if current is None:
        return obj
    new = copy.deepcopy(current)
    mutate(new)
    return lab.kube._store_update(rt, key, current, new)


def set_status(lab: Lab, obj: dict, status: dict) -> dict:
    if obj.get("status") == status:
        return obj

    def mutate(o: dict) -> None:
        o["status"] = status

    return update(lab, obj, mutate)


def delete(lab: Lab, obj: dict) -> None:
    rt = lab.kube.type_for_kind(obj["apiVersion"], obj["kind"])
    with contextlib.suppress(ApiError):
        lab.kube.delete(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"])


def owner_ref(obj: dict, *, controller: bool = True) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": controller, "blockOwnerDeletion": True}


def owned_by(obj: dict, owner: dict) -> bool:
    uid = owner["metadata"]["uid"]
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences", []) or [])


def condition(conditions: list[dict] | None, ctype: str) -> dict | None:
    return next((c for c in conditions or [] if c.get("type") == ctype), None)


def set_condition(conditions: list[dict], new: dict) -> list[dict]:
    """``meta.SetStatusCondition``: keep lastTransitionTime unless the status changes."""
    out = [dict(c) for c in conditions]
    old = condition(out, new["type"])
    if old is None:
        out.append({**new, "lastTransitionTime": new.get("lastTransitionTime") or now_iso()})
        return out
    ltt = old.get("lastTransitionTime") if old.get("status") == new["status"] else now_iso()
    old.clear()
    old.update({**new, "lastTransitionTime": ltt})
    return out


def pod_ready(pod: dict) -> bool:
    c = condition((pod.get("status") or {}).get("conditions"), "Ready")
    return bool(c and c.get("status") == "True")


def safe_suffix(seed: str, n: int) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(_SAFE[b % len(_SAFE)] for b in digest[:n])


def record_event(lab: Lab, involved: dict, reason: str, message: str, *, type_: str = "Normal",
                 component: str = "kubelet", host: str | None = None, field_path: str | None = None) -> None:
    """Create or bump a core/v1 Event (same object, reason and message: ``count`` + 1)."""
    rt = rtype(lab, "", "v1", "events")
    meta = involved["metadata"]
    ns = meta.get("namespace") or "default"
    if rt is None or ("", "namespaces", None, ns) not in lab.kube.objects:
        return
    ref = {"kind": involved["kind"], "namespace": meta.get("namespace"), "name": meta["name"], "uid": meta.get("uid"),
           "apiVersion": involved["apiVersion"], "resourceVersion": meta.get("resourceVersion")}
    if field_path:
        ref["fieldPath"] = field_path
    ref = {k: v for k, v in ref.items() if v is not None}
    for ev in objects(lab, "", "events", ns):
        io = ev.get("involvedObject", {})
        if io.get("uid") == meta.get("uid") and ev.get("reason") == reason and ev.get("message") == message:
            def bump(e: dict) -> None:
                e["count"] = int(e.get("count", 1)) + 1
                e["lastTimestamp"] = now_iso()
            update(lab, ev, bump)
            return
    stamp = now_iso()
    lab.workloads.state.counter += 1
    body = {
        "metadata": {"name": f"{meta['name']}.{_event_suffix(meta.get('uid'), lab.workloads.state.counter)}", "namespace": ns},
        "involvedObject": ref, "reason": reason, "message": message, "type": type_,
        "source": {"component": component, **({"host": host} if host else {})},
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        "reportingComponent": component, "reportingInstance": host or "",
    }
    lab.kube.create(rt, ns, body)


def _event_suffix(uid: str | None, counter: int) -> str:
    return hashlib.sha1(f"{uid}:{counter}".encode()).hexdigest()[:16]


def pods_of(lab: Lab, namespace: str, selector: dict[str, str]) -> list[dict]:
    match = label_matcher(",".join(f"{k}={v}" for k, v in selector.items()))
    return [p for p in objects(lab, "", "pods", namespace) if match(p["metadata"].get("labels") or {})]


def running_by_node(lab: Lab, namespace: str, selector: dict[str, str]) -> dict[str, dict]:
    """Node -> the ready pod matching ``selector`` there (one pass over the pods, not one per node)."""
    out: dict[str, dict] = {}
    for p in pods_of(lab, namespace, selector):
        node = p["spec"].get("nodeName")
        if node and node not in out and pod_ready(p) and not p["metadata"].get("deletionTimestamp"):
            out[node] = p
    return out


def running_on(lab: Lab, namespace: str, selector: dict[str, str], node: str) -> dict | None:
    """The ready pod matching ``selector`` on ``node``, if any."""
    return running_by_node(lab, namespace, selector).get(node)
