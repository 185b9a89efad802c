"""The ``nodes`` section: one Talos node each, and the default three-node cluster."""

from __future__ import annotations

from typing import Literal

from .. import lab_options
from .base import StrictModel
from .fields import IpAddress, NodeName


class Node(StrictModel):
    """One Talos node: its Kubernetes node name, the address talosctl reaches it on, its role."""

    name: NodeName
    address: IpAddress
    role: Literal["controlplane", "worker"]
    #: false: a compute-only node; the runbooks never partition, patch, upgrade, reset or fault it,
    #: LINSTOR gets no pool there, and it never blocks a gate
    storage: bool = True


#: The default cluster: three control-plane nodes, as ``talosctl cluster create`` makes them.
DEFAULT_NODES: tuple[dict[str, str], ...] = tuple(lab_options.DEFAULT_NODES)


def default_nodes() -> list[Node]:
    return [Node(**node) for node in DEFAULT_NODES]
