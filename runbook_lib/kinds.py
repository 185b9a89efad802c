"""Typed Kubernetes resource definitions: kind, apiVersion, plural and scope, and the REST paths they give.

One definition per kind the runbooks read or write (lightkube's ``resource`` modules are the model),
so no module spells a REST path by hand and the apply path of a manifest needs no discovery round
trip. A leaf module: it imports nothing of the library.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import RunbookError


@dataclass(frozen=True)
class Kind:
    kind: str
    api_version: str  # "v1" for the core group, else "group/version"
    plural: str
    namespaced: bool

    @property
    def group_version_path(self) -> str:
        """The discovery document of the kind's group version (``/api/v1``, ``/apis/apps/v1``)."""
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"

    def collection(self, namespace: str | None = None) -> str:
        """The list path: in ``namespace``, or across all namespaces (and for cluster-scoped kinds) when None."""
        if namespace is not None and not self.namespaced:
            raise RunbookError(f"{self.kind} is cluster-scoped: it has no namespace {namespace!r}")
        ns = f"/namespaces/{namespace}" if namespace is not None else ""
        return f"{self.group_version_path}{ns}/{self.plural}"

    def path(self, name: str, namespace: str | None = None) -> str:
        """The object path; a namespaced kind needs its namespace."""
        if self.namespaced and namespace is None:
            raise RunbookError(f"{self.kind} {name}: a namespaced kind needs a namespace")
        return f"{self.collection(namespace if self.namespaced else None)}/{name}"


NAMESPACE = Kind("Namespace", "v1", "namespaces", False)
NODE = Kind("Node", "v1", "nodes", False)
POD = Kind("Pod", "v1", "pods", True)
EVENT = Kind("Event", "v1", "events", True)
SERVICE = Kind("Service", "v1", "services", True)
CONFIG_MAP = Kind("ConfigMap", "v1", "configmaps", True)
PERSISTENT_VOLUME_CLAIM = Kind("PersistentVolumeClaim", "v1", "persistentvolumeclaims", True)
JOB = Kind("Job", "batch/v1", "jobs", True)
DEPLOYMENT = Kind("Deployment", "apps/v1", "deployments", True)
LEASE = Kind("Lease", "coordination.k8s.io/v1", "leases", True)
STORAGE_CLASS = Kind("StorageClass", "storage.k8s.io/v1", "storageclasses", False)
LINSTOR_CLUSTER = Kind("LinstorCluster", "piraeus.io/v1", "linstorclusters", False)
LINSTOR_SATELLITE_CONFIGURATION = Kind("LinstorSatelliteConfiguration", "piraeus.io/v1",
                                       "linstorsatelliteconfigurations", False)
VOLUME_SNAPSHOT_CLASS = Kind("VolumeSnapshotClass", "snapshot.storage.k8s.io/v1", "volumesnapshotclasses", False)
VOLUME_SNAPSHOT = Kind("VolumeSnapshot", "snapshot.storage.k8s.io/v1", "volumesnapshots", True)
VOLUME_SNAPSHOT_CONTENT = Kind("VolumeSnapshotContent", "snapshot.storage.k8s.io/v1", "volumesnapshotcontents", False)

ALL: tuple[Kind, ...] = (
    NAMESPACE, NODE, POD, EVENT, SERVICE, CONFIG_MAP, PERSISTENT_VOLUME_CLAIM, JOB, DEPLOYMENT, LEASE,
    STORAGE_CLASS, LINSTOR_CLUSTER, LINSTOR_SATELLITE_CONFIGURATION, VOLUME_SNAPSHOT_CLASS, VOLUME_SNAPSHOT,
    VOLUME_SNAPSHOT_CONTENT,
)
_BY_TYPE = {(k.api_version, k.kind): k for k in ALL}


def of(manifest: dict) -> Kind:
    """The definition of the kind a manifest describes."""
    key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
    if key not in _BY_TYPE:
        raise RunbookError(f"no API mapping for {key[1]} ({key[0]}): add a Kind for it to runbook_lib.kinds")
    return _BY_TYPE[key]


def object_path(manifest: dict) -> str:
    """REST path of the object a manifest describes (a namespaced one without a namespace is in ``default``)."""
    kind = of(manifest)
    meta = manifest.get("metadata", {})
    return kind.path(meta["name"], meta.get("namespace", "default") if kind.namespaced else None)


def service_proxy(namespace: str, service: str) -> str:
    """The API server's proxy path to a Service (``service`` may carry a scheme and port: ``https:name:3371``)."""
    return f"{SERVICE.path(service, namespace)}/proxy"
