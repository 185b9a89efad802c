"""linstor-csi's StorageClass parameters: the keys it knows and how it parses them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..linstor.constants import DISKLESS_POOL

# paramKey values of linstor-csi v1.12 (parameter.go + paramkey_enumer.go, reference notes §5).
PARAM_KEYS = frozenset({
    "allowremotevolumeaccess", "autoplace", "clientlist", "disklessonremaining", "disklessstoragepool",
    "donotplacewithregex", "encryption", "fsopts", "layerlist", "mountopts", "nodelist", "placementcount",
    "placementpolicy", "replicasondifferent", "replicasonsame", "sizekib", "storagepool", "postmountxfsopts",
    "resourcegroup", "usepvcname", "xreplicasondifferent", "overprovision", "nfsconfigtemplate", "nfsservicename",
    "nfssquash", "nfsrecoveryvolumesize",
})


KNOWN_LAYERS = ("drbd", "storage", "luks", "nvme", "cache", "writecache", "openflex", "exos")


PLACEMENT_POLICIES = ("AutoPlaceTopology", "Manual", "AutoPlace", "FollowTopology", "Balanced")


@dataclass
class Parameters:
    placement_count: int = 1
    storage_pools: list[str] = field(default_factory=list)
    diskless_pool: str = DISKLESS_POOL
    layers: list[str] = field(default_factory=lambda: ["DRBD", "STORAGE"])
    remote_access: Any = True  # True (anywhere), False (local only) or a list of fromSame rules
    node_list: list[str] = field(default_factory=list)
    client_list: list[str] = field(default_factory=list)
    replicas_on_same: list[str] = field(default_factory=list)
    replicas_on_different: list[str] = field(default_factory=list)
    diskless_on_remaining: bool = False
    placement_policy: str = "AutoPlaceTopology"
    resource_group: str = ""
    mount_opts: str = ""
    fs_opts: str = ""
    post_mount_xfs_opts: str = ""
    encryption: bool = False
    properties: dict[str, str] = field(default_factory=dict)


def _parse_bool(value: str) -> bool:
    """Go's ``strconv.ParseBool``."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')


def _aux(values: list[str]) -> list[str]:
    return [v if v.startswith("Aux/") else f"Aux/{v}" for v in values if v]


def _layers(value: str) -> list[str]:
    layers = []
    for layer in value.split(" "):
        if layer.lower() not in KNOWN_LAYERS:
            raise ValueError(f"unknown layer type {layer}, known layer types [{' '.join(KNOWN_LAYERS)}]")
        layers.append(layer.upper())
    return layers


def _int32(value: str) -> int:
    try:
        n = int(value or "1")
        if not -(2**31) <= n < 2**31:
            raise ValueError
    except ValueError:
        raise ValueError(f'bad parameters: unable to parse "{value}" as a 32 bit integer') from None
    return n


def _remote_access(value: str) -> Any:
    if value in ("true", "false"):
        return value == "true"
    try:
        rules = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ValueError(f"failed to parse remote access policy: {exc}") from None
    if not isinstance(rules, list):
        raise ValueError(f"failed to parse remote access policy: expected a list, got {value!r}")
    return rules


def _placement_policy(value: str) -> str:
    if value not in PLACEMENT_POLICIES:
        raise ValueError(f"invalid placement policy: {value} does not belong to PlacementPolicy values")
    return value


#: linstor-csi's parameter keys (lower case) -> (Parameters field or None to only check the value, parser)
FIELDS: dict[str, tuple[str | None, Callable[[str], Any]]] = {
    "nodelist": ("node_list", lambda v: v.split(" ")),
    "clientlist": ("client_list", lambda v: v.split(" ")),
    "layerlist": ("layers", _layers),
    "replicasonsame": ("replicas_on_same", lambda v: _aux(v.split(" "))),
    "replicasondifferent": ("replicas_on_different", lambda v: _aux(v.split(" "))),
    "storagepool": ("storage_pools", lambda v: [s for s in v.split(" ") if s]),
    "disklessstoragepool": ("diskless_pool", str),
    "autoplace": ("placement_count", _int32),
    "placementcount": ("placement_count", _int32),
    "encryption": ("encryption", _parse_bool),
    "disklessonremaining": ("diskless_on_remaining", _parse_bool),
    "allowremotevolumeaccess": ("remote_access", _remote_access),
    "placementpolicy": ("placement_policy", _placement_policy),
    "mountopts": ("mount_opts", str),
    "fsopts": ("fs_opts", str),
    "postmountxfsopts": ("post_mount_xfs_opts", str),
    "resourcegroup": ("resource_group", str),
    "usepvcname": (None, _parse_bool),
}


def parse_parameters(params: dict[str, str]) -> Parameters:
    """``volume.NewParameters``; raises ValueError with linstor-csi's message."""
    p = Parameters()
    seen = set()
    for key, value in params.items():
        namespace, _, raw = key.partition("/") if "/" in key else ("", "", key)
        if namespace == "DrbdOptions":
            p.properties[f"DrbdOptions/{raw}"] = value
            continue
        if namespace == "property.linstor.csi.linbit.com":
            p.properties[raw] = value
            continue
        if namespace not in ("linstor.csi.linbit.com", ""):
            continue  # some external parameter (csi.storage.k8s.io/..., qos...): ignored
        k = raw.lower()
        if k not in PARAM_KEYS:
            raise ValueError(f"invalid parameter: {k} does not belong to paramKey values")
        seen.add(k)
        if k in FIELDS:  # keys linstor-csi accepts but the lab does not model are only checked for the name
            name, parse = FIELDS[k]
            parsed = parse(value)
            if name is not None:
                setattr(p, name, parsed)
    if "allowremotevolumeaccess" not in seen and not any(layer in ("DRBD", "NVME") for layer in p.layers):
        p.remote_access = False  # default: anywhere only when the stack can serve remote access
    if p.node_list or p.client_list:
        p.placement_count, p.replicas_on_same, p.replicas_on_different, p.placement_policy = 0, [], [], "Manual"
    if not p.resource_group:
        rg = {"place_count": p.placement_count, "storage_pool": " ".join(p.storage_pools),
              "replicas_on_same": p.replicas_on_same, "replicas_on_different": p.replicas_on_different,
              "layer_stack": p.layers, "diskless_on_remaining": p.diskless_on_remaining, "props": p.properties}
        p.resource_group = "sc-" + str(uuid.uuid5(RG_NAMESPACE, json.dumps(rg, sort_keys=True)))
    return p


# linstor-csi hashes the parameters in a fixed UUID namespace to name resource groups; the
# lab uses its own namespace UUID, so generated names differ from a real cluster's.
RG_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "resource-group.linstor.csi.linbit.com")
