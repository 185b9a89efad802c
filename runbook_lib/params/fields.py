"""Field types of the parameter file: each value's own rule (names, addresses, sizes, versions, URLs)."""

from __future__ import annotations

import difflib
import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator

from ..disk_selector import check_disk_selector
from ..schematic_ids import PLATFORMS
from ..sizes import GiB, parse_size
from .versions import supports_user_volumes

_STRICT_VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")
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
BackupDir = Annotated[str, AfterValidator(_non_empty), AfterValidator(_backup_dir)]
FactoryUrl = Annotated[str, AfterValidator(_factory_url)]
ExtensionName = Annotated[str, AfterValidator(_extension)]
TalosPlatform = Annotated[str, AfterValidator(_talos_platform)]
KernelArg = Annotated[str, AfterValidator(_kernel_arg)]
SecretName = Annotated[str, AfterValidator(_secret_name)]
Transport = Annotated[str, AfterValidator(_transport)]
ChartVersion = Annotated[str, BeforeValidator(_version_text), AfterValidator(_chart_version)]
#: a Kubernetes object name (release, namespace, storage class): the same rule as a node name
DnsLabel = Annotated[str, AfterValidator(_node_name)]
