"""Volume content: files that pods write to and read from a PVC (echo > file, dd, cat, sha256sum), kept per DRBD replica."""

from __future__ import annotations

import base64
import copy
import hashlib
import random
from dataclasses import dataclass

from ..cluster import Lab
from ..kubernetes.objects import get
from ..storage import drbd


def snapshot_key(rd: str, snapshot: str) -> str:
    return f"snapshot:{rd}/{snapshot}"


def copy_volume_data(lab: Lab, source: str, target: str) -> None:
    lab.workloads.state.volume_data[target] = copy.deepcopy(lab.workloads.state.volume_data.get(source, {}))


def file_bytes(entry: dict) -> bytes:
    if "text" in entry:
        return entry["text"].encode()
    if "b64" in entry:  # bytes copied in (kubectl cp)
        return base64.b64decode(entry["b64"])
    if entry.get("zero"):
        return bytes(entry["size"])
    return random.Random(entry["seed"]).randbytes(entry["size"])


@dataclass(frozen=True)
class Mounted:
    """A path under a container's PVC mount: the claim, its PV's CSI volume handle (None while unbound) and the
    path inside the volume."""

    claim: dict
    handle: str | None
    inner: str

    @property
    def stored_at(self) -> tuple[str, str] | None:
        """(volume key, path inside the volume) where the volume's files are kept; None while unbound."""
        return (self.handle, self.inner) if self.handle else None


def mounted_at(lab: Lab, pod: dict, container: dict, path: str) -> Mounted | None:
    """The PVC mount ``path`` is under (the longest mount path that holds it); None under no mount or another kind."""
    mounts = sorted(container.get("volumeMounts") or [], key=lambda m: -len(m.get("mountPath", "")))
    for m in mounts:
        root = m.get("mountPath", "").rstrip("/")
        if path != root and not path.startswith(root + "/"):
            continue
        vol = next((v for v in pod["spec"].get("volumes") or [] if v.get("name") == m.get("name")), None)
        claim = ((vol or {}).get("persistentVolumeClaim") or {}).get("claimName")
        if not claim:
            return None
        pvc = get(lab, "", "persistentvolumeclaims", pod["metadata"]["namespace"], claim) or {}
        pv = get(lab, "", "persistentvolumes", None, (pvc.get("spec") or {}).get("volumeName") or "")
        handle = (((pv or {}).get("spec") or {}).get("csi") or {}).get("volumeHandle")
        return Mounted(pvc, handle or None, path[len(root):] or "/")
    return None


def resolve_path(lab: Lab, pod: dict, container: dict, path: str) -> tuple[str, str] | None:
    """(volume key, path inside the volume) for a path under one of the container's bound PVC mounts."""
    found = mounted_at(lab, pod, container, path)
    return found.stored_at if found else None


def entry_size(entry: dict) -> int:
    """Bytes of a file kept on a volume."""
    return len(entry["text"].encode()) if "text" in entry else int(entry.get("size", 0))


def put_file(lab: Lab, key: str, inner: str, entry: dict, written: int) -> None:
    """Keep ``entry`` as the file ``inner`` of volume ``key``; writing it put ``written`` bytes on the replicas."""
    lab.workloads.state.volume_data.setdefault(key, {})[inner] = entry
    _account_write(lab, key, written)


def _account_write(lab: Lab, rd_name: str, size: int) -> None:
    rd = lab.linstor.rds.get(rd_name)
    if rd is None:
        return
    cap = sum(vd.size_kib for vd in rd.volumes)
    for rep in rd.replicas.values():
        if not rep.diskless:
            rep.written_kib = min(cap, rep.written_kib + -(-size // 1024))


def volume_command(lab: Lab, pod: dict, container: dict, cmd: str, args: list[str]) -> tuple[int, str, float] | None:
    """Commands that read or write a PVC mount; None when the command touches no volume."""
    data = lab.workloads.state.volume_data
    if cmd in ("echo", "printf") and ">" in args[:-1]:
        i = args.index(">")
        target = resolve_path(lab, pod, container, args[i + 1])
        if target is None:
            return None
        text = " ".join(args[:i]) + ("\n" if cmd == "echo" else "")
        put_file(lab, target[0], target[1], {"text": text}, len(text))
        return 0, "", 0.0
    if cmd == "dd":
        opts = dict(a.split("=", 1) for a in args if "=" in a)
        target = resolve_path(lab, pod, container, opts.get("of", ""))
        if target is None:
            return None
        unit = {"": 1, "k": 1024, "K": 1024, "M": 2**20, "G": 2**30}
        bs = opts.get("bs", "512")
        size = int(bs.rstrip("kKMG")) * unit[bs[-1] if bs[-1] in "kKMG" else ""] * int(opts.get("count", "1"))
        source = opts.get("if", "")
        if source == "/dev/zero":
            entry: dict = {"zero": True, "size": size}
        elif source in ("/dev/urandom", "/dev/random"):
            seed = hashlib.sha256(f"{target[0]}{target[1]}{pod['metadata'].get('uid')}".encode()).hexdigest()
            entry = {"seed": seed, "size": size}
        else:
            return 1, f"dd: can't open '{source}': No such file or directory", 0.0
        put_file(lab, target[0], target[1], entry, size)
        count = int(opts.get("count", "1"))
        text = "" if opts.get("status") == "none" else f"{count}+0 records in\n{count}+0 records out\n{size} bytes copied"
        return 0, text, size / (200 * 2**20)  # ~200 MiB/s
    if cmd in ("sha256sum", "cat", "wc"):
        paths = [a for a in args if not a.startswith("-")]
        targets = [(p, resolve_path(lab, pod, container, p)) for p in paths]
        if not targets or all(t is None for _p, t in targets):
            return None
        lines, code = [], 0
        for p, t in targets:
            entry = data.get(t[0], {}).get(t[1]) if t else None
            if t and drbd.holds_files(lab, t[0], t[1]):  # appended per replica (the drill's record log)
                replica = drbd.read(lab, t[0], pod["spec"].get("nodeName", ""), t[1])
                entry = None if replica is None else {"text": "".join(line + "\n" for line in replica)}
            if entry is None:
                lines.append(f"{cmd}: {p}: No such file or directory")
                code = 1
                continue
            content = file_bytes(entry)
            if cmd == "sha256sum":
                lines.append(f"{hashlib.sha256(content).hexdigest()}  {p}")
            elif cmd == "wc":
                lines.append(f"{len(content)} {p}")
            else:
                lines.append(content.decode(errors="replace").rstrip("\n"))
        return code, "\n".join(lines), 0.1
    return None
