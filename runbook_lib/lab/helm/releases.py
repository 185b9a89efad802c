"""Helm 3 releases as the lab stores them: gzip+base64 JSON in sh.helm.release.v1 Secrets, and helm's time formats."""

from __future__ import annotations

import base64
import gzip
import json
import time
from datetime import UTC, datetime

from .args import HelmError
from .cluster import Cluster


def now_utc() -> datetime:
    return datetime.now(UTC)


def go_time(t: datetime) -> str:
    """Go's ``time.Time`` JSON form (RFC 3339 with nanoseconds)."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def list_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S.%f") + "000 +0000 UTC"


def ansic(t: datetime) -> str:
    return t.strftime("%a %b ") + f"{t.day:>2}" + t.strftime(" %H:%M:%S %Y")


def _encode_release(rel: dict) -> str:
    inner = base64.b64encode(gzip.compress(json.dumps(rel).encode(), mtime=0)).decode()
    return base64.b64encode(inner.encode()).decode()


def _decode_release(data: str) -> dict:
    inner = base64.b64decode(data).decode()
    raw = base64.b64decode(inner)
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return json.loads(raw)


def load_releases(cluster: Cluster, namespace: str | None, name: str | None = None) -> list[dict]:
    selector = "owner=helm" + (f",name={name}" if name else "")
    path = f"/api/v1/namespaces/{namespace}/secrets" if namespace else "/api/v1/secrets"
    resp = cluster.request("GET", path, params={"labelSelector": selector})
    if resp.status_code == 404:
        return []
    if resp.status_code >= 400:
        raise HelmError(f"list: failed to list: {resp.json().get('message', resp.text)}")
    out = []
    for item in resp.json().get("items", []):
        if item.get("type") != "helm.sh/release.v1":
            continue
        out.append(_decode_release(item["data"]["release"]))
    return sorted(out, key=lambda r: (r["namespace"], r["name"], r["version"]))


def save_release(cluster: Cluster, rel: dict, *, create: bool) -> None:
    name = f"sh.helm.release.v1.{rel['name']}.v{rel['version']}"
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
              "metadata": {"name": name, "namespace": rel["namespace"],
                           "labels": {"name": rel["name"], "owner": "helm", "status": rel["info"]["status"],
                                      "version": str(rel["version"]), "modifiedAt": str(int(time.time()))}},
              "data": {"release": _encode_release(rel)}}
    path = f"/api/v1/namespaces/{rel['namespace']}/secrets"
    resp = cluster.request("POST", path, secret) if create else cluster.request("PUT", f"{path}/{name}", secret)
    if resp.status_code >= 400:
        raise HelmError(f"create: failed to create: {resp.json().get('message', resp.text)}")
