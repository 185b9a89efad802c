"""talosctl reset, upgrade, reboot and shutdown, with --wait progress tracked in lab time."""

from __future__ import annotations

import time

from ..errors import TalosAPIError
from .commands import CLIError
from .output import tabwrite
from .session import Talosctl
from .transport import POLL_INTERVAL, append_errors, node_path


class LifecycleCommands(Talosctl):
    """talosctl reset, upgrade, reboot and shutdown, with --wait progress tracked in lab time."""

    def _action(self, kind: str, payload: dict, err_prefix: str, *, reboots: bool) -> None:
        o = self.opts
        nodes = self.nodes()
        if not (o["wait"] or o["debug"]):
            errors, acks = [], []
            for node in nodes:
                try:
                    resp = self.client.call("POST", node_path(node, kind), payload)
                    acks.append((node, resp))
                except TalosAPIError as e:
                    errors.append(f"{err_prefix}: {e.grpc()}")
            if kind == "upgrade" and acks:
                from datetime import UTC, datetime

                started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC")
                self.out(tabwrite([["NODE", "ACK", "STARTED"], *[[n, r.get("ack", ""), started] for n, r in acks]]))
            if errors:
                raise CLIError(errors[0] if len(errors) == 1 else append_errors(errors))
            return
        self._track(nodes, kind, payload, reboots=reboots)

    def _track(self, nodes: list[str], kind: str, payload: dict, *, reboots: bool) -> None:
        """talosctl ``action.Tracker`` with the non-TTY reporter: one ``"<node>": <message>`` line per update."""
        client = self.client
        client.info()
        # real seconds, as the real talosctl counts (context.WithTimeout); the library's node_timeout is real time too
        deadline = time.monotonic() + self.opts["timeout"]
        state: dict[str, dict] = {}

        def report(node: str, message: str) -> None:
            if state[node].get("last") != message:
                state[node]["last"] = message
                self.err(f'"{node}": {message}\n')

        for node in nodes:
            state[node] = {"done": False, "failed": False}
            report(node, "waiting for actor ID")
            try:
                before = client.call("GET", node_path(node, "wait"))
                resp = client.call("POST", node_path(node, kind), payload)
            except TalosAPIError as e:
                report(node, f"error: {e.grpc()}")
                state[node].update(done=True, failed=True)
                continue
            state[node].update(actor=resp["actor_id"], boot_id=before["boot_id"], down_seen=False)
            report(node, f"actor ID: {resp['actor_id']}")
        while not all(s["done"] for s in state.values()):
            for node, s in state.items():
                if s["done"]:
                    continue
                try:
                    st = client.call("GET", node_path(node, f"wait?actor={s['actor']}"))
                except TalosAPIError as e:
                    if e.code != "Unavailable":
                        report(node, f"error: {e.grpc()}")
                        s.update(done=True, failed=True)
                        continue
                    s["down_seen"] = True
                    if not reboots:
                        report(node, "post check passed")
                        s["done"] = True
                    else:
                        report(node, "unavailable, retrying...")
                    continue
                if st.get("error"):
                    report(node, f"error: {st['error']}")
                    s.update(done=True, failed=True)
                    continue
                unmet = " ".join(c["name"] for c in st.get("unmet") or [])
                if reboots and st["boot_id"] != s["boot_id"]:
                    if not s["down_seen"]:
                        # the node was down between two polls (fast lab clock): report it as talosctl would have
                        report(node, "unavailable, retrying...")
                        s["down_seen"] = True
                    if st["maintenance"]:
                        report(node, "post check passed")
                        s["done"] = True
                        continue
                    if st["stage"] == "running" and st["ready"]:
                        report(node, "events check condition met")
                        report(node, "post check passed")
                        s["done"] = True
                        continue
                report(node, f"stage: {st['stage']} ready: {str(st['ready']).lower()} unmetCond: [{unmet}]")
            if all(s["done"] for s in state.values()):
                break
            if time.monotonic() > deadline:
                for node, s in state.items():
                    if not s["done"]:
                        report(node, "error: context deadline exceeded")
                        s.update(done=True, failed=True)
                break
            time.sleep(POLL_INTERVAL)
        if any(s["failed"] for s in state.values()):
            raise CLIError("", printed=True)

    def cmd_reset(self) -> None:
        o = self.opts
        if o["wipe_mode"] not in ("all", "system-disk", "user-disks"):
            raise CLIError(f'invalid argument "{o["wipe_mode"]}" for "--wipe-mode" flag: possible options are: all, '
                           "system-disk, user-disks")
        if o["insecure"] and o["wait"]:
            raise CLIError("cannot use --wait and --insecure together")
        payload = {"graceful": o["graceful"], "reboot": o["reboot"], "mode": o["wipe_mode"],
                   "system_labels": o["system_labels_to_wipe"], "user_disks": o["user_disks_to_wipe"]}
        self._action("reset", payload, "error executing reset", reboots=o["reboot"])

    def cmd_upgrade(self) -> None:
        o = self.opts
        image = o["image"]
        if not image:
            self.client.info()
            image = f"ghcr.io/siderolabs/installer:{self.client.client_version}"
        payload = {"image": image, "stage": o["stage"], "force": o["force"], "reboot_mode": o["reboot_mode"]}
        self._action("upgrade", payload, "error performing upgrade", reboots=True)

    def cmd_reboot(self) -> None:
        self._action("reboot", {"mode": self.opts["mode"]}, "error executing reboot", reboots=True)

    def cmd_shutdown(self) -> None:
        self._action("shutdown", {"force": self.opts["force"]}, "error executing shutdown", reboots=False)
