"""The cluster-health gate before a node is touched: every gated node Ready, Talos health passing."""

from __future__ import annotations

from ..kube import describe_nodes, node_states
from ..session import Session
from ..talos import NodeRef
from ..waiting import wait_until


def gated_nodes(session: Session) -> list[NodeRef]:
    """The nodes a health gate waits for: storage nodes, and control-plane nodes (etcd, the API server).

    A compute-only worker (``storage: false``) or a node the parameters do not list never blocks a gate.
    """
    return [n for n in session.nodes if n.role == "controlplane" or n in session.storage_nodes]


def cluster_healthy(session: Session, *, timeout: float, exclude: str | None = None) -> None:
    """Wait until every gated node is Ready, then ``talosctl health`` through a control plane other than ``exclude``."""
    api = session.kube()
    gated = gated_nodes(session)
    names = {n.name for n in gated}

    def probe():
        states = node_states(api)
        ok = all(n.name in states and states[n.name].ready == "True" for n in gated)
        return ok, {name: st for name, st in states.items() if name in names}

    wait_until(probe, what="every storage and control-plane node Ready", timeout=timeout, describe=describe_nodes)
    cps = [n for n in gated if n.role == "controlplane"]
    via = next((n for n in cps if n.name != exclude), cps[0])
    session.talos.health(via, control_plane=[n.address for n in cps],
                         workers=[n.address for n in gated if n.role == "worker"],
                         wait_timeout=f"{int(timeout)}s", timeout=timeout + 30)
