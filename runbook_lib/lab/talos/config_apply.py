"""Applying machine configuration to a node: modes, dry runs, install from maintenance mode."""

from __future__ import annotations

import copy
from collections.abc import Callable

from .constants import T_INSTALL, T_TRY_DEFAULT, VANILLA_INSTALLER
from .errors import TalosAPIError
from .go_yaml import dump_config
from .machine_config import config_diff, parse_config, strip_immediate, v1alpha1_doc, validate_config
from .node import TalosNode
from .resource_types import go_duration


class ConfigApplication:
    """Applying machine configuration to a node (a part of :class:`.cluster.TalosCluster`)."""

    def apply_config(self, node: TalosNode, text: str, mode: str, now: float, *, dry_run: bool = False,
                     insecure: bool = False, try_timeout: float = T_TRY_DEFAULT,
                     schematic_lookup: Callable[[str], list[str] | None] | None = None) -> dict:
        """``ApplyConfiguration`` (v1alpha1_server.go). Returns {mode, mode_details, warnings}."""
        self.require_up(node, now, insecure=insecure)
        docs = parse_config(text)
        if node.maintenance:
            return self._install(node, docs, now, dry_run=dry_run, schematic_lookup=schematic_lookup)
        if v1alpha1_doc(docs) is None:
            raise TalosAPIError("InvalidArgument", "the applied machine configuration doesn't contain v1alpha1 config, "
                                "did you mean to patch the machine config instead?")
        warnings = validate_config(docs, node.talos_version)
        current = node.config or []
        immediate_err = None
        if strip_immediate(v1alpha1_doc(current) or {}) != strip_immediate(v1alpha1_doc(docs) or {}):
            immediate_err = "this config change can't be applied in immediate mode\ndiff: " + config_diff(
                [strip_immediate(v1alpha1_doc(current) or {})], [strip_immediate(v1alpha1_doc(docs) or {})])
        details, suffix = "Applied configuration with a reboot", ""
        effective = mode
        if mode in ("try", "no-reboot"):
            if immediate_err:
                raise TalosAPIError("InvalidArgument", immediate_err)
            details = "Applied configuration without a reboot"
        elif mode == "staged":
            details = "Staged configuration to be applied after the next reboot"
        elif mode == "auto":
            if immediate_err:
                effective, suffix = "reboot", ": " + immediate_err
            else:
                effective, details = "no-reboot", "Applied configuration without a reboot"
        elif mode != "reboot":
            raise TalosAPIError("InvalidArgument", f"incorrect mode '{mode}' specified for the apply config call")
        if dry_run:
            diff = config_diff(current, docs) or "No changes."
            return {"mode": effective, "warnings": warnings,
                    "mode_details": f"Dry run summary:\n{details} (skipped in dry-run).\nConfig diff:\n\n{diff}"}
        if effective == "try":
            details += f"\nThe config is applied in 'try' mode and will be automatically reverted back in {go_duration(try_timeout)}"
            self._schedule(node, now + try_timeout, "rollback_config", config=copy.deepcopy(current),
                           expect=dump_config(docs))
            node.config = copy.deepcopy(docs)
            self._reconcile(node, now)
            self._load_modules(node)
        elif effective == "no-reboot":
            node.persisted = copy.deepcopy(docs)
            node.config = copy.deepcopy(docs)
            self._reconcile(node, now)
            self._load_modules(node)
        elif effective == "staged":
            node.persisted = copy.deepcopy(docs)
        else:
            node.persisted = copy.deepcopy(docs)
            self._start_reboot(node, now, "rebooting")
        self._touch(node, now)
        return {"mode": effective, "mode_details": details + suffix, "warnings": warnings}

    def _install(self, node: TalosNode, docs: list[dict], now: float, *, dry_run: bool,
                 schematic_lookup: Callable[[str], list[str] | None] | None) -> dict:
        """Maintenance mode: applying a config installs Talos to ``machine.install.disk`` and reboots."""
        machine = (v1alpha1_doc(docs) or {}).get("machine") or {}
        install = machine.get("install") or {}
        disk_path = install.get("disk")
        if v1alpha1_doc(docs) is None:
            raise TalosAPIError("InvalidArgument", "the applied machine configuration doesn't contain v1alpha1 config")
        if disk_path != node.system_disk.dev_path:
            raise TalosAPIError("InvalidArgument", f"install disk {disk_path!r} does not exist on this machine")
        image = str(install.get("image") or f"{VANILLA_INSTALLER}:{node.talos_version}")
        version, schematic, extensions = self._resolve_installer(image, schematic_lookup)
        validate_config(docs, version)
        if dry_run:
            return {"mode": "reboot", "warnings": [], "mode_details": "Dry run summary:\nApplied configuration "
                    "with a reboot (skipped in dry-run)."}
        node.stage = "installing"
        self._schedule(node, now + T_INSTALL, "install", config=copy.deepcopy(docs), version=version, image=image,
                       schematic=schematic, extensions=extensions)
        self._touch(node, now)
        return {"mode": "reboot", "warnings": [], "mode_details": "Applied configuration with a reboot"}
