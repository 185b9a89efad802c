"""The shell runner: the few shell commands runbooks run in throw-away pods (wipefs, umount, sleep, echo...)."""

from __future__ import annotations

import re
import shlex

from ..cluster import Lab
from .node_facts import node_facts, set_block_signature
from .state import RunResult
from .volume_data import volume_command


class ShellRunner:
    """Interprets the few shell commands runbooks run in throw-away pods.

    ``wipefs -a DEV`` clears the signature of DEV on the pod's node (privileged containers
    see host devices; a mounted device is busy, as ``wipefs`` opens it exclusively),
    ``umount /host/var/mnt/X`` releases a Talos user-volume mount, ``sleep N`` lasts N lab
    seconds, ``echo``/``true``/``false``/``exit N`` do what they say, package installs and
    ``rm`` succeed. A script stops at the first failing command unless it is followed by
    ``|| true`` (``set -e``-like, which is what the article's scripts rely on).
    """

    def run(self, lab: Lab, pod: dict, container: dict, node: str, now: float) -> RunResult | None:
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        if not argv:
            return None
        script = argv[-1] if argv[0] in ("sh", "/bin/sh", "bash", "/bin/bash") and "-c" in argv else shlex.join(argv)
        privileged = bool((container.get("securityContext") or {}).get("privileged"))
        out: list[str] = []
        duration = 0.5
        for raw in re.split(r"\n|;|&&", script):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            tolerant = bool(re.search(r"\|\|\s*true\s*$", line))
            line = re.sub(r"\|\|\s*true\s*$", "", line).strip()
            line = re.sub(r"\s*2>\s*/dev/null", "", line)
            try:
                words = shlex.split(line)
            except ValueError:
                words = line.split()
            if not words:
                continue
            code, text, took = self._command(lab, words, node, privileged, pod, container)
            duration += took
            if text:
                out.append(text)
            if code != 0 and not tolerant:
                return RunResult(code, "\n".join(out), duration)
            if words[0] == "exit":
                return RunResult(code, "\n".join(out), duration)
        return RunResult(0, "\n".join(out), duration)

    def _command(self, lab: Lab, words: list[str], node: str, privileged: bool, pod: dict, container: dict) -> tuple[int, str, float]:
        cmd, args = words[0].rsplit("/", 1)[-1], words[1:]
        handled = volume_command(lab, pod, container, cmd, args)  # echo > file, dd, cat, sha256sum on a mounted PVC
        if handled is not None:
            return handled
        if cmd == "sleep":
            if args and args[0] == "infinity":
                return 0, "", 10**9
            try:
                return 0, "", float(args[0].rstrip("s")) if args else 0.0
            except ValueError:
                return 1, f"sleep: invalid time interval '{args[0]}'", 0.0
        if cmd in ("echo", "printf"):
            return 0, " ".join(args), 0.0
        if cmd in ("true", "apk", "apt-get", "rm", "mkdir", "set", "sync", "cat", "ls"):
            return 0, "", 0.5 if cmd in ("apk", "apt-get") else 0.0
        if cmd == "false":
            return 1, "", 0.0
        if cmd == "exit":
            return int(args[0]) if args and args[0].isdigit() else 0, "", 0.0
        if cmd == "umount":
            target = next((a for a in args if not a.startswith("-")), "")
            m = re.search(r"(/var/mnt/[^/]+)/?$", target)
            if not m:
                return 32, f"umount: {target}: not mounted.", 0.0
            lst = lab.workloads.state.unmounted.setdefault(node, [])
            if m.group(1) not in lst:
                lst.append(m.group(1))
            return 0, "", 0.0
        if cmd == "wipefs":
            return self._wipefs(lab, args, node, privileged)
        return 0, "", 0.0

    def _wipefs(self, lab: Lab, args: list[str], node: str, privileged: bool) -> tuple[int, str, float]:
        wipe_all = any(a in ("-a", "--all") for a in args) or any(re.fullmatch(r"-[a-zA-Z]*a[a-zA-Z]*", a) for a in args)
        devices = [a for a in args if a.startswith("/dev/")]
        if not devices:
            return 1, "wipefs: bad usage", 0.0
        facts = node_facts(lab, node)
        lines = []
        for dev in devices:
            if facts is None or not privileged or dev not in facts.partitions:
                # an unprivileged container only sees its own /dev
                return 1, f"wipefs: error: {dev}: probing initialization failed: No such file or directory", 0.0
            if dev in facts.mounted and "--force" not in args and "-f" not in args:
                return 1, f"wipefs: error: {dev}: probing initialization failed: Device or resource busy", 0.0
            sig = facts.partitions[dev]
            if not wipe_all or sig is None:
                if sig:
                    lines.append(f"DEVICE {dev} OFFSET 0x0 TYPE {sig}")
                continue
            set_block_signature(lab, node, dev, None)
            magic = {"xfs": ("0x0", "58 46 53 42"), "ext4": ("0x438", "53 ef"), "zfs_member": ("0x3f000", "0c b1 ba 00 00 00 00 00"),
                     "LVM2_member": ("0x218", "4c 56 4d 32 20 30 30 31")}.get(sig, ("0x0", "00"))
            lines.append(f"{dev}: {len(magic[1].split())} bytes were erased at offset {magic[0]} ({sig}): {magic[1]}")
        return 0, "\n".join(lines), 0.2
