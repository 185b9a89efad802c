"""Generic Kubernetes controllers the lab needs: workloads, scheduler, kubelet, events.

What is modelled (enough for the runbooks, not a full Kubernetes):

- Deployment -> ReplicaSet -> Pods (``<deploy>-<pod-template-hash>-<5 chars>``), DaemonSet ->
  one Pod per eligible node, StatefulSet -> ``<sts>-<i>`` with volumeClaimTemplates, Job ->
  Pods until ``completions`` succeed or ``backoffLimit`` is exceeded; owner references and the
  garbage collector (dependents of a deleted owner go too; a deleted CRD takes its objects).
- The scheduler: only Ready, schedulable nodes; nodeSelector, required node affinity (labels
  and ``metadata.name`` fields), taints/tolerations, PVC topology (a bound PV's node affinity;
  ``WaitForFirstConsumer`` claims get ``volume.kubernetes.io/selected-node`` and the pod binds
  once the claim is Bound). Messages follow kube-scheduler's ``0/N nodes are available: ...``.
- The kubelet: volumes are set up first (hostPath type checks against the node's host
  filesystem, ConfigMaps/Secrets must exist, CSI volumes must be attached and published),
  then init containers run in order, then containers; a container is Ready once its app has
  started and its readiness probe's initial delay passed. Pod status has the real shape
  (phase, conditions, container statuses, IPs). Pods on a node that is down turn not Ready.
- Pods that run to completion (Jobs, bare pods with restartPolicy Never/OnFailure) are run by
  :class:`PodRunner` objects: the default :class:`ShellRunner` understands a few shell
  commands (``wipefs``, ``umount``, ``sleep``, ``echo``...); :mod:`.fio` adds a runner for fio.
- Pod logs (``GET .../pods/{name}/log``) and Events (Scheduled, Pulling, Pulled, Created,
  Started, FailedMount, FailedScheduling...).

Times are lab seconds. Objects are read straight from the store without copies and written
only when they change, so a reconcile pass with nothing to do costs no resourceVersion.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import random
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ..kubernetes.store import ApiError, ResourceType, label_matcher, now_iso
from ..storage import drbd

# Lab-second durations (realistic orders of magnitude, divided by the clock's scale).
T_PULL = 3.0  # first pull of an image on a node
T_CREATE = 1.0  # sandbox + container creation
T_INIT = 1.0  # an init container without a runner runs this long
T_DEFAULT_STARTUP = 1.0  # an app is "up" this long after its container started
NOT_READY_GRACE = 0.0  # node-lifecycle marks pods not ready (real: ~40 s node-monitor grace)
RECONCILE_PERIOD = 2.0  # controllers re-check time-driven state at least this often
MAX_EVENTS = 2000  # Events kept in the store (a real API server expires them after an hour)
MAX_LOG_LINES = 5000  # per container; a multi-job fio JSON result is ~1500 lines

# App start-up times by image (the readiness/startup probes only pass once the app is up).
STARTUP_BY_IMAGE = {"piraeus-server": 12.0, "piraeus-csi": 2.0, "piraeus-operator": 3.0}

# kube-controller-manager's safe encoding alphabet for generated names (rand.SafeEncodeString).
_SAFE = "bcdfghjklmnpqrstvwxz2456789"

# Types the lab's store does not register by default but these controllers need.
EXTRA_TYPES = (
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",)),
    ResourceType("storage.k8s.io", "v1", "csinodes", "CSINode", False),
)

# Where Talos's host filesystem is writable and what exists on it (talos notes §5.3 and
# piraeus-operator#429: no systemd, read-only /etc and /usr, no /usr/src).
TALOS_HOST_DIRS = frozenset({
    "/", "/dev", "/proc", "/sys", "/run", "/run/udev", "/run/lock", "/tmp", "/etc", "/usr", "/usr/lib",
    "/lib", "/lib/modules", "/usr/lib/modules", "/opt", "/var", "/var/lib", "/var/log", "/var/mnt",
    "/var/lib/kubelet", "/var/run", "/sys/fs/cgroup", "/dev/disk",
})
TALOS_WRITABLE = ("/var", "/run", "/tmp", "/dev", "/sys", "/proc")


# ----------------------------------------------------------------------------- node facts


@dataclass
class NodeFacts:
    """What the storage stack needs to know about a node, from the Talos model.

    :func:`node_facts` is the only place that reads the Talos model, so a change there
    touches one adapter.
    """

    name: str
    address: str
    up: bool
    ready: bool
    boot_id: str
    drbd_loaded: bool
    drbd_version: str | None
    usermode_helper_disabled: bool
    drbd_transport_tcp: bool
    zfs_loaded: bool
    partitions: dict[str, str | None]  # device path -> filesystem signature (None: none)
    sizes: dict[str, int]  # device path -> bytes
    mounted: dict[str, str]  # device path -> mount point of a Talos volume using it


def node_facts(lab: Any, name: str) -> NodeFacts | None:
    """Facts of one Talos node (None when the lab has no such node)."""
    node = lab.talos.nodes.get(name)
    if node is None:
        return None
    now = lab.clock.now()
    drbd = node.loaded_module("drbd") if hasattr(node, "loaded_module") else None
    params = dict(p.split("=", 1) for p in (drbd or {}).get("parameters", []) if "=" in p)
    partitions: dict[str, str | None] = {}
    sizes: dict[str, int] = {}
    for disk in node.disks:
        for part in disk.partitions:
            path = disk.part_path(part.index)
            partitions[path] = part.filesystem or None
            sizes[path] = part.size
    mounted = {}
    unmounted = set(lab.workloads.state.unmounted.get(name, []))
    for vid, st in (node.volumes or {}).items():
        if st.get("phase") == "ready" and st.get("location") and st.get("_mount"):
            mount = st.get("_mount") or {}
            parent = mount.get("parentId") or ""
            target = f"{parent}/{mount.get('targetPath', vid)}" if parent else str(mount.get("targetPath", vid))
            if target not in unmounted:
                mounted[st["location"]] = target
    return NodeFacts(
        name=name, address=node.address, up=node.is_up(now), ready=node.kubelet_ready(now) and lab.node_reachable(name),
        boot_id=node.boot_id,
        drbd_loaded=drbd is not None, drbd_version=node.drbd_version() if drbd else None,
        usermode_helper_disabled=params.get("usermode_helper") == "disabled",
        drbd_transport_tcp=node.loaded_module("drbd_transport_tcp") is not None,
        zfs_loaded=node.loaded_module("zfs") is not None,
        partitions=partitions, sizes=sizes, mounted=mounted,
    )


def set_block_signature(lab: Any, node_name: str, device: str, signature: str | None) -> bool:
    """Write (``zfs_member``, ``LVM2_member``) or clear (None: ``wipefs -a``) a device's signature.

    Hook into the Talos model: its partitions carry the probed signature (``filesystem``);
    Talos then sees the new signature on its next volume reconcile. Uses the model's
    ``set_block_signature`` when it offers one.
    """
    cluster = lab.talos
    node = cluster.nodes.get(node_name)
    if node is None:
        return False
    hook = getattr(cluster, "set_block_signature", None)
    if callable(hook):
        return bool(hook(node, device, signature))
    found = node.partition_by_path(device)
    if found is None:
        return False
    part = found[1]
    part.filesystem = signature or ""
    if signature is None:
        part.fs_uuid, part.fs_label = "", ""
    return True


# ----------------------------------------------------------------------------- store helpers


def rtype(lab: Any, group: str, version: str, plural: str) -> ResourceType | None:
    try:
        return lab.kube.resolve(group, version, plural)
    except ApiError:
        return None


def objects(lab: Any, group: str, plural: str, namespace: str | None = None) -> list[dict]:
    """Stored objects of one type (read-only views, sorted by namespace and name)."""
    out = [obj for (_g, _p, ns, _n), obj in lab.kube.objects.of_type(group, plural).items()
           if namespace is None or ns == namespace]
    out.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    return out


def get(lab: Any, group: str, plural: str, namespace: str | None, name: str) -> dict | None:
    obj = lab.kube.objects.get((group, plural, namespace, name))
    if obj is None and namespace is not None:
        return None
    return obj


def apply(lab: Any, group: str, version: str, plural: str, desired: dict, *, keep: Iterable[str] = ()) -> dict | None:
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
    new = copy.deepcopy(current)
    for k in ("labels", "annotations", "ownerReferences"):
        if k in meta:
            new["metadata"][k] = copy.deepcopy(meta[k])
    for k, v in desired.items():
        if k not in ("metadata", "status", "apiVersion", "kind") and k not in keep:
            new[k] = copy.deepcopy(v)
    return lab.kube._store_update(rt, key, current, new)


def update(lab: Any, obj: dict, mutate: Callable[[dict], None]) -> dict:
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


def set_status(lab: Any, obj: dict, status: dict) -> dict:
    if obj.get("status") == status:
        return obj

    def mutate(o: dict) -> None:
        o["status"] = status

    return update(lab, obj, mutate)


def delete(lab: Any, obj: dict) -> None:
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


# ----------------------------------------------------------------------------- events


def record_event(lab: Any, involved: dict, reason: str, message: str, *, type_: str = "Normal",
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


def append_log(lab: Any, namespace: str, pod: str, container: str, text: str) -> None:
    """Add lines to a container's log (kept to the last MAX_LOG_LINES lines)."""
    key = f"{namespace}/{pod}/{container}"
    lines = lab.workloads.state.logs.setdefault(key, [])
    lines.extend(text.rstrip("\n").split("\n"))
    del lines[:-MAX_LOG_LINES]


# ----------------------------------------------------------------------------- runners


@dataclass
class RunResult:
    """What a container that runs to completion does: its exit code, log and duration."""

    exit_code: int
    log: str = ""
    duration: float = 1.0
    pending: bool = False  # still waiting (e.g. for a service): the kubelet asks the runner again later


class PodRunner(Protocol):
    """Plays a container of a run-to-completion pod. Return None to let the next runner try."""

    def run(self, lab: Any, pod: dict, container: dict, node: str, now: float) -> RunResult | None: ...


class ShellRunner:
    """Interprets the few shell commands runbooks run in throw-away pods.

    ``wipefs -a DEV`` clears the signature of DEV on the pod's node (privileged containers
    see host devices; a mounted device is busy, as ``wipefs`` opens it exclusively),
    ``umount /host/var/mnt/X`` releases a Talos user-volume mount, ``sleep N`` lasts N lab
    seconds, ``echo``/``true``/``false``/``exit N`` do what they say, package installs and
    ``rm`` succeed. A script stops at the first failing command unless it is followed by
    ``|| true`` (``set -e``-like, which is what the article's scripts rely on).
    """

    def run(self, lab: Any, pod: dict, container: dict, node: str, now: float) -> RunResult | None:
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        if not argv:
            return None
        self._context = (pod, container)  # --- volume content: which volumes the commands see
        script = argv[-1] if argv[0] in ("sh", "/bin/sh", "bash", "/bin/bash") and "-c" in argv else shlex.join(argv)
        privileged = bool((container.get("securityContext") or {}).get("privileged"))
        out: list[str] = []
        duration = 0.5
        for raw in re.split(r"\n|;|&&", script):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            tolerant = bool(re.search(r"\|\|\s*true\s*$", line))
            line = re.sub(r"\|\|\s*true\s*$", "", line).strip()
            line = re.sub(r"\s*2>\s*/dev/null", "", line)
            try:
                words = shlex.split(line)
            except ValueError:
                words = line.split()
            if not words:
                continue
            code, text, took = self._command(lab, words, node, privileged)
            duration += took
            if text:
                out.append(text)
            if code != 0 and not tolerant:
                return RunResult(code, "\n".join(out), duration)
            if words[0] == "exit":
                return RunResult(code, "\n".join(out), duration)
        return RunResult(0, "\n".join(out), duration)

    def _command(self, lab: Any, words: list[str], node: str, privileged: bool) -> tuple[int, str, float]:
        cmd, args = words[0].rsplit("/", 1)[-1], words[1:]
        ctx = getattr(self, "_context", None)
        if ctx is not None:  # --- volume content (echo > file, dd, cat, sha256sum on a mounted PVC)
            handled = volume_command(lab, ctx[0], ctx[1], cmd, args)
            if handled is not None:
                return handled
        if cmd == "sleep":
            if args and args[0] == "infinity":
                return 0, "", 10**9
            try:
                return 0, "", float(args[0].rstrip("s")) if args else 0.0
            except ValueError:
                return 1, f"sleep: invalid time interval '{args[0]}'", 0.0
        if cmd in ("echo", "printf"):
            return 0, " ".join(args), 0.0
        if cmd in ("true", "apk", "apt-get", "rm", "mkdir", "set", "sync", "cat", "ls"):
            return 0, "", 0.5 if cmd in ("apk", "apt-get") else 0.0
        if cmd == "false":
            return 1, "", 0.0
        if cmd == "exit":
            return int(args[0]) if args and args[0].isdigit() else 0, "", 0.0
        if cmd == "umount":
            target = next((a for a in args if not a.startswith("-")), "")
            m = re.search(r"(/var/mnt/[^/]+)/?$", target)
            if not m:
                return 32, f"umount: {target}: not mounted.", 0.0
            lst = lab.workloads.state.unmounted.setdefault(node, [])
            if m.group(1) not in lst:
                lst.append(m.group(1))
            return 0, "", 0.0
        if cmd == "wipefs":
            return self._wipefs(lab, args, node, privileged)
        return 0, "", 0.0

    def _wipefs(self, lab: Any, args: list[str], node: str, privileged: bool) -> tuple[int, str, float]:
        wipe_all = any(a in ("-a", "--all") for a in args) or any(re.fullmatch(r"-[a-zA-Z]*a[a-zA-Z]*", a) for a in args)
        devices = [a for a in args if a.startswith("/dev/")]
        if not devices:
            return 1, "wipefs: bad usage", 0.0
        facts = node_facts(lab, node)
        lines = []
        for dev in devices:
            if facts is None or not privileged or dev not in facts.partitions:
                # an unprivileged container only sees its own /dev
                return 1, f"wipefs: error: {dev}: probing initialization failed: No such file or directory", 0.0
            if dev in facts.mounted and "--force" not in args and "-f" not in args:
                return 1, f"wipefs: error: {dev}: probing initialization failed: Device or resource busy", 0.0
            sig = facts.partitions[dev]
            if not wipe_all or sig is None:
                if sig:
                    lines.append(f"DEVICE {dev} OFFSET 0x0 TYPE {sig}")
                continue
            set_block_signature(lab, node, dev, None)
            magic = {"xfs": ("0x0", "58 46 53 42"), "ext4": ("0x438", "53 ef"), "zfs_member": ("0x3f000", "0c b1 ba 00 00 00 00 00"),
                     "LVM2_member": ("0x218", "4c 56 4d 32 20 30 30 31")}.get(sig, ("0x0", "00"))
            lines.append(f"{dev}: {len(magic[1].split())} bytes were erased at offset {magic[0]} ({sig}): {magic[1]}")
        return 0, "\n".join(lines), 0.2


# ----------------------------------------------------------------------------- state


@dataclass
class PodRuntime:
    """The kubelet's view of one pod (lab time stamps)."""

    node: str
    boot_id: str
    stage: str = "volumes"  # volumes -> init -> create -> running -> done
    since: float = 0.0
    init_index: int = 0
    ip: str = ""
    restarts: int = 0
    mount_errors: list[str] = field(default_factory=list)
    started: dict[str, float] = field(default_factory=dict)  # container -> running since
    finished: dict[str, dict] = field(default_factory=dict)  # container -> {exitCode, at, started}
    runs: dict[str, dict] = field(default_factory=dict)  # container -> {"exit": int, "ends": float}
    init_done: list[dict] = field(default_factory=list)  # finished init containers
    stamps: dict[str, str] = field(default_factory=dict)  # lab time -> RFC 3339, fixed once shown


@dataclass
class WorkloadState:
    pods: dict[str, PodRuntime] = field(default_factory=dict)  # pod uid -> runtime
    logs: dict[str, list[str]] = field(default_factory=dict)
    pulled: dict[str, list[str]] = field(default_factory=dict)  # node -> images pulled
    ip_counter: dict[str, int] = field(default_factory=dict)
    unmounted: dict[str, list[str]] = field(default_factory=dict)  # node -> Talos mounts released
    host_boot: dict[str, str] = field(default_factory=dict)  # node -> boot id the above belong to
    crd_types: list[list[str]] = field(default_factory=list)  # [group, plural] served because of a CRD
    volume_data: dict[str, dict[str, dict]] = field(default_factory=dict)  # volume/snapshot -> path -> file (volume content)
    counter: int = 0
    last_rv: int = -1
    next_due: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> WorkloadState:
        data = dict(data or {})
        pods = {uid: PodRuntime(**p) for uid, p in (data.pop("pods", {}) or {}).items()}
        known = {f for f in cls.__dataclass_fields__}
        return cls(pods=pods, **{k: v for k, v in data.items() if k in known})


class Workloads:
    """The workload controllers' state (persisted) and pod runners (code, not persisted)."""

    def __init__(self, state: WorkloadState | None = None, runners: list[PodRunner] | None = None,
                 volume_hooks: list[Callable[..., tuple[bool, str | None]]] | None = None) -> None:
        self.state = state or WorkloadState()
        self.runners: list[PodRunner] = runners if runners is not None else [ShellRunner()]
        # Volume hooks decide whether a pod's PVC volume is ready on its node: (ready, error).
        self.volume_hooks = volume_hooks or []
        # Derived data other controllers may memoize between passes (not persisted).
        self.cache: dict[str, Any] = {}

    def to_dict(self) -> dict:
        return self.state.to_dict()

    @classmethod
    def from_dict(cls, data: dict | None) -> Workloads:
        return cls(WorkloadState.from_dict(data or {}))


def register_types(store: Any) -> None:
    """Serve the extra built-in types these controllers write (ReplicaSet, CSINode)."""
    for rt in EXTRA_TYPES:
        if (rt.group, rt.plural) not in store.types:
            store.register(rt)


# ----------------------------------------------------------------------------- reconcile


def reconcile(lab: Any, now: float, *, force: bool = False) -> bool:
    """One pass of every workload controller. Returns True when something was written."""
    st = lab.workloads.state
    rv_before = lab.kube.rv
    if not force and rv_before == st.last_rv and now < st.next_due:
        return False
    _forget_host_changes(lab)
    _garbage_collect(lab)
    _deployments(lab)
    _replicasets(lab)
    _statefulsets(lab)
    _daemonsets(lab)
    _jobs(lab)
    _schedule(lab, now)
    _kubelet(lab, now)
    _workload_status(lab)
    st.last_rv = lab.kube.rv
    st.next_due = now + RECONCILE_PERIOD
    return lab.kube.rv != rv_before


def _forget_host_changes(lab: Any) -> None:
    """A reboot remounts Talos volumes: forget mounts released by pods before it."""
    st = lab.workloads.state
    for name, node in lab.talos.nodes.items():
        if st.host_boot.get(name) != node.boot_id:
            st.host_boot[name] = node.boot_id
            st.unmounted.pop(name, None)


def _garbage_collect(lab: Any) -> None:
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


def _new_name(lab: Any, prefix: str) -> str:
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


def _create_pod(lab: Any, pod: dict) -> dict | None:
    rt = rtype(lab, "", "v1", "pods")
    try:
        return lab.kube.create(rt, pod["metadata"]["namespace"], pod)
    except ApiError:
        return None


def _live(pod: dict) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _deployments(lab: Any) -> None:
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


def _replicasets(lab: Any) -> None:
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


def _statefulsets(lab: Any) -> None:
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


def node_eligible(node: dict, spec: dict) -> tuple[bool, str]:
    """Does a pod spec fit a node by selector, required affinity and taints? (reason when not)"""
    labels = node["metadata"].get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False, "didn't match Pod's node affinity/selector"
    terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
    if terms and not any(_term_matches(node, t) for t in terms):
        return False, "didn't match Pod's node affinity/selector"
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(spec.get("tolerations") or [], taint):
            return False, f"had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
    return True, ""


def _term_matches(node: dict, term: dict) -> bool:
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


def _daemonsets(lab: Any) -> None:
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


def _jobs(lab: Any) -> None:
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


# ----------------------------------------------------------------------------- scheduler


def _schedule(lab: Any, now: float) -> None:
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


def _set_unschedulable(lab: Any, pod: dict, msg: str) -> None:
    cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg, "lastProbeTime": None}
    old = condition(pod["status"].get("conditions"), "PodScheduled")
    if old and old.get("message") == msg:
        return
    update(lab, pod, lambda o: o["status"].__setitem__("conditions", set_condition(o["status"].get("conditions", []), cond)))
    record_event(lab, pod, "FailedScheduling", msg, type_="Warning", component="default-scheduler")


def _pick_node(lab: Any, pod: dict, nodes: list[dict], load: dict[str, int]) -> tuple[str | None, list[str], bool]:
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
    return sum(int(t.get("weight", 0)) for t in terms if _term_matches(node, t.get("preference") or {}))


def _binding_mode(lab: Any, pvc: dict) -> str:
    sc_name = pvc["spec"].get("storageClassName")
    sc = get(lab, "storage.k8s.io", "storageclasses", None, sc_name) if sc_name else None
    return (sc or {}).get("volumeBindingMode", "Immediate")


def _volumes_fit(lab: Any, claims: list[dict], node: dict) -> tuple[bool, str]:
    for pvc in claims:
        pv_name = pvc["spec"].get("volumeName")
        if not pv_name:
            continue
        pv = get(lab, "", "persistentvolumes", None, pv_name)
        terms = ((((pv or {}).get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms")
        if terms and not any(_term_matches(node, t) for t in terms):
            return False, "had volume node affinity conflict"
    return True, ""


# ----------------------------------------------------------------------------- kubelet


def _host_path_error(path: str, htype: str, writable: Iterable[str] = TALOS_WRITABLE) -> str | None:
    """kubelet's hostPath type check against a Talos host (None when it passes)."""
    clean = path.rstrip("/") or "/"
    exists = clean in TALOS_HOST_DIRS or any(clean.startswith(w + "/") for w in ("/var/lib/kubelet",))
    if htype in ("", None):
        return None
    if htype == "Directory":
        return None if exists else f"hostPath type check failed: {path} is not a directory"
    if htype == "DirectoryOrCreate":
        if exists or any(clean == w or clean.startswith(w + "/") for w in writable):
            return None
        parts = clean.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/" + "/".join(parts[:i])
            if prefix not in TALOS_HOST_DIRS:
                return f"mkdir {prefix}: read-only file system"
        return None
    if htype == "Socket":
        return f"hostPath type check failed: {path} is not a socket file"
    if htype in ("File", "CharDevice", "BlockDevice"):
        if htype == "BlockDevice" and clean.startswith("/dev/"):
            return None
        return f"hostPath type check failed: {path} is not a {'file' if htype == 'File' else htype.lower().replace('device', ' device')}"
    if htype == "FileOrCreate":
        return None if any(clean.startswith(w + "/") for w in writable) else f"open {path}: read-only file system"
    return None


def _volume_errors(lab: Any, pod: dict, node: str) -> tuple[list[str], bool]:
    """(errors, pending) for the pod's volumes on ``node``."""
    ns = pod["metadata"]["namespace"]
    errors, pending = [], False
    for vol in pod["spec"].get("volumes") or []:
        name = vol.get("name")
        if "hostPath" in vol:
            err = _host_path_error(vol["hostPath"].get("path", ""), vol["hostPath"].get("type", ""))
            if err:
                errors.append(f'MountVolume.SetUp failed for volume "{name}" : {err}')
        elif "configMap" in vol:
            ref = vol["configMap"]
            if not ref.get("optional") and get(lab, "", "configmaps", ns, ref.get("name", "")) is None:
                errors.append(f'MountVolume.SetUp failed for volume "{name}" : configmap "{ref.get("name")}" not found')
        elif "secret" in vol:
            ref = vol["secret"]
            if not ref.get("optional") and get(lab, "", "secrets", ns, ref.get("secretName", "")) is None:
                errors.append(f'MountVolume.SetUp failed for volume "{name}" : secret "{ref.get("secretName")}" not found')
        elif "persistentVolumeClaim" in vol:
            ready, err = True, None
            for hook in lab.workloads.volume_hooks:
                ready, err = hook(lab, pod, vol, node)
                if not ready or err:
                    break
            if err:
                errors.append(err)
            elif not ready:
                pending = True
    return errors, pending


def _container_image(c: dict) -> str:
    image = c.get("image") or "busybox"
    return image if ":" in image.rsplit("/", 1)[-1] or "@" in image else f"{image}:latest"


def _startup(c: dict) -> float:
    image = c.get("image") or ""
    base = next((t for key, t in STARTUP_BY_IMAGE.items() if key in image), T_DEFAULT_STARTUP)
    probe = c.get("readinessProbe") or {}
    return base + float(probe.get("initialDelaySeconds", 0) or 0)


def _kubelet(lab: Any, now: float) -> None:
    st = lab.workloads.state
    seen = set()
    for pod in objects(lab, "", "pods"):
        uid = pod["metadata"]["uid"]
        node = pod["spec"].get("nodeName")
        if not node:
            continue
        seen.add(uid)
        facts = node_facts(lab, node)
        rt = st.pods.get(uid)
        if rt is None:
            rt = st.pods[uid] = PodRuntime(node=node, boot_id=facts.boot_id if facts else "", since=now)
            prefix = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}/"
            for key in [k for k in st.logs if k.startswith(prefix)]:  # a new pod of an old name starts a new log
                del st.logs[key]
        if facts is None:
            continue
        if not facts.ready:
            _mark_not_ready(lab, pod, facts)
            continue
        if rt.boot_id != facts.boot_id:  # the node rebooted: containers start again
            if rt.stage == "done":
                continue
            rt.boot_id, rt.stage, rt.since, rt.init_index, rt.started, rt.runs = facts.boot_id, "volumes", now, 0, {}, {}
            rt.restarts += 1
            rt.init_done = []
        _advance(lab, pod, rt, facts, now)
        _write_pod_status(lab, pod, rt, facts, now)
    for uid in [u for u in st.pods if u not in seen]:
        del st.pods[uid]


def _mark_not_ready(lab: Any, pod: dict, facts: NodeFacts) -> None:
    """Node lifecycle controller: pods on a node that stopped posting status turn not Ready."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return
    conds = status.get("conditions") or []
    if any(c["type"] == "Ready" and c["status"] == "False" and c.get("reason") == "NodeNotReady" for c in conds):
        return

    def mutate(o: dict) -> None:
        cs = o.setdefault("status", {}).get("conditions") or []
        for ctype in ("Ready", "ContainersReady"):
            cs = set_condition(cs, {"type": ctype, "status": "False", "reason": "NodeNotReady" if ctype == "Ready" else "ContainersNotReady",
                                    "lastProbeTime": None})
        o["status"]["conditions"] = cs
        for c in o["status"].get("containerStatuses") or []:
            c["ready"] = False

    update(lab, pod, mutate)
    record_event(lab, pod, "NodeNotReady", "Node is not ready", type_="Warning", component="node-controller")


def _advance(lab: Any, pod: dict, rt: PodRuntime, facts: NodeFacts, now: float) -> None:
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    spec = pod["spec"]
    if pod["metadata"].get("deletionTimestamp") or rt.stage == "done":
        return
    if rt.stage == "volumes":
        errors, pending = _volume_errors(lab, pod, rt.node)
        if errors:
            if errors != rt.mount_errors:
                rt.mount_errors = errors
                for err in errors:
                    record_event(lab, pod, "FailedMount", err, type_="Warning", host=rt.node)
            return
        rt.mount_errors = []
        if pending:
            return
        if not rt.ip:
            if spec.get("hostNetwork"):
                rt.ip = facts.address
            else:
                idx = sorted(lab.talos.nodes).index(rt.node) if rt.node in lab.talos.nodes else 0
                n = lab.workloads.state.ip_counter.get(rt.node, 1) + 1
                lab.workloads.state.ip_counter[rt.node] = n
                rt.ip = f"10.244.{idx}.{n % 250 + 2}"
        rt.stage, rt.since = "init", now
    inits = spec.get("initContainers") or []
    while rt.stage == "init":
        if rt.init_index >= len(inits):
            rt.stage, rt.since = "create", now
            break
        c = inits[rt.init_index]
        key = c["name"]
        if key not in rt.runs:
            start = rt.since + _pull(lab, rt.node, c, pod, now) + T_CREATE
            rt.runs[key] = {"exit": None, "start": start, "ends": None}
        run = rt.runs[key]
        if run["ends"] is None:
            if now < run["start"]:
                return
            res = _run(lab, pod, c, rt.node, now) or RunResult(0, "", T_INIT)
            if res.pending:
                return
            run.update({"exit": res.exit_code, "ends": max(now, run["start"]) + res.duration})
            if res.log:
                append_log(lab, ns, name, key, res.log)
        if now < run["ends"]:
            return
        rt.init_done.append({"name": key, "exitCode": run["exit"], "started": run["start"], "at": run["ends"]})
        if run["exit"] != 0:
            if spec.get("restartPolicy") == "Never":
                rt.stage = "done"
                rt.finished["__init__"] = {"exitCode": run["exit"], "at": run["ends"]}
                return
            rt.restarts += 1
            del rt.runs[key]
            rt.init_done.pop()
            rt.since = now + min(300.0, 10.0 * 2 ** min(rt.restarts, 5))  # CrashLoopBackOff
            return
        rt.init_index += 1
        rt.since = run["ends"]
    if rt.stage == "create":
        t = rt.since
        for c in spec.get("containers") or []:
            if c["name"] in rt.started:
                continue
            ready_at = t + _pull(lab, rt.node, c, pod, now) + T_CREATE
            rt.started[c["name"]] = ready_at
            if spec.get("restartPolicy", "Always") != "Always":
                res = _run(lab, pod, c, rt.node, now) or RunResult(0, "", T_DEFAULT_STARTUP)
                rt.runs[c["name"]] = {"exit": res.exit_code, "start": ready_at, "ends": ready_at + res.duration}
                if res.log:
                    append_log(lab, ns, name, c["name"], res.log)
        rt.stage, rt.since = "running", now
    if rt.stage == "running" and spec.get("restartPolicy", "Always") != "Always":
        ends = [r["ends"] for n, r in rt.runs.items() if n in {c["name"] for c in spec.get("containers") or []}]
        if ends and now >= max(ends):
            for c in spec.get("containers") or []:
                r = rt.runs.get(c["name"])
                if r:
                    rt.finished[c["name"]] = {"exitCode": r["exit"], "at": r["ends"], "started": r["start"]}
            rt.stage = "done"


def _pull(lab: Any, node: str, c: dict, pod: dict, now: float) -> float:
    """Pull the container's image if the node does not have it yet; record the kubelet's events."""
    image = _container_image(c)
    where = f"spec.initContainers{{{c['name']}}}" if c in (pod["spec"].get("initContainers") or []) else f"spec.containers{{{c['name']}}}"
    pulled = lab.workloads.state.pulled.setdefault(node, [])
    took = 0.0
    if image in pulled or c.get("imagePullPolicy") == "Never":
        record_event(lab, pod, "Pulled", f'Container image "{image}" already present on machine', host=node, field_path=where)
    else:
        pulled.append(image)
        took = T_PULL
        record_event(lab, pod, "Pulling", f'Pulling image "{image}"', host=node, field_path=where)
        record_event(lab, pod, "Pulled", f'Successfully pulled image "{image}" in {T_PULL:.3f}s ({T_PULL:.3f}s including waiting)',
                     host=node, field_path=where)
    record_event(lab, pod, "Created", f"Created container: {c['name']}", host=node, field_path=where)
    record_event(lab, pod, "Started", f"Started container {c['name']}", host=node, field_path=where)
    return took


def _run(lab: Any, pod: dict, c: dict, node: str, now: float) -> RunResult | None:
    for runner in lab.workloads.runners:
        res = runner.run(lab, pod, c, node, now)
        if res is not None:
            return res
    return None


def _ts(lab: Any, t: float, rt: PodRuntime | None = None) -> str:
    """A lab time as an RFC 3339 stamp on the cluster's clock, like every lab timestamp (stable once shown)."""
    from datetime import UTC, datetime

    key = f"{t:.3f}"
    if rt is not None and key in rt.stamps:
        return rt.stamps[key]
    stamp = datetime.fromtimestamp(lab.talos.epoch + t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # the cluster's clock
    if rt is not None:
        rt.stamps[key] = stamp
    return stamp


def _write_pod_status(lab: Any, pod: dict, rt: PodRuntime, facts: NodeFacts, now: float) -> None:
    spec = pod["spec"]
    old = pod.get("status") or {}
    conds = list(old.get("conditions") or [])
    inits, containers = spec.get("initContainers") or [], spec.get("containers") or []
    init_statuses, statuses = [], []
    for i, c in enumerate(inits):
        done = next((d for d in rt.init_done if d["name"] == c["name"]), None)
        base = {"name": c["name"], "image": _container_image(c), "imageID": "", "restartCount": 0, "started": False, "ready": False}
        if done:
            base.update({"ready": done["exitCode"] == 0, "state": {"terminated": {
                "exitCode": done["exitCode"], "reason": "Completed" if done["exitCode"] == 0 else "Error",
                "startedAt": _ts(lab, done["started"], rt), "finishedAt": _ts(lab, done["at"], rt)}}})
        elif rt.stage == "init" and i == rt.init_index and c["name"] in rt.runs and now >= rt.runs[c["name"]]["start"]:
            base.update({"started": True, "state": {"running": {"startedAt": _ts(lab, rt.runs[c["name"]]["start"], rt)}}})
        else:
            base["state"] = {"waiting": {"reason": "PodInitializing"}}
        init_statuses.append(base)
    all_ready = True
    for c in containers:
        base = {"name": c["name"], "image": _container_image(c), "imageID": "", "restartCount": rt.restarts,
                "started": False, "ready": False}
        fin = rt.finished.get(c["name"])
        started = rt.started.get(c["name"])
        if fin:
            base["state"] = {"terminated": {"exitCode": fin["exitCode"], "reason": "Completed" if fin["exitCode"] == 0 else "Error",
                                            "startedAt": _ts(lab, fin.get("started", fin["at"]), rt), "finishedAt": _ts(lab, fin["at"], rt)}}
            all_ready = False
        elif started is not None and now >= started:
            ready = now >= started + _startup(c)
            base.update({"started": True, "ready": ready, "state": {"running": {"startedAt": _ts(lab, started, rt)}}})
            all_ready &= ready
        else:
            reason = "PodInitializing" if inits and rt.stage in ("volumes", "init") else "ContainerCreating"
            base["state"] = {"waiting": {"reason": reason}}
            all_ready = False
        statuses.append(base)
    if rt.stage == "done":
        failed = any(f["exitCode"] != 0 for f in rt.finished.values())
        phase = "Failed" if failed else "Succeeded"
    elif rt.stage == "running":
        phase = "Running"
    else:
        phase = "Pending"
    initialized = rt.stage in ("create", "running", "done")
    pending_inits = [c["name"] for c in inits if not any(d["name"] == c["name"] and d["exitCode"] == 0 for d in rt.init_done)]
    unready = [s["name"] for s in statuses if not s["ready"]]
    new_conds = [
        {"type": "PodReadyToStartContainers", "status": "True" if rt.ip else "False"},
        {"type": "Initialized", "status": "True"} if initialized or not inits else
        {"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized",
         "message": f"containers with incomplete status: [{' '.join(pending_inits)}]"},
        {"type": "Ready", "status": "True"} if all_ready and phase == "Running" else
        {"type": "Ready", "status": "False", "reason": "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady",
         **({} if phase in ("Succeeded", "Failed") else {"message": f"containers with unready status: [{' '.join(unready)}]"})},
        {"type": "ContainersReady", "status": "True"} if all_ready and phase == "Running" else
        {"type": "ContainersReady", "status": "False", "reason": "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady",
         **({} if phase in ("Succeeded", "Failed") else {"message": f"containers with unready status: [{' '.join(unready)}]"})},
        {"type": "PodScheduled", "status": "True"},
    ]
    for nc in new_conds:
        nc["lastProbeTime"] = None
        conds = set_condition(conds, nc)
    status = {
        "phase": phase, "conditions": conds, "hostIP": facts.address, "hostIPs": [{"ip": facts.address}],
        "startTime": old.get("startTime") or now_iso(), "qosClass": old.get("qosClass", "BestEffort"),
        "containerStatuses": statuses,
    }
    if inits:
        status["initContainerStatuses"] = init_statuses
    if rt.ip:
        status["podIP"], status["podIPs"] = rt.ip, [{"ip": rt.ip}]
    if status != old:
        set_status(lab, pod, status)


def _workload_status(lab: Any) -> None:
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


# ----------------------------------------------------------------------------- queries


def pods_of(lab: Any, namespace: str, selector: dict[str, str]) -> list[dict]:
    match = label_matcher(",".join(f"{k}={v}" for k, v in selector.items()))
    return [p for p in objects(lab, "", "pods", namespace) if match(p["metadata"].get("labels") or {})]


def running_by_node(lab: Any, namespace: str, selector: dict[str, str]) -> dict[str, dict]:
    """Node -> the ready pod matching ``selector`` there (one pass over the pods, not one per node)."""
    out: dict[str, dict] = {}
    for p in pods_of(lab, namespace, selector):
        node = p["spec"].get("nodeName")
        if node and node not in out and pod_ready(p) and not p["metadata"].get("deletionTimestamp"):
            out[node] = p
    return out


def running_on(lab: Any, namespace: str, selector: dict[str, str], node: str) -> dict | None:
    """The ready pod matching ``selector`` on ``node``, if any."""
    return running_by_node(lab, namespace, selector).get(node)


def pod_log(lab: Any, namespace: str, pod: str, container: str | None, tail: int | None = None) -> str | None:
    """A container's log text; None when the pod does not exist."""
    obj = get(lab, "", "pods", namespace, pod)
    if obj is None:
        return None
    node = obj["spec"].get("nodeName")
    facts = node_facts(lab, node) if node else None
    if facts is not None and not (facts.up and lab.node_reachable(node)):
        # the API server proxies logs from the node's kubelet, which does not answer
        raise ApiError(500, "InternalError", f'Get "https://{facts.address}:10250/containerLogs/{namespace}/{pod}": '
                                             f"dial tcp {facts.address}:10250: connect: no route to host")
    names = [c["name"] for c in obj["spec"].get("containers") or []]
    if container is None:
        if len(names) > 1:
            default = (obj["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
            container = default or names[0]
        else:
            container = names[0] if names else ""
    valid = names + [c["name"] for c in obj["spec"].get("initContainers") or []]
    if container not in valid:
        raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {pod}")
    statuses = (obj.get("status") or {}).get("containerStatuses", []) + (obj.get("status") or {}).get("initContainerStatuses", [])
    cs = next((c for c in statuses if c.get("name") == container), None)
    waiting = ((cs or {}).get("state") or {}).get("waiting")
    if cs is None or waiting:
        reason = (waiting or {}).get("reason", "ContainerCreating")
        raise ApiError(400, "BadRequest", f'container "{container}" in pod "{pod}" is waiting to start: {reason}')
    lines = lab.workloads.state.logs.get(f"{namespace}/{pod}/{container}", [])
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    return "".join(line + "\n" for line in lines)


# ----------------------------------------------------------------------------- volume content
# Files written in a pod's PVC mount are kept per volume (the CSI volume handle, i.e. the LINSTOR
# resource) as deterministic bytes: literal text, zeros, or a seeded pseudo-random stream for
# ``/dev/urandom``. ``sha256sum`` hashes the real bytes, so a volume restored from the wrong
# source, or an empty one, gives another checksum or no file at all.

def snapshot_key(rd: str, snapshot: str) -> str:
    return f"snapshot:{rd}/{snapshot}"


def copy_volume_data(lab: Any, source: str, target: str) -> None:
    lab.workloads.state.volume_data[target] = copy.deepcopy(lab.workloads.state.volume_data.get(source, {}))


def file_bytes(entry: dict) -> bytes:
    if "text" in entry:
        return entry["text"].encode()
    if entry.get("zero"):
        return bytes(entry["size"])
    return random.Random(entry["seed"]).randbytes(entry["size"])


def _resolve(lab: Any, pod: dict, container: dict, path: str) -> tuple[str, str] | None:
    """(volume key, path inside the volume) for a path under one of the container's PVC mounts."""
    mounts = sorted(container.get("volumeMounts") or [], key=lambda m: -len(m.get("mountPath", "")))
    for m in mounts:
        root = m.get("mountPath", "").rstrip("/")
        if path != root and not path.startswith(root + "/"):
            continue
        vol = next((v for v in pod["spec"].get("volumes") or [] if v.get("name") == m.get("name")), None)
        claim = ((vol or {}).get("persistentVolumeClaim") or {}).get("claimName")
        if not claim:
            return None
        pvc = get(lab, "", "persistentvolumeclaims", pod["metadata"]["namespace"], claim)
        pv = get(lab, "", "persistentvolumes", None, ((pvc or {}).get("spec") or {}).get("volumeName") or "")
        handle = (((pv or {}).get("spec") or {}).get("csi") or {}).get("volumeHandle")
        return (handle, path[len(root):] or "/") if handle else None
    return None


def _account_write(lab: Any, rd_name: str, size: int) -> None:
    rd = getattr(getattr(lab, "linstor", None), "rds", {}).get(rd_name)
    if rd is None:
        return
    cap = sum(vd.size_kib for vd in rd.volumes)
    for rep in rd.replicas.values():
        if not rep.diskless:
            rep.written_kib = min(cap, rep.written_kib + -(-size // 1024))


def volume_command(lab: Any, pod: dict, container: dict, cmd: str, args: list[str]) -> tuple[int, str, float] | None:
    """Commands that read or write a PVC mount; None when the command touches no volume."""
    data = lab.workloads.state.volume_data
    if cmd in ("echo", "printf") and ">" in args[:-1]:
        i = args.index(">")
        target = _resolve(lab, pod, container, args[i + 1])
        if target is None:
            return None
        text = " ".join(args[:i]) + ("\n" if cmd == "echo" else "")
        data.setdefault(target[0], {})[target[1]] = {"text": text}
        _account_write(lab, target[0], len(text))
        return 0, "", 0.0
    if cmd == "dd":
        opts = dict(a.split("=", 1) for a in args if "=" in a)
        target = _resolve(lab, pod, container, opts.get("of", ""))
        if target is None:
            return None
        unit = {"": 1, "k": 1024, "K": 1024, "M": 2**20, "G": 2**30}
        bs = opts.get("bs", "512")
        size = int(bs.rstrip("kKMG")) * unit[bs[-1] if bs[-1] in "kKMG" else ""] * int(opts.get("count", "1"))
        source = opts.get("if", "")
        if source == "/dev/zero":
            entry: dict = {"zero": True, "size": size}
        elif source in ("/dev/urandom", "/dev/random"):
            seed = hashlib.sha256(f"{target[0]}{target[1]}{pod['metadata'].get('uid')}".encode()).hexdigest()
            entry = {"seed": seed, "size": size}
        else:
            return 1, f"dd: can't open '{source}': No such file or directory", 0.0
        data.setdefault(target[0], {})[target[1]] = entry
        _account_write(lab, target[0], size)
        count = int(opts.get("count", "1"))
        text = "" if opts.get("status") == "none" else f"{count}+0 records in\n{count}+0 records out\n{size} bytes copied"
        return 0, text, size / (200 * 2**20)  # ~200 MiB/s
    if cmd in ("sha256sum", "cat", "wc"):
        paths = [a for a in args if not a.startswith("-")]
        targets = [(p, _resolve(lab, pod, container, p)) for p in paths]
        if not targets or all(t is None for _p, t in targets):
            return None
        lines, code = [], 0
        for p, t in targets:
            entry = data.get(t[0], {}).get(t[1]) if t else None
            if t and drbd.holds_files(lab, t[0], t[1]):  # appended per replica (the drill's record log)
                replica = drbd.read(lab, t[0], pod["spec"].get("nodeName", ""), t[1])
                entry = None if replica is None else {"text": "".join(line + "\n" for line in replica)}
            if entry is None:
                lines.append(f"{cmd}: {p}: No such file or directory")
                code = 1
                continue
            content = file_bytes(entry)
            if cmd == "sha256sum":
                lines.append(f"{hashlib.sha256(content).hexdigest()}  {p}")
            elif cmd == "wc":
                lines.append(f"{len(content)} {p}")
            else:
                lines.append(content.decode(errors="replace").rstrip("\n"))
        return code, "\n".join(lines), 0.1
    return None
