"""``helm`` wrapper: reads run directly, installs and upgrades go through the executor."""

from __future__ import annotations

import json
import os

from .errors import HelmError, ParseError
from .execution import Executor
from .wire import Name, Text, WireModel, parse


class ReleaseInfo(WireModel):
    status: Text


class ChartMetadata(WireModel):
    version: Name


class Chart(WireModel):
    metadata: ChartMetadata | None = None


class Release(WireModel):
    """What we read of ``helm status -o json``: the release's status and its chart's version."""

    info: ReleaseInfo
    chart: Chart | None = None


def parse_status(text: str) -> dict:
    """``helm status -o json`` → the release object (``name``, ``info``, ``chart``...), checked.

    Raises :class:`ParseError` naming the field when the output is not a release: not JSON
    (truncated, or a warning printed into stdout), not an object, or ``info.status`` missing.
    """
    try:
        release = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError("helm", f"`helm status -o json` is not JSON: {exc.msg} at line {exc.lineno}, "
                         f"column {exc.colno}") from None
    except RecursionError:
        raise ParseError("helm", "`helm status -o json` is nested too deeply to be a release") from None
    parse("helm", Release, release)
    return release


def deployed_chart_version(release: dict) -> str | None:
    """The chart version of a parsed release when its status is ``deployed``, else None."""
    model = parse("helm", Release, release)
    if model.info.status != "deployed":
        return None
    if model.chart is None:
        raise ParseError("helm", "chart: expected an object", field="chart")
    if model.chart.metadata is None:
        raise ParseError("helm", "chart.metadata: expected an object", field="chart.metadata")
    return model.chart.metadata.version


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
        return parse_status(res.stdout)

    def deployed_version(self, release: str, namespace: str) -> str | None:
        """The chart version of the release when it is deployed; None when absent or not deployed."""
        status = self.status(release, namespace)
        return None if status is None else deployed_chart_version(status)

    def upgrade_install_argv(self, release: str, chart: str, *, namespace: str, version: str,
                             values: dict[str, str], timeout: str = "10m") -> list[str]:
        """The ``helm upgrade --install`` command line :meth:`upgrade_install` runs (and a step records
        when it finds the release already at ``version``, so the record names the command it would run)."""
        argv = self._base() + ["upgrade", "--install", release, chart, "--namespace", namespace, "--create-namespace",
                               "--version", version, "--wait", "--timeout", timeout]
        for key, value in values.items():
            argv += ["--set", f"{key}={value}"]
        return argv

    def upgrade_install(self, release: str, chart: str, *, namespace: str, version: str, values: dict[str, str],
                        step: str, timeout: str = "10m") -> bool:
        argv = self.upgrade_install_argv(release, chart, namespace=namespace, version=version, values=values,
                                         timeout=timeout)
        res = self.executor.run(argv, step=step, target=f"{namespace}/{release}", kind="helm", mutating=True,
                                timeout=900, error=HelmError,
                                hint="check the chart reference and version, and that the cluster can pull it")
        return res is not None
