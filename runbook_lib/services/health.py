"""The cluster-health gate before a node is touched: every Kubernetes node Ready, Talos health passing."""

from __future__ import annotations

from ..kube import describe_nodes, node_states
from ..session import Session
from ..waiting import wait_until


def cluster_healthy(session: Session, *, timeout: float, exclude: str | None = None) -> None:
    """Wait until every node is Ready, then ``talosctl health`` through a control plane other than ``exclude``."""
    api = session.kube()

    def probe():
        states = node_states(api)
        ok = len(states) == len(session.nodes) and all(s.ready == "True" for s in states.values())
        return ok, states

    wait_until(probe, what="every node Ready", timeout=timeout, describe=describe_nodes)
    cps = [n for n in session.nodes if n.role == "controlplane"]
    via = next((n for n in cps if n.name != exclude), cps[0])
    session.talos.health(via, control_plane=[n.address for n in cps],
                         workers=[n.address for n in session.nodes if n.role == "worker"],
                         wait_timeout=f"{int(timeout)}s", timeout=timeout + 30)
