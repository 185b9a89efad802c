"""What the workload side persists: the kubelet's view of each pod, logs, pulls, volume content; a runner's result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

MAX_LOG_LINES = 5000  # per container; a multi-job fio JSON result is ~1500 lines


@dataclass
class RunResult:
    """What a container that runs to completion does: its exit code, log and duration."""

    exit_code: int
    log: str = ""
    duration: float = 1.0
    pending: bool = False  # still waiting (e.g. for a service): the kubelet asks the runner again later


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
    log_meta: dict[str, dict] = field(default_factory=dict)  # "ns/pod/container" -> line times, previous instance (logs.py)
    pulled: dict[str, list[str]] = field(default_factory=dict)  # node -> images pulled
    ip_counter: dict[str, int] = field(default_factory=dict)
    unmounted: dict[str, list[str]] = field(default_factory=dict)  # node -> Talos mounts released
    host_boot: dict[str, str] = field(default_factory=dict)  # node -> boot id the above belong to
    crd_types: list[list[str]] = field(default_factory=list)  # [group, plural] served because of a CRD
    volume_data: dict[str, dict[str, dict]] = field(default_factory=dict)  # volume/snapshot -> path -> file (volume content)
    container_files: dict[str, dict[str, dict]] = field(default_factory=dict)  # "uid/container" -> path -> file (pod_files.py)
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
