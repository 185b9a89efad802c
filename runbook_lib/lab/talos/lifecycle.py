"""Node lifecycle of the Talos cluster: faults, scheduled events, boot, reboot, shutdown, reset, upgrade."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .constants import (
    EXTENSION_CATALOG,
    IN_TREE_MODULES,
    MODULE_SIZES,
    T_BOOT,
    T_DRAIN,
    T_INSTALL,
    T_POWER_CYCLE,
    T_SHUTDOWN,
)
from .errors import TalosAPIError
from .go_yaml import dump_config
from .gpt import install_system_partitions
from .images import parse_installer_image
from .machine_config import v1alpha1_doc
from .node import TalosNode
from .releases import TALOS_VERSIONS, parse_version
from .seeded import _Rand


class NodeLifecycle:
    """Node lifecycle of the Talos cluster (a part of :class:`.cluster.TalosCluster`)."""

    # -- time
    def advance(self, now: float, faults: Any) -> bool:
        """Apply faults and every scheduled event due by ``now``. Returns True when anything changed."""
        changed = False
        for node in self.nodes.values():
            changed |= self._apply_faults(node, now, faults)
        # Due events of every node in time order (not node by node): one tick may span several lab
        # seconds, and an event on one node (etcd leaving) must not be seen after a later one elsewhere.
        while due := [n for n in self.nodes.values() if n.schedule and n.schedule[0]["at"] <= now]:
            node = min(due, key=lambda n: n.schedule[0]["at"])
            self._run_event(node, node.schedule.pop(0), faults)
            changed = True
        for node in self.nodes.values():
            changed |= self._etcd_rejoin(node, now)
        return changed

    def _apply_faults(self, node: TalosNode, now: float, faults: Any) -> bool:
        down = faults.has("node-down", node.name) if faults is not None else False
        if down and not node.fault_down:
            node.fault_down, node.power, node.api, node.schedule = True, False, False, []
            node.down_at = now
            node.stuck = False
            node.log.append(f"{self.ts(now)} power lost (node-down fault)")
            return True
        if not down and node.fault_down:
            node.fault_down, node.power = False, True
            node.stage = "booting"
            self._schedule(node, now + 10.0, "boot")
            return True
        stuck_fault = faults.has("stuck-reboot", node.name) if faults is not None else False
        if node.stuck and not stuck_fault:
            node.stuck = False
            self._schedule(node, now, "boot")
            return True
        return False

    def _schedule(self, node: TalosNode, at: float, event: str, **args: Any) -> None:
        node.schedule.append({"at": at, "event": event, **args})
        node.schedule.sort(key=lambda e: e["at"])

    def _run_event(self, node: TalosNode, ev: dict, faults: Any) -> None:
        at = ev["at"]
        kind = ev["event"]
        if kind == "leave_etcd":
            node.etcd_member, node.etcd_data = False, False
        elif kind == "go_down":
            self._go_down(node, ev, at)
        elif kind == "boot":
            if faults is not None and faults.has("stuck-reboot", node.name):
                node.stuck, node.stage, node.api = True, "rebooting", False
                node.log.append(f"{self.ts(at)} reboot did not complete (stuck-reboot fault)")
                return
            self._boot(node, at)
        elif kind == "running":
            node.stage, node.running_at = "running", at
            node.cordoned = False  # Talos uncordons the node it cordoned once it is back
            self._touch(node, at)
        elif kind == "install":
            disk = node.system_disk
            install_system_partitions(disk, ev["version"], self.seed, f"{node.name}:{self.counter}")
            self.counter += 1
            node.persisted = ev["config"]
            node.talos_version, node.installer_image = ev["version"], ev["image"]
            node.schematic, node.extensions = ev["schematic"], ev["extensions"]
            self._schedule(node, at, "go_down", then="boot")
        elif kind == "rollback_config" and node.config is not None and dump_config(node.config) == ev["expect"]:
            node.config = ev["config"]
            node.persisted = copy.deepcopy(ev["config"])
            self._reconcile(node, at)
            self._load_modules(node)
        self._touch(node, at)

    def _go_down(self, node: TalosNode, ev: dict, at: float) -> None:
        wipe = ev.get("wipe")
        if wipe:
            self._perform_wipe(node, wipe)
        node.api = False
        node.down_at = at
        if ev.get("then") == "off":
            node.power = False
            return
        self._schedule(node, at + T_POWER_CYCLE, "boot")

    def _boot(self, node: TalosNode, at: float) -> None:
        node.power, node.api, node.stuck = True, True, False
        node.boot_id = self._uuid(f"boot:{node.name}")
        node.boot_count += 1
        node.booted_at, node.running_at = at, None
        node.res_meta = {}
        node.volumes = {}
        if node.pending_upgrade:
            up = node.pending_upgrade
            node.upgraded_boot = node.boot_count
            node.talos_version, node.installer_image = up["version"], up["image"]
            node.schematic, node.extensions = up["schematic"], list(up["extensions"])
            node.pending_upgrade = None
        state = node.system_disk.by_label("STATE")
        if state is None or state.filesystem != "xfs" or node.persisted is None:
            # no installed system (or its STATE is gone): the node boots the ISO/PXE image into maintenance
            node.config, node.persisted = None, None
            node.stage, node.modules = "maintenance", []
            node.log.append(f"{self.ts(at)} entering maintenance mode: no machine configuration")
            return
        node.config = copy.deepcopy(node.persisted)
        node.stage = "booting"
        node.modules = []
        self._load_modules(node)
        self._reconcile(node, at)
        if node.role == "controlplane" and node.etcd_member and not node.etcd_data:
            node.log.append(f"{self.ts(at)} etcd: failed to start: member {node.etcd_member_id} is still part of "
                            "the cluster but its data directory /var/lib/etcd is empty")
        self._schedule(node, at + T_BOOT, "running")
        self._touch(node, at)

    # -- module loading (KernelModuleSpecController: modprobe at boot and when the config changes)
    def _load_modules(self, node: TalosNode) -> None:
        if node.config is None:
            return
        machine = (v1alpha1_doc(node.config) or {}).get("machine") or {}
        wanted = ((machine.get("kernel") or {}).get("modules")) or []
        shipped = {m: ext for ext in node.extensions for m in EXTENSION_CATALOG.get(ext, {}).get("modules", ())}
        for entry in wanted:
            name = str(entry.get("name", ""))
            if not name or node.loaded_module(name):
                continue  # parameters of a loaded module only change at the next boot
            if name not in shipped and name not in IN_TREE_MODULES:
                node.log.append(f'error loading module "{name}": module not found')
                continue
            r = _Rand(self.seed, f"module:{node.name}:{name}:{node.boot_count}")
            node.modules.append({"name": name, "parameters": [str(p) for p in entry.get("parameters") or []],
                                 "size": MODULE_SIZES.get(name, 16384), "address": "0xffffffffc0" + r.hex(3) + "000",
                                 "out_of_tree": name in shipped})

    def _start_reboot(self, node: TalosNode, now: float, stage: str, *, delay: float = T_SHUTDOWN,
                      wipe: dict | None = None, then: str = "boot") -> None:
        node.stage = stage
        node.schedule = [e for e in node.schedule if e["event"] == "rollback_config"]
        self._schedule(node, now + delay, "go_down", wipe=wipe, then=then)

    def reboot(self, node: TalosNode, now: float, mode: str = "default") -> str:
        self.require_up(node, now)
        if mode not in ("default", "powercycle", "force"):
            raise TalosAPIError("InvalidArgument", f"unknown reboot mode {mode!r}")
        actor = self._new_action(node, "reboot", now)
        self._start_reboot(node, now, "rebooting")
        self._touch(node, now)
        return actor

    def shutdown(self, node: TalosNode, now: float, force: bool = False) -> str:
        self.require_up(node, now)
        actor = self._new_action(node, "shutdown", now)
        self._start_reboot(node, now, "shutting down", then="off")
        self._touch(node, now)
        return actor

    def power_on(self, node: TalosNode, now: float) -> None:
        """Press the power button of a node that was shut down (lab control, not a Talos API)."""
        if node.power or node.fault_down:
            return
        node.power = True
        node.stage = "booting"
        self._schedule(node, now + 10.0, "boot")

    def reset(self, node: TalosNode, graceful: bool, reboot: bool, wipe_mode: str, system_labels: list[str],
              user_disks: list[str], now: float) -> str:
        """``MachineService.Reset`` validation, then the reset sequence on the timeline. Returns the actor ID."""
        self.require_up(node, now)
        mode = {"all": "ALL", "system-disk": "SYSTEM_DISK", "user-disks": "USER_DISKS"}.get(wipe_mode, wipe_mode)
        if mode not in ("ALL", "SYSTEM_DISK", "USER_DISKS"):
            raise TalosAPIError("InvalidArgument", f"unknown wipe mode {wipe_mode!r}")
        disks = {d.dev_path: d for d in node.disks}
        if user_disks:
            if mode == "SYSTEM_DISK":
                raise TalosAPIError("Unknown", "reset failed: invalid input, wipe mode SYSTEM_DISK doesn't support "
                                    "UserDisksToWipe parameter")
            for dev in user_disks:
                if dev not in disks:
                    raise TalosAPIError("Unknown", f"reset user disk failed: device {dev} wasn't found")
                if disks[dev].readonly:
                    raise TalosAPIError("Unknown", f"reset user disk failed: device {dev} is readonly")
                if dev == node.system_disk.dev_path:
                    raise TalosAPIError("Unknown", f"reset user disk failed: device {dev} is the system disk")
        targets = []
        if system_labels:
            if mode == "USER_DISKS":
                raise TalosAPIError("Unknown", "reset failed: invalid input, wipe mode USER_DISKS doesn't support "
                                    "SystemPartitionsToWipe parameter")
            for label in system_labels:
                st = node.volumes.get(label)
                if st is None:
                    raise TalosAPIError("Unknown", f'failed to get volume status with label "{label}": resource '
                                        f"VolumeStatuses.block.talos.dev(runtime/{label}@undefined) doesn't exist")
                if not st.get("location"):
                    raise TalosAPIError("Unknown", f'failed to reset: volume "{label}" is not located')
                targets.append({"label": label, "location": st["location"]})
        wipe = {"labels": targets, "system_disk": mode != "USER_DISKS" and not system_labels,
                "user_disks": list(user_disks), "drop": parse_version(node.talos_version)[:2] >= (1, 12)}
        actor = self._new_action(node, "reset", now)
        node.stage = "resetting"
        node.schedule = []
        delay = T_SHUTDOWN
        if graceful:
            node.cordoned = True
            delay += T_DRAIN
            if node.role != "worker" and node.etcd_member and len(self.etcd_members()) == 1:
                # the sequencer's LeaveEtcd task fails: a single member cannot leave its own cluster
                node.actions[actor]["error"] = ("sequence: reset error: task 2/3: failed, failed to leave etcd: "
                                                "cannot leave etcd cluster: it has only one member")
                node.stage = "running"
                node.cordoned = False
                self._touch(node, now)
                return actor
        self._start_reboot(node, now, "resetting", delay=delay, wipe=wipe, then="boot" if reboot else "off")
        if graceful and node.role != "worker" and node.etcd_member:
            self._schedule(node, now + T_DRAIN, "leave_etcd")
        self._touch(node, now)
        return actor

    def _perform_wipe(self, node: TalosNode, wipe: dict) -> None:
        sysdisk = node.system_disk
        for target in wipe.get("labels", []):
            found = node.partition_by_path(target["location"])
            if found is None:
                continue
            disk, part = found
            if target["label"] == "EPHEMERAL":
                node.etcd_data = False  # /var/lib/etcd lives on EPHEMERAL
            if target["label"] == "STATE":
                node.persisted = None
            if wipe.get("drop"):
                disk.drop(part)  # v1.12+: WipeWithSignatures, then dropWithParentLocked
            else:
                part.filesystem, part.fs_uuid, part.fs_label = "", "", ""  # v1.10/v1.11: FastWipe only
        if wipe.get("system_disk"):
            sysdisk.wipe_all()
            node.persisted, node.etcd_data = None, False
        for dev in wipe.get("user_disks", []):
            for disk in node.disks:
                if disk.dev_path == dev:
                    disk.wipe_all()

    def _resolve_installer(self, image: str, lookup: Callable[[str], list[str] | None] | None
                           ) -> tuple[str, str | None, list[str]]:
        try:
            version, schematic = parse_installer_image(image)
        except ValueError as exc:
            raise TalosAPIError("Unknown", f'error validating installer image "{image}": {exc}') from None

        not_found = TalosAPIError("Unknown", f'error validating installer image "{image}": failed to resolve '
                                  f'reference "{image}": {image}: not found')
        if version not in TALOS_VERSIONS:
            raise not_found  # no such release: neither ghcr.io nor the factory has that tag
        if schematic is None:
            return version, None, []
        extensions = lookup(schematic) if lookup else None
        if extensions is None:
            raise not_found
        return version, schematic, list(extensions)

    def upgrade(self, node: TalosNode, image: str, now: float, *, stage: bool = False, force: bool = False,
                schematic_lookup: Callable[[str], list[str] | None] | None = None) -> str:
        """``MachineService.Upgrade``: validate the image and etcd, then install to the other slot and reboot."""
        self.require_up(node, now)
        version, schematic, extensions = self._resolve_installer(image, schematic_lookup)
        if node.role != "worker" and not force:
            for other in self.etcd_members():
                if not other.etcd_running(now):
                    raise TalosAPIError("Unknown", f"error validating etcd for upgrade: etcd member "
                                        f"{other.etcd_member_id} is not healthy; all members must be healthy to "
                                        "perform an upgrade")
        actor = self._new_action(node, "upgrade", now)
        node.pending_upgrade = {"version": version, "image": image, "schematic": schematic, "extensions": extensions,
                                "staged": stage}
        node.cordoned = True
        self._start_reboot(node, now, "upgrading", delay=T_DRAIN + T_INSTALL)
        self._touch(node, now)
        return actor
