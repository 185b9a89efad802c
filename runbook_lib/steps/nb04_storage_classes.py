"""Notebook 04: the ``local`` and ``replicated`` StorageClasses, each proven by a test volume.

Parameters are checked with linstor-csi's own rules before anything is applied
(linstor-csi ``pkg/volume/parameter.go``): keys in the ``linstor.csi.linbit.com/`` namespace
are matched case-insensitively against the known set, values are strings (numbers quoted),
lists are space-separated; ``property.linstor.csi.linbit.com/<prop>`` sets a LINSTOR property
on the class's resource group.

DRBD options: LINSTOR's auto-quorum property is not functional since LINSTOR 1.31, so the
replicated class sets ``DrbdOptions/Resource/on-no-quorum: suspend-io`` explicitly (a primary
that loses quorum freezes I/O instead of failing it); quorum itself is on by default for
three or more replicas, and Piraeus sets ``on-no-data-accessible``, ``rr-conflict`` and
``on-suspended-primary-outdated`` cluster-wide.
"""

from __future__ import annotations

import pandas as pd

from .. import kinds, kube, manifests
from ..csi import PROVISIONER
from ..errors import PreconditionFailed
from ..linstor import resources_frame, storage_pools_frame
from ..services.clients import linstor
from ..services.objects import apply, create, delete
from ..session import Session
from ..sizes import parse_size
from ..waiting import wait_until

DEFAULT_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
CSI_KEYS = {
    "autoplace", "placementcount", "storagepool", "disklessstoragepool", "layerlist", "placementpolicy",
    "allowremotevolumeaccess", "encryption", "nodelist", "clientlist", "replicasonsame", "replicasondifferent",
    "xreplicasondifferent", "disklessonremaining", "donotplacewithregex", "fsopts", "mountopts",
    "postmountxfsopts", "resourcegroup", "usepvcname", "overprovision", "sizekib", "nfsconfigtemplate",
    "nfsservicename", "nfssquash", "nfsrecoveryvolumesize",
}
LAYERS = {"drbd", "storage", "luks", "nvme", "cache", "writecache"}
TEST_IMAGE = "docker.io/library/busybox:1.37"


def storage_class(name: str, pool: str, *, replicas: int, layers: str, binding: str, default: bool,
                  extra: dict[str, str] | None = None) -> dict:
    params = {
        f"{PROVISIONER}/storagePool": pool,
        f"{PROVISIONER}/placementCount": str(replicas),
        f"{PROVISIONER}/layerList": layers,
        **(extra or {}),
    }
    sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
          "provisioner": PROVISIONER, "parameters": params, "reclaimPolicy": "Delete",
          "volumeBindingMode": binding, "allowVolumeExpansion": True}
    if default:
        sc["metadata"]["annotations"] = {DEFAULT_ANNOTATION: "true"}
    return sc


def classes(session: Session) -> list[dict]:
    pool = session.params.storage.pool_name
    return [
        # Local: one replica, no DRBD layer: the fastest class, lost with its node.
        storage_class("local", pool, replicas=1, layers="storage", binding="WaitForFirstConsumer", default=True),
        # Replicated: three replicas behind DRBD, usable from any node, provisioned right away.
        storage_class("replicated", pool, replicas=3, layers="drbd storage", binding="Immediate", default=False,
                      extra={f"{PROVISIONER}/allowRemoteVolumeAccess": "true",
                             f"property.{PROVISIONER}/DrbdOptions/Resource/on-no-quorum": "suspend-io"}),
    ]


# LINSTOR properties that no longer do anything; a class that sets them is a mistake.
DEFUNCT_PROPERTIES = {"auto-quorum": "not functional since LINSTOR 1.31; use DrbdOptions/Resource/on-no-quorum"}
BOOLEAN_KEYS = {"encryption", "usepvcname", "disklessonremaining"}


def check_parameters(sc: dict) -> list[str]:
    """What linstor-csi would reject in ``sc``'s parameters, named by class and key."""
    name = sc["metadata"]["name"]
    problems = []
    for key, value in (sc.get("parameters") or {}).items():
        where = f"StorageClass {name}: {key}"
        if not isinstance(value, str):
            problems.append(f"{where}: value must be a string (quote numbers and booleans)")
            continue
        prop = key.split("/", 1)[1] if key.startswith((f"property.{PROVISIONER}/", "DrbdOptions/")) else None
        if key.startswith("DrbdOptions/"):
            prop = key
        if prop is not None:
            defunct = DEFUNCT_PROPERTIES.get(prop.removeprefix("DrbdOptions/"))
            if defunct:
                problems.append(f"{where}: {defunct}")
            continue
        if "/" in key and not key.startswith(f"{PROVISIONER}/"):
            continue  # other namespaces (csi.storage.k8s.io/...) are not linstor-csi's business
        short = key.rsplit("/", 1)[-1].lower()
        if short not in CSI_KEYS:
            problems.append(f"{where}: invalid parameter (not a linstor-csi key)")
        elif short in ("placementcount", "autoplace") and not value.isdigit():
            problems.append(f"{where}: must be a whole number in quotes")
        elif short == "layerlist" and (not value or any(layer not in LAYERS for layer in value.split(" "))):
            problems.append(f"{where}: a space-separated list of {sorted(LAYERS)}")
        elif short in BOOLEAN_KEYS and value.lower() not in ("true", "false"):
            problems.append(f"{where}: must be \"true\" or \"false\"")
    return problems


def require_linstor(session: Session) -> None:
    """Stop before the first change when 03 has not run: no LINSTOR, or no storage pool on a node.

    In plan mode the gap is only reported, so a plan of the whole suite on a fresh cluster still renders.
    """
    pool = session.params.storage.pool_name
    ns = session.params.piraeus.namespace
    missing = None
    if kube.get_object(session.kube(), kinds.DEPLOYMENT.path("linstor-controller", ns)) is None:
        missing = f"LINSTOR is not installed (no Deployment {ns}/linstor-controller)"
    else:
        pools = storage_pools_frame(linstor(session).storage_pools())
        have = set(pools[pools["pool"] == pool]["node"])
        lacking = [n.name for n in session.storage_nodes if n.name not in have]
        if lacking:
            missing = f"LINSTOR has no storage pool {pool} on {', '.join(lacking)}"
    if missing is None:
        return
    if session.dry_run:
        print(f"plan mode: {missing}; the classes below are planned as if 03-piraeus-install had run")
        return
    raise PreconditionFailed(f"{missing}: run 03-piraeus-install first, then this notebook again")


def apply_classes(session: Session, scs: list[dict]) -> None:
    require_linstor(session)
    api = session.kube()
    ours = {sc["metadata"]["name"] for sc in scs}
    others = [sc["metadata"]["name"] for sc in kube.list_objects(api, kinds.STORAGE_CLASS.collection())
              if sc["metadata"]["name"] not in ours
              and (sc["metadata"].get("annotations") or {}).get(DEFAULT_ANNOTATION) == "true"]
    if others:
        raise PreconditionFailed(f"StorageClass {', '.join(others)} is already the default; remove its "
                                 f"{DEFAULT_ANNOTATION} annotation first so that exactly one class is the default")
    for sc in scs:
        live = kube.get_object(api, kube.object_path(sc))
        if live is not None and kube.differs(live, sc):
            # StorageClass parameters are immutable: say so instead of failing half-way.
            raise PreconditionFailed(f"StorageClass {sc['metadata']['name']} exists with other settings; StorageClasses "
                                     "are immutable: delete it (volumes keep working) and run again")
        apply(session, sc, step=f"StorageClass {sc['metadata']['name']}")


def test_objects(sc: dict, namespace: str = "default", nodes: list[str] | None = None) -> tuple[dict, dict]:
    """The probe's claim and pod; ``nodes``: the pod runs on one of them (the storage nodes)."""
    name = f"runbook-probe-{sc['metadata']['name']}"
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace},
           "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": sc["metadata"]["name"],
                    "resources": {"requests": {"storage": "1Gi"}}}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
           "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "probe", "image": TEST_IMAGE,
                                    "command": ["sh", "-c", "echo ok > /data/probe && sync && sleep 3600"],
                                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": name}}]}}
    if nodes:
        pod["spec"]["affinity"] = manifests.on_nodes(nodes)
    return pvc, pod


def prove(session: Session, sc: dict) -> pd.DataFrame | None:
    """Provision a test volume with ``sc``, check its replicas in LINSTOR, clean up."""
    api = session.kube()
    pvc, pod = test_objects(sc, nodes=[n.name for n in session.storage_nodes])
    cls = sc["metadata"]["name"]
    for obj in (pvc, pod):
        create(session, obj, f"test {obj['kind']} for {cls}")
    if session.dry_run:
        return None
    try:
        running, _ = wait_until(lambda: _provisioned_and_running(session, sc, pvc, pod),
                             what=f"test pod for {cls} Running", timeout=session.params.node_timeout,
                             describe=_describe_probe)
        claim = kube.get_object(api, kube.object_path(pvc)) or {}
        volume = (claim.get("spec") or {}).get("volumeName")
        node = running["spec"].get("nodeName")
        frame = resources_frame(linstor(session).resources())
        replicas = frame[frame["resource"] == volume]
        check_placement(session, sc, replicas, node)
        return replicas.assign(storage_class=cls, consumer=node)
    finally:
        for obj in (pod, pvc):
            delete(session, obj, f"delete test {obj['kind']} for {cls}")


def _phase(obj: dict | None) -> str:
    return ((obj or {}).get("status") or {}).get("phase", "absent")


def _describe_probe(state: tuple[dict | None, str]) -> str:
    pod, why = state
    return f"pod {_phase(pod)}" + (f"; {why}" if why else "")


def _provisioned_and_running(session: Session, sc: dict, pvc: dict, pod: dict) -> tuple[bool, tuple[dict | None, str]]:
    """Probe for the test pod; stops at once when linstor-csi cannot provision because pools are full."""
    api = session.kube()
    obj = kube.get_object(api, kube.object_path(pod))
    if _phase(obj) == "Running":
        return True, (obj, "")
    failure = _provisioning_failure(api, pvc)
    if failure:
        _raise_if_pools_lack_room(session, sc, pvc, failure)
    return False, (obj, f"PVC {pvc['metadata']['name']}: {failure}" if failure else "")


def _provisioning_failure(api, pvc: dict) -> str:
    """The latest ``ProvisioningFailed`` event message for the claim ('' when there is none)."""
    meta = pvc["metadata"]
    selector = f"involvedObject.kind=PersistentVolumeClaim,involvedObject.name={meta['name']}"
    data = kube.request(api, "GET", kinds.EVENT.collection(meta["namespace"]),
                        query=[("fieldSelector", selector)]) or {}
    failed = [e for e in data.get("items") or [] if e.get("reason") == "ProvisioningFailed"]
    if not failed:
        return ""
    latest = max(failed, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return str(latest.get("message") or "").splitlines()[0] if latest.get("message") else "ProvisioningFailed"


def _raise_if_pools_lack_room(session: Session, sc: dict, pvc: dict, failure: str) -> None:
    """linstor-csi failed: when pools of the class have no room for the test volume, say which, and stop."""
    cls = sc["metadata"]["name"]
    names = sc["parameters"][f"{PROVISIONER}/storagePool"].split()
    wanted = int(sc["parameters"][f"{PROVISIONER}/placementCount"])
    size = parse_size(pvc["spec"]["resources"]["requests"]["storage"])  # "1Gi": the unit means GiB
    pools = storage_pools_frame(linstor(session).storage_pools())
    pools = pools[pools["pool"].isin(names)]
    full = pools[pools["free_bytes"].fillna(0) < size]
    if full.empty:
        return  # not a capacity problem we can see: keep waiting (linstor-csi retries)
    roomy = len(pools) - len(full)
    where = ", ".join(f"{r.pool} on {r.node} ({_gib(r.free_bytes)} free)" for r in full.itertuples())
    raise PreconditionFailed(
        f"the test volume of StorageClass {cls} ({pvc['spec']['resources']['requests']['storage']}, {wanted} "
        f"replica(s)) cannot be provisioned: storage pool {where} has no room ({roomy} of {len(pools)} pools do). "
        f"linstor-csi says: {failure}. What to do: free space in or grow the full pool, then run 04 again; the test "
        f"objects are deleted")


def _gib(value) -> str:
    return "unknown" if pd.isna(value) else f"{int(value) / 2**30:.1f} GiB"


def check_placement(session: Session, sc: dict, replicas: pd.DataFrame, consumer: str) -> None:
    cls = sc["metadata"]["name"]
    wanted = int(sc["parameters"][f"{PROVISIONER}/placementCount"])
    diskful = replicas[~replicas["diskless"].astype(bool)]
    session.check(f"{cls}: diskful replicas", len(diskful) == wanted, len(diskful), wanted)
    if wanted == 1:
        session.check(f"{cls}: replica on the consumer's node", list(diskful["node"]) == [consumer],
                      list(diskful["node"]), [consumer])
    else:
        session.check(f"{cls}: replicas on distinct nodes", diskful["node"].nunique() == wanted,
                      sorted(diskful["node"]), f"{wanted} different nodes")
        in_use = list(replicas[replicas["in_use"].fillna(False).astype(bool)]["node"])
        session.check(f"{cls}: in use on the consumer's node", in_use == [consumer], in_use, [consumer])
        states = sorted(set(diskful["disk_state"].astype(str)))
        session.check(f"{cls}: every diskful replica UpToDate", states == ["UpToDate"], states, ["UpToDate"])


def placement_table(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["storage_class", "resource", "node", "diskless", "tiebreaker", "in_use", "disk_state", "consumer"]]
