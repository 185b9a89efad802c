"""linstor-csi in the lab: provisioning, attach/detach, publish, delete.

What the sidecars and the driver do, condensed (linstor-csi ``pkg/driver`` and
``pkg/volume/parameter.go``; external-provisioner/attacher; the PV controller):

- A PVC whose StorageClass names the provisioner ``linstor.csi.linbit.com`` is provisioned
  at once (``Immediate``) or once the scheduler picked a node (``WaitForFirstConsumer``:
  annotation ``volume.kubernetes.io/selected-node``; that node is the preferred placement).
  StorageClass parameters are parsed like ``NewParameters``: keys in the
  ``linstor.csi.linbit.com/`` namespace (or none) are case-insensitive and must be known,
  otherwise provisioning fails with ``invalid parameter: <key> does not belong to paramKey
  values``; ``property.linstor.csi.linbit.com/<prop>`` and bare ``DrbdOptions/<x>`` become
  resource-group properties; other namespaces are ignored. The resource group is
  ``sc-<uuid>`` unless ``resourceGroup`` is given; the resource definition is named after the
  PV (``pvc-<claim uid>``).
- The PV carries ``csi.volumeHandle``, the fs type, and node affinity on
  ``linbit.com/hostname``: the diskful nodes, or every DRBD-capable node when remote access
  is allowed. The claim becomes Bound.
- A pod using the claim gets a VolumeAttachment (``csi-<sha256(pv+driver+node)>``); attaching
  on a node without a replica adds a diskless replica there when the layer stack has DRBD and
  remote access is allowed; detaching removes it again. Publishing makes the resource Primary
  on that node (``in_use``). RWO volumes in use on another node fail with Multi-Attach.
- Deleting the claim (after no pod uses it: ``kubernetes.io/pvc-protection``) releases the PV;
  reclaim policy ``Delete`` deletes the LINSTOR resource definition and the PV.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import drbd
from . import workloads as wl
from .linstor.constants import DISKLESS_POOL
from .linstor.return_codes import (
    FAIL_NOT_ENOUGH_NODES,
    FAIL_NOT_FOUND_RSC_DFN,
    FAIL_UNKNOWN_ERROR,
    MASK_ERROR,
    MASK_RSC_DFN,
    LinstorError,
    api_rc,
    ret_code,
)
from .piraeus import DRIVER, api_reachable
from .state import SavedState

T_PROVISION = 2.0  # CreateVolume round trip (lab seconds)
T_ATTACH = 1.0
CSI_VERSION = "v1.10.2"
TOPOLOGY_KEY = "linbit.com/hostname"
PROVISIONED_BY = "Aux/csi-provisioning-completed-by"
# linstor-csi hashes the parameters in a fixed UUID namespace to name resource groups; the
# lab uses its own namespace UUID, so generated names differ from a real cluster's.
RG_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "resource-group.linstor.csi.linbit.com")

# paramKey values of linstor-csi v1.12 (parameter.go + paramkey_enumer.go, reference notes §5).
PARAM_KEYS = frozenset({
    "allowremotevolumeaccess", "autoplace", "clientlist", "disklessonremaining", "disklessstoragepool",
    "donotplacewithregex", "encryption", "fsopts", "layerlist", "mountopts", "nodelist", "placementcount",
    "placementpolicy", "replicasondifferent", "replicasonsame", "sizekib", "storagepool", "postmountxfsopts",
    "resourcegroup", "usepvcname", "xreplicasondifferent", "overprovision", "nfsconfigtemplate", "nfsservicename",
    "nfssquash", "nfsrecoveryvolumesize",
})
KNOWN_LAYERS = ("drbd", "storage", "luks", "nvme", "cache", "writecache", "openflex", "exos")
PLACEMENT_POLICIES = ("AutoPlaceTopology", "Manual", "AutoPlace", "FollowTopology", "Balanced")


# ----------------------------------------------------------------------------- parameters


@dataclass
class Parameters:
    placement_count: int = 1
    storage_pools: list[str] = field(default_factory=list)
    diskless_pool: str = DISKLESS_POOL
    layers: list[str] = field(default_factory=lambda: ["DRBD", "STORAGE"])
    remote_access: Any = True  # True (anywhere), False (local only) or a list of fromSame rules
    node_list: list[str] = field(default_factory=list)
    client_list: list[str] = field(default_factory=list)
    replicas_on_same: list[str] = field(default_factory=list)
    replicas_on_different: list[str] = field(default_factory=list)
    diskless_on_remaining: bool = False
    placement_policy: str = "AutoPlaceTopology"
    resource_group: str = ""
    mount_opts: str = ""
    fs_opts: str = ""
    post_mount_xfs_opts: str = ""
    encryption: bool = False
    properties: dict[str, str] = field(default_factory=dict)


def _parse_bool(value: str) -> bool:
    """Go's ``strconv.ParseBool``."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')


def _aux(values: list[str]) -> list[str]:
    return [v if v.startswith("Aux/") else f"Aux/{v}" for v in values if v]


def parse_parameters(params: dict[str, str]) -> Parameters:
    """``volume.NewParameters``; raises ValueError with linstor-csi's message."""
    p = Parameters()
    remote_set = False
    for key, value in params.items():
        namespace, _, raw = key.partition("/") if "/" in key else ("", "", key)
        if namespace == "DrbdOptions":
            p.properties[f"DrbdOptions/{raw}"] = value
            continue
        if namespace == "property.linstor.csi.linbit.com":
            p.properties[raw] = value
            continue
        if namespace not in ("linstor.csi.linbit.com", ""):
            continue  # some external parameter (csi.storage.k8s.io/..., qos...): ignored
        k = raw.lower()
        if k not in PARAM_KEYS:
            raise ValueError(f"invalid parameter: {k} does not belong to paramKey values")
        if k == "nodelist":
            p.node_list = value.split(" ")
        elif k == "clientlist":
            p.client_list = value.split(" ")
        elif k == "layerlist":
            layers = []
            for layer in value.split(" "):
                if layer.lower() not in KNOWN_LAYERS:
                    raise ValueError(f"unknown layer type {layer}, known layer types [{' '.join(KNOWN_LAYERS)}]")
                layers.append(layer.upper())
            p.layers = layers
        elif k == "replicasonsame":
            p.replicas_on_same = _aux(value.split(" "))
        elif k == "replicasondifferent":
            p.replicas_on_different = _aux(value.split(" "))
        elif k == "storagepool":
            p.storage_pools = [s for s in value.split(" ") if s]
        elif k == "disklessstoragepool":
            p.diskless_pool = value
        elif k in ("autoplace", "placementcount"):
            try:
                n = int(value or "1")
                if not -(2**31) <= n < 2**31:
                    raise ValueError
            except ValueError:
                raise ValueError(f'bad parameters: unable to parse "{value}" as a 32 bit integer') from None
            p.placement_count = n
        elif k == "encryption":
            p.encryption = _parse_bool(value)
        elif k == "disklessonremaining":
            p.diskless_on_remaining = _parse_bool(value)
        elif k == "allowremotevolumeaccess":
            remote_set = True
            if value in ("true", "false"):
                p.remote_access = value == "true"
            else:
                try:
                    rules = yaml.safe_load(value)
                except yaml.YAMLError as exc:
                    raise ValueError(f"failed to parse remote access policy: {exc}") from None
                if not isinstance(rules, list):
                    raise ValueError(f"failed to parse remote access policy: expected a list, got {value!r}")
                p.remote_access = rules
        elif k == "placementpolicy":
            if value not in PLACEMENT_POLICIES:
                raise ValueError(f"invalid placement policy: {value} does not belong to PlacementPolicy values")
            p.placement_policy = value
        elif k == "mountopts":
            p.mount_opts = value
        elif k == "fsopts":
            p.fs_opts = value
        elif k == "postmountxfsopts":
            p.post_mount_xfs_opts = value
        elif k == "resourcegroup":
            p.resource_group = value
        elif k == "usepvcname":
            _parse_bool(value)
    if not remote_set and not any(layer in ("DRBD", "NVME") for layer in p.layers):
        p.remote_access = False  # default: anywhere only when the stack can serve remote access
    if p.node_list or p.client_list:
        p.placement_count, p.replicas_on_same, p.replicas_on_different, p.placement_policy = 0, [], [], "Manual"
    if not p.resource_group:
        rg = {"place_count": p.placement_count, "storage_pool": " ".join(p.storage_pools),
              "replicas_on_same": p.replicas_on_same, "replicas_on_different": p.replicas_on_different,
              "layer_stack": p.layers, "diskless_on_remaining": p.diskless_on_remaining, "props": p.properties}
        p.resource_group = "sc-" + str(uuid.uuid5(RG_NAMESPACE, json.dumps(rg, sort_keys=True)))
    return p


# ----------------------------------------------------------------------------- state


@dataclass
class CsiState(SavedState):
    provision_at: dict[str, float] = field(default_factory=dict)  # claim uid -> CreateVolume completes
    retry_at: dict[str, float] = field(default_factory=dict)  # claim uid -> next attempt after a failure
    attach_at: dict[str, float] = field(default_factory=dict)  # VolumeAttachment -> attach completes
    users: dict[str, list[str]] = field(default_factory=dict)  # "<pv>/<node>" -> pod uids using it


def _quantity_bytes(q: str | int) -> int:
    """A Kubernetes resource quantity in bytes (binary and decimal suffixes)."""
    if isinstance(q, int):
        return q
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGTPE]i?|k|m)?\s*", str(q))
    if not m:
        raise ValueError(f"quantities must match the regular expression: {q!r}")
    num = float(m.group(1))
    unit = m.group(2) or ""
    mult = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60, "m": 1e-3}[unit]
    return int(num * mult)


def _controller_pod(lab: Any) -> dict | None:
    for dep in wl.objects(lab, "apps", "deployments"):
        if dep["metadata"]["name"] == "linstor-csi-controller" and int((dep.get("status") or {}).get("readyReplicas", 0)):
            ns = dep["metadata"]["namespace"]
            return next((p for p in wl.pods_of(lab, ns, {"app.kubernetes.io/component": "linstor-csi-controller"})
                         if wl.pod_ready(p)), None)
    return None


def _node_plugin_ready(lab: Any, node: str) -> bool:
    for ds in wl.objects(lab, "apps", "daemonsets"):
        if ds["metadata"]["name"] == "linstor-csi-node":
            return wl.running_on(lab, ds["metadata"]["namespace"], {"app.kubernetes.io/component": "linstor-csi-node"}, node) is not None
    return False


def _provisioner_source(pod: dict) -> str:
    return f"{DRIVER}_{pod['metadata']['name']}_{uuid.uuid5(uuid.NAMESPACE_OID, pod['metadata']['uid'])}"


# ----------------------------------------------------------------------------- reconcile


def reconcile(lab: Any, now: float) -> None:
    _register_node_plugins(lab)
    ctl_pod = _controller_pod(lab)
    ok, _ = api_reachable(lab)
    up = ctl_pod is not None and ok
    for pvc in wl.objects(lab, "", "persistentvolumeclaims"):
        _reconcile_claim(lab, pvc, ctl_pod if up else None, now)
    for pv in wl.objects(lab, "", "persistentvolumes"):
        _reconcile_released(lab, pv, up)
    _attach_detach(lab, now, up)


def _register_node_plugins(lab: Any) -> None:
    """kubelet plugin registration: CSINode driver entry and the topology label on the Node."""
    for node in wl.objects(lab, "", "nodes"):
        name = node["metadata"]["name"]
        if not _node_plugin_ready(lab, name):
            continue
        if (node["metadata"].get("labels") or {}).get(TOPOLOGY_KEY) != name:
            wl.update(lab, node, lambda o, n=name: o["metadata"].setdefault("labels", {}).__setitem__(TOPOLOGY_KEY, n))
        if wl.get(lab, "storage.k8s.io", "csinodes", None, name) is None:
            wl.apply(lab, "storage.k8s.io", "v1", "csinodes", {
                "apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
                "metadata": {"name": name, "ownerReferences": [wl.owner_ref(node, controller=False)]},
                "spec": {"drivers": [{"name": DRIVER, "nodeID": name, "topologyKeys": [TOPOLOGY_KEY],
                                      "allocatable": {"count": 4000}}]}})


def _storage_class(lab: Any, pvc: dict) -> dict | None:
    name = pvc["spec"].get("storageClassName")
    if name is None:
        for sc in wl.objects(lab, "storage.k8s.io", "storageclasses"):
            if (sc["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
                # the DefaultStorageClass admission plugin fills the class in at creation
                wl.update(lab, pvc, lambda o, n=sc["metadata"]["name"]: o["spec"].__setitem__("storageClassName", n))
                return sc
        return None
    return wl.get(lab, "storage.k8s.io", "storageclasses", None, name)


def _reconcile_claim(lab: Any, pvc: dict, ctl_pod: dict | None, now: float) -> None:
    st: CsiState = lab.csi
    meta = pvc["metadata"]
    uid = meta["uid"]
    if meta.get("deletionTimestamp"):
        _release_claim(lab, pvc)
        return
    if "kubernetes.io/pvc-protection" not in (meta.get("finalizers") or []) or not pvc.get("status"):
        def admit(o: dict) -> None:  # what the API server's admission and defaulting add on create
            if "kubernetes.io/pvc-protection" not in (o["metadata"].get("finalizers") or []):
                o["metadata"].setdefault("finalizers", []).append("kubernetes.io/pvc-protection")
            o["status"] = o.get("status") or {"phase": "Pending"}
            o["spec"].setdefault("volumeMode", "Filesystem")
        pvc = wl.update(lab, pvc, admit)
    if (pvc.get("status") or {}).get("phase") == "Bound":
        return
    sc = _storage_class(lab, pvc)
    if sc is None and pvc["spec"].get("storageClassName"):
        wl.record_event(lab, pvc, "ProvisioningFailed", f'storageclass.storage.k8s.io "{pvc["spec"]["storageClassName"]}" not found',
                        type_="Warning", component="persistentvolume-controller")
        return
    if sc is None or sc.get("provisioner") != DRIVER:
        return
    ann = meta.get("annotations") or {}
    if ann.get("volume.kubernetes.io/storage-provisioner") != DRIVER:
        def mark(o: dict) -> None:
            a = o["metadata"].setdefault("annotations", {})
            a["volume.kubernetes.io/storage-provisioner"] = DRIVER
            a["volume.beta.kubernetes.io/storage-provisioner"] = DRIVER
        pvc = wl.update(lab, pvc, mark)
    wffc = sc.get("volumeBindingMode") == "WaitForFirstConsumer"
    selected = ann.get("volume.kubernetes.io/selected-node")
    if wffc and not selected:
        wl.record_event(lab, pvc, "WaitForFirstConsumer", "waiting for first consumer to be created before binding",
                        component="persistentvolume-controller")
        return
    if ctl_pod is None:
        wl.record_event(lab, pvc, "ExternalProvisioning",
                        f"Waiting for a volume to be created either by the external provisioner '{DRIVER}' or manually by the "
                        "system administrator. If volume creation is delayed, please verify that the provisioner is running "
                        "and correctly registered.", component="persistentvolume-controller")
        return
    if now < st.retry_at.get(uid, 0.0):
        return
    if uid not in st.provision_at:
        st.provision_at[uid] = now + T_PROVISION
        wl.record_event(lab, pvc, "Provisioning", f'External provisioner is provisioning volume for claim "{meta["namespace"]}/{meta["name"]}"',
                        component=_provisioner_source(ctl_pod))
        return
    if now < st.provision_at[uid]:
        return
    del st.provision_at[uid]
    try:
        pv = _create_volume(lab, pvc, sc, selected)
    except (ValueError, LinstorError) as exc:
        code = "InvalidArgument" if isinstance(exc, ValueError) else "ResourceExhausted"
        what = f"failed to parse parameters: {exc}" if isinstance(exc, ValueError) else f"CreateVolume failed for pvc-{uid}: {_rc_text(exc)}"
        wl.record_event(lab, pvc, "ProvisioningFailed",
                        f'failed to provision volume with StorageClass "{sc["metadata"]["name"]}": rpc error: code = {code} desc = {what}',
                        type_="Warning", component=_provisioner_source(ctl_pod))
        st.retry_at[uid] = now + 10.0
        return
    st.retry_at.pop(uid, None)
    wl.record_event(lab, pvc, "ProvisioningSucceeded", f"Successfully provisioned volume {pv['metadata']['name']}",
                    component=_provisioner_source(ctl_pod))


def _rc_text(exc: LinstorError) -> str:
    parts = []
    for rc in exc.rcs:
        text = f"Message: '{rc['message']}'"
        if rc.get("details"):
            text += f"; Details: '{rc['details']}'"
        parts.append(text)
    return "; ".join(parts) or str(exc)


def _create_volume(lab: Any, pvc: dict, sc: dict, selected: str | None) -> dict:
    """CreateVolume + the PV the external-provisioner writes + binding (the PV controller)."""
    ctl = lab.linstor
    params = parse_parameters(sc.get("parameters") or {})
    if params.encryption:
        raise LinstorError([api_rc(ret_code(FAIL_UNKNOWN_ERROR, MASK_ERROR), "Encryption needs a LINSTOR passphrase "
                                   "(LinstorCluster.spec.linstorPassphraseSecret); the lab does not model encryption")], 500)
    size_bytes = _quantity_bytes(((pvc["spec"].get("resources") or {}).get("requests") or {}).get("storage", "1Gi"))
    size_kib = max(4096, -(-size_bytes // 1024))
    pv_name = f"pvc-{pvc['metadata']['uid']}"
    from . import snapshots  # --- CSI snapshots: restore from a VolumeSnapshot dataSource

    restore_from = snapshots.restore_source(lab, pvc, size_bytes) if pv_name not in ctl.rds else None
    rg_filter = {"place_count": params.placement_count, "storage_pool": params.storage_pools[0] if params.storage_pools else None,
                 "storage_pool_list": params.storage_pools or None, "replicas_on_same": params.replicas_on_same or None,
                 "replicas_on_different": params.replicas_on_different or None, "layer_stack": params.layers,
                 "diskless_on_remaining": params.diskless_on_remaining}
    rg_filter = {k: v for k, v in rg_filter.items() if v is not None}
    if params.resource_group not in ctl.groups:
        ctl.create_resource_group(params.resource_group, rg_filter, {**params.properties, **(
            {"StorPoolName": params.storage_pools[0]} if params.storage_pools else {})})
    else:
        rg = ctl.groups[params.resource_group]
        for k, v in params.properties.items():
            if k in rg.props and rg.props[k] != v:
                raise ValueError(f"failed to generate resource group properties from storage class: cannot change existing "
                                 f"property value: existing = {rg.props[k]}, expected = {v}")
        ctl.modify_resource_group(params.resource_group, rg_filter, params.properties)
    if pv_name not in ctl.rds:
        ctl.create_resource_definition(pv_name, params.resource_group, size_kib, params.layers,
                                       {PROVISIONED_BY: f"linstor-csi/{CSI_VERSION}"})
        try:
            if params.node_list or params.client_list:
                for n in params.node_list:
                    ctl.create_resource(pv_name, n, pool=params.storage_pools[0] if params.storage_pools else None,
                                        initial=True, adjust=False)
                for n in params.client_list:
                    ctl.create_resource(pv_name, n, diskless=True, adjust=False)
                ctl.adjust_quorum(pv_name)
            else:
                preferred = [selected] if selected and params.placement_policy in ("AutoPlaceTopology", "FollowTopology") else []
                ctl.autoplace(pv_name, params.placement_count, storage_pools=params.storage_pools,
                              replicas_on_same=params.replicas_on_same, replicas_on_different=params.replicas_on_different,
                              preferred=preferred, diskless_on_remaining=params.diskless_on_remaining)
                if selected and params.remote_access is False and selected not in ctl.rds[pv_name].replicas:
                    raise LinstorError([api_rc(ret_code(FAIL_NOT_ENOUGH_NODES, MASK_ERROR),
                                               f"no placement satisfies the required topology: node '{selected}' has no "
                                               "replica and remote volume access is not allowed")], 500)
        except LinstorError:
            for node in list(ctl.rds[pv_name].replicas):
                ctl.rds[pv_name].replicas.pop(node)
            ctl.delete_resource_definition(pv_name)
            raise
        if restore_from is not None:
            snapshots.restored(lab, restore_from, pv_name)  # --- CSI snapshots
    rd = ctl.rds[pv_name]
    diskful = sorted(n for n, r in rd.replicas.items() if not r.diskless)
    if params.remote_access is False:
        access = diskful
    else:
        access = sorted(n for n, node in ctl.nodes.items() if not rd.drbd or node.drbd_ok() or n in diskful)
    reclaim = sc.get("reclaimPolicy", "Delete")
    fs_type = (sc.get("parameters") or {}).get("csi.storage.k8s.io/fstype", "ext4")
    ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
    pv = {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": DRIVER,
                                                      "volume.kubernetes.io/provisioner-deletion-secret-name": "",
                                                      "volume.kubernetes.io/provisioner-deletion-secret-namespace": ""},
                     "finalizers": ["external-provisioner.volume.kubernetes.io/finalizer", "kubernetes.io/pv-protection"]},
        "spec": {
            "capacity": {"storage": ((pvc["spec"].get("resources") or {}).get("requests") or {}).get("storage", "1Gi")},
            "accessModes": pvc["spec"].get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": reclaim, "storageClassName": sc["metadata"]["name"],
            "volumeMode": pvc["spec"].get("volumeMode", "Filesystem"),
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": name,
                         "uid": pvc["metadata"]["uid"], "resourceVersion": pvc["metadata"]["resourceVersion"]},
            "csi": {"driver": DRIVER, "volumeHandle": pv_name, "fsType": fs_type,
                    "volumeAttributes": {"linstor.csi.linbit.com/mount-options": params.mount_opts,
                                         "linstor.csi.linbit.com/post-mount-xfs-opts": params.post_mount_xfs_opts,
                                         "linstor.csi.linbit.com/uses-volume-context": "true",
                                         "linstor.csi.linbit.com/remote-access-policy": json.dumps(params.remote_access),
                                         "storage.kubernetes.io/csiProvisionerIdentity": f"lab-{DRIVER}"}},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": TOPOLOGY_KEY, "operator": "In", "values": [n]}]} for n in access]}},
        },
        "status": {"phase": "Bound"},
    }
    if params.mount_opts:
        pv["spec"]["mountOptions"] = params.mount_opts.split(",")
    created = wl.apply(lab, "", "v1", "persistentvolumes", pv) or pv
    wl.set_status(lab, created, {"phase": "Bound", "lastPhaseTransitionTime": wl.now_iso()})

    def bind(o: dict) -> None:
        o["spec"]["volumeName"] = pv_name
        a = o["metadata"].setdefault("annotations", {})
        a["pv.kubernetes.io/bind-completed"] = "yes"
        a["pv.kubernetes.io/bound-by-controller"] = "yes"
        o["status"] = {"phase": "Bound", "accessModes": pv["spec"]["accessModes"], "capacity": dict(pv["spec"]["capacity"])}

    wl.update(lab, pvc, bind)
    return created


def _claim_in_use(lab: Any, pvc: dict) -> bool:
    ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
    for pod in wl.objects(lab, "", "pods", ns):
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if any((v.get("persistentVolumeClaim") or {}).get("claimName") == name for v in pod["spec"].get("volumes") or []):
            return True
    return False


def _release_claim(lab: Any, pvc: dict) -> None:
    """pvc-protection: the finalizer goes once no pod uses the claim."""
    if _claim_in_use(lab, pvc):
        return
    wl.update(lab, pvc, lambda o: o["metadata"].__setitem__(
        "finalizers", [f for f in o["metadata"].get("finalizers") or [] if f != "kubernetes.io/pvc-protection"]))


def _reconcile_released(lab: Any, pv: dict, up: bool) -> None:
    """The PV controller and DeleteVolume for PVs of this driver whose claim is gone."""
    if ((pv.get("spec") or {}).get("csi") or {}).get("driver") != DRIVER:
        return
    ref = pv["spec"].get("claimRef") or {}
    claim = wl.get(lab, "", "persistentvolumeclaims", ref.get("namespace"), ref.get("name", "")) if ref else None
    if claim is not None and claim["metadata"]["uid"] == ref.get("uid") and not pv["metadata"].get("deletionTimestamp"):
        return
    if (pv.get("status") or {}).get("phase") != "Released" and not pv["metadata"].get("deletionTimestamp"):
        pv = wl.set_status(lab, pv, {"phase": "Released", "lastPhaseTransitionTime": wl.now_iso()})
    if pv["spec"].get("persistentVolumeReclaimPolicy", "Delete") != "Delete" and not pv["metadata"].get("deletionTimestamp"):
        return
    if not up:
        return
    name = pv["spec"]["csi"]["volumeHandle"]
    ctl = lab.linstor
    if name in ctl.rds:
        if any(r.role == "Primary" for r in ctl.rds[name].replicas.values()):
            return  # still published somewhere: NodeUnpublish comes first
        try:
            ctl.delete_resource_definition(name)  # DeleteVolume: the resources go with their definition
        except LinstorError as exc:
            wl.record_event(lab, pv, "VolumeFailedDelete", f"rpc error: code = Internal desc = {_rc_text(exc)}", type_="Warning",
                            component=DRIVER)
            return
    if any(va["spec"]["source"].get("persistentVolumeName") == pv["metadata"]["name"]
           for va in wl.objects(lab, "storage.k8s.io", "volumeattachments")):
        return
    if not pv["metadata"].get("deletionTimestamp"):
        wl.delete(lab, pv)
        pv = wl.get(lab, "", "persistentvolumes", None, pv["metadata"]["name"]) or pv
    wl.update(lab, pv, lambda o: o["metadata"].__setitem__("finalizers", []))


# ----------------------------------------------------------------------------- attach / publish


def va_name(pv: str, node: str) -> str:
    """external-attacher / attach-detach controller VolumeAttachment name."""
    return "csi-" + hashlib.sha256(f"{pv}{DRIVER}{node}".encode()).hexdigest()


def _pod_volumes(lab: Any) -> list[tuple[dict, str, dict]]:
    """(pod, node, PV) for every live, scheduled pod volume backed by this driver."""
    out = []
    for pod in wl.objects(lab, "", "pods"):
        node = pod["spec"].get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for vol in pod["spec"].get("volumes") or []:
            ref = vol.get("persistentVolumeClaim")
            if not ref:
                continue
            pvc = wl.get(lab, "", "persistentvolumeclaims", pod["metadata"]["namespace"], ref["claimName"])
            pv_name = (pvc or {}).get("spec", {}).get("volumeName")
            pv = wl.get(lab, "", "persistentvolumes", None, pv_name) if pv_name else None
            if pv and ((pv.get("spec") or {}).get("csi") or {}).get("driver") == DRIVER:
                out.append((pod, node, pv))
    return out


def _attach_detach(lab: Any, now: float, up: bool) -> None:
    st: CsiState = lab.csi
    ctl = lab.linstor
    wanted: dict[str, tuple[dict, str, dict]] = {}
    for pod, node, pv in _pod_volumes(lab):
        wanted.setdefault(va_name(pv["metadata"]["name"], node), (pod, node, pv))
    vas = {va["metadata"]["name"]: va for va in wl.objects(lab, "storage.k8s.io", "volumeattachments")
           if va["spec"].get("attacher") == DRIVER}
    for name, (pod, node, pv) in wanted.items():
        pv_name = pv["metadata"]["name"]
        va = vas.get(name)
        if va is None:
            rwo = set(pv["spec"].get("accessModes") or []) <= {"ReadWriteOnce", "ReadWriteOncePod"}
            others = [v for v in vas.values() if v["spec"]["source"].get("persistentVolumeName") == pv_name and v["spec"]["nodeName"] != node]
            if rwo and others:
                users = [p["metadata"]["name"] for p, n, v in _pod_volumes(lab) if v["metadata"]["name"] == pv_name and n != node]
                wl.record_event(lab, pod, "FailedAttachVolume",
                                f'Multi-Attach error for volume "{pv_name}" Volume is already used by pod(s) {", ".join(users)}',
                                type_="Warning", component="attachdetach-controller")
                continue
            va = wl.apply(lab, "storage.k8s.io", "v1", "volumeattachments", {
                "apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment", "metadata": {"name": name},
                "spec": {"attacher": DRIVER, "nodeName": node, "source": {"persistentVolumeName": pv_name}},
                "status": {"attached": False}})
            st.attach_at[name] = now + T_ATTACH
            continue
        if (va.get("status") or {}).get("attached") or not up or now < st.attach_at.get(name, now):
            continue
        rd_name = pv["spec"]["csi"]["volumeHandle"]
        try:
            policy = json.loads(pv["spec"]["csi"].get("volumeAttributes", {}).get("linstor.csi.linbit.com/remote-access-policy", "true"))
            rd = ctl.rds.get(rd_name)
            if rd is None:
                raise LinstorError([api_rc(ret_code(FAIL_NOT_FOUND_RSC_DFN, MASK_ERROR, MASK_RSC_DFN),
                                           f"Resource definition '{rd_name}' not found.")], 404)
            if node not in rd.replicas or rd.replicas[node].tiebreaker:
                if not rd.drbd or policy is False:
                    raise LinstorError([api_rc(ret_code(FAIL_NOT_ENOUGH_NODES, MASK_ERROR),
                                               f"volume {rd_name} is not accessible from node {node}: no local replica and "
                                               "remote access is not allowed")], 500)
                ctl.create_resource(rd_name, node, diskless=True, via_attach=True)
        except LinstorError as exc:
            msg = f"rpc error: code = Internal desc = ControllerPublishVolume failed for {rd_name}: {_rc_text(exc)}"
            wl.set_status(lab, va, {"attached": False, "attachError": {"message": msg, "time": wl.now_iso()}})
            wl.record_event(lab, pod, "FailedAttachVolume", f'AttachVolume.Attach failed for volume "{pv_name}" : {msg}',
                            type_="Warning", component="attachdetach-controller")
            st.attach_at[name] = now + 10.0
            continue
        wl.set_status(lab, va, {"attached": True})
        st.attach_at.pop(name, None)
        wl.record_event(lab, pod, "SuccessfulAttachVolume", f'AttachVolume.Attach succeeded for volume "{pv_name}"',
                        component="attachdetach-controller")
    # unpublish what no live pod uses any more, then detach
    live = {(pv["metadata"]["name"], node): pod["metadata"]["uid"] for pod, node, pv in _pod_volumes(lab)}
    live_uids = {pod["metadata"]["uid"] for pod, _n, _v in _pod_volumes(lab)}
    for key in list(st.users):
        pv_name, node = key.rsplit("/", 1)
        users = [u for u in st.users[key] if u in live_uids and (pv_name, node) in live]
        if users:
            st.users[key] = users
            continue
        del st.users[key]
    # NodeUnpublish closes the device and DRBD demotes; a node the API cannot reach keeps it open
    in_use = set()
    for key in st.users:
        pv_name, node = key.rsplit("/", 1)
        pv = wl.get(lab, "", "persistentvolumes", None, pv_name)
        in_use.add((((pv or {}).get("spec", {}).get("csi") or {}).get("volumeHandle", pv_name), node))
    in_use |= {(w["rd"], w["node"]) for w in lab.drbd.writers.values()}
    drbd.demote_unused(lab, in_use)
    for name, va in vas.items():
        if name in wanted:
            continue
        pv_name, node = va["spec"]["source"].get("persistentVolumeName"), va["spec"]["nodeName"]
        if f"{pv_name}/{node}" in st.users:
            continue
        pv = wl.get(lab, "", "persistentvolumes", None, pv_name)
        rd_name = ((pv or {}).get("spec", {}).get("csi") or {}).get("volumeHandle", pv_name)
        rd = ctl.rds.get(rd_name)
        if rd is not None and node in rd.replicas and rd.replicas[node].via_attach:
            try:
                ctl.delete_resource(rd_name, node)
            except LinstorError:
                continue
        st.attach_at.pop(name, None)
        wl.delete(lab, va)


def volume_hook(lab: Any, pod: dict, vol: dict, node: str) -> tuple[bool, str | None]:
    """kubelet: can this PVC volume be staged and published on ``node`` now? (ready, error)"""
    pvc = wl.get(lab, "", "persistentvolumeclaims", pod["metadata"]["namespace"], vol["persistentVolumeClaim"]["claimName"])
    if pvc is None or (pvc.get("status") or {}).get("phase") != "Bound":
        return False, None
    pv = wl.get(lab, "", "persistentvolumes", None, pvc["spec"].get("volumeName", ""))
    if pv is None:
        return False, None
    if ((pv.get("spec") or {}).get("csi") or {}).get("driver") != DRIVER:
        return True, None
    pv_name = pv["metadata"]["name"]
    if not _node_plugin_ready(lab, node):
        return False, (f'MountVolume.MountDevice failed for volume "{pv_name}" : kubernetes.io/csi: attacher.MountDevice failed to '
                       f"create newCsiDriverClient: driver name {DRIVER} not found in the list of registered CSI drivers")
    va = wl.get(lab, "storage.k8s.io", "volumeattachments", None, va_name(pv_name, node))
    if not va or not (va.get("status") or {}).get("attached"):
        return False, None
    rd_name = pv["spec"]["csi"]["volumeHandle"]
    st: CsiState = lab.csi
    key = f"{pv_name}/{node}"
    try:
        rep = lab.linstor.rds[rd_name].replicas.get(node) if rd_name in lab.linstor.rds else None
        if key not in st.users or (rep is not None and rep.role != "Primary"):  # a rebooted node comes back Secondary
            lab.linstor.set_primary(rd_name, node, True)
    except LinstorError as exc:
        return False, f'MountVolume.SetUp failed for volume "{pv_name}" : rpc error: code = Internal desc = NodePublishVolume failed for {rd_name}: {_rc_text(exc)}'
    users = st.users.setdefault(key, [])
    if pod["metadata"]["uid"] not in users:
        users.append(pod["metadata"]["uid"])
    return True, None
