"""linstor-csi's controller: provisioning and deleting volumes (attach/publish: :mod:`.csi_attach`).

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

import json
import uuid

from ..cluster import Lab
from ..kubernetes import objects as ko
from ..kubernetes.objects import owner_ref, record_event
from ..kubernetes.quantity import quantity_bytes
from ..kubernetes.store import now_iso
from ..linstor.return_codes import (
    FAIL_NOT_ENOUGH_NODES,
    FAIL_UNKNOWN_ERROR,
    MASK_ERROR,
    LinstorError,
    api_rc,
    ret_code,
)
from . import snapshots
from .csi_attach import attach_detach, node_plugin_ready, rc_text
from .csi_params import parse_parameters
from .facts import DRIVER, api_reachable, csi_controller_pod
from .state import CsiState

T_PROVISION = 2.0  # CreateVolume round trip (lab seconds)
CSI_VERSION = "v1.10.2"
TOPOLOGY_KEY = "linbit.com/hostname"
PROVISIONED_BY = "Aux/csi-provisioning-completed-by"


def _provisioner_source(pod: dict) -> str:
    return f"{DRIVER}_{pod['metadata']['name']}_{uuid.uuid5(uuid.NAMESPACE_OID, pod['metadata']['uid'])}"


def reconcile(lab: Lab, now: float) -> None:
    _register_node_plugins(lab)
    ctl_pod = csi_controller_pod(lab)
    ok, _ = api_reachable(lab)
    up = ctl_pod is not None and ok
    for pvc in ko.objects(lab, "", "persistentvolumeclaims"):
        _reconcile_claim(lab, pvc, ctl_pod if up else None, now)
    for pv in ko.objects(lab, "", "persistentvolumes"):
        _reconcile_released(lab, pv, up)
    attach_detach(lab, now, up)


def _register_node_plugins(lab: Lab) -> None:
    """kubelet plugin registration: CSINode driver entry and the topology label on the Node."""
    for node in ko.objects(lab, "", "nodes"):
        name = node["metadata"]["name"]
        if not node_plugin_ready(lab, name):
            continue
        if (node["metadata"].get("labels") or {}).get(TOPOLOGY_KEY) != name:
            ko.update(lab, node, lambda o, n=name: o["metadata"].setdefault("labels", {}).__setitem__(TOPOLOGY_KEY, n))
        if ko.get(lab, "storage.k8s.io", "csinodes", None, name) is None:
            ko.apply(lab, "storage.k8s.io", "v1", "csinodes", {
                "apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
                "metadata": {"name": name, "ownerReferences": [owner_ref(node, controller=False)]},
                "spec": {"drivers": [{"name": DRIVER, "nodeID": name, "topologyKeys": [TOPOLOGY_KEY],
                                      "allocatable": {"count": 4000}}]}})


def _storage_class(lab: Lab, pvc: dict) -> dict | None:
    name = pvc["spec"].get("storageClassName")
    if name is None:
        for sc in ko.objects(lab, "storage.k8s.io", "storageclasses"):
            if (sc["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
                # the DefaultStorageClass admission plugin fills the class in at creation
                ko.update(lab, pvc, lambda o, n=sc["metadata"]["name"]: o["spec"].__setitem__("storageClassName", n))
                return sc
        return None
    return ko.get(lab, "storage.k8s.io", "storageclasses", None, name)


def _reconcile_claim(lab: Lab, pvc: dict, ctl_pod: dict | None, now: float) -> None:
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
        pvc = ko.update(lab, pvc, admit)
    if (pvc.get("status") or {}).get("phase") == "Bound":
        return
    sc = _storage_class(lab, pvc)
    if sc is None and pvc["spec"].get("storageClassName"):
        record_event(lab, pvc, "ProvisioningFailed", f'storageclass.storage.k8s.io "{pvc["spec"]["storageClassName"]}" not found',
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
        pvc = ko.update(lab, pvc, mark)
    wffc = sc.get("volumeBindingMode") == "WaitForFirstConsumer"
    selected = ann.get("volume.kubernetes.io/selected-node")
    if wffc and not selected:
        record_event(lab, pvc, "WaitForFirstConsumer", "waiting for first consumer to be created before binding",
                        component="persistentvolume-controller")
        return
    if ctl_pod is None:
        record_event(lab, pvc, "ExternalProvisioning",
                        f"Waiting for a volume to be created either by the external provisioner '{DRIVER}' or manually by the "
                        "system administrator. If volume creation is delayed, please verify that the provisioner is running "
                        "and correctly registered.", component="persistentvolume-controller")
        return
    if now < st.retry_at.get(uid, 0.0):
        return
    if uid not in st.provision_at:
        st.provision_at[uid] = now + T_PROVISION
        record_event(lab, pvc, "Provisioning", f'External provisioner is provisioning volume for claim "{meta["namespace"]}/{meta["name"]}"',
                        component=_provisioner_source(ctl_pod))
        return
    if now < st.provision_at[uid]:
        return
    del st.provision_at[uid]
    try:
        pv = _create_volume(lab, pvc, sc, selected)
    except (ValueError, LinstorError) as exc:
        code = "InvalidArgument" if isinstance(exc, ValueError) else "ResourceExhausted"
        what = f"failed to parse parameters: {exc}" if isinstance(exc, ValueError) else f"CreateVolume failed for pvc-{uid}: {rc_text(exc)}"
        record_event(lab, pvc, "ProvisioningFailed",
                        f'failed to provision volume with StorageClass "{sc["metadata"]["name"]}": rpc error: code = {code} desc = {what}',
                        type_="Warning", component=_provisioner_source(ctl_pod))
        st.retry_at[uid] = now + 10.0
        return
    st.retry_at.pop(uid, None)
    record_event(lab, pvc, "ProvisioningSucceeded", f"Successfully provisioned volume {pv['metadata']['name']}",
                    component=_provisioner_source(ctl_pod))


def _create_volume(lab: Lab, pvc: dict, sc: dict, selected: str | None) -> dict:
    """CreateVolume + the PV the external-provisioner writes + binding (the PV controller)."""
    ctl = lab.linstor
    params = parse_parameters(sc.get("parameters") or {})
    if params.encryption:
        raise LinstorError([api_rc(ret_code(FAIL_UNKNOWN_ERROR, MASK_ERROR), "Encryption needs a LINSTOR passphrase "
                                   "(LinstorCluster.spec.linstorPassphraseSecret); the lab does not model encryption")], 500)
    size_bytes = quantity_bytes(((pvc["spec"].get("resources") or {}).get("requests") or {}).get("storage", "1Gi"))
    size_kib = max(4096, -(-size_bytes // 1024))
    pv_name = f"pvc-{pvc['metadata']['uid']}"
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
            snapshots.restored(lab, restore_from, pv_name)  # restore from a VolumeSnapshot dataSource
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
    created = ko.apply(lab, "", "v1", "persistentvolumes", pv) or pv
    ko.set_status(lab, created, {"phase": "Bound", "lastPhaseTransitionTime": now_iso()})

    def bind(o: dict) -> None:
        o["spec"]["volumeName"] = pv_name
        a = o["metadata"].setdefault("annotations", {})
        a["pv.kubernetes.io/bind-completed"] = "yes"
        a["pv.kubernetes.io/bound-by-controller"] = "yes"
        o["status"] = {"phase": "Bound", "accessModes": pv["spec"]["accessModes"], "capacity": dict(pv["spec"]["capacity"])}

    ko.update(lab, pvc, bind)
    return created


def _claim_in_use(lab: Lab, pvc: dict) -> bool:
    ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
    for pod in ko.objects(lab, "", "pods", ns):
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if any((v.get("persistentVolumeClaim") or {}).get("claimName") == name for v in pod["spec"].get("volumes") or []):
            return True
    return False


def _release_claim(lab: Lab, pvc: dict) -> None:
    """pvc-protection: the finalizer goes once no pod uses the claim."""
    if _claim_in_use(lab, pvc):
        return
    ko.update(lab, pvc, lambda o: o["metadata"].__setitem__(
        "finalizers", [f for f in o["metadata"].get("finalizers") or [] if f != "kubernetes.io/pvc-protection"]))


def _reconcile_released(lab: Lab, pv: dict, up: bool) -> None:
    """The PV controller and DeleteVolume for PVs of this driver whose claim is gone."""
    if ((pv.get("spec") or {}).get("csi") or {}).get("driver") != DRIVER:
        return
    ref = pv["spec"].get("claimRef") or {}
    claim = ko.get(lab, "", "persistentvolumeclaims", ref.get("namespace"), ref.get("name", "")) if ref else None
    if claim is not None and claim["metadata"]["uid"] == ref.get("uid") and not pv["metadata"].get("deletionTimestamp"):
        return
    if (pv.get("status") or {}).get("phase") != "Released" and not pv["metadata"].get("deletionTimestamp"):
        pv = ko.set_status(lab, pv, {"phase": "Released", "lastPhaseTransitionTime": now_iso()})
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
            record_event(lab, pv, "VolumeFailedDelete", f"rpc error: code = Internal desc = {rc_text(exc)}", type_="Warning",
                            component=DRIVER)
            return
    if any(va["spec"]["source"].get("persistentVolumeName") == pv["metadata"]["name"]
           for va in ko.objects(lab, "storage.k8s.io", "volumeattachments")):
        return
    if not pv["metadata"].get("deletionTimestamp"):
        ko.delete(lab, pv)
        pv = ko.get(lab, "", "persistentvolumes", None, pv["metadata"]["name"]) or pv
    ko.update(lab, pv, lambda o: o["metadata"].__setitem__("finalizers", []))

