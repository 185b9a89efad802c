"""The approvals a destructive step needs: each action, its notebook and what it destroys.

An approval is one ``confirm`` entry, ``"<action> <target>"``; the target is a node name, except
for ``benchmark`` whose target is a storage class. Each action authorises exactly one kind of
step, so approving an upgrade never authorises a drill.
"""

from __future__ import annotations

#: action -> (notebook, what the step destroys or risks), in the order the notebooks run
ACTIONS: dict[str, tuple[str, str]] = {
    "reset": ("01", "resets EPHEMERAL: wipes all of /var on the node (container data, logs, this member's etcd "
                    "data, hostPath volumes) and reboots it"),
    "wipe": ("03", "wipes the filesystem signatures on the node's storage partition (old layouts only)"),
    "upgrade": ("02", "upgrades the node to the new installer image and reboots it (its replicas go away and resync)"),
    "drill": ("06", "faults the writer's node on purpose (reboot, shutdown; in the lab also power loss or isolation)"),
    "quorum-loss": ("06", "takes both other replicas' nodes down at once: the writer's volume freezes its I/O"),
    "benchmark": ("07", "loads the disks and the replication link of the storage class for many minutes"),
}

#: actions whose target is a storage class rather than a node
CLASS_ACTIONS = ("benchmark",)

#: approvals that no longer exist -> what replaced them
RENAMED: dict[str, str] = {
    "reboot": "'upgrade <node>' for 02's upgrade, 'drill <node>' for 06's fault on the writer's node, "
              "'quorum-loss <node>' for 06's quorum-loss scenario",
    "shutdown": "'drill <node>' for 06's fault on the writer's node ('quorum-loss <node>' for its quorum-loss scenario)",
}


def meaning(action: str) -> str:
    """``"02: upgrades the node..."``: what approving ``action`` allows."""
    notebook, text = ACTIONS[action]
    return f"{notebook}: {text}"


def renamed_message(action: str, target: str) -> str:
    """The error for an old ``reboot``/``shutdown`` entry, naming the entries that replaced it."""
    return (f"'{action} {target}' is no longer an approval (the meaning of confirm changed): use "
            + RENAMED[action].replace("<node>", target))
