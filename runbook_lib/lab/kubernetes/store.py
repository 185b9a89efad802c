"""A Kubernetes API object store with the HTTP semantics clients rely on.

Covers what the runbooks use: discovery, get/list/create/replace/patch/delete,
``/status`` subresources, resourceVersion and optimistic concurrency (409
Conflict), 404/409 ``Status`` bodies, label and field selectors, finalizers and
watches that replay from a resourceVersion (410 Gone when it is too old).
CustomResourceDefinitions register new types when created, as on a real API server.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from . import defaults as kube_defaults
from .patches import json_patch, merge_patch, strategic_merge
from .selectors import field_matcher, label_matcher
from .types import BUILTIN_TYPES, ApiError, ResourceType, not_found


def _condition_true(obj: dict, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in (obj.get("status") or {}).get("conditions") or [])


# (group, plural) -> (name, predicate): the states runbooks wait for, timed by the reaction benchmark.
MILESTONES = {
    ("", "nodes"): ("node Ready", lambda o: _condition_true(o, "Ready")),
    ("", "pods"): ("pod Running", lambda o: (o.get("status") or {}).get("phase") == "Running"),
    ("snapshot.storage.k8s.io", "volumesnapshots"): (
        "snapshot readyToUse", lambda o: (o.get("status") or {}).get("readyToUse") is True),
}


class TypedObjects(dict):
    """Stored objects by ``(group, plural, namespace, name)``, also indexed by ``(group, plural)``.

    Controllers read "every object of one type" many times per tick; without the index each
    read scanned the whole store, which made a tick quadratic in the number of nodes.
    """

    def __init__(self) -> None:
        super().__init__()
        self._by_type: dict[tuple[str, str], dict[tuple, dict]] = {}

    def __setitem__(self, key: tuple, obj: dict) -> None:
        super().__setitem__(key, obj)
        self._by_type.setdefault(key[:2], {})[key] = obj

    def __delitem__(self, key: tuple) -> None:
        super().__delitem__(key)
        self._by_type.get(key[:2], {}).pop(key, None)

    def pop(self, key: tuple, *default: Any) -> Any:
        if key in self:
            self._by_type.get(key[:2], {}).pop(key, None)
        return super().pop(key, *default)

    def of_type(self, group: str, plural: str) -> dict[tuple, dict]:
        """The objects of one type (a live view: do not modify it)."""
        return self._by_type.get((group, plural), {})


# Objects whose spec changes bump metadata.generation (everything but these kinds).
_NO_GENERATION = {"Namespace", "Node", "Event", "ConfigMap", "Secret", "Endpoints", "ServiceAccount", "Lease"}


#: Seconds since the epoch on the cluster's clock. The lab sets it to its Talos epoch plus lab seconds, so
#: every timestamp an object carries (conditions, taints, Events, deletion) is in cluster time and a
#: second apart means one cluster second at any ``time_scale``. One lab per server process.
cluster_clock: Callable[[], float] = time.time


def now_iso() -> str:
    return datetime.fromtimestamp(cluster_clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class WatchEvent:
    rv: int
    type: str
    key: tuple
    obj: dict


class KubeStore:
    """Objects by (group, plural, namespace, name), a global resourceVersion and an event log.

    Thread-safety: callers hold the lab lock for every method except
    :meth:`wait_for_events`, which releases it while it waits.
    """

    EVENT_LOG = 5000

    def __init__(self, lock: threading.RLock | None = None) -> None:
        self.lock = lock or threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.types: dict[tuple[str, str], ResourceType] = {}
        self.objects: TypedObjects = TypedObjects()
        self.rv = 1
        self.events: deque[WatchEvent] = deque(maxlen=self.EVENT_LOG)
        # Real (time.monotonic, the same clock in every process) instants of waited-for states.
        self.milestones: deque[dict] = deque(maxlen=self.EVENT_LOG)
        self._reached: set[tuple] = set()
        # What objects.apply last brought each object to: (the stored object it left, a copy of what it applied
        # with the fields it kept).
        # The controllers apply the same desired state at every pass, and the defaults this store fills in make
        # most of them differ from the stored object; while that object is still the one left, it is unchanged.
        self.last_applied: dict[tuple, tuple[dict, tuple[dict, tuple[str, ...]]]] = {}
        for rt in BUILTIN_TYPES:
            self.register(rt)

    # -- types
    def register(self, rt: ResourceType) -> None:
        self.types[(rt.group, rt.plural)] = rt

    def resolve(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.types.get((group, plural))
        if rt is None or rt.version != version:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return rt

    def type_for_kind(self, api_version: str, kind: str) -> ResourceType:
        group, _, version = api_version.rpartition("/")
        for rt in self.types.values():
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        raise ApiError(404, "NotFound", f'no matches for kind "{kind}" in version "{api_version}"')

    def crd_of(self, rt: ResourceType) -> dict | None:
        """The CustomResourceDefinition that serves ``rt`` (None for built-in kinds)."""
        if rt in BUILTIN_TYPES:
            return None
        return self.objects.get(("apiextensions.k8s.io", "customresourcedefinitions", None, f"{rt.plural}.{rt.group}"))

    def _register_crd(self, crd: dict) -> None:
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        # The apiextensions controllers accept the names and serve the type at once (no conflicts in the lab).
        crd["status"] = {"acceptedNames": {k: v for k, v in names.items()}, "storedVersions": [
            v["name"] for v in spec.get("versions", []) if v.get("storage")], "conditions": [
            {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": now_iso()} for t, r, m in (
                ("NamesAccepted", "NoConflicts", "no conflicts found"),
                ("Established", "InitialNamesAccepted", "the initial names have been accepted"))]}
        for ver in spec.get("versions", []):
            if ver.get("served", True):
                self.register(
                    ResourceType(
                        spec.get("group", ""),
                        ver["name"],
                        names.get("plural", ""),
                        names.get("kind", ""),
                        spec.get("scope", "Namespaced") == "Namespaced",
                        tuple(names.get("shortNames", []) or []),
                    )
                )

    # -- helpers
    def _key(self, rt: ResourceType, namespace: str | None, name: str) -> tuple:
        return (rt.group, rt.plural, namespace if rt.namespaced else None, name)

    def _bump(self) -> int:
        self.rv += 1
        return self.rv

    def _record(self, etype: str, key: tuple, obj: dict) -> None:
        self.events.append(WatchEvent(int(obj["metadata"]["resourceVersion"]), etype, key, copy.deepcopy(obj)))
        self._note_milestone(key, obj if etype != "DELETED" else None)
        with self.changed:  # re-entrant: callers usually hold the lab lock already
            self.changed.notify_all()

    def _note_milestone(self, key: tuple, obj: dict | None) -> None:
        """Remember the real instant an object reached a state runbooks wait for (reaction-time benchmark)."""
        what = MILESTONES.get(key[:2])
        reached = what is not None and obj is not None and what[1](obj)
        if reached and key not in self._reached:
            self._reached.add(key)
            self.milestones.append({"what": what[0], "namespace": key[2], "name": key[3], "at": time.monotonic()})
        elif not reached:
            self._reached.discard(key)

    def _check_namespace(self, rt: ResourceType, namespace: str | None) -> None:
        if rt.namespaced and namespace and ("", "namespaces", None, namespace) not in self.objects:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found', kind="namespaces", name=namespace)

    # -- verbs
    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict:
        obj = self.objects.get(self._key(rt, namespace, name))
        if obj is None:
            raise not_found(rt, name)
        return copy.deepcopy(obj)

    def list(
        self, rt: ResourceType, namespace: str | None, label_selector: str | None = None, field_selector: str | None = None
    ) -> dict:
        lmatch, fmatch = label_matcher(label_selector), field_matcher(field_selector)
        items = []
        of_type = self.objects.of_type(rt.group, rt.plural)
        for (_g, _p, ns, _name), obj in sorted(of_type.items(), key=lambda kv: (kv[0][2] or "", kv[0][3])):
            if namespace and rt.namespaced and ns != namespace:
                continue
            if lmatch(obj["metadata"].get("labels") or {}) and fmatch(obj):
                items.append(copy.deepcopy(obj))
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(self.rv)},
            "items": items,
        }

    def create(self, rt: ResourceType, namespace: str | None, body: dict, *, dry_run: bool = False) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
        meta = body.setdefault("metadata", {})
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
            meta["name"] = name
        if not name:
            raise ApiError(422, "Invalid", f"{rt.kind} is invalid: metadata.name: Required value: name or generateName is required")
        if rt.namespaced:
            namespace = namespace or meta.get("namespace") or "default"
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
            self._check_namespace(rt, namespace)
        key = self._key(rt, namespace, name)
        if key in self.objects:
            what = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
            raise ApiError(409, "AlreadyExists", f'{what} "{name}" already exists', kind=rt.plural, name=name, group=rt.group)
        obj = kube_defaults.apply(rt.kind, copy.deepcopy(body))
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj["metadata"]
        if rt.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        if rt.kind not in _NO_GENERATION:
            meta["generation"] = 1
        if dry_run:
            meta["resourceVersion"] = str(self.rv)
            return obj
        meta["resourceVersion"] = str(self._bump())
        self.objects[key] = obj
        if rt.kind == "CustomResourceDefinition":
            self._register_crd(obj)
        self._record("ADDED", key, obj)
        return copy.deepcopy(obj)

    def replace(self, rt: ResourceType, namespace: str | None, name: str, body: dict, *, subresource: str | None = None,
                dry_run: bool = False) -> dict:
        key = self._key(rt, namespace, name)
        current = self.objects.get(key)
        if current is None:
            raise not_found(rt, name)
        sent_rv = (body.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            what = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {what} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
                kind=rt.plural,
                name=name,
                group=rt.group,
            )
        new = copy.deepcopy(body)
        if subresource == "status":
            merged = copy.deepcopy(current)
            merged["status"] = new.get("status", {})
            new = merged
        else:
            new["status"] = new.get("status", current.get("status")) if rt.kind in ("Node", "Pod") else current.get(
                "status", new.get("status")
            )
            if new.get("status") is None:
                new.pop("status", None)
        return self._store_update(rt, key, current, new, dry_run=dry_run)

    def _store_update(self, rt: ResourceType, key: tuple, current: dict, new: dict, *, dry_run: bool = False) -> dict:
        kube_defaults.apply(rt.kind, new)
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        meta = new.setdefault("metadata", {})
        for immutable in ("uid", "creationTimestamp", "name", "namespace"):
            if immutable in current["metadata"]:
                meta[immutable] = current["metadata"][immutable]
        if "generation" in current["metadata"]:
            changed_spec = {k: v for k, v in new.items() if k not in ("metadata", "status")} != {
                k: v for k, v in current.items() if k not in ("metadata", "status")
            }
            meta["generation"] = current["metadata"]["generation"] + (1 if changed_spec else 0)
        if "deletionTimestamp" in current["metadata"]:
            meta["deletionTimestamp"] = current["metadata"]["deletionTimestamp"]
        comparable_new = {k: v for k, v in new.items() if k != "metadata"}
        comparable_cur = {k: v for k, v in current.items() if k != "metadata"}
        meta_new = {k: v for k, v in meta.items() if k != "resourceVersion"}
        meta_cur = {k: v for k, v in current["metadata"].items() if k != "resourceVersion"}
        if comparable_new == comparable_cur and meta_new == meta_cur:
            return copy.deepcopy(current)  # no-op updates keep the resourceVersion, as on a real API server
        if dry_run:  # dryRun=All: the answer a write would give, nothing stored, no event
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
            return copy.deepcopy(new)
        meta["resourceVersion"] = str(self._bump())
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self.objects[key]
            self._record("DELETED", key, new)
            return copy.deepcopy(new)
        self.objects[key] = new
        self._record("MODIFIED", key, new)
        return copy.deepcopy(new)

    def patch(
        self, rt: ResourceType, namespace: str | None, name: str, content_type: str, body: bytes, *,
        subresource: str | None = None, field_manager: str | None = None, force: bool = False, dry_run: bool = False,
    ) -> tuple[int, dict]:
        key = self._key(rt, namespace, name)
        current = self.objects.get(key)
        ctype = content_type.split(";")[0].strip()
        try:
            if ctype == "application/apply-patch+yaml":
                patch = yaml.safe_load(body.decode() or "{}")
            else:
                patch = json.loads(body.decode() or "null")
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError(400, "BadRequest", f"error decoding patch: {exc}") from exc
        if ctype != "application/json-patch+json" and not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", f"error decoding patch: expected a JSON object, got {type(patch).__name__}")
        if ctype == "application/json-patch+json" and not isinstance(patch, list):
            raise ApiError(400, "BadRequest", "error decoding patch: a JSON patch is a list of operations")
        if current is None:
            if ctype == "application/apply-patch+yaml":
                patch.setdefault("metadata", {})["name"] = name
                return 201, self.create(rt, namespace, patch, dry_run=dry_run)
            raise not_found(rt, name)
        if ctype == "application/json-patch+json":
            new = json_patch(current, patch)
        elif ctype == "application/merge-patch+json":
            new = merge_patch(current, patch)
        elif ctype in ("application/strategic-merge-patch+json", "application/apply-patch+yaml"):
            # Custom resources have no strategic-merge schema: a real API server merges them as
            # JSON merge patches and keeps keys like ``$patch`` as plain data.
            new = strategic_merge(current, patch) if rt in BUILTIN_TYPES else merge_patch(current, patch)
        else:
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {ctype})")
        if subresource == "status":
            merged = copy.deepcopy(current)
            merged["status"] = new.get("status", {})
            new = merged
        elif subresource is None and rt.kind not in ("Node", "Pod", "Namespace") and "status" in current:
            # The main resource ignores status changes when the type has a status subresource.
            new["status"] = current["status"]
        new.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
        return 200, self._store_update(rt, key, current, new, dry_run=dry_run)

    def delete(self, rt: ResourceType, namespace: str | None, name: str, *, dry_run: bool = False) -> dict:
        key = self._key(rt, namespace, name)
        current = self.objects.get(key)
        if current is None:
            raise not_found(rt, name)
        if dry_run:
            gone = copy.deepcopy(current)
            if gone["metadata"].get("finalizers"):
                gone["metadata"].setdefault("deletionTimestamp", now_iso())
            return gone
        if current["metadata"].get("finalizers"):
            if not current["metadata"].get("deletionTimestamp"):
                new = copy.deepcopy(current)
                new["metadata"]["deletionTimestamp"] = now_iso()
                new["metadata"]["resourceVersion"] = str(self._bump())
                self.objects[key] = new
                self._record("MODIFIED", key, new)
                return copy.deepcopy(new)
            return copy.deepcopy(current)
        del self.objects[key]
        gone = copy.deepcopy(current)
        gone["metadata"]["resourceVersion"] = str(self._bump())
        self._record("DELETED", key, gone)
        if rt.kind == "Namespace":
            for other in [k for k in self.objects if k[2] == name]:
                obj = self.objects.pop(other)
                obj["metadata"]["resourceVersion"] = str(self._bump())
                self._record("DELETED", other, obj)
        return gone  # the API server answers a delete with the object as it was deleted

    # -- watch
    def events_since(self, rt: ResourceType, namespace: str | None, since_rv: int, lmatch, fmatch) -> list[WatchEvent]:
        if self.events and since_rv < self.events[0].rv - 1 and since_rv < self.rv - len(self.events):
            raise ApiError(410, "Expired", f"too old resource version: {since_rv} ({self.events[0].rv})")
        out = []
        for ev in self.events:
            g, p, ns, _ = ev.key
            if ev.rv <= since_rv or (g, p) != (rt.group, rt.plural):
                continue
            if namespace and rt.namespaced and ns != namespace:
                continue
            if lmatch(ev.obj["metadata"].get("labels") or {}) and fmatch(ev.obj):
                out.append(ev)
        return out

    # -- persistence
    def to_dict(self) -> dict:
        return {
            "rv": self.rv,
            "types": [rt.__dict__ for rt in self.types.values()],
            "objects": list(self.objects.values()),
        }

    @classmethod
    def from_dict(cls, data: dict, lock: threading.RLock | None = None) -> KubeStore:
        store = cls(lock)
        for item in data.get("types", []):
            store.register(ResourceType(**{**item, "short_names": tuple(item.get("short_names", ()))}))
        for obj in data.get("objects", []):
            group, _, version = obj["apiVersion"].rpartition("/")
            rt = store.type_for_kind(obj["apiVersion"], obj["kind"])
            store.objects[store._key(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj
        store.rv = int(data.get("rv", 1))
        for key, obj in store.objects.items():  # states reached before the restart are no new milestones
            what = MILESTONES.get(key[:2])
            if what is not None and what[1](obj):
                store._reached.add(key)
        return store

    # -- discovery
    def discovery_core(self) -> dict:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}

    def discovery_groups(self) -> dict:
        groups: dict[str, list[str]] = {}
        for rt in self.types.values():
            if rt.group:
                groups.setdefault(rt.group, [])
                if rt.version not in groups[rt.group]:
                    groups[rt.group].append(rt.version)
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                    "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                }
                for g, vs in sorted(groups.items())
            ],
        }

    def discovery_resources(self, group: str, version: str) -> dict:
        resources = []
        for rt in self.types.values():
            if rt.group != group or rt.version != version:
                continue
            verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
            resources.append({"name": rt.plural, "singularName": rt.kind.lower(), "namespaced": rt.namespaced,
                              "kind": rt.kind, "verbs": verbs, "shortNames": list(rt.short_names)})
            resources.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                              "kind": rt.kind, "verbs": ["get", "patch", "update"]})
            if rt.kind in ("Deployment", "StatefulSet"):
                resources.append({"name": f"{rt.plural}/scale", "singularName": "", "namespaced": True, "group": "autoscaling",
                                  "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
            if rt.kind == "Pod":
                resources.append({"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
                                  "version": "v1", "kind": "Eviction", "verbs": ["create"]})
        if not resources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
                "resources": resources}
