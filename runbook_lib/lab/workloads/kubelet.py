"""The kubelet: volumes, init containers, containers and pod status on each node (controllers, scheduler: siblings).

The workload side as a whole:

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

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from ..cluster import Lab
from ..kubernetes.objects import get, objects, record_event, set_condition, set_status, update
from ..kubernetes.store import now_iso
from .logs import append_log, forget_logs, restart_logs
from .node_facts import TALOS_HOST_DIRS, TALOS_WRITABLE, NodeFacts, node_facts
from .pod_files import forget_container
from .shell import ShellRunner
from .state import PodRuntime, RunResult, WorkloadState

# Lab-second durations (realistic orders of magnitude, divided by the clock's scale).
T_PULL = 3.0  # first pull of an image on a node
T_CREATE = 1.0  # sandbox + container creation
T_INIT = 1.0  # an init container without a runner runs this long
T_DEFAULT_STARTUP = 1.0  # an app is "up" this long after its container started
NOT_READY_GRACE = 0.0  # node-lifecycle marks pods not ready (real: ~40 s node-monitor grace)
MAX_EVENTS = 2000  # Events kept in the store (a real API server expires them after an hour)

# App start-up times by image (the readiness/startup probes only pass once the app is up).
STARTUP_BY_IMAGE = {"piraeus-server": 12.0, "piraeus-csi": 2.0, "piraeus-operator": 3.0}


class PodRunner(Protocol):
    """Plays a container of a run-to-completion pod. Return None to let the next runner try."""

    def run(self, lab: Lab, pod: dict, container: dict, node: str, now: float) -> RunResult | None: ...


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


def _volume_errors(lab: Lab, pod: dict, node: str) -> tuple[list[str], bool]:
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


def run_pods(lab: Lab, now: float) -> None:
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
            forget_logs(lab, f"{pod['metadata']['namespace']}/{pod['metadata']['name']}/")
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
            restart_logs(lab, pod["metadata"]["namespace"], pod["metadata"]["name"],
                         [c["name"] for c in pod["spec"].get("containers") or []])
            forget_container(lab, uid)  # new container instances start from the image again
        _advance(lab, pod, rt, facts, now)
        _write_pod_status(lab, pod, rt, facts, now)
    for uid in [u for u in st.pods if u not in seen]:
        del st.pods[uid]
        forget_container(lab, uid)


def _mark_not_ready(lab: Lab, pod: dict, facts: NodeFacts) -> None:
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


def _advance(lab: Lab, pod: dict, rt: PodRuntime, facts: NodeFacts, now: float) -> None:
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
                append_log(lab, ns, name, key, res.log, at=max(now, run["start"]))
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
                    append_log(lab, ns, name, c["name"], res.log, at=ready_at)
        rt.stage, rt.since = "running", now
    if rt.stage == "running" and spec.get("restartPolicy", "Always") != "Always":
        ends = [r["ends"] for n, r in rt.runs.items() if n in {c["name"] for c in spec.get("containers") or []}]
        if ends and now >= max(ends):
            for c in spec.get("containers") or []:
                r = rt.runs.get(c["name"])
                if r:
                    rt.finished[c["name"]] = {"exitCode": r["exit"], "at": r["ends"], "started": r["start"]}
            rt.stage = "done"


def _pull(lab: Lab, node: str, c: dict, pod: dict, now: float) -> float:
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


def _run(lab: Lab, pod: dict, c: dict, node: str, now: float) -> RunResult | None:
    for runner in lab.workloads.runners:
        res = runner.run(lab, pod, c, node, now)
        if res is not None:
            return res
    return None


def _ts(lab: Lab, t: float, rt: PodRuntime | None = None) -> str:
    """A lab time as an RFC 3339 stamp on the cluster's clock, like every lab timestamp (stable once shown)."""
    key = f"{t:.3f}"
    if rt is not None and key in rt.stamps:
        return rt.stamps[key]
    stamp = datetime.fromtimestamp(lab.talos.epoch + t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # the cluster's clock
    if rt is not None:
        rt.stamps[key] = stamp
    return stamp


def _write_pod_status(lab: Lab, pod: dict, rt: PodRuntime, facts: NodeFacts, now: float) -> None:
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
    elif rt.stage == "running" and not any("waiting" in s["state"] and not s["restartCount"] for s in statuses):
        # kubelet's getPhase (pkg/kubelet/kubelet_pods.go): a container still waiting for its first start
        # (image pull, creation) keeps the pod Pending; one waiting to restart counts as stopped
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


# Files written in a pod's PVC mount are kept per volume (the CSI volume handle, i.e. the LINSTOR
# resource) as deterministic bytes: literal text, zeros, or a seeded pseudo-random stream for
# ``/dev/urandom``. ``sha256sum`` hashes the real bytes, so a volume restored from the wrong
# source, or an empty one, gives another checksum or no file at all.

