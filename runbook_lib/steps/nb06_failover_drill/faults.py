"""The drill's faults: injected and removed through talosctl or the lab's control API, each recorded."""

from __future__ import annotations

import time

from ... import local_http
from ...cluster_time import parse_date_header
from ...errors import RunbookError
from ...session import Session
from ...talos import NodeGroup, NodeRef


def _lab(session: Session, method: str, path: str, body: dict | None, *, step: str, target: str, cli: list[str],
         sent_at: list[tuple[float, float, float | None]] | None = None) -> dict:
    """A call to the lab's control API (what ``runbook lab ...`` does), recorded with that command.

    HTTP rather than the CLI: starting a process takes long enough to blur the phase timings.
    """

    def call() -> dict:
        sent = time.time()  # after the record was written: the change happens between here and the answer
        resp = local_http.request(method, session.connection["url"] + path, json=body, timeout=30)
        if sent_at is not None:
            sent_at.append((sent, time.time(), parse_date_header(resp.headers.get("Date"))))
        if resp.status_code >= 400:
            raise RunbookError(f"lab: {' '.join(cli)}: {resp.json().get('error', resp.text)}")
        return resp.json()

    return session.executor.call(call, step=step, target=target, kind="lab", command=["runbook", "lab", *cli]) or {}


def inject(session: Session, fault: str, node: NodeRef, *, step: str, approval: str = "drill",
           approval_target: str | None = None, sent_at: list[tuple[float, float, float | None]] | None = None,
           ) -> list[int | None]:
    """Fault ``node``; the lab fault ids to remove later (empty for talosctl faults).

    ``approval``/``approval_target``: the ``confirm`` entry the talosctl fault needs (``drill <node>``,
    or ``quorum-loss <writer's node>`` for the quorum-loss scenario's peers).
    """
    if fault == "reboot":
        session.talos.reboot(node, step=step, approval=approval, approval_target=approval_target)
        return []
    if fault == "shutdown":
        session.talos.shutdown(node, step=step, approval=approval, approval_target=approval_target)
        return []
    if session.params.target != "lab":
        raise RunbookError(f"failover.fault {fault!r} exists only in the lab")
    pairs = [(node.name, None)] if fault == "node-down" else [(node.name, n.name) for n in session.nodes if n.name != node.name]
    kind = "node-down" if fault == "node-down" else "partition"  # isolate: cut the node off from every peer
    ids = []
    for name, peer in pairs:
        cli = ["fault", "add", kind, "--node", name] + (["--peer", peer] if peer else [])
        ids.append(_lab(session, "POST", "/lab/v1/faults", {"kind": kind, "node": name, "peer": peer}, sent_at=sent_at,
                        step=step, target=name, cli=cli).get("id"))  # None in plan mode
    return ids


def inject_together(session: Session, fault: str, nodes: list[NodeRef], ids: dict[str, list[int | None]], *,
                    step: str, approval: str, approval_target: str | None,
                    sent_at: list[tuple[float, float, float | None]] | None = None) -> None:
    """Fault every node of ``nodes`` at once; each node's lab fault ids go into ``ids`` as they are made, so a
    failure halfway leaves the ones to remove.

    A talosctl fault is one call for all of them: one after the other, the first node could be back before the
    last one goes (a talosctl process takes a while to start, longer on a busy machine). Lab faults are one
    request each, milliseconds apart.
    """
    if fault in ("reboot", "shutdown") and len(nodes) > 1:
        inject(session, fault, NodeGroup(tuple(nodes)), step=f"{step}: {fault} {', '.join(n.name for n in nodes)}",
               approval=approval, approval_target=approval_target, sent_at=sent_at)
        return
    for n in nodes:
        ids[n.name] = inject(session, fault, n, step=f"{step}: {fault} {n.name}", approval=approval,
                             approval_target=approval_target, sent_at=sent_at)


def restore(session: Session, fault: str, node: NodeRef, fault_ids: list[int | None], *,
            sent_at: list[tuple[float, float, float | None]] | None = None) -> None:
    """Bring ``node`` back: remove the lab faults, power it on, or let its reboot finish."""
    for fid in fault_ids:
        _lab(session, "DELETE", f"/lab/v1/faults/{fid}", None, step=f"bring {node.name} back", target=node.name,
             cli=["fault", "remove", str(fid) if fid is not None else "<id>"], sent_at=sent_at)
    if fault == "shutdown":
        if session.params.target == "lab":
            _lab(session, "POST", f"/lab/v1/nodes/{node.name}/power-on", None, step=f"power on {node.name}",
                 target=node.name, cli=["power-on", node.name])
        else:
            print(f"==> power {node.name} ({node.address}) on now (BMC, power button); waiting up to "
                  f"{session.params.node_timeout:.0f}s for it to come back")
