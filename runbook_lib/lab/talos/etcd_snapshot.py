"""What ``talosctl etcd snapshot`` streams from a lab control plane: the cluster's keys in etcd's file shape.

A real snapshot is etcd's bbolt database (whole 4 KiB pages) followed by a sha256 of it; talosctl
refuses a stream whose size is not ``512 * n + 32`` (talosctl ``cmd/talos/etcd.go``, after etcd
``client/v3/snapshot``). The lab's file keeps that shape and holds every object of the lab's
Kubernetes store under its ``/registry/...`` key, Secrets included: like the real one, it must be
kept out of records and ``outputs/``. :func:`status` answers what ``etcdutl snapshot status`` does.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable

PAGE = 4096  # bbolt's page size
MAGIC = b"runbook-lab etcd snapshot 1\n"


def registry_key(group: str, plural: str, namespace: str | None, name: str) -> str:
    """The etcd key the API server stores an object under (``/registry/<group/>resource/<ns/>name``)."""
    parts = ["", "registry"] + ([group] if group else []) + [plural] + ([namespace] if namespace else []) + [name]
    return "/".join(parts)


def build(objects: Iterable[tuple[str, dict]], revision: int) -> bytes:
    """A snapshot of ``(key, object)`` pairs at ``revision``: whole pages, then their sha256."""
    doc = {"revision": revision, "kvs": [{"key": k, "value": v} for k, v in sorted(objects, key=lambda kv: kv[0])]}
    body = MAGIC + json.dumps(doc, separators=(",", ":")).encode()
    body += b"\0" * (-len(body) % PAGE)
    return body + hashlib.sha256(body).digest()


def status(data: bytes) -> dict:
    """``hash`` (crc32 of the database), ``revision``, ``total_keys``, ``total_size`` (the database, trailer excluded).

    Raises ValueError for a file that is not a complete snapshot (truncated, or its sha256 does not match).
    """
    if len(data) % 512 != hashlib.sha256().digest_size:
        raise ValueError(f"sha256 checksum not found (size {len(data)})")
    body, digest = data[:-32], data[-32:]
    if hashlib.sha256(body).digest() != digest:
        raise ValueError("snapshot file integrity check failed: sha256 mismatch")
    if not body.startswith(MAGIC):
        raise ValueError("not an etcd snapshot of the lab")
    doc = json.loads(body[len(MAGIC):].rstrip(b"\0"))
    return {"hash": zlib.crc32(body), "revision": int(doc["revision"]), "total_keys": len(doc["kvs"]),
            "total_size": len(body)}
