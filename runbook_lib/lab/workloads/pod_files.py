"""A container's files as ``tar`` and ``test`` in it see them: its PVC mounts, ConfigMap/Secret mounts, its own layer.

What a path is depends on the container's longest matching ``volumeMount``, as in a real container:

- a PVC mount reads and writes the volume's content (:mod:`.volume_data`, per CSI volume handle, so
  every pod of that volume and the volume's snapshots see it; the drill's record log is read from the
  DRBD replica the pod's node serves, as ``cat`` does);
- a ConfigMap or Secret mount holds one read-only file per key (the kubelet's atomic writer);
- anything else is the container's writable layer: files copied in, the image's standard directories
  and the kubelet's ``/etc/hostname``. It lives as long as the container instance (a restart or a new
  pod starts empty again).

Only regular files and directories are modelled; the image's own files are not (a ``tar`` of
``/usr/bin`` finds nothing).
"""

from __future__ import annotations

import base64
import posixpath
from dataclasses import dataclass

from ..cluster import Lab
from ..kubernetes.objects import get
from ..storage import drbd
from .volume_data import file_bytes, put_file, resolve_path

# directories every image the lab runs has (FHS; busybox and Debian-based images alike)
IMAGE_DIRS = ("/", "/bin", "/dev", "/etc", "/home", "/proc", "/root", "/run", "/sbin", "/sys", "/tmp", "/usr", "/var")


class ReadOnly(Exception):
    """A write to a read-only mount."""


@dataclass
class Place:
    """Where a path lives: ``kind`` volume (key: CSI volume handle), projected (ConfigMap/Secret), layer."""

    kind: str
    key: str
    inner: str  # the path inside the volume or layer ("/" is its root)


def _layer_key(pod: dict, container: dict) -> str:
    return f"{pod['metadata']['uid']}/{container['name']}"


def place(lab: Lab, pod: dict, container: dict, path: str) -> Place | None:
    """Where ``path`` (absolute, normalised) lives in the container; None for a PVC that is not provisioned."""
    mounts = sorted(container.get("volumeMounts") or [], key=lambda m: -len(m.get("mountPath", "")))
    for m in mounts:
        root = m.get("mountPath", "").rstrip("/") or "/"
        if path != root and not path.startswith(root.rstrip("/") + "/"):
            continue
        inner = "/" + path[len(root):].lstrip("/")
        vol = next((v for v in pod["spec"].get("volumes") or [] if v.get("name") == m.get("name")), {})
        if "persistentVolumeClaim" in vol:
            target = resolve_path(lab, pod, container, path)
            return Place("volume", target[0], target[1]) if target else None
        if "configMap" in vol or "secret" in vol:
            return Place("projected", m.get("name", ""), inner)
        break
    return Place("layer", _layer_key(pod, container), path)


def _projected(lab: Lab, pod: dict, volume: str) -> dict[str, bytes]:
    vol = next((v for v in pod["spec"].get("volumes") or [] if v.get("name") == volume), {})
    ns = pod["metadata"]["namespace"]
    if "configMap" in vol:
        obj = get(lab, "", "configmaps", ns, vol["configMap"].get("name", "")) or {}
        files = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        files.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    else:
        obj = get(lab, "", "secrets", ns, (vol.get("secret") or {}).get("secretName", "")) or {}
        files = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    return {"/" + k: v for k, v in files.items()}


def _layer(lab: Lab, pod: dict, key: str) -> dict[str, dict]:
    files = lab.workloads.state.container_files.get(key)
    if files is None:
        name = (pod["spec"].get("hostname") or pod["metadata"]["name"])
        files = {"/etc/hostname": {"text": name + "\n"}}
    return files


def _entries(lab: Lab, pod: dict, where: Place) -> dict[str, dict | bytes]:
    """path -> file entry (or bytes) of the whole volume, projection or layer."""
    if where.kind == "volume":
        data: dict[str, dict | bytes] = dict(lab.workloads.state.volume_data.get(where.key, {}))
        node = pod["spec"].get("nodeName", "")
        for per_node in lab.drbd.files.get(where.key, {}).values():
            for p in per_node:
                if drbd.holds_files(lab, where.key, p):
                    lines = drbd.read(lab, where.key, node, p)
                    data[p] = {"io_error": True} if lines is None else "".join(x + "\n" for x in lines).encode()
        return data
    if where.kind == "projected":
        return dict(_projected(lab, pod, where.key))
    return dict(_layer(lab, pod, where.key))


def _dirs(where: Place, entries: dict) -> set[str]:
    dirs = {"/"} | (set(IMAGE_DIRS) if where.kind == "layer" else set())
    for p, e in entries.items():
        if isinstance(e, dict) and e.get("dir"):
            dirs.add(p)
        parent = posixpath.dirname(p)
        while parent not in dirs:
            dirs.add(parent)
            parent = posixpath.dirname(parent)
    return dirs


def kind_of(lab: Lab, pod: dict, container: dict, path: str) -> str | None:
    """``dir``, ``file`` or None (no such path)."""
    path = posixpath.normpath(path)
    where = place(lab, pod, container, path)
    if where is None:
        return None
    entries = _entries(lab, pod, where)
    if where.inner in _dirs(where, entries):
        return "dir"
    e = entries.get(where.inner)
    return "file" if e is not None and not (isinstance(e, dict) and e.get("dir")) else None


def content(entry: dict | bytes) -> bytes:
    return entry if isinstance(entry, bytes) else file_bytes(entry)


def tree(lab: Lab, pod: dict, container: dict, path: str) -> list[tuple[str, bytes | None]] | None:
    """(absolute path, bytes or None for a directory) of ``path`` and everything under it; None if absent.

    A file whose replica cannot be read (no UpToDate data) raises OSError (EIO).
    """
    path = posixpath.normpath(path)
    where = place(lab, pod, container, path)
    if where is None:
        return None
    entries = _entries(lab, pod, where)
    dirs = _dirs(where, entries)
    base = path[: len(path) - len(where.inner)] if where.inner != "/" else path
    outside = base.rstrip("/")

    def absolute(inner: str) -> str:
        return (outside + inner) if inner != "/" else (outside or "/")

    def data(e: dict | bytes) -> bytes:
        if isinstance(e, dict) and e.get("io_error"):
            raise OSError(5, "Input/output error")
        return content(e)

    if where.inner not in dirs:
        e = entries.get(where.inner)
        return None if e is None else [(path, data(e))]
    prefix = where.inner.rstrip("/") + "/"
    out: list[tuple[str, bytes | None]] = [(path, None)]
    for d in sorted(d for d in dirs if d.startswith(prefix)):
        out.append((absolute(d), None))
    for p in sorted(p for p in entries if p.startswith(prefix)):
        e = entries[p]
        if not (isinstance(e, dict) and e.get("dir")):
            out.append((absolute(p), data(e)))
    return sorted(out, key=lambda x: x[0])


def write(lab: Lab, pod: dict, container: dict, path: str, data: bytes | None) -> None:
    """Create a file (``data``) or directory (None) at ``path``; ReadOnly on a ConfigMap/Secret mount."""
    path = posixpath.normpath(path)
    where = place(lab, pod, container, path)
    if where is None or where.kind == "projected":
        raise ReadOnly(path)
    entry = {"dir": True} if data is None else {"b64": base64.b64encode(data).decode(), "size": len(data)}
    if where.kind == "volume":
        if data is None:
            return  # the volume model keeps files; a directory exists through the files in it
        put_file(lab, where.key, where.inner, entry, len(data))
        return
    layer = lab.workloads.state.container_files.setdefault(where.key, dict(_layer(lab, pod, where.key)))
    layer[where.inner] = entry


def forget_container(lab: Lab, uid: str) -> None:
    """A pod's containers are gone: so are their writable layers."""
    files = lab.workloads.state.container_files
    for key in [k for k in files if k.startswith(uid + "/")]:
        del files[key]
