"""The Piraeus pods' init containers that wait for LINSTOR (linstor-wait-until)."""

from __future__ import annotations

from ..cluster import Lab
from ..workloads.state import RunResult
from .facts import api_reachable


class PiraeusRunner:
    """Init containers of the Piraeus pods that wait for LINSTOR (``linstor-wait-until``)."""

    def run(self, lab: Lab, pod: dict, container: dict, node: str, now: float) -> RunResult | None:
        cmd = container.get("command") or []
        if not cmd or not str(cmd[0]).endswith("linstor-wait-until"):
            return None
        what = cmd[1] if len(cmd) > 1 else ""
        ok, _ = api_reachable(lab)
        if what == "satellite-online":
            lnode = lab.linstor.nodes.get(node)
            ok = ok and lnode is not None and lnode.online
        if ok:
            return RunResult(0, f"linstor-wait-until: {what}: done", 0.5)
        return RunResult(0, "", 0.0, pending=True)
