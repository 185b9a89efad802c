"""``helm`` wrapper: reads run directly, installs and upgrades go through the executor."""

from __future__ import annotations

import json
import os

from .errors import HelmError, ParseError
from .execution import Executor


class Helm:
    def __init__(self, executor: Executor, binary: str, kubeconfig: str | None) -> None:
        self.executor = executor
        self.binary = binary
        self.kubeconfig = kubeconfig

    def _base(self) -> list[str]:
        argv = [self.binary]
        if self.kubeconfig:
            argv += ["--kubeconfig", os.path.expanduser(self.kubeconfig)]
        return argv

    def version(self) -> str:
        res = self.executor.run(self._base() + ["version", "--short"], step="helm version", target="cluster",
                                kind="helm", error=HelmError)
        assert res is not None
        return res.stdout.strip()

    def status(self, release: str, namespace: str) -> dict | None:
        """The release's status (``helm status -o json``), or None when it is not installed."""
        try:
            res = self.executor.run(self._base() + ["status", release, "--namespace", namespace, "-o", "json"],
                                    step="helm status", target=f"{namespace}/{release}", kind="helm", error=HelmError)
        except HelmError as err:
            if "not found" in err.stderr:
                return None
            raise
        assert res is not None
        try:
            return json.loads(res.stdout)
        except json.JSONDecodeError as exc:
            raise ParseError("helm", f"`helm status -o json` is not JSON: {exc.msg}") from None

    def deployed_version(self, release: str, namespace: str) -> str | None:
        """The chart version of the release when it is deployed; None when absent or not deployed."""
        status = self.status(release, namespace) or {}
        if status.get("info", {}).get("status") != "deployed":
            return None
        return status.get("chart", {}).get("metadata", {}).get("version")

    def upgrade_install(self, release: str, chart: str, *, namespace: str, version: str, values: dict[str, str],
                        step: str, timeout: str = "10m") -> bool:
        argv = self._base() + ["upgrade", "--install", release, chart, "--namespace", namespace, "--create-namespace",
                               "--version", version, "--wait", "--timeout", timeout]
        for key, value in values.items():
            argv += ["--set", f"{key}={value}"]
        res = self.executor.run(argv, step=step, target=f"{namespace}/{release}", kind="helm", mutating=True,
                                timeout=900, error=HelmError,
                                hint="check the chart reference and version, and that the cluster can pull it")
        return res is not None
