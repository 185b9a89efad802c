"""The charts the lab's OCI registry serves: one table entry per chart (reference, versions, manifests, metadata)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..storage import chart as piraeus
from ..storage import snapshot_chart


@dataclass(frozen=True)
class Chart:
    name: str
    ref: str  # oci://...
    versions: tuple[str, ...]
    render: Callable[[str, str, str, dict], list[dict]]  # (release, namespace, version, values) -> manifests
    notes: Callable[[dict], str]
    description: str
    home: str
    sources: list[str]
    app_version: Callable[[str], str]
    values: dict = field(default_factory=dict)  # the chart's default values (helm show values, release.chart.values)

    def newest(self) -> str:
        return max(self.versions, key=lambda v: tuple(int(x) for x in v.split(".")))


CHARTS = (
    Chart(name=piraeus.CHART_NAME, ref=piraeus.CHART_REF, versions=tuple(piraeus.CHART_VERSIONS),
          render=piraeus.render_chart, notes=piraeus.chart_notes,
          description="The Piraeus Operator manages software defined storage clusters using LINSTOR in Kubernetes.",
          home="https://piraeus.io", sources=["https://github.com/piraeusdatastore/piraeus-operator"],
          app_version=lambda version: f"v{version}",
          values={"installCRDs": False, "replicaCount": 1, "operator": {"options": {}, "resources": {}}, "tls": {},
                  "nodeSelector": {}, "tolerations": []}),
    Chart(name=snapshot_chart.CHART_NAME, ref=snapshot_chart.CHART_REF, versions=tuple(snapshot_chart.CHART_VERSIONS),
          render=snapshot_chart.render_chart, notes=lambda values: "",
          description="Deploys a Snapshot Controller in a cluster. Snapshot Controllers are often bundled with the "
                      "Kubernetes distribution, this chart is meant for cases where it is not.",
          home="https://github.com/piraeusdatastore/helm-charts",
          sources=["https://github.com/kubernetes-csi/external-snapshotter"],
          app_version=lambda version: snapshot_chart.CHART_VERSIONS[version],
          values={"controller": {"enabled": True, "replicaCount": 1}, "installCRDs": True}),
)


def by_name(name: str) -> Chart:
    return next(c for c in CHARTS if c.name == name)


def by_location(location: str) -> Chart | None:
    """The chart at an OCI location (the reference without ``oci://`` and tag)."""
    return next((c for c in CHARTS if c.ref.removeprefix("oci://") == location), None)
