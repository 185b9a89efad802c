"""``drbdadm status [RESOURCE]`` in a LINSTOR satellite's container, answered from the lab's DRBD state.

The text is drbd-utils' (LINBIT/drbd-utils user/v9/drbdsetup.c ``status_cmd``, ``resource_status``,
``device_status``, ``connection_status``, ``peer_device_status``; line wrapping by user/shared/
wrap_printf.c at 80 columns when stdout is no terminal), without ``--verbose``/``--statistics``:

    <resource> role:Primary|Secondary [suspended:quorum]
      disk:<state> [client:yes|no when Diskless] [quorum:no] open:yes|no
      <peer node> role:<peer role>                  (a connected peer)
        [replication:<state>] peer-disk:<state> [done:<percent, 2 decimals>]
      <peer node> connection:Connecting|StandAlone  (a peer it does not reach)
    <empty line>

Resources print sorted by name, peers by name. ``replication:`` shows only beyond ``Established``
(SyncSource/SyncTarget while resyncing); ``done:`` is the resynced share of what was out of sync.
``client:``/``peer-client:`` print because stdout is not a terminal (``kubectl exec`` without ``-t``).
``open:`` is printed by drbd-utils 9.29+ on kernels that report it (the satellite images and DRBD
9.2 modules the lab ships do); a device is open while a consumer has it Primary (auto-promote).
A resource LINSTOR has not placed on this node: "'<res>' not defined in your config (for this host).",
exit 1 (user/v9/drbdadm_main.c).
"""

from __future__ import annotations

from typing import Any

COLUMNS = 80


class _Wrap:
    """drbd-utils ``wrap_printf``: indent at the start of a line, wrap before a piece that would pass 80 columns."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.col = 0

    def __call__(self, indent: int, text: str) -> None:
        while text.startswith("\n"):
            self.out.append("\n")
            self.col = 0
            text = text[1:]
        if not text:
            return
        if self.col > 0 and self.col + len(text) > COLUMNS:
            self.out.append("\n")
            self.col = 0
        if self.col == 0:
            text = text.lstrip(" ")
            self.out.append(" " * indent)
            self.col = -1  # as the C code leaves it after its `while (indent--)` loop
        self.out.append(text)
        self.col += len(text)
        if text.endswith("\n"):
            self.col = 0

    def text(self) -> str:
        return "".join(self.out)


def _disk(rep: Any) -> tuple[str, bool]:
    """(disk state, intentionally diskless)."""
    if rep.diskless:
        return "Diskless", True
    return rep.disk_state, False


def _replication(rd: Any, rep: Any, peer: Any) -> tuple[str, float | None]:
    if rep.sync and rep.sync["source"] == peer.node:
        return "SyncTarget", 100.0 * rep.sync["done_kib"] / max(1, rep.sync["total_kib"])
    if peer.sync and peer.sync["source"] == rep.node:
        return "SyncSource", 100.0 * peer.sync["done_kib"] / max(1, peer.sync["total_kib"])
    return "Established", None


def resource_status(ctl: Any, rd: Any, node: str) -> str:
    rep = rd.replicas[node]
    w = _Wrap()
    w(0, rd.name)
    w(4, f" role:{rep.role}")
    quorum = ctl.has_quorum(rd, node)
    suspend = ctl.effective_prop(rd, "DrbdOptions/Resource/on-no-quorum", "suspend-io") == "suspend-io"
    if rep.role == "Primary" and not quorum and suspend:
        w(4, " suspended:quorum")
    w(0, "\n")
    volumes = [vd.number for vd in rd.volumes] or [0]
    single = volumes == [0]
    disk, intentional = _disk(rep)
    for number in volumes:
        if not single:
            w(2, f"volume:{number}")
        w(2, f" disk:{disk}")
        if disk == "Diskless":
            w(2, f" client:{'yes' if intentional else 'no'}")
        if not quorum:
            w(2, " quorum:no")
        w(2, f" open:{'yes' if rep.role == 'Primary' else 'no'}")
        w(6, "\n")
    for peer_name in sorted(p for p in rd.replicas if p != node):
        peer = rd.replicas[peer_name]
        w(2, peer_name)
        connected = ctl.connected(node, peer_name, rd.name)
        if not connected:
            w(6, f" connection:{'StandAlone' if ctl.split_brain(rd.name, node, peer_name) else 'Connecting'}")
        else:
            w(6, f" role:{peer.role}")
        w(0, "\n")
        if not connected:
            continue
        repl, done = _replication(rd, rep, peer)
        peer_disk, peer_intentional = _disk(peer)
        for number in volumes:
            indent = 4
            if not single:
                w(indent, f"volume:{number}")
                indent = 8
            if repl != "Established":
                w(indent, f" replication:{repl}")
                indent = 8
            w(indent, f" peer-disk:{peer_disk}")
            if peer_disk == "Diskless":
                w(indent, f" peer-client:{'yes' if peer_intentional else 'no'}")
            if done is not None:
                w(8, f" done:{done:.2f}")
            w(0, "\n")
    w(0, "\n")
    return w.text()


def status(ctl: Any, node: str, args: list[str]) -> tuple[int, str, str]:
    """``drbdadm status [RESOURCE...]`` on ``node``: (exit code, stdout, stderr)."""
    mine = {name: rd for name, rd in ctl.rds.items() if rd.drbd and node in rd.replicas}
    names = [a for a in args if not a.startswith("-")] or ["all"]
    if any(a.startswith("-") for a in args):
        return 20, "", f"drbdadm: the lab's drbdadm status takes resource names only, not: {' '.join(args)}\n"
    if names == ["all"]:
        if not mine:
            return 0, "# No currently configured DRBD found.\n", ""
        return 0, "".join(resource_status(ctl, mine[n], node) for n in sorted(mine)), ""
    out, err, code = [], [], 0
    for name in names:
        if name not in mine:
            err.append(f"'{name}' not defined in your config (for this host).\n")
            code = code or 1
            continue
        out.append(resource_status(ctl, mine[name], node))
    return code, "".join(out), "".join(err)


def run(ctl: Any, node: str, args: list[str]) -> tuple[int, str, str]:
    """``drbdadm ARGS`` in a satellite on ``node``."""
    known = ctl.nodes.get(node)
    if known is None or not known.drbd_ok():
        # drbdsetup cannot reach the kernel module (genetlink family "drbd" missing)
        return 20, "", "Could not connect to 'drbd' generic netlink family\n"
    if args[:1] == ["status"]:
        return status(ctl, node, args[1:])
    shown = " ".join(args) or "(none)"
    return 20, "", f"drbdadm: the lab's drbdadm answers `status [RESOURCE]` only, not: {shown}\n"
