"""``tar`` and ``test`` in a container, over its files (:mod:`.pod_files`): what ``kubectl cp`` runs through exec.

kubectl (kubernetes/kubectl pkg/cmd/cp/cp.go) copies out of a pod with ``tar cf - <path>`` and reads the
archive from stdout (names must start with the path without its leading ``/``); it copies in by running
``test -d <dest>`` and then ``tar -xmf - [-C <dir>]`` (``--no-same-permissions --no-same-owner`` with
``--no-preserve``) with the archive on stdin. The archives are read and written with Python's
``tarfile``. Messages follow the image's tar: busybox's for busybox/alpine images, GNU tar's otherwise
(which prints "Removing leading `/' from member names" on stderr, the line kubectl cp users know).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Callable

from ..cluster import Lab
from . import pod_files


def _busybox(container: dict) -> bool:
    image = (container.get("image") or "busybox").rsplit("/", 1)[-1]
    return image.startswith(("busybox", "alpine"))


def reads_stdin(command: list[str]) -> bool:
    """Does the command read its stdin (so the exec waits for the client's stdin first)?"""
    if not command or command[0] != "tar":
        return False
    try:
        mode, archive, _c, _p = _parse(command[1:])
    except ValueError:
        return False
    return mode == "x" and archive == "-"


def archive_complete(data: bytes | bytearray) -> bool:
    """Does ``data`` hold a whole tar archive, up to its end-of-archive zero block (where tar stops reading)?"""
    at = 0
    while at + 512 <= len(data):
        header = data[at:at + 512]
        if not any(header):
            return True
        try:
            size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
        except ValueError:
            return True  # not an archive: tar gives up here
        at += 512 + -(-size // 512) * 512
    return False


def _parse(args: list[str]) -> tuple[str, str | None, str | None, list[str]]:
    """(mode c/x/t, archive, -C directory, paths) of a tar command line (old-style bundled options too)."""
    mode, archive, cdir, paths = "", None, None, []
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a in ("--no-same-permissions", "--no-same-owner", "--touch"):
            continue
        if a == "-C" or a.startswith("--directory="):
            cdir = a.split("=", 1)[1] if "=" in a else (args[i] if i < len(args) else "")
            i += 0 if "=" in a else 1
            continue
        if a.startswith("--"):
            raise ValueError(a)
        if a.startswith("-") or (i == 1 and not paths):
            for letter in a.lstrip("-"):
                if letter in "cxt":
                    mode = letter
                elif letter == "f":
                    archive = args[i] if i < len(args) else ""
                    i += 1
                elif letter == "C":
                    cdir = args[i] if i < len(args) else ""
                    i += 1
                elif letter not in "mvpo":
                    raise ValueError(f"-{letter}")
            continue
        paths.append(a)
    if not mode:
        raise ValueError("no mode")
    return mode, archive, cdir, paths


def tar(lab: Lab, pod: dict, container: dict, args: list[str], stdin: bytes) -> tuple[int, bytes | str, str]:
    busybox = _busybox(container)
    try:
        mode, archive, cdir, paths = _parse(args)
    except ValueError as exc:
        if busybox:
            return 1, "", f"tar: unrecognized option '{exc}'\nBusyBox tar: the lab models c and x with f - only\n"
        return 2, "", f"tar: unrecognized option '{exc}'\nTry 'tar --help' or 'tar --usage' for more information.\n"
    if archive != "-" or mode == "t":
        return 2, "", "tar: the lab's tar reads and writes archives on stdin/stdout only (f -)\n"
    if mode == "c":
        return _create(lab, pod, container, cdir, paths, busybox)
    return _extract(lab, pod, container, cdir or "/", stdin, busybox)


def _create(lab: Lab, pod: dict, container: dict, cdir: str | None, paths: list[str],
            busybox: bool) -> tuple[int, bytes | str, str]:
    if not paths:
        return (1, "", "tar: empty archive\n") if busybox else (2, "", "tar: Cowardly refusing to create an empty archive\n")
    buf = io.BytesIO()
    err: list[str] = []
    code = 0
    stripped = False
    mtime = int(lab.cluster_time())
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for raw in paths:
            path = posixpath.normpath(posixpath.join(cdir or "/", raw))
            try:
                found = pod_files.tree(lab, pod, container, path)
            except OSError as exc:
                err.append(f"tar: {raw}: Read error at byte 0, while reading 0 bytes: {exc.strerror}\n" if not busybox
                           else f"tar: {raw}: {exc.strerror}\n")
                code = 2 if not busybox else 1
                continue
            if found is None:
                err.append(f"tar: {raw}: No such file or directory\n" if busybox
                           else f"tar: {raw}: Cannot stat: No such file or directory\n")
                code = 1 if busybox else 2
                continue
            if raw.startswith("/") and not stripped:
                stripped = True
                err.append("tar: removing leading '/' from member names\n" if busybox
                           else "tar: Removing leading `/' from member names\n")
            for member_path, data in found:
                rel = posixpath.relpath(member_path, posixpath.normpath(cdir or "/")) if not raw.startswith("/") \
                    else member_path.lstrip("/")
                info = tarfile.TarInfo(rel + ("/" if data is None and not busybox else ""))
                info.uname = info.gname = "root"
                info.mtime = mtime
                if data is None:
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    archive.addfile(info)
                else:
                    info.size, info.mode = len(data), 0o644
                    archive.addfile(info, io.BytesIO(data))
    if code and not busybox:
        err.append("tar: Exiting with failure status due to previous errors\n")
    return code, buf.getvalue(), "".join(err)


def _extract(lab: Lab, pod: dict, container: dict, cdir: str, stdin: bytes, busybox: bool) -> tuple[int, str, str]:
    base = posixpath.normpath(cdir if cdir.startswith("/") else "/" + cdir)
    if pod_files.kind_of(lab, pod, container, base) != "dir":
        if busybox:
            return 1, "", f"tar: can't change directory to '{cdir}': No such file or directory\n"
        return 2, "", f"tar: {cdir}: Cannot open: No such file or directory\ntar: Error is not recoverable: exiting now\n"
    try:
        with tarfile.open(fileobj=io.BytesIO(stdin), mode="r:") as archive:
            members = [(m, _member_bytes(archive, m)) for m in archive.getmembers()]
    except (tarfile.TarError, EOFError):
        if busybox:
            return 1, "", "tar: short read\n"
        return 2, "", "tar: This does not look like a tar archive\ntar: Exiting with failure status due to previous errors\n"
    for member, data in members:
        name = member.name.lstrip("/")
        target = posixpath.normpath(posixpath.join(base, name))
        if not (member.isfile() or member.isdir()):
            continue  # links and devices are not modelled
        try:
            pod_files.write(lab, pod, container, target, data if member.isfile() else None)
        except pod_files.ReadOnly:
            if busybox:
                return 1, "", f"tar: can't open '{name}': Read-only file system\n"
            return 2, "", (f"tar: {name}: Cannot open: Read-only file system\n"
                           "tar: Exiting with failure status due to previous errors\n")
    return 0, "", ""


def _member_bytes(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes | None:
    f = archive.extractfile(member) if member.isfile() else None
    return f.read() if f is not None else None


def test(lab: Lab, pod: dict, container: dict, args: list[str], stdin: bytes) -> tuple[int, str, str]:
    """``test -d|-f|-e PATH``: exit 0 when it holds, 1 when not (coreutils/busybox ``test``)."""
    if len(args) != 2 or args[0] not in ("-d", "-f", "-e"):
        return 2, "", "test: the lab's test answers -d, -f and -e PATH only\n"
    kind = pod_files.kind_of(lab, pod, container, posixpath.normpath(args[1]))
    ok = {"-d": kind == "dir", "-f": kind == "file", "-e": kind is not None}[args[0]]
    return (0 if ok else 1), "", ""


COMMANDS: dict[str, Callable[[Lab, dict, dict, list[str], bytes], tuple[int, bytes | str, str]]] = {
    "tar": tar, "test": test,
}
