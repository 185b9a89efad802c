"""LINSTOR <- hosts: satellites connect when their pod is ready and report the node's devices and DRBD."""

from __future__ import annotations

from ..cluster import Lab
from ..kubernetes.objects import running_by_node
from ..linstor.providers import DeviceInfo, SatelliteFacts
from ..workloads.node_facts import node_facts
from .facts import controller_pod, linstor_service
from .owned import log_once
from .state import OperatorState

T_CONNECT = 2.0  # a ready satellite is connected to the controller this long after


def sync_linstor(lab: Lab, now: float) -> None:
    """Satellites connect when their pod is ready and report host facts (DRBD itself: :mod:`.drbd`)."""
    ctl = lab.linstor
    state: OperatorState = lab.operator
    found = linstor_service(lab)
    controller_up = found is not None and controller_pod(lab, found[0]) is not None
    ns = found[0] if found else None
    satellites = running_by_node(lab, ns, {"app.kubernetes.io/component": "linstor-satellite"}) if ns else {}
    for name, node in ctl.nodes.items():
        facts = node_facts(lab, name)
        pod = satellites.get(name)
        ready = bool(controller_up and facts and facts.up and facts.ready and pod is not None)
        if ready:
            state.ready_since.setdefault(name, now)
        else:
            state.ready_since.pop(name, None)
        online = ready and now >= state.ready_since[name] + T_CONNECT
        sat = None
        if online and facts is not None:
            devices = {p: DeviceInfo(p, facts.sizes.get(p, 0), sig, facts.mounted.get(p))
                       for p, sig in facts.partitions.items()}
            drbd = facts.drbd_version if facts.drbd_loaded and facts.usermode_helper_disabled else None
            sat = SatelliteFacts(drbd_version=drbd, zfs=facts.zfs_loaded, devices=devices)
            if node.online is False and pod is not None and not drbd:
                log_once(lab, ns, pod, "linstor-satellite",
                          "WARN  LINSTOR/Satellite - SYSTEM - DRBD version has to be >= 9. Current DRBD version: 0.0.0")
        ctl.set_online(name, online, sat)
        for pool in ctl.pools.get(name, {}).values():
            pool.full = lab.faults.has("pool-full", name)
