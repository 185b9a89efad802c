"""LINSTOR's masked ApiCallRc return codes, the api_rc entries built from them, and LinstorError."""

from __future__ import annotations

from typing import Any

# golinstor apiconsts.go (generated from LINSTOR's ApiConsts).
MASK_ERROR, MASK_WARN, MASK_INFO = 0xC000000000000000, 0x8000000000000000, 0x4000000000000000


MASK_CRT, MASK_MOD, MASK_DEL = 0x01000000, 0x02000000, 0x03000000


MASK_NODE, MASK_RSC_DFN, MASK_RSC, MASK_VLM_DFN = 0x3C0000, 0x380000, 0x340000, 0x300000


MASK_STOR_POOL, MASK_CTRL_CONF, MASK_SNAPSHOT, MASK_RSC_GRP = 0x140000, 0x100000, 0x0C0000, 0x440000


MASK_PHYS_DEV = 0x4C0000


CREATED, DELETED, MODIFIED = 1, 2, 3


FAIL_INVLD_PROP = 213


FAIL_NOT_FOUND_NODE, FAIL_NOT_FOUND_RSC_DFN, FAIL_NOT_FOUND_RSC = 300, 301, 302


FAIL_NOT_FOUND_STOR_POOL, FAIL_NOT_FOUND_SNAPSHOT, FAIL_NOT_FOUND_RSC_GRP = 310, 315, 317


FAIL_EXISTS_NODE, FAIL_EXISTS_RSC_DFN, FAIL_EXISTS_RSC, FAIL_EXISTS_STOR_POOL = 500, 501, 502, 510


FAIL_EXISTS_SNAPSHOT, FAIL_EXISTS_RSC_GRP = 516, 522


FAIL_NOT_ENOUGH_FREE_SPACE, FAIL_STLT_NO_LAYER, FAIL_STLT_NO_PROVIDER = 980, 988, 989


FAIL_SNAPSHOTS_NOT_SUPPORTED, FAIL_NOT_CONNECTED, FAIL_NOT_ENOUGH_NODES = 994, 995, 996


FAIL_IN_USE, FAIL_UNKNOWN_ERROR = 997, 998


WARN_NOT_ENOUGH_NODES_FOR_TIE_BREAKER, WARN_NOT_CONNECTED = 1013, 1002


INFO_TIE_BREAKER_CREATED, INFO_TIE_BREAKER_DELETING, INFO_TIE_BREAKER_TAKEOVER = 10003, 10004, 10006


def ret_code(code: int, *masks: int) -> int:
    """The masked return code as Java's signed ``long`` (what the JSON carries)."""
    value = code
    for m in masks:
        value |= m
    return value - 2**64 if value >= 2**63 else value


def api_rc(code: int, message: str, *, cause: str | None = None, details: str | None = None,
           correction: str | None = None, obj_refs: dict | None = None, error_ids: list[str] | None = None) -> dict:
    rc: dict[str, Any] = {"ret_code": code, "message": message}
    if cause:
        rc["cause"] = cause
    if details:
        rc["details"] = details
    if correction:
        rc["correction"] = correction
    if error_ids:
        rc["error_report_ids"] = error_ids
    if obj_refs:
        rc["obj_refs"] = obj_refs
    return rc


class LinstorError(Exception):
    """A failed API call: the ApiCallRc list LINSTOR answers with, and the HTTP status."""

    def __init__(self, rcs: list[dict], http_status: int = 500) -> None:
        super().__init__("; ".join(rc["message"] for rc in rcs))
        self.rcs = rcs
        self.http_status = http_status


def not_found(code: int, mask: int, what: str, http: int = 404) -> LinstorError:
    return LinstorError([api_rc(ret_code(code, MASK_ERROR, mask), f"{what} not found.")], http)
