"""The parameter file: one validated model for every notebook, the CLI and the lab.

A parameter file names the cluster, its nodes and the storage layout, and records
which destructive steps the operator approved. A typo there can wipe the wrong
disk, so the rules are strict and the errors are specific:

* unknown keys are errors at every level (``extra="forbid"``), with a suggestion;
* every problem is reported at once, each prefixed with its dotted path
  (``nodes[2].address: not an IP address``), including cross-field checks such as
  duplicate node names or approvals naming a node that does not exist;
* YAML duplicate keys are errors, and YAML syntax errors give line and column;
* secret values never show up in ``repr``, in error messages or in
  :meth:`Params.redacted`.

Top-level keys are papermill notebook parameters (:data:`PARAMETER_KEYS`); values
passed with ``papermill -p`` arrive as strings or numbers and are coerced the lax
pydantic way. To add a parameter, add one field to :class:`Params` (or to a
sub-model) with its default.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import lab_options
from .approvals import ACTIONS as _APPROVAL_ACTIONS
from .approvals import CLASS_ACTIONS, RENAMED, meaning, renamed_message
from .disk_selector import check_disk_selector
from .errors import ApprovalRequired, ParamsError
from .factory import PLATFORMS
from .sizes import GiB, parse_size

__all__ = [
    "ACTIONS",
    "Bench",
    "DEFAULT_NODES",
    "COUNTED_FAULT_KINDS",
    "FAULT_KINDS",
    "PAIR_FAULT_KINDS",
    "MIN_TALOS_VERSION",
    "PARAMETER_KEYS",
    "SECRET_KEY_SUFFIXES",
    "Fault",
    "LabOptions",
    "Node",
    "Params",
    "Storage",
    "is_secret_key",
    "load_params",
    "merge_secrets",
    "params_from_namespace",
    "parse_params",
    "read_params_file",
    "redact_tree",
    "split_secrets",
    "supports_ephemeral_resize_by_reset",
    "supports_user_volumes",
    "version_tuple",
]

# --------------------------------------------------------------------------- versions

#: UserVolumeConfig exists from this Talos version on.
MIN_TALOS_VERSION = (1, 10, 0)
#: ``reset --system-labels-to-wipe EPHEMERAL`` drops the partition (so a new maxSize applies) from here on.
EPHEMERAL_RESIZE_BY_RESET_VERSION = (1, 12, 0)

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?$")
_STRICT_VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")


def version_tuple(version: str) -> tuple[int, int, int]:
    """``"v1.12.7"`` -> ``(1, 12, 7)``; a pre-release suffix is ignored.

    Accepts the leading ``v`` as optional because nodes and tools report both forms.
    Raises :class:`ValueError` for anything else.
    """
    match = _VERSION_RE.match(version.strip()) if isinstance(version, str) else None
    if match is None:
        raise ValueError(f"{version!r} is not a Talos version like v1.12.7")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def supports_user_volumes(version: str) -> bool:
    """True if Talos ``version`` knows the ``UserVolumeConfig`` document (v1.10.0+)."""
    return version_tuple(version) >= MIN_TALOS_VERSION


def supports_ephemeral_resize_by_reset(version: str) -> bool:
    """True if "apply VolumeConfig, then reset EPHEMERAL" really resizes EPHEMERAL (v1.12.0+).

    Before v1.12 the reset wipes the filesystem but keeps the partition, so the new
    ``maxSize`` is silently ignored. Notebook 01 asks this about the version each
    node actually runs, not the target version.
    """
    return version_tuple(version) >= EPHEMERAL_RESIZE_BY_RESET_VERSION


# --------------------------------------------------------------------------- field rules

ACTIONS: tuple[str, ...] = tuple(_APPROVAL_ACTIONS)
FaultKind = Literal[
    "node-down", "stuck-reboot", "partition", "api-errors", "talosctl-fail", "helm-fail", "pool-full",
    # the lab's DRBD ignores quorum although LINSTOR configures it: a misconfiguration 06 must catch
    "quorum-off",
    # storage faults the safety gates must catch: a slow resync, talos#12478's Diskless after upgrade,
    # a dedicated replication network down between two nodes
    "slow-resync", "diskless-after-upgrade", "replication-down",
]
#: fault kinds that name a node and a peer (the two ends of a link)
PAIR_FAULT_KINDS = ("partition", "replication-down")
#: fault kinds that count uses (``count``, default 1); the others hold until cleared
COUNTED_FAULT_KINDS = ("api-errors", "talosctl-fail", "helm-fail")
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
SECRET_KEY_SUFFIXES = ("_password", "_token", "_secret", "_passphrase")

_CLUSTER_NAME_RE = re.compile(r"^[a-z0-9-]{1,63}$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_VOLUME_NAME_RE = re.compile(r"^[A-Za-z0-9-]*$")
_POOL_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_EXTENSION_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$")
_SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_TRANSPORT_RE = re.compile(r"^[a-z0-9]+$")
# SemVer 2.0.0 (semver.org), without a leading "v": helm reports the deployed chart version this way.
_CHART_VERSION_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
#: A parameter file is a page of YAML; anything this large is a mistake (and would parse for minutes).
MAX_PARAMS_FILE_BYTES = 4 * 1024 * 1024


def _cluster_name(value: str) -> str:
    if not _CLUSTER_NAME_RE.match(value):
        raise ValueError(
            f"{value!r} must be 1-63 characters of lowercase letters, digits and '-' (it names the output folder)"
        )
    return value


def _node_name(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL_RE.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return value


def _ip_address(value: str) -> str:
    """Normalize, so that ``FD00:0::1`` and ``fd00::1`` count as the same address in the uniqueness check."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


def _version_text(value: Any) -> Any:
    """YAML reads ``1.12`` as a float; turn it back into text so the message can show it."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _talos_version(value: str) -> str:
    if not _STRICT_VERSION_RE.match(value):
        raise ValueError(f"{value!r} is not a Talos version like v1.12.7")
    return value


def _target_talos_version(value: str) -> str:
    _talos_version(value)
    if not supports_user_volumes(value):
        raise ValueError(f"Talos {value} has no UserVolumeConfig; these runbooks need v1.10.0 or later")
    return value


def _size_text(value: Any) -> Any:
    """Accept a plain number of bytes (``214748364800``) as well as ``"200GiB"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _chart_version(value: str) -> str:
    if not _CHART_VERSION_RE.match(value):
        raise ValueError(
            f"{value!r} is not an exact chart version like 2.10.2 (SemVer; no 'latest', ranges or extra helm flags)"
        )
    return value


def _valid_size(value: str) -> str:
    parse_size(value)
    return value


def _positive_size(value: str) -> str:
    if parse_size(value) == 0:
        raise ValueError("must be more than 0 bytes")
    return value


def _ephemeral_size(value: str) -> str:
    if parse_size(value) < 2 * GiB:
        raise ValueError(
            f"{value!r} is below 2GiB, the smallest EPHEMERAL Talos provisions (its built-in minSize)"
        )
    return value


def _volume_name(value: str) -> str:
    # Talos UserVolumeConfigV1Alpha1.Validate wording.
    if not value:
        raise ValueError("name is required")
    if len(value) > 34:
        raise ValueError("name must be between 1 and 34 characters long")
    if not _VOLUME_NAME_RE.match(value):
        raise ValueError("name can only contain lowercase and uppercase ASCII letters, digits, and hyphens")
    return value


def _pool_name(value: str) -> str:
    if len(value) > 48 or not _POOL_NAME_RE.match(value):
        raise ValueError(
            f"{value!r} is not a LINSTOR storage pool name: start with a letter, then letters, digits, "
            "'_' or '-', at most 48 characters"
        )
    return value


def _disk_selector(value: str) -> str:
    problems = check_disk_selector(value)
    if problems:
        raise ValueError("; ".join(problems))
    return value


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _transport(value: str) -> str:
    if not _TRANSPORT_RE.match(value):
        raise ValueError(f"{value!r} is not a disk transport like nvme, sata, scsi, virtio or usb")
    return value


def _confirm_list(value: Any) -> Any:
    """``papermill -p confirm "reset cp-1, wipe cp-1"`` passes one string: split it."""
    if isinstance(value, str):
        return [part.strip() for part in re.split(r"[,\n]", value) if part.strip()]
    return value


def _confirm_entry(value: str) -> str:
    parts = value.split()
    if len(parts) != 2:
        raise ValueError(
            f"{value!r} must be '<action> <node>' (or 'benchmark <storage-class>'), "
            f"for example 'reset {DEFAULT_NODES[0]['name']}'"
        )
    action, node = parts
    if action in RENAMED:
        raise ValueError(renamed_message(action, node))
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; approvals are for {', '.join(ACTIONS)}")
    return f"{action} {node}"


def _backup_dir(value: str) -> str:
    """etcd snapshots hold every cluster Secret: they must never land in the (shared, committed) run records."""
    if "outputs" in Path(value).expanduser().parts:
        raise ValueError(f"{value!r} is inside an outputs/ folder, where run records go; etcd snapshots hold every "
                         "cluster Secret: choose a private folder (default: a per-user data folder)")
    return value


def _factory_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL")
    if parts.hostname.endswith(".talos.systems"):  # the seed article's host: it never existed
        raise ValueError(f"{parts.hostname} does not exist; the Image Factory is https://factory.talos.dev")
    return value.strip().rstrip("/")


def _extension(value: str) -> str:
    if not _EXTENSION_RE.match(value):
        raise ValueError(f"{value!r} is not an extension name like siderolabs/drbd")
    return value


def _talos_platform(value: str) -> str:
    if value not in PLATFORMS:
        close = difflib.get_close_matches(value, list(PLATFORMS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{value!r} is not an Image Factory platform{hint}; one of: {', '.join(PLATFORMS)}")
    return value


def _kernel_arg(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not one kernel argument (no spaces; one list item per argument)")
    return value


def _secret_name(value: str) -> str:
    if not _SECRET_NAME_RE.match(value):
        raise ValueError("secret names use letters, digits, '_', '.' and '-'")
    return value


ClusterName = Annotated[str, AfterValidator(_cluster_name)]
NodeName = Annotated[str, AfterValidator(_node_name)]
IpAddress = Annotated[str, AfterValidator(_ip_address)]
TalosVersion = Annotated[str, BeforeValidator(_version_text), AfterValidator(_talos_version)]
TargetTalosVersion = Annotated[str, BeforeValidator(_version_text), AfterValidator(_target_talos_version)]
SizeText = Annotated[str, BeforeValidator(_size_text), AfterValidator(_valid_size)]
PositiveSize = Annotated[str, BeforeValidator(_size_text), AfterValidator(_positive_size)]
EphemeralSize = Annotated[str, BeforeValidator(_size_text), AfterValidator(_ephemeral_size)]
VolumeName = Annotated[str, AfterValidator(_volume_name)]
PoolName = Annotated[str, AfterValidator(_pool_name)]
DiskSelectorText = Annotated[str, AfterValidator(_disk_selector)]
NonEmpty = Annotated[str, AfterValidator(_non_empty)]
Approval = Annotated[str, AfterValidator(_confirm_entry)]
BackupDir = Annotated[str, AfterValidator(_non_empty), AfterValidator(_backup_dir)]
FactoryUrl = Annotated[str, AfterValidator(_factory_url)]
ExtensionName = Annotated[str, AfterValidator(_extension)]
TalosPlatform = Annotated[str, AfterValidator(_talos_platform)]
KernelArg = Annotated[str, AfterValidator(_kernel_arg)]
SecretName = Annotated[str, AfterValidator(_secret_name)]
Transport = Annotated[str, AfterValidator(_transport)]
ChartVersion = Annotated[str, BeforeValidator(_version_text), AfterValidator(_chart_version)]


# --------------------------------------------------------------------------- models


class _Strict(BaseModel):
    """Base for every level: unknown keys are errors, instances are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _booleans_are_not_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """Lax pydantic reads ``true`` as 1 and ``1`` as true; a typo must not become a timeout of 1 s."""
        kinds = _scalar_kinds(cls.model_fields[info.field_name].annotation) if info.field_name else set()
        if isinstance(value, bool) and kinds and "bool" not in kinds and kinds & {"int", "float"}:
            raise ValueError(f"expected a number, got {str(value).lower()}")
        if isinstance(value, int | float) and not isinstance(value, bool) and kinds == {"bool"}:
            raise ValueError(f"expected true or false, got the number {value}")
        return value


def _scalar_kinds(annotation: Any) -> set[str]:
    """``float | None`` -> ``{"float"}``: the scalar types a field accepts (models and strings aside)."""
    if annotation in (bool, int, float):
        return {annotation.__name__}
    if get_origin(annotation) is Annotated:
        return _scalar_kinds(get_args(annotation)[0])
    if get_origin(annotation) is not None and not _is_model(annotation) and get_origin(annotation) not in (list, dict):
        kinds: set[str] = set()
        for arg in get_args(annotation):
            kinds |= _scalar_kinds(arg)
        return kinds
    return set()


class Node(_Strict):
    """One Talos node: its Kubernetes node name, the address talosctl reaches it on, its role."""

    name: NodeName
    address: IpAddress
    role: Literal["controlplane", "worker"]
    #: false: a compute-only node; the runbooks never partition, patch, upgrade, reset or fault it,
    #: LINSTOR gets no pool there, and it never blocks a gate
    storage: bool = True


#: The default cluster: three control-plane nodes, as ``talosctl cluster create`` makes them.
DEFAULT_NODES: tuple[dict[str, str], ...] = tuple(lab_options.DEFAULT_NODES)


def _default_nodes() -> list[Node]:
    return [Node(**node) for node in DEFAULT_NODES]


class Storage(_Strict):
    """Where LINSTOR's data lives: the user volume Talos carves out and the pool on top of it."""

    #: CEL over Talos's DiskSpec; the default pins the system disk (the single-disk layout: the partition is
    #: carved out next to EPHEMERAL). A dedicated data disk: e.g. "!system_disk && disk.transport == 'nvme'"
    disk_selector: DiskSelectorText = "system_disk"
    ephemeral_max_size: EphemeralSize = "100GiB"
    volume_name: VolumeName = "linstor-storage"
    min_size: PositiveSize = "200GiB"
    max_size: PositiveSize | None = None
    filesystem: Literal["xfs", "ext4"] = "xfs"
    pool_name: PoolName = "linstor-pool"
    pool_type: Literal["zfsPool", "zfsThinPool", "lvmThinPool", "lvmPool"] = "zfsPool"
    #: cap on the ZFS ARC (the ``zfs`` module's ``zfs_arc_max``). OpenZFS 2.4 defaults to max(5/8 of RAM,
    #: RAM - 1 GiB), about 15 GiB of a 16 GB node; 4GiB leaves the rest to workloads. null: the OpenZFS default
    zfs_arc_max: PositiveSize | None = "4GiB"

    @property
    def ephemeral_max_bytes(self) -> int:
        return parse_size(self.ephemeral_max_size)

    @property
    def min_bytes(self) -> int:
        return parse_size(self.min_size)

    @property
    def max_bytes(self) -> int | None:
        return None if self.max_size is None else parse_size(self.max_size)

    @property
    def zfs_arc_max_bytes(self) -> int | None:
        return None if self.zfs_arc_max is None else parse_size(self.zfs_arc_max)

    @property
    def partition_label(self) -> str:
        """Talos labels a user volume's partition ``u-<name>`` (the layout before Talos v1.11)."""
        return "u-" + self.volume_name

    @property
    def raw_label(self) -> str:
        """Talos labels a raw volume's partition ``r-<name>`` (``RawVolumePrefix``, Talos v1.11+)."""
        return "r-" + self.volume_name

    @property
    def raw_device_path(self) -> str:
        """The raw volume's stable path: udev's partition-label link, the same on every boot and node."""
        return "/dev/disk/by-partlabel/" + self.raw_label

    @property
    def mount_path(self) -> str:
        """Talos mounts the user volume at ``/var/mnt/<name>``."""
        return "/var/mnt/" + self.volume_name


class Fault(_Strict):
    """A fault the lab injects when it starts (same kinds as ``runbook lab fault add``)."""

    kind: FaultKind
    node: str | None = None
    peer: str | None = None
    count: int | None = Field(default=None, ge=1)


class LabOptions(_Strict):
    """How the simulated cluster behaves; ignored against a real cluster."""

    nodes: int | None = Field(default=None, ge=1)
    time_scale: float = Field(default=lab_options.TIME_SCALE, gt=0, le=10000)
    seed: int = lab_options.SEED
    disk_size: PositiveSize = lab_options.DISK_SIZE
    disk_transport: Transport = lab_options.DISK_TRANSPORT
    initial_talos_version: TalosVersion = lab_options.INITIAL_TALOS_VERSION
    faults: list[Fault] = Field(default_factory=list)
    #: ask for every approval and apply every rule a real cluster gets (default: relaxed for rehearsal)
    enforce_safety: bool = lab_options.ENFORCE_SAFETY
    #: MiB/s each volume in use changes while a replica is away: what a returning replica must resync
    workload_write_mib_s: float = Field(default=lab_options.WORKLOAD_WRITE_MIB_S, ge=0, le=10000)
    #: worker nodes the lab adds beyond ``nodes`` (lab-w-1, ...): unlisted compute-only nodes the runbooks leave alone
    extra_workers: int = Field(default=lab_options.EXTRA_WORKERS, ge=0, le=8)
    #: official extensions the lab nodes were installed with (an Image Factory installer), e.g. siderolabs/iscsi-tools
    initial_extensions: list[ExtensionName] = Field(default_factory=list)
    #: extra kernel arguments of that installer's schematic, e.g. console=ttyS0
    initial_kernel_args: list[KernelArg] = Field(default_factory=list)

    @property
    def disk_size_bytes(self) -> int:
        return parse_size(self.disk_size)


class Piraeus(_Strict):
    """The Piraeus operator: official OCI chart, its version and where it runs."""

    chart: NonEmpty = "oci://ghcr.io/piraeusdatastore/piraeus-operator/piraeus"
    chart_version: ChartVersion = "2.10.2"
    release: Annotated[str, AfterValidator(_node_name)] = "piraeus"
    namespace: Annotated[str, AfterValidator(_node_name)] = "piraeus-datastore"
    #: the controller's REST API speaks HTTPS only when the LinstorCluster sets apiTLS
    api_tls: bool = False


class Bench(_Strict):
    """07-benchmarks: the fio matrix's timing and size, and the network it is judged against."""

    #: StorageClasses to measure; the first is the baseline every other class is compared with
    classes: list[Annotated[str, AfterValidator(_node_name)]] = Field(default_factory=lambda: ["local", "replicated"],
                                                                      min_length=1)
    iterations: int = Field(default=3, ge=1, le=50)
    ramp_time: float = Field(default=5.0, ge=0, le=3600)  # seconds fio runs before measuring (kbench: 5 s)
    runtime: float = Field(default=20.0, gt=0, le=3600)  # seconds measured per job (kbench: 20 s)
    size: PositiveSize = "48GiB"  # fio file size; kbench: at least 25x the bandwidth (bytes/s)
    size_factor: float = Field(default=25.0, gt=0)  # the kbench rule's factor
    link_mbps: float = Field(default=1000.0, gt=0)  # replication link line rate (1 GbE = 1000)
    rtt_us: float | None = Field(default=None, gt=0)  # node-to-node round trip (ping); None: no latency floor
    image: NonEmpty = "docker.io/library/alpine:3.22"
    install: str = "apk add --no-cache fio"  # run before fio in the container; "" when the image has fio
    namespace: Annotated[str, AfterValidator(_node_name)] = "default"

    @property
    def size_bytes(self) -> int:
        return parse_size(self.size)


class Snapshots(_Strict):
    """CSI snapshots (05): the snapshot-controller chart, the VolumeSnapshotClass and the round-trip test."""

    #: Piraeus's packaging of external-snapshotter's controller and CRDs (chart 5.2.0 = v8.6.0)
    chart: NonEmpty = "oci://ghcr.io/piraeusdatastore/helm-charts/snapshot-controller"
    chart_version: ChartVersion = "5.2.0"
    release: Annotated[str, AfterValidator(_node_name)] = "snapshot-controller"
    namespace: Annotated[str, AfterValidator(_node_name)] = "kube-system"
    #: false: never install; stop and say what is missing when the cluster has no snapshot controller
    install_controller: bool = True
    class_name: Annotated[str, AfterValidator(_node_name)] = "linstor-snapshots"
    deletion_policy: Literal["Retain", "Delete"] = "Retain"
    storage_class: Annotated[str, AfterValidator(_node_name)] = "replicated"  # the class the round trip tests
    test_size: Annotated[str, Field(pattern=r"^[1-9][0-9]*(Ki|Mi|Gi|Ti)$")] = "1Gi"  # a Kubernetes quantity (Gi, not GiB)
    test_file_mib: int = Field(default=64, ge=1, le=4096)  # the larger file the writer pod writes
    namespace_test: Annotated[str, AfterValidator(_node_name)] = "default"
    keep_test_objects: bool = False  # true: leave the test PVCs, pods and snapshot for inspection
    image: NonEmpty = "docker.io/library/busybox:1.37"


class Failover(_Strict):
    """06-failover-drill: the workload, the fault and what the drill waits for.

    ``reboot`` is the failure test: ``talosctl reboot`` takes the node away without warning its
    workloads. ``shutdown`` is a planned-maintenance test: Talos cordons and drains the node first,
    and the operator powers it on again while the drill waits. Both need the approval
    ``drill <node>``; the quorum-loss scenario needs ``quorum-loss <writer's node>``.
    ``node-down`` (power loss) and ``isolate`` (the node cut off from every peer) are lab faults,
    refused against a real cluster. On a real cluster ``node`` must be set, so the approvals name
    a known node before anything starts.
    """

    storage_class: Annotated[str, AfterValidator(_node_name)] = "replicated"
    fault: Literal["reboot", "shutdown", "node-down", "isolate"] = "reboot"
    #: the node to fault; null: the node the writer runs on (the interesting case)
    node: str | None = None
    #: the quorum-loss scenario: both other replicas' nodes go away at once (same fault kind,
    #: isolate excepted: it becomes node-down); writes must freeze, not diverge. Default: on in the
    #: lab, off for ``target: talos`` (filled in by :class:`Params`)
    quorum_loss: bool = True
    quorum_loss_fault: Literal["reboot", "shutdown", "node-down"] = "reboot"
    test_size: Annotated[str, Field(pattern=r"^[1-9][0-9]*(Ki|Mi|Gi|Ti)$")] = "1Gi"
    write_interval_s: float = Field(default=0.2, gt=0, le=60)  # the writer's pause between records
    #: seconds of acknowledged writes before the fault and after recovery (cluster time)
    steady_s: float = Field(default=20.0, ge=1, le=3600)
    namespace_test: Annotated[str, AfterValidator(_node_name)] = "default"
    keep_test_objects: bool = False
    image: NonEmpty = "docker.io/library/busybox:1.37"


class Params(_Strict):
    """All parameters of a run. Build it with :func:`load_params` or :func:`parse_params`."""

    cluster_name: ClusterName = "lab"
    target: Literal["lab", "talos"] = "lab"
    dry_run: bool | None = None
    confirm: Annotated[list[Approval], BeforeValidator(_confirm_list)] = Field(default_factory=list)
    #: where etcd snapshots go before a control-plane node is disrupted; None: a per-user data folder
    #: (the lab's own folder in the lab). Never under outputs/: a snapshot holds every cluster Secret
    backup_dir: BackupDir | None = None
    talosctl: NonEmpty = "talosctl"
    helm: NonEmpty = "helm"
    talosconfig: NonEmpty | None = None
    kubeconfig: NonEmpty | None = None
    talos_version: TargetTalosVersion = "v1.12.7"
    nodes: list[Node] = Field(default_factory=_default_nodes, min_length=1)
    storage: Storage = Field(default_factory=Storage)
    lab: LabOptions = Field(default_factory=LabOptions)
    piraeus: Piraeus = Field(default_factory=Piraeus)
    snapshots: Snapshots = Field(default_factory=Snapshots)
    failover: Failover = Field(default_factory=Failover)
    factory_url: FactoryUrl = "https://factory.talos.dev"
    #: the Image Factory platform of the installer (``<platform>-installer``): metal, nocloud, aws, ...
    talos_platform: TalosPlatform = "metal"
    #: the SecureBoot installer (``<platform>-installer-secureboot``)
    secureboot: bool = False
    extensions: list[ExtensionName] = Field(default_factory=lambda: ["siderolabs/drbd", "siderolabs/zfs"])
    #: real (wall-clock) seconds to wait for a node to come back (reboot, reset, upgrade) or a gate to pass,
    #: in the lab as on a real cluster (the lab's talosctl counts its --timeout in real seconds too)
    node_timeout: float = Field(default=900.0, gt=0, le=86400)
    bench: Bench = Field(default_factory=Bench)
    secrets: dict[SecretName, SecretStr] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _target_defaults(cls, data: Any) -> Any:
        """Defaults that depend on the target: no quorum-loss drill on a real cluster unless asked for."""
        if isinstance(data, Mapping) and data.get("target") == "talos":
            failover = data.get("failover")
            if failover is None or (isinstance(failover, Mapping) and failover.get("quorum_loss") is None):
                data = {**data, "failover": {**(failover or {}), "quorum_loss": False}}
        return data

    @model_validator(mode="after")
    def _cross_field_checks(self) -> Params:
        """Rules that span fields. Raises :class:`ParamsError` (not ValueError) to keep one line per problem."""
        problems = _cross_field_problems(self.model_dump())
        if problems:
            raise ParamsError(_render(problems))
        return self

    # -- derived values ---------------------------------------------------------

    @property
    def enforces_safety(self) -> bool:
        """Approvals and every real-cluster rule apply: a real cluster, or the lab with ``enforce_safety``."""
        return self.target == "talos" or self.lab.enforce_safety

    @property
    def effective_dry_run(self) -> bool:
        """``dry_run`` as set, else plan-only against a real cluster and apply in the lab."""
        if self.dry_run is not None:
            return self.dry_run
        return self.target == "talos"

    @property
    def talos_version_tuple(self) -> tuple[int, int, int]:
        return version_tuple(self.talos_version)

    @property
    def controlplanes(self) -> list[Node]:
        return [node for node in self.nodes if node.role == "controlplane"]

    @property
    def workers(self) -> list[Node]:
        return [node for node in self.nodes if node.role == "worker"]

    @property
    def storage_nodes(self) -> list[Node]:
        """The nodes that hold LINSTOR data (``storage`` true): partition, modules, pool, replicas."""
        return [node for node in self.nodes if node.storage]

    def lab_nodes(self) -> list[dict[str, Any]]:
        """The nodes the lab simulates: every listed node, then ``lab.extra_workers`` unlisted workers."""
        nodes = [n.model_dump() for n in self.nodes]
        taken = {n["address"] for n in nodes}
        last = max(int(ipaddress.ip_address(a)) for a in taken)
        for i in range(1, self.lab.extra_workers + 1):
            last += 1
            while str(ipaddress.ip_address(last)) in taken:
                last += 1
            nodes.append({"name": f"lab-w-{i}", "address": str(ipaddress.ip_address(last)), "role": "worker",
                          "storage": False})
        return nodes

    @property
    def lab_node_count(self) -> int:
        return self.lab.nodes if self.lab.nodes is not None else len(self.nodes)

    @property
    def talosconfig_path(self) -> Path | None:
        return None if self.talosconfig is None else Path(self.talosconfig).expanduser()

    @property
    def kubeconfig_path(self) -> Path | None:
        return None if self.kubeconfig is None else Path(self.kubeconfig).expanduser()

    def node(self, name: str) -> Node:
        """The node called ``name``; :class:`KeyError` naming the known nodes otherwise."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node named {name!r} (nodes: {', '.join(n.name for n in self.nodes)})")

    def secret(self, name: str) -> str:
        """The plain value of secret ``name`` (keep it out of anything that gets recorded)."""
        return self.secrets[name].get_secret_value()

    def secret_values(self) -> list[str]:
        """Every secret value, so a redactor can mask them wherever they turn up in output.

        A URL's userinfo (``https://user:password@host``) counts as a secret wherever the URL is.
        """
        values = [value.get_secret_value() for value in self.secrets.values()]
        values += [v for v in _secret_named_values(self.model_dump()) if v not in values]
        values += [v for v in url_credentials(self.model_dump(mode="json")) if v not in values]
        return values

    # -- approvals ---------------------------------------------------------------

    def approves(self, action: str, node_name: str) -> bool:
        """True if ``confirm`` holds ``"<action> <node_name>"``."""
        return f"{action} {node_name}" in self.confirm

    def require_approval(self, action: str, node_name: str, step: str) -> None:
        """Raise :class:`ApprovalRequired` naming the exact entry to add, unless it is there."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; approvals are for {', '.join(ACTIONS)}")
        if not self.approves(action, node_name):
            raise ApprovalRequired(f"{action} {node_name}", step, meaning(action))

    # -- records -------------------------------------------------------------------

    def redacted(self) -> dict[str, Any]:
        """All parameters as JSON-able data, with every secret value replaced by ``"***"``."""
        data = self.model_dump(mode="json")
        data["secrets"] = {name: "***" for name in self.secrets}
        return _mask_userinfo(redact_tree(data))


#: Top-level keys, i.e. the notebook parameters, in file order.
PARAMETER_KEYS: tuple[str, ...] = tuple(Params.model_fields)


# --------------------------------------------------------------------------- redaction


def is_secret_key(key: str) -> bool:
    """True for keys whose value must never be recorded (``*_password``, ``*_token``...)."""
    lowered = key.lower()
    return lowered in ("password", "token", "secret", "passphrase") or lowered.endswith(SECRET_KEY_SUFFIXES)


def redact_tree(data: Any) -> Any:
    """Copy ``data`` with the values of secret-looking keys (at any depth) replaced by ``"***"``."""
    if isinstance(data, Mapping):
        return {
            key: (
                "***"
                if isinstance(key, str) and is_secret_key(key) and value is not None
                else redact_tree(value)
            )
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [redact_tree(item) for item in data]
    return data


_USERINFO_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^/@\s?#]+)@")


def _mask_userinfo(data: Any) -> Any:
    if isinstance(data, str):
        return _USERINFO_RE.sub(lambda m: m.group(0).replace(m.group(1), "***"), data)
    if isinstance(data, Mapping):
        return {key: _mask_userinfo(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_mask_userinfo(item) for item in data]
    return data


def url_credentials(data: Any) -> list[str]:
    """The userinfo of every URL in ``data`` (at any depth), whole and its password alone, raw and decoded."""
    found: list[str] = []
    if isinstance(data, str):
        for userinfo in _USERINFO_RE.findall(data):
            password = userinfo.split(":", 1)[1] if ":" in userinfo else ""
            for value in (userinfo, password, unquote(userinfo), unquote(password)):
                if value and value not in found:
                    found.append(value)
    elif isinstance(data, Mapping):
        for value in data.values():
            found += [v for v in url_credentials(value) if v not in found]
    elif isinstance(data, list | tuple):
        for item in data:
            found += [v for v in url_credentials(item) if v not in found]
    return found


def _secret_named_values(data: Any) -> list[str]:
    """String values under secret-looking keys, at any depth."""
    found: list[str] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            if isinstance(key, str) and is_secret_key(key) and isinstance(value, str | SecretStr):
                found.append(_plain(value))
            else:
                found += _secret_named_values(value)
    elif isinstance(data, list | tuple):
        for item in data:
            found += _secret_named_values(item)
    return found


def _plain(data: Any) -> Any:
    """``SecretStr`` -> ``str`` at any depth, so the secret half can be serialized as JSON."""
    if isinstance(data, SecretStr):
        return data.get_secret_value()
    if isinstance(data, Mapping):
        return {key: _plain(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(item) for item in data]
    return data


def _holds_secret(data: Any) -> bool:
    if isinstance(data, Mapping):
        return any((isinstance(k, str) and is_secret_key(k)) or _holds_secret(v) for k, v in data.items())
    if isinstance(data, list | tuple):
        return any(_holds_secret(item) for item in data)
    return False


def split_secrets(data: Mapping[str, Any], *, _top: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split raw parameters into ``(public, secret)`` halves; :func:`merge_secrets` joins them again.

    The runner hands the public half to papermill, which writes it into the
    executed notebook (the audit record), and passes the secret half out of band.
    Secret: the top-level ``secrets`` mapping and every secret-looking key at any
    depth (a list holding one moves to the secret half whole, as lists cannot be
    merged back item by item).
    """
    public: dict[str, Any] = {}
    secret: dict[str, Any] = {}
    for key, value in data.items():
        if (_top and key == "secrets") or (isinstance(key, str) and is_secret_key(key)):
            secret[key] = _plain(value)
        elif isinstance(value, Mapping):
            public_part, secret_part = split_secrets(value, _top=False)
            public[key] = public_part
            if secret_part:
                secret[key] = secret_part
        elif _holds_secret(value):
            secret[key] = _plain(value)
        else:
            public[key] = value
    return public, secret


def merge_secrets(public: Mapping[str, Any], secret: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`split_secrets`: a deep merge in which the secret half fills its keys back in."""
    merged: dict[str, Any] = dict(public)
    for key, value in secret.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_secrets(merged[key], value)
        else:
            merged[key] = value
    return merged


# --------------------------------------------------------------------------- cross-field checks

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]


def _cross_field_problems(data: Mapping[str, Any]) -> list[Problem]:
    """Checks across fields, written to survive raw, partly invalid input.

    They run on the raw mapping when field validation failed too, so the operator
    sees a duplicate node name and a bad address in the same pass. Anything
    that is not the expected shape is skipped (the field errors cover it).
    """
    nodes = data.get("nodes", list(DEFAULT_NODES))
    names = _node_names(nodes)
    problems: list[Problem] = []
    problems += _node_problems(nodes)
    problems += _confirm_problems(data.get("confirm"), names, _bench_classes(data.get("bench")))
    problems += _storage_problems(data.get("storage"))
    problems += _lab_problems(data.get("lab"), nodes, names)
    problems += _duplicates(data.get("extensions"), ("extensions",), "extension")
    problems += _platform_problems(data.get("talos_platform", "metal"), data.get("secureboot", False))
    problems += _failover_problems(data.get("failover"), data.get("target", "lab"), names)
    problems += _compute_only_problems(data.get("failover"), nodes)
    problems += _real_cluster_problems(data)
    return problems


def _platform_problems(platform: Any, secureboot: Any) -> list[Problem]:
    """The factory builds SecureBoot installers only for the platforms Talos marks SecureBootSupported."""
    if secureboot is True and isinstance(platform, str) and PLATFORMS.get(platform) is False:
        with_sb = ", ".join(p for p, sb in PLATFORMS.items() if sb)
        return [(("secureboot",), f"the {platform} platform has no SecureBoot installer (only {with_sb})")]
    return []


def _real_cluster_problems(data: Mapping[str, Any]) -> list[Problem]:
    """A real cluster is reached through its own credentials; without them talosctl/kubectl guess a default."""
    if data.get("target") != "talos":
        return []
    return [((key,), f"required with target talos: the path to this cluster's {key} (for example {example})")
            for key, example in (("talosconfig", "~/.talos/config"), ("kubeconfig", "~/.kube/config"))
            if data.get(key) is None]


def _failover_problems(failover: Any, target: Any, names: set[str] | None) -> list[Problem]:
    if not isinstance(failover, Mapping):
        return []
    problems: list[Problem] = []
    if target == "talos" and failover.get("fault") in ("node-down", "isolate"):
        problems.append((("failover", "fault"), f"{failover['fault']!r} is a lab fault; against a real cluster use reboot or shutdown"))
    node = failover.get("node")
    if isinstance(node, str) and names is not None and node not in names:
        problems.append((("failover", "node"), _unknown_node(node, names)))
    return problems


def _compute_only_problems(failover: Any, nodes: Any) -> list[Problem]:
    """A compute-only node (``storage: false``) holds no replica and is never faulted."""
    compute = {item.get("name") for _, item in _items(nodes) if item.get("storage") is False}
    node = failover.get("node") if isinstance(failover, Mapping) else None
    if isinstance(node, str) and node in compute:
        return [(("failover", "node"), f"{node} has storage: false: it holds no replica and the runbooks never "
                                       "fault it; name a storage node (or null: the writer's node)")]
    return []


def _items(value: Any) -> list[tuple[int, Mapping[str, Any]]]:
    """Index and entry of each mapping in a list (anything else yields nothing)."""
    if not isinstance(value, list | tuple):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, Mapping)]


def _node_names(nodes: Any) -> set[str] | None:
    """Names of the nodes, or None when ``nodes`` is too broken to check references against."""
    if not isinstance(nodes, list | tuple):
        return None
    return {item["name"] for _, item in _items(nodes) if isinstance(item.get("name"), str)}


def _node_problems(nodes: Any) -> list[Problem]:
    problems: list[Problem] = []
    entries = _items(nodes)
    problems += _duplicates(
        [item.get("name") for _, item in entries],
        None,
        "node name",
        [("nodes", i, "name") for i, _ in entries],
    )
    addresses = [_normalized_ip(item.get("address")) for _, item in entries]
    problems += _duplicates(addresses, None, "address", [("nodes", i, "address") for i, _ in entries])
    roles = [item.get("role") for _, item in entries]
    if entries and "controlplane" not in roles:
        problems.append(
            (("nodes",), "needs at least one controlplane node (etcd and the API server run there)")
        )
    if entries and all(item.get("storage") is False for _, item in entries):
        problems.append(
            (("nodes",), f"storage: false on every node ({', '.join(str(item.get('name')) for _, item in entries)}): "
                         "LINSTOR needs at least one storage node; set storage: true (the default) on the nodes "
                         "whose disks hold the data")
        )
    return problems


def _normalized_ip(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _duplicates(values: Any, base: Loc | None, what: str, locs: list[Loc] | None = None) -> list[Problem]:
    """One problem per repeated value, pointing back at its first occurrence."""
    if not isinstance(values, list | tuple):
        return []
    paths = locs if locs is not None else [(*(base or ()), i) for i in range(len(values))]
    first: dict[Any, Loc] = {}
    problems: list[Problem] = []
    for loc, value in zip(paths, values, strict=True):
        if not isinstance(value, str):
            continue
        if value in first:
            problems.append((loc, f"duplicate {what} {value!r} (already at {_path(first[value])})"))
        else:
            first[value] = loc
    return problems


def _bench_classes(bench: Any) -> set[str] | None:
    classes = bench.get("classes", ["local", "replicated"]) if isinstance(bench, Mapping) else ["local", "replicated"]
    return {c for c in classes if isinstance(c, str)} if isinstance(classes, list | tuple) else None


def _confirm_problems(confirm: Any, names: set[str] | None, classes: set[str] | None) -> list[Problem]:
    entries = _confirm_list(confirm)
    if not isinstance(entries, list | tuple):
        return []
    problems: list[Problem] = []
    for i, entry in enumerate(entries):
        parts = entry.split() if isinstance(entry, str) else []
        if len(parts) != 2 or parts[0] not in ACTIONS:
            continue
        action, target = parts
        if action in CLASS_ACTIONS:
            if classes is not None and target not in classes:
                known = ", ".join(sorted(classes)) or "none"
                problems.append((("confirm", i), f"storage class {target!r} is not in bench.classes ({known})"))
        elif names is not None and target not in names:
            problems.append((("confirm", i), _unknown_node(target, names)))
    return problems


def _unknown_node(name: str, names: set[str]) -> str:
    known = ", ".join(sorted(names)) or "none"
    return f"node {name!r} is not in nodes (nodes: {known})"


def _storage_problems(storage: Any) -> list[Problem]:
    if not isinstance(storage, Mapping):
        return []
    min_bytes = _size_or_none(storage.get("min_size", "200GiB"))
    max_bytes = _size_or_none(storage.get("max_size"))
    if min_bytes is not None and max_bytes is not None and min_bytes > max_bytes:
        # Talos ProvisioningSpec.Validate wording.
        return [(("storage", "min_size"), "min size is greater than max size")]
    return []


def _size_or_none(value: Any) -> int | None:
    try:
        return parse_size(value) if value is not None else None
    except ValueError:
        return None


def _lab_problems(lab: Any, nodes: Any, names: set[str] | None) -> list[Problem]:
    if not isinstance(lab, Mapping):
        return []
    problems: list[Problem] = []
    count = lab.get("nodes")
    if (
        isinstance(count, int)
        and not isinstance(count, bool)
        and isinstance(nodes, list | tuple)
        and 1 <= count < len(nodes)
    ):
        problems.append(
            (("lab", "nodes"), f"the lab would simulate {count} node(s) but nodes lists {len(nodes)}")
        )
    for i, fault in _items(lab.get("faults")):
        problems += _fault_problems(("lab", "faults", i), fault, names)
    return problems


def _fault_problems(loc: Loc, fault: Mapping[str, Any], names: set[str] | None) -> list[Problem]:
    problems: list[Problem] = []
    node, peer, kind = fault.get("node"), fault.get("peer"), fault.get("kind")
    for key, value in (("node", node), ("peer", peer)):
        if names is not None and isinstance(value, str) and value not in names:
            problems.append(((*loc, key), _unknown_node(value, names)))
    if kind in PAIR_FAULT_KINDS:
        if node is None or peer is None:
            problems.append((loc, f"a {kind} fault needs both node and peer"))
        elif node == peer:
            problems.append(((*loc, "peer"), "must differ from node"))
    elif peer is not None and kind in FAULT_KINDS:
        problems.append(((*loc, "peer"), f"only {' and '.join(PAIR_FAULT_KINDS)} faults take a peer"))
    if fault.get("count") is not None and kind in FAULT_KINDS and kind not in COUNTED_FAULT_KINDS:
        problems.append(((*loc, "count"), f"a {kind} fault holds until cleared; only {', '.join(COUNTED_FAULT_KINDS)} take a count"))
    if kind == "diskless-after-upgrade" and node is None:
        problems.append(((*loc, "node"), "a diskless-after-upgrade fault needs the node whose next upgrade it breaks"))
    return problems


# --------------------------------------------------------------------------- error rendering


def _path(loc: Iterable[str | int]) -> str:
    """``("nodes", 2, "address")`` -> ``nodes[2].address``; odd keys are quoted in brackets."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.match(r"^[A-Za-z0-9_-]+$", part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "top level"


def _render(problems: Iterable[Problem]) -> list[str]:
    """Format, drop repeats, and order by top-level key (file order) so related lines sit together."""
    order = {key: i for i, key in enumerate(PARAMETER_KEYS)}
    ranked: dict[str, int] = {}
    for loc, message in problems:
        line = f"{_path(loc)}: {message}"
        ranked.setdefault(line, order.get(str(loc[0]) if loc else "", len(order)))
    return sorted(ranked, key=ranked.__getitem__)


class _Hidden:
    """Stands in for a secret value in messages: only its kind is shown."""

    def __init__(self, value: Any) -> None:
        self.kind = _kind_of(value)


def _kind_of(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _describe_input(value: Any) -> str:
    """Say what was given; short values are quoted so the operator can find them in the file."""
    if isinstance(value, _Hidden):
        return f"{value.kind} (value hidden)"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    return _kind_of(value)


def _number(value: Any) -> str:
    """``0.0`` -> ``0``: bounds read like the operator wrote them."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_secret_loc(loc: Loc) -> bool:
    return bool(loc) and (loc[0] == "secrets" or any(isinstance(p, str) and is_secret_key(p) for p in loc))


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class whose fields apply at ``loc`` (for "did you mean" suggestions)."""
    model: type[BaseModel] = Params
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        while get_origin(annotation) is not None and not _is_model(annotation):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return None
            annotation = args[0]
        if not _is_model(annotation):
            return None
        model = annotation
    return model


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unknown_key_message(loc: Loc) -> str:
    model = _model_at(loc[:-1])
    key = loc[-1]
    if model is not None and isinstance(key, str):
        close = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
        if close:
            return f"unknown key (typo? did you mean {close[0]!r}?)"
    return "unknown key (typo?)"


_TYPE_MESSAGES: Mapping[str, Callable[[Any, Mapping[str, Any]], str]] = {
    "missing": lambda v, c: "required",
    "invalid_key": lambda v, c: "keys must be strings",
    "string_type": lambda v, c: f"expected a string, got {_describe_input(v)}",
    "bool_type": lambda v, c: f"expected true or false, got {_describe_input(v)}",
    "bool_parsing": lambda v, c: f"expected true or false, got {_describe_input(v)}",
    "int_type": lambda v, c: f"expected a whole number, got {_describe_input(v)}",
    "int_parsing": lambda v, c: f"expected a whole number, got {_describe_input(v)}",
    "int_from_float": lambda v, c: f"expected a whole number, got {_describe_input(v)}",
    "float_type": lambda v, c: f"expected a number, got {_describe_input(v)}",
    "float_parsing": lambda v, c: f"expected a number, got {_describe_input(v)}",
    "finite_number": lambda v, c: "expected a finite number",
    "list_type": lambda v, c: f"expected a list, got {_describe_input(v)}",
    "dict_type": lambda v, c: f"expected a mapping (key: value), got {_describe_input(v)}",
    "model_type": lambda v, c: f"expected a mapping (key: value), got {_describe_input(v)}",
    "model_attributes_type": lambda v, c: f"expected a mapping (key: value), got {_describe_input(v)}",
    "literal_error": lambda v, c: f"must be one of {c.get('expected')}, got {_describe_input(v)}",
    "greater_than": lambda v, c: f"must be greater than {_number(c.get('gt'))}",
    "greater_than_equal": lambda v, c: f"must be at least {_number(c.get('ge'))}",
    "less_than": lambda v, c: f"must be less than {_number(c.get('lt'))}",
    "less_than_equal": lambda v, c: f"must be at most {_number(c.get('le'))}",
    "too_short": lambda v, c: f"needs at least {c.get('min_length')} entry",
    "too_long": lambda v, c: f"takes at most {c.get('max_length')} entries",
}


def _problem_from_error(error: Mapping[str, Any]) -> Problem:
    """One pydantic error -> ``(loc, friendly message)``, never echoing a secret value."""
    loc: Loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
        if kind == "string_type":
            return loc, "keys must be strings"
    if _is_secret_loc(loc):
        value = _Hidden(value)
    if kind == "extra_forbidden":
        return loc, _unknown_key_message(loc)
    if kind in ("value_error", "assertion_error"):
        return loc, str(ctx.get("error", error.get("msg", "invalid value")))
    render = _TYPE_MESSAGES.get(kind)
    return loc, render(value, ctx) if render else str(error.get("msg", "invalid value"))


# --------------------------------------------------------------------------- entry points


def parse_params(data: Any, source: str | None = None) -> Params:
    """Validate a parameter mapping; :class:`ParamsError` lists every problem with its path."""
    if not isinstance(data, Mapping):
        raise ParamsError(
            [f"top level: expected a mapping of parameter names to values, got {_describe_input(data)}"],
            source,
        )
    bad_keys = [key for key in data if not isinstance(key, str)]
    if bad_keys:
        raise ParamsError([f"top level: keys must be strings, got {key!r}" for key in bad_keys], source)
    try:
        return Params.model_validate(dict(data))
    except ValidationError as exc:
        problems = [_problem_from_error(err) for err in exc.errors(include_url=False)]
        problems += _cross_field_problems(data)
        raise ParamsError(_render(problems), source) from None
    except ParamsError as exc:
        raise ParamsError(exc.problems, source) from None


def params_from_namespace(namespace: Mapping[str, Any], source: str | None = None) -> Params:
    """Validate the parameter variables of a notebook namespace (``globals()`` after papermill).

    Only :data:`PARAMETER_KEYS` are read, so the notebook's other variables do not count as unknown keys.
    """
    return parse_params({key: namespace[key] for key in PARAMETER_KEYS if key in namespace}, source)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate and non-string mapping keys (a repeated key silently wins otherwise)."""


def _construct_strict_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[str, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is not a string (quote it)", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_strict_mapping)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem = (
                f"{exc.context}: {problem}" if exc.context_mark is None else f"{problem} ({exc.context})"
            )
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"invalid YAML: {exc}"


def read_params_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a parameter file into a mapping, rejecting bad YAML, duplicate keys and non-mappings.

    Does not validate the values (see :func:`load_params`); the CLI uses this to
    hand the same mapping to papermill.
    """
    source = os.fspath(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_PARAMS_FILE_BYTES:
            raise ParamsError([f"top level: the file is {size / 2**20:.1f} MiB; a parameter file may be at most "
                               f"{MAX_PARAMS_FILE_BYTES // 2**20} MiB (is this the right file?)"], source)
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ParamsError([f"cannot read the file: {exc.strerror or exc}"], source) from None
    except UnicodeDecodeError as exc:
        raise ParamsError(
            [f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})"], source
        ) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ParamsError([_yaml_problem(exc)], source) from None
    if data is None:
        raise ParamsError(
            ["top level: the file is empty; expected a mapping of parameter names to values"], source
        )
    if not isinstance(data, dict):
        raise ParamsError(
            [f"top level: expected a mapping of parameter names to values, got {_describe_input(data)}"],
            source,
        )
    return data


def load_params(path: str | os.PathLike[str]) -> Params:
    """Read and validate a parameter file; :class:`ParamsError` lists every problem."""
    return parse_params(read_params_file(path), source=os.fspath(path))
