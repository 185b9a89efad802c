"""Container logs: appending time-stamped lines and reading them with the API's PodLogOptions.

Each line keeps the lab time it was written (a line written "later" in a container's run stays
hidden until the clock reaches it): the record writer's at each record, a runner's output (the shell
runner does not time its lines) at its container's start. Reading follows the kubelet (kubernetes pkg/kubelet/kuberuntime/
logs/logs.go ``ReadLogs``/``logWriter``): ``tailLines`` picks the last N lines first, then lines older
than ``sinceSeconds``/``sinceTime`` are skipped, ``timestamps`` prefixes each line with its time in
RFC 3339 with nine fractional digits (``RFC3339NanoFixed``) and a space, and ``limitBytes`` cuts the
output (prefixes included) at that many bytes, mid-line if need be. ``previous`` reads the log of
the container instance before the last restart. The API server's checks come first
(pkg/apis/core/validation ``ValidatePodLogOptions`` → 422; pkg/registry/core/pod ``ValidateContainer``
→ 400 when a pod has several containers and none is named), then the kubelet's
(``validateContainerLogStatus``: a waiting container, no previous instance → 400).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ..cluster import Lab
from ..kubernetes.objects import get
from ..kubernetes.types import ApiError
from .node_facts import node_facts
from .state import MAX_LOG_LINES


def _key(namespace: str, pod: str, container: str) -> str:
    return f"{namespace}/{pod}/{container}"


def _meta(lab: Lab, key: str) -> dict:
    """Times of the key's lines (aligned with ``logs[key]``), lines dropped from the front, the previous instance."""
    meta = lab.workloads.state.log_meta.setdefault(key, {"times": [], "dropped": 0})
    lines = lab.workloads.state.logs.get(key, [])
    if len(meta["times"]) < len(lines):  # lines from a state saved before times were kept
        meta["times"][:0] = [0.0] * (len(lines) - len(meta["times"]))
    return meta


def append_log(lab: Lab, namespace: str, pod: str, container: str, text: str, at: float | None = None) -> None:
    """Add lines written at lab time ``at`` (default: now) to a container's log (kept to MAX_LOG_LINES)."""
    key = _key(namespace, pod, container)
    lines = lab.workloads.state.logs.setdefault(key, [])
    meta = _meta(lab, key)
    new = text.rstrip("\n").split("\n")
    when = lab.clock.now() if at is None else at
    lines.extend(new)
    meta["times"].extend([when] * len(new))
    extra = len(lines) - MAX_LOG_LINES
    if extra > 0:
        del lines[:extra]
        del meta["times"][:extra]
        meta["dropped"] += extra


def restart_logs(lab: Lab, namespace: str, pod: str, containers: list[str]) -> None:
    """The containers start again: their logs so far become the previous instance's (``--previous``)."""
    st = lab.workloads.state
    for name in containers:
        key = _key(namespace, pod, name)
        meta = _meta(lab, key)
        meta["previous"] = {"lines": st.logs.pop(key, []), "times": meta["times"]}
        meta["dropped"] += len(meta["previous"]["lines"])
        meta["times"] = []


def forget_logs(lab: Lab, prefix: str) -> None:
    """A new pod of an old name starts new logs."""
    st = lab.workloads.state
    for key in [k for k in st.logs if k.startswith(prefix)] + [k for k in st.log_meta if k.startswith(prefix)]:
        st.logs.pop(key, None)
        st.log_meta.pop(key, None)


@dataclass
class LogOptions:
    """core/v1 PodLogOptions as the query string carries them."""

    container: str | None = None
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_seconds: int | None = None
    since_time: float | None = None  # unix seconds on the cluster's clock


def _int(q: dict[str, str], name: str) -> int | None:
    if name not in q:
        return None
    try:
        return int(q[name])
    except ValueError:
        raise ApiError(400, "BadRequest", f'strconv.ParseInt: parsing "{q[name]}": invalid syntax') from None


def parse_options(query: dict[str, list[str]], name: str) -> LogOptions:
    """PodLogOptions from the query, checked as ValidatePodLogOptions does (422 Invalid)."""
    q = {k: v[-1] for k, v in query.items()}
    opts = LogOptions(container=q.get("container") or None, follow=q.get("follow") == "true",
                      previous=q.get("previous") == "true", timestamps=q.get("timestamps") == "true",
                      tail_lines=_int(q, "tailLines"), limit_bytes=_int(q, "limitBytes"),
                      since_seconds=_int(q, "sinceSeconds"))
    if q.get("sinceTime"):
        try:
            opts.since_time = datetime.fromisoformat(q["sinceTime"].replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise ApiError(400, "BadRequest", f'parsing time "{q["sinceTime"]}" as "2006-01-02T15:04:05Z07:00": '
                                              "cannot parse") from None
    errors = []
    if opts.tail_lines is not None and opts.tail_lines < 0:
        errors.append(f"tailLines: Invalid value: {opts.tail_lines}: must be greater than or equal to 0")
    if opts.limit_bytes is not None and opts.limit_bytes < 1:
        errors.append(f"limitBytes: Invalid value: {opts.limit_bytes}: must be greater than 0")
    if opts.since_seconds is not None and opts.since_time is not None:
        errors.append("<nil>: Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified")
    elif opts.since_seconds is not None and opts.since_seconds < 1:
        errors.append(f"sinceSeconds: Invalid value: {opts.since_seconds}: must be greater than 0")
    if errors:
        shown = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        raise ApiError(422, "Invalid", f'PodLogOptions "{name}" is invalid: {shown}')
    return opts


def stamp(lab: Lab, t: float) -> str:
    """A lab time as RFC3339NanoFixed on the cluster's clock (``2006-01-02T15:04:05.000000000Z07:00``)."""
    ns = round((lab.talos.epoch + t) * 1e9)
    secs, frac = divmod(ns, 10**9)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


@dataclass
class LogCursor:
    """Where a reader of one container's log is: the pod (by uid), the key and the next absolute line."""

    namespace: str
    pod: str
    uid: str
    container: str
    key: str
    previous: bool
    next_line: int  # absolute index: lines dropped before plus the position in the kept list
    since: float | None  # lab time
    remain: int | None  # bytes still allowed


def _container(obj: dict, container: str | None) -> str:
    """The API server's choice of container (ValidateContainer)."""
    names = [c["name"] for c in obj["spec"].get("containers") or []]
    inits = [c["name"] for c in obj["spec"].get("initContainers") or []]
    pod = obj["metadata"]["name"]
    if not container:
        if len(names) == 1:
            return names[0]
        if not names:
            raise ApiError(400, "BadRequest", f"a container name must be specified for pod {pod}")
        msg = f"a container name must be specified for pod {pod}, choose one of: [{' '.join(names)}]"
        if inits:
            msg += f" or one of the init containers: [{' '.join(inits)}]"
        raise ApiError(400, "BadRequest", msg)
    if container not in names + inits:
        raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {pod}")
    return container


def _status(obj: dict, container: str) -> dict | None:
    status = obj.get("status") or {}
    return next((c for c in status.get("containerStatuses", []) + status.get("initContainerStatuses", [])
                 if c.get("name") == container), None)


def open_log(lab: Lab, namespace: str, pod: str, opts: LogOptions) -> LogCursor | None:
    """Check the request as the API server and the kubelet do; None when the pod does not exist."""
    obj = get(lab, "", "pods", namespace, pod)
    if obj is None:
        return None
    container = _container(obj, opts.container)
    node = obj["spec"].get("nodeName")
    facts = node_facts(lab, node) if node else None
    if facts is not None and not (facts.up and lab.node_reachable(node)):
        # the API server proxies logs from the node's kubelet, which does not answer
        raise ApiError(500, "InternalError", f'Get "https://{facts.address}:10250/containerLogs/{namespace}/{pod}/'
                                             f'{container}": dial tcp {facts.address}:10250: connect: no route to host')
    key = _key(namespace, pod, container)
    meta = _meta(lab, key)
    if opts.previous:
        if "previous" not in meta:
            raise ApiError(400, "BadRequest", f'previous terminated container "{container}" in pod "{pod}" not found')
    else:
        cs = _status(obj, container)
        waiting = ((cs or {}).get("state") or {}).get("waiting")
        if cs is None or waiting:
            reason = (waiting or {}).get("reason", "ContainerCreating")
            raise ApiError(400, "BadRequest", f'container "{container}" in pod "{pod}" is waiting to start: {reason}')
    lines, times, first = _lines(lab, key, opts.previous)
    now = lab.clock.now()
    visible = sum(1 for t in times if t <= now)
    start = 0 if opts.tail_lines is None else max(0, visible - opts.tail_lines)
    since = None
    if opts.since_seconds is not None:
        since = now - opts.since_seconds
    elif opts.since_time is not None:
        since = opts.since_time - lab.talos.epoch
    return LogCursor(namespace, pod, obj["metadata"]["uid"], container, key, opts.previous, first + start, since,
                     opts.limit_bytes)


def _lines(lab: Lab, key: str, previous: bool) -> tuple[list[str], list[float], int]:
    """(lines, their times, the absolute index of the first) of the current or previous instance."""
    meta = _meta(lab, key)
    if previous:
        prev = meta.get("previous") or {"lines": [], "times": []}
        return prev["lines"], prev["times"], 0
    return lab.workloads.state.logs.get(key, []), meta["times"], meta["dropped"]


def read_more(lab: Lab, cursor: LogCursor, timestamps: bool) -> tuple[bytes, bool]:
    """The log text written since the cursor (up to now) and whether the byte limit ended the read."""
    lines, times, first = _lines(lab, cursor.key, cursor.previous)
    now = lab.clock.now()
    out = bytearray()
    i = max(cursor.next_line - first, 0)
    while i < len(lines) and times[i] <= now:
        t, line = times[i], lines[i]
        i += 1
        if cursor.since is not None and t < cursor.since:
            continue
        data = ((stamp(lab, t) + " ") if timestamps else "").encode() + line.encode() + b"\n"
        if cursor.remain is not None:
            data = data[:cursor.remain]
            cursor.remain -= len(data)
        out += data
        if cursor.remain is not None and cursor.remain <= 0:
            cursor.next_line = first + i
            return bytes(out), True
    cursor.next_line = first + i
    return bytes(out), False


def container_running(lab: Lab, cursor: LogCursor) -> bool:
    """Is the container instance the cursor reads still running (so ``follow`` waits for more)?"""
    if cursor.previous:
        return False
    obj = get(lab, "", "pods", cursor.namespace, cursor.pod)
    if obj is None or obj["metadata"]["uid"] != cursor.uid or obj["metadata"].get("deletionTimestamp"):
        return False
    node = obj["spec"].get("nodeName")
    facts = node_facts(lab, node) if node else None
    if facts is None or not (facts.up and lab.node_reachable(node)):
        return False
    cs = _status(obj, cursor.container)
    if not ((cs or {}).get("state") or {}).get("running"):
        return False
    rt = lab.workloads.state.pods.get(cursor.uid)
    run = (rt.runs.get(cursor.container) if rt else None) or {}
    return not (run.get("ends") is not None and lab.clock.now() >= run["ends"])


def pod_log(lab: Lab, namespace: str, pod: str, query: dict[str, list[str]]) -> bytes | None:
    """A container's log as ``GET .../pods/{name}/log`` answers without ``follow``; None when the pod does not exist."""
    opts = parse_options(query, pod)
    cursor = open_log(lab, namespace, pod, opts)
    if cursor is None:
        return None
    return read_more(lab, cursor, opts.timestamps)[0]
