"""The LinstorSatellite reconciler: the satellite DaemonSet, its LINSTOR node, and the node's storage pools."""

from __future__ import annotations

import json
from typing import Any

from ..cluster import Lab
from ..kubernetes import objects as ko
from ..kubernetes.objects import pods_of
from ..kubernetes.types import ApiError
from ..linstor.return_codes import MASK_ERROR, LinstorError, api_rc, ret_code
from ..talos import block_links
from ..workloads.node_facts import set_block_signature
from .chart import GROUP
from .facts import LAST_APPLIED, MANAGED_BY, OPERATOR_NAME, api_reachable
from .owned import (
    add_error,
    add_success,
    add_unknown,
    apply_owned,
    log_once,
    new_conditions,
    write_conditions,
)
from .satellite_pod import component_labels, satellite_daemonset, validate_pod_template


def pool_kind(pool: dict) -> tuple[str, str] | None:
    """(LINSTOR provider kind, backing pool name) of a ``storagePools`` entry (``PoolName()``)."""
    name = pool.get("name", "")
    if "lvmPool" in pool:
        return "LVM", (pool["lvmPool"] or {}).get("volumeGroup") or name
    if "lvmThinPool" in pool:
        lv = (pool["lvmThinPool"] or {}).get("thinPool") or name
        vg = (pool["lvmThinPool"] or {}).get("volumeGroup") or f"linstor_{lv}"
        return "LVM_THIN", f"{vg}/{lv}"
    if "zfsPool" in pool:
        return "ZFS", (pool["zfsPool"] or {}).get("zPool") or name
    if "zfsThinPool" in pool:
        return "ZFS_THIN", (pool["zfsThinPool"] or {}).get("zPool") or name
    if "filePool" in pool:
        return "FILE", (pool["filePool"] or {}).get("directory") or f"/var/lib/linstor-pools/{name}"
    if "fileThinPool" in pool:
        return "FILE_THIN", (pool["fileThinPool"] or {}).get("directory") or f"/var/lib/linstor-pools/{name}"
    return None


def reconcile_satellite(lab: Lab, sat: dict, ns: str, now: float, op_pod: dict | None) -> None:
    node_name = sat["metadata"]["name"]
    lcluster = next((c for c in ko.objects(lab, GROUP, "linstorclusters")
                     if c["metadata"]["name"] == ((sat.get("spec") or {}).get("clusterRef") or {}).get("name")), None)
    if lcluster is None:
        return
    conds = new_conditions()
    node = ko.get(lab, "", "nodes", None, node_name)
    if node is None:
        write_conditions(lab, sat, conds)
        return
    try:
        for cm in ("satellite-config", "reactor-config"):
            data = ({"linstor_satellite.toml": '[netcom]\n  type = "plain"\n  port = 3366\n'} if cm == "satellite-config"
                    else {"prometheus.toml": '[[prometheus]]\nenums = true\naddress = "[::]:9942"\n'})
            apply_owned(lab, "", "v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": f"{node_name}-{cm}", "namespace": ns, "labels": component_labels(lcluster, "linstor-satellite")},
                   "data": data}, sat)
        ds = satellite_daemonset(lab, lcluster, sat, ns)
        errors = validate_pod_template("DaemonSet", ds["metadata"]["name"], ds["spec"]["template"])
        if errors:
            detail = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
            raise ApiError(422, "Invalid", f'DaemonSet.apps "{ds["metadata"]["name"]}" is invalid: {detail}')
        apply_owned(lab, "apps", "v1", "daemonsets", ds, sat)
        add_success(conds, "Applied", "Resources applied")
    except ApiError as err:
        add_error(conds, "Applied", err.message)
        log_once(lab, ns, op_pod, "manager", f'ERROR\tReconciler error\t{{"controller": "linstorsatellite", "name": "{node_name}", '
                                              f'"error": {json.dumps(err.message)}}}')
    status: dict[str, Any] = {}
    ok, err = api_reachable(lab)
    if not ok:
        add_error(conds, "Available", err)
        add_unknown(conds, "Configured", "Controller unreachable")
    else:
        pod = next((p for p in pods_of(lab, ns, {"app.kubernetes.io/component": "linstor-satellite"})
                    if p["spec"].get("nodeName") == node_name and not p["metadata"].get("deletionTimestamp")), None)
        ctl = lab.linstor
        if pod is None:
            add_error(conds, "Available", f'Pod "linstor-satellite.{node_name}" not found')
            add_unknown(conds, "Configured", "Missing Pod")
        elif not (pod.get("status") or {}).get("podIPs"):
            add_error(conds, "Available", "missing IP address on pod")
            add_unknown(conds, "Configured", "missing IP address on pod")
        else:
            props = _node_properties(node, (sat.get("spec") or {}).get("properties") or [])
            lnode = ctl.create_or_update_node(node_name, pod["status"]["podIPs"][0]["ip"], props, net_name="default-ipv4")
            if lnode.online:
                add_success(conds, "Available", "satellite online")
                try:
                    _reconcile_pools(lab, sat, node_name, ns, op_pod, pod)
                    add_success(conds, "Configured", "Pools configured")
                except LinstorError as exc:
                    add_error(conds, "Configured", golinstor_error(exc))
                view = ctl.node_json(lnode)
                status["storageProviders"] = view.get("storage_providers", [])
                status["deviceLayers"] = view.get("resource_layers", [])
            else:
                add_error(conds, "Available", "satellite not online")
        pools = [p for p in ctl.pools.get(node_name, {}).values() if p.kind != "DISKLESS"]
        total = sum(ctl.pool_space(p)[0] for p in pools) * 1024
        free = sum(ctl.pool_space(p)[1] for p in pools) * 1024
        status.update({"availableCapacityBytes": total, "freeCapacityBytes": free,
                       "capacity": f"{(total - free) // 2**30}/{total // 2**30}GiB",
                       "numberOfVolumes": sum(1 for rd in ctl.rds.values() if node_name in rd.replicas),
                       "numberOfSnapshots": sum(1 for ss in ctl.snapshots.values() for s in ss.values() if node_name in s.nodes)})
    write_conditions(lab, sat, conds, status)


def golinstor_error(exc: LinstorError) -> str:
    """How golinstor's ApiCallError prints (message, plus cause/details when present)."""
    parts = []
    for rc in exc.rcs:
        text = f"Message: '{rc['message']}'"
        if rc.get("cause"):
            text += f"; Cause: '{rc['cause']}'"
        if rc.get("details"):
            text += f"; Details: '{rc['details']}'"
        parts.append(text)
    return "; ".join(parts)


def _node_properties(node: dict, props: list[dict]) -> dict[str, str]:
    """``utils.ResolveNodeProperties`` for value / valueFrom.nodeFieldRef, plus topology labels."""
    labels = node["metadata"].get("labels") or {}
    annotations = node["metadata"].get("annotations") or {}
    out = {f"Aux/topology/{k}": v for k, v in labels.items()}
    for p in props:
        if "value" in p:
            value: str | None = p["value"]
        else:
            ref = ((p.get("valueFrom") or {}).get("nodeFieldRef") or "")
            if ref == "metadata.name":
                value = node["metadata"]["name"]
            elif ref.startswith("metadata.labels['"):
                value = labels.get(ref[len("metadata.labels['"):-2])
            elif ref.startswith("metadata.annotations['"):
                value = annotations.get(ref[len("metadata.annotations['"):-2])
            else:
                value = None
        if value in (None, "") and p.get("optional"):
            continue
        out[p["name"]] = value or ""
    out[MANAGED_BY] = OPERATOR_NAME
    return out


def _reconcile_pools(lab: Lab, sat: dict, node: str, ns: str, op_pod: dict | None, sat_pod: dict) -> None:
    """``reconcileStoragePools`` (see the module docstring for the device-pool rule)."""
    ctl = lab.linstor
    expected = set()
    for pool in (sat.get("spec") or {}).get("storagePools") or []:
        name = pool.get("name", "")
        expected.add(name)
        kind = pool_kind(pool)
        if kind is None:
            raise LinstorError([api_rc(ret_code(221, MASK_ERROR), f"Must specify exactly 1 type of storage pool ({name})")], 400)
        provider, backing = kind
        props = {MANAGED_BY: OPERATOR_NAME, "StorDriver/StorPoolName": backing}
        for p in pool.get("properties") or []:
            if "value" in p:
                props[p["name"]] = p["value"]
        props[LAST_APPLIED] = json.dumps(sorted(k for k in props if k != LAST_APPLIED))
        existing = ctl.pools.get(node, {}).get(name)
        devices = [block_links.resolve_on(lab, node, d) for d in ((pool.get("source") or {}).get("hostDevices")) or []]
        if existing is None and devices:
            try:
                _rcs, signatures = ctl.create_device_pool(node, provider, backing, devices, name, props)
                for dev, sig in signatures.items():
                    set_block_signature(lab, node, dev, sig)
                log_once(lab, ns, sat_pod, "linstor-satellite",
                          f"INFO  LINSTOR/Satellite - SYSTEM - Created {provider} storage pool '{name}' on {' '.join(devices)}")
            except LinstorError as exc:
                log_once(lab, ns, op_pod, "manager", f'ERROR\tfailed to create device pool\t{{"pool": {json.dumps(pool)}, '
                                                      f'"error": {json.dumps(golinstor_error(exc))}}}')
                for rc in exc.rcs:
                    log_once(lab, ns, sat_pod, "linstor-satellite",
                              f"ERROR LINSTOR/Satellite - SYSTEM - {rc['message']} [Report number {(rc.get('error_report_ids') or ['-'])[0]}]"
                              + (f"\n{rc['details']}" if rc.get("details") else ""))
            existing = ctl.pools.get(node, {}).get(name)
        if existing is None:
            ctl.create_storage_pool(node, name, provider, props, backing_kib=None)
            existing = ctl.pools[node][name]
            if existing.error:
                log_once(lab, ns, sat_pod, "linstor-satellite",
                          f"ERROR LINSTOR/Satellite - SYSTEM - Failed to query free space from storage pool [Report number "
                          f"{existing.error['error_report_ids'][0]}]")
        changed = {k: v for k, v in props.items() if existing.props.get(k) != v}
        if changed:
            ctl.modify_storage_pool(node, name, changed, [])
    for pool in list(ctl.pools.get(node, {}).values()):
        if pool.props.get(MANAGED_BY) == OPERATOR_NAME and pool.name not in expected:
            ctl.delete_storage_pool(node, pool.name)
