"""linstor-csi's attach and publish side: VolumeAttachments, ControllerPublish, and the kubelet's CSI volume hook."""

from __future__ import annotations

import hashlib
import json

from ..cluster import Lab
from ..kubernetes import objects as ko
from ..kubernetes.objects import record_event, running_on
from ..kubernetes.store import now_iso
from ..linstor.return_codes import (
    FAIL_NOT_ENOUGH_NODES,
    FAIL_NOT_FOUND_RSC_DFN,
    MASK_ERROR,
    MASK_RSC_DFN,
    LinstorError,
    api_rc,
    ret_code,
)
from . import drbd
from .facts import DRIVER
from .state import CsiState

T_ATTACH = 1.0


def va_name(pv: str, node: str) -> str:
    """external-attacher / attach-detach controller VolumeAttachment name."""
    return "csi-" + hashlib.sha256(f"{pv}{DRIVER}{node}".encode()).hexdigest()


def pod_volumes(lab: Lab) -> list[tuple[dict, str, dict]]:
    """(pod, node, PV) for every live, scheduled pod volume backed by this driver."""
    out = []
    for pod in ko.objects(lab, "", "pods"):
        node = pod["spec"].get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for vol in pod["spec"].get("volumes") or []:
            ref = vol.get("persistentVolumeClaim")
            if not ref:
                continue
            pvc = ko.get(lab, "", "persistentvolumeclaims", pod["metadata"]["namespace"], ref["claimName"])
            pv_name = (pvc or {}).get("spec", {}).get("volumeName")
            pv = ko.get(lab, "", "persistentvolumes", None, pv_name) if pv_name else None
            if pv and ((pv.get("spec") or {}).get("csi") or {}).get("driver") == DRIVER:
                out.append((pod, node, pv))
    return out


def attach_detach(lab: Lab, now: float, up: bool) -> None:
    st: CsiState = lab.csi
    ctl = lab.linstor
    wanted: dict[str, tuple[dict, str, dict]] = {}
    for pod, node, pv in pod_volumes(lab):
        wanted.setdefault(va_name(pv["metadata"]["name"], node), (pod, node, pv))
    vas = {va["metadata"]["name"]: va for va in ko.objects(lab, "storage.k8s.io", "volumeattachments")
           if va["spec"].get("attacher") == DRIVER}
    for name, (pod, node, pv) in wanted.items():
        pv_name = pv["metadata"]["name"]
        va = vas.get(name)
        if va is None:
            rwo = set(pv["spec"].get("accessModes") or []) <= {"ReadWriteOnce", "ReadWriteOncePod"}
            others = [v for v in vas.values() if v["spec"]["source"].get("persistentVolumeName") == pv_name and v["spec"]["nodeName"] != node]
            if rwo and others:
                users = [p["metadata"]["name"] for p, n, v in pod_volumes(lab) if v["metadata"]["name"] == pv_name and n != node]
                record_event(lab, pod, "FailedAttachVolume",
                                f'Multi-Attach error for volume "{pv_name}" Volume is already used by pod(s) {", ".join(users)}',
                                type_="Warning", component="attachdetach-controller")
                continue
            va = ko.apply(lab, "storage.k8s.io", "v1", "volumeattachments", {
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
            msg = f"rpc error: code = Internal desc = ControllerPublishVolume failed for {rd_name}: {rc_text(exc)}"
            ko.set_status(lab, va, {"attached": False, "attachError": {"message": msg, "time": now_iso()}})
            record_event(lab, pod, "FailedAttachVolume", f'AttachVolume.Attach failed for volume "{pv_name}" : {msg}',
                            type_="Warning", component="attachdetach-controller")
            st.attach_at[name] = now + 10.0
            continue
        ko.set_status(lab, va, {"attached": True})
        st.attach_at.pop(name, None)
        record_event(lab, pod, "SuccessfulAttachVolume", f'AttachVolume.Attach succeeded for volume "{pv_name}"',
                        component="attachdetach-controller")
    # unpublish what no live pod uses any more, then detach
    live = {(pv["metadata"]["name"], node): pod["metadata"]["uid"] for pod, node, pv in pod_volumes(lab)}
    live_uids = {pod["metadata"]["uid"] for pod, _n, _v in pod_volumes(lab)}
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
        pv = ko.get(lab, "", "persistentvolumes", None, pv_name)
        in_use.add((((pv or {}).get("spec", {}).get("csi") or {}).get("volumeHandle", pv_name), node))
    in_use |= {(w["rd"], w["node"]) for w in lab.drbd.writers.values()}
    drbd.demote_unused(lab, in_use)
    for name, va in vas.items():
        if name in wanted:
            continue
        pv_name, node = va["spec"]["source"].get("persistentVolumeName"), va["spec"]["nodeName"]
        if f"{pv_name}/{node}" in st.users:
            continue
        pv = ko.get(lab, "", "persistentvolumes", None, pv_name)
        rd_name = ((pv or {}).get("spec", {}).get("csi") or {}).get("volumeHandle", pv_name)
        rd = ctl.rds.get(rd_name)
        if rd is not None and node in rd.replicas and rd.replicas[node].via_attach:
            try:
                ctl.delete_resource(rd_name, node)
            except LinstorError:
                continue
        st.attach_at.pop(name, None)
        ko.delete(lab, va)


def volume_hook(lab: Lab, pod: dict, vol: dict, node: str) -> tuple[bool, str | None]:
    """kubelet: can this PVC volume be staged and published on ``node`` now? (ready, error)"""
    pvc = ko.get(lab, "", "persistentvolumeclaims", pod["metadata"]["namespace"], vol["persistentVolumeClaim"]["claimName"])
    if pvc is None or (pvc.get("status") or {}).get("phase") != "Bound":
        return False, None
    pv = ko.get(lab, "", "persistentvolumes", None, pvc["spec"].get("volumeName", ""))
    if pv is None:
        return False, None
    if ((pv.get("spec") or {}).get("csi") or {}).get("driver") != DRIVER:
        return True, None
    pv_name = pv["metadata"]["name"]
    if not node_plugin_ready(lab, node):
        return False, (f'MountVolume.MountDevice failed for volume "{pv_name}" : kubernetes.io/csi: attacher.MountDevice failed to '
                       f"create newCsiDriverClient: driver name {DRIVER} not found in the list of registered CSI drivers")
    va = ko.get(lab, "storage.k8s.io", "volumeattachments", None, va_name(pv_name, node))
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
        return False, f'MountVolume.SetUp failed for volume "{pv_name}" : rpc error: code = Internal desc = NodePublishVolume failed for {rd_name}: {rc_text(exc)}'
    users = st.users.setdefault(key, [])
    if pod["metadata"]["uid"] not in users:
        users.append(pod["metadata"]["uid"])
    return True, None


def node_plugin_ready(lab: Lab, node: str) -> bool:
    for ds in ko.objects(lab, "apps", "daemonsets"):
        if ds["metadata"]["name"] == "linstor-csi-node":
            return running_on(lab, ds["metadata"]["namespace"], {"app.kubernetes.io/component": "linstor-csi-node"}, node) is not None
    return False


def rc_text(exc: LinstorError) -> str:
    parts = []
    for rc in exc.rcs:
        text = f"Message: '{rc['message']}'"
        if rc.get("details"):
            text += f"; Details: '{rc['details']}'"
        parts.append(text)
    return "; ".join(parts) or str(exc)
