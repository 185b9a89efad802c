"""How the operator writes: objects owned by a piraeus.io resource, pkg/conditions, and log lines written once."""

from __future__ import annotations

import copy

from ..cluster import Lab
from ..kubernetes import objects as ko
from ..kubernetes.objects import owner_ref, set_condition
from ..workloads.logs import append_log
from .state import OperatorState


def log_once(lab: Lab, ns: str, pod: dict | None, container: str, text: str) -> None:
    if pod is None:
        return
    key = f"{pod['metadata']['uid']}:{container}:{text}"
    state: OperatorState = lab.operator
    if key in state.logged:
        return
    state.logged.append(key)
    del state.logged[:-500]
    append_log(lab, ns, pod["metadata"]["name"], container, text)


def new_conditions() -> dict[str, dict]:
    return {t: {"status": "Unknown", "reason": "NotObserved", "messages": []} for t in ("Applied", "Available", "Configured")}


_PRIORITY = {"NotObserved": 0, "AsExpected": 1, "Completed": 2, "InProgress": 3, "Unknown": 4, "Error": 5}


def add_success(conds: dict, ctype: str, message: str) -> None:
    c = conds.setdefault(ctype, {"status": "Unknown", "reason": "NotObserved", "messages": []})
    c["messages"].append(message)
    if _PRIORITY[c["reason"]] < _PRIORITY["AsExpected"]:
        c["status"], c["reason"] = "True", "AsExpected"


def add_error(conds: dict, ctype: str, err: str) -> None:
    c = conds.setdefault(ctype, {"status": "Unknown", "reason": "NotObserved", "messages": []})
    c["messages"].append(f"Error: {err}")
    if _PRIORITY[c["reason"]] < _PRIORITY["Error"]:
        c["status"], c["reason"] = "False", "Error"


def add_unknown(conds: dict, ctype: str, message: str) -> None:
    c = conds.setdefault(ctype, {"status": "Unknown", "reason": "NotObserved", "messages": []})
    c["messages"].append(message)
    if _PRIORITY[c["reason"]] < _PRIORITY["Unknown"]:
        c["status"], c["reason"] = "Unknown", "Unknown"


def write_conditions(lab: Lab, obj: dict, conds: dict, extra: dict | None = None) -> None:
    status = copy.deepcopy(obj.get("status") or {})
    current = status.get("conditions") or []
    gen = obj["metadata"].get("generation", 1)
    for ctype in sorted(conds):
        c = conds[ctype]
        current = set_condition(current, {"type": ctype, "status": c["status"], "reason": c["reason"],
                                             "message": "\n".join(c["messages"]), "observedGeneration": gen})
    status["conditions"] = sorted(current, key=lambda c: c["type"])
    status.update(extra or {})
    ko.set_status(lab, obj, status)


def apply_owned(lab: Lab, group: str, version: str, plural: str, obj: dict, owner: dict) -> dict | None:
    obj["metadata"]["ownerReferences"] = [owner_ref(owner)]
    return ko.apply(lab, group, version, plural, obj)
