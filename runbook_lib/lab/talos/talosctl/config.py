"""talosctl apply-config and patch machineconfig: local patches, modes, dry runs, warnings."""

from __future__ import annotations

from ..errors import TalosAPIError
from ..go_yaml import dump_config
from ..machine_config import apply_config_patches, parse_config
from ..resource_types import resolve_resource_type
from .commands import CLIError
from .session import Talosctl
from .transport import append_errors, node_path


class ConfigCommands(Talosctl):
    """talosctl apply-config and patch machineconfig."""

    def _apply(self, node: str, text: str, mode: str, dry_run: bool, insecure: bool = False) -> dict:
        try:
            return self.client.call("POST", node_path(node, "apply-config"), {
                "data": text, "mode": mode, "dry_run": dry_run, "insecure": insecure,
                "try_timeout": self.opts["timeout"]})
        except TalosAPIError as e:
            raise CLIError(f"error applying new configuration: {e.grpc()}") from None

    def _print_apply(self, resp: dict) -> None:
        for w in resp.get("warnings") or []:
            self.err(f"WARNING: {w}\n")
        if resp.get("mode_details"):
            self.err(resp["mode_details"] + "\n")

    def cmd_apply_config(self) -> None:
        o = self.opts
        if not o["file"]:
            raise CLIError("no filename supplied for configuration")
        if o["mode"] not in ("auto", "no-reboot", "reboot", "staged", "try"):
            raise CLIError(f'invalid argument "{o["mode"]}" for "-m, --mode" flag: possible options are: auto, '
                           "no-reboot, reboot, staged, try")
        try:
            with open(o["file"]) as fh:
                text = fh.read()
        except OSError as exc:
            raise CLIError(f"failed to read configuration from {o['file']!r}: {exc.strerror}") from None
        if o["config_patch"]:
            text = dump_config(apply_config_patches(parse_config(text), [_read_patch(p) for p in o["config_patch"]]))
        errors = []
        for node in self.nodes():
            try:
                self._print_apply(self._apply(node, text, o["mode"], o["dry_run"], o["insecure"]))
            except CLIError as e:
                errors.append(e.message)
        if errors:
            raise CLIError(errors[0] if len(errors) == 1 else append_errors(errors))

    def cmd_patch(self) -> None:
        o = self.opts

        if resolve_resource_type(self.args[0]) != "MachineConfigs.config.talos.dev":
            raise CLIError(f"patching {self.args[0]!r} is not supported: only machineconfig can be patched")
        patches = [_read_patch(p) for p in o["patch"]]
        if o["patch_file"]:
            patches.append(_read_patch("@" + o["patch_file"]))
        if not patches:
            raise CLIError("either --patch or --patch-file must be specified")
        errors = []
        for node in self.nodes():
            try:
                data = self.client.call("GET", node_path(node, "resources/MachineConfigs.config.talos.dev/v1alpha1"))
                current = parse_config(data["items"][0]["spec"])
                try:
                    patched = apply_config_patches(current, patches)
                except ValueError as exc:
                    raise CLIError(str(exc)) from None
                resp = self._apply(node, dump_config(patched), o["mode"], o["dry_run"])
                if not o["dry_run"]:
                    self.out(f"patched MachineConfigs.config.talos.dev/v1alpha1 at the node {node}\n")
                self._print_apply(resp)
            except TalosAPIError as e:
                errors.append(e.grpc())
            except CLIError as e:
                errors.append(e.message)
        if errors:
            raise CLIError(errors[0] if len(errors) == 1 else append_errors(errors))


def _read_patch(spec: str) -> str:
    if spec.startswith("@"):
        try:
            with open(spec[1:]) as fh:
                return fh.read()
        except OSError as exc:
            raise CLIError(f"open {spec[1:]}: {exc.strerror.lower() if exc.strerror else exc}") from None
    return spec
