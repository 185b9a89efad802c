"""The whole parameter file as one model (:class:`Params`): its fields, derived values and approvals."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, model_validator

from ..approvals import meaning
from ..errors import ApprovalRequired, ParamsError
from .base import StrictModel
from .checks import cross_field_problems
from .confirm import ACTIONS, Approval, confirm_list
from .fields import (
    BackupDir,
    ClusterName,
    ExtensionName,
    FactoryUrl,
    NonEmpty,
    SecretName,
    TalosPlatform,
    TargetTalosVersion,
)
from .lab import LabOptions
from .nodes import Node, default_nodes
from .problems import render
from .secrets import mask_userinfo, redact_tree, secret_named_values, url_credentials
from .sections import Bench, Failover, Piraeus, Snapshots
from .storage import Storage
from .versions import version_tuple


class Params(StrictModel):
    """All parameters of a run. Build it with :func:`load_params` or :func:`parse_params`."""

    cluster_name: ClusterName = "lab"
    target: Literal["lab", "talos"] = "lab"
    dry_run: bool | None = None
    confirm: Annotated[list[Approval], BeforeValidator(confirm_list)] = Field(default_factory=list)
    #: where etcd snapshots go before a control-plane node is disrupted; None: a per-user data folder
    #: (the lab's own folder in the lab). Never under outputs/: a snapshot holds every cluster Secret
    backup_dir: BackupDir | None = None
    talosctl: NonEmpty = "talosctl"
    helm: NonEmpty = "helm"
    talosconfig: NonEmpty | None = None
    kubeconfig: NonEmpty | None = None
    talos_version: TargetTalosVersion = "v1.12.7"
    nodes: list[Node] = Field(default_factory=default_nodes, min_length=1)
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
        """Defaults that depend on the target: no quorum-loss drill on a real cluster unless asked for; in the lab
        its peers lose power (``node-down``), an outage the drill holds until it has seen enough of it, however busy
        the machine is (a reboot ends by itself, and at the lab's speed a slow observer can miss it)."""
        if not isinstance(data, Mapping):
            return data
        failover = data.get("failover")
        if failover is not None and not isinstance(failover, Mapping):
            return data
        key, value = ("quorum_loss", False) if data.get("target") == "talos" else ("quorum_loss_fault", "node-down")
        if (failover or {}).get(key) is None:
            data = {**data, "failover": {**(failover or {}), key: value}}
        return data

    @model_validator(mode="after")
    def _cross_field_checks(self) -> Params:
        """Rules that span fields. Raises :class:`ParamsError` (not ValueError) to keep one line per problem."""
        problems = cross_field_problems(self.model_dump())
        if problems:
            raise ParamsError(render(problems, PARAMETER_KEYS))
        return self

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
        values += [v for v in secret_named_values(self.model_dump()) if v not in values]
        values += [v for v in url_credentials(self.model_dump(mode="json")) if v not in values]
        return values

    def approves(self, action: str, node_name: str) -> bool:
        """True if ``confirm`` holds ``"<action> <node_name>"``."""
        return f"{action} {node_name}" in self.confirm

    def require_approval(self, action: str, node_name: str, step: str) -> None:
        """Raise :class:`ApprovalRequired` naming the exact entry to add, unless it is there."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; approvals are for {', '.join(ACTIONS)}")
        if not self.approves(action, node_name):
            raise ApprovalRequired(f"{action} {node_name}", step, meaning(action))

    def redacted(self) -> dict[str, Any]:
        """All parameters as JSON-able data, with every secret value replaced by ``"***"``."""
        data = self.model_dump(mode="json")
        data["secrets"] = {name: "***" for name in self.secrets}
        return mask_userinfo(redact_tree(data))


#: Top-level keys, i.e. the notebook parameters, in file order.
PARAMETER_KEYS: tuple[str, ...] = tuple(Params.model_fields)
