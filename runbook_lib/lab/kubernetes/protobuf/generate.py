"""Regenerate :mod:`.schemas` and :mod:`.gofields` from Kubernetes' official sources (run by hand, not at run time).

Usage, with checkouts of github.com/kubernetes/api and github.com/kubernetes/apimachinery at one release tag,
and grpcio-tools installed (its protoc compiles the ``generated.proto`` files)::

    python3 -m runbook_lib.lab.kubernetes.protobuf.generate --api DIR --apimachinery DIR --tag v0.37.0-beta.0

* :mod:`.schemas`: the stable groups' ``generated.proto`` files and the apimachinery files they import,
  compiled by protoc into one gzipped FileDescriptorSet (no comments).
* :mod:`.gofields`: what the protobuf schema does not say and the JSON encoding needs, read from the Go
  structs' tags (``json:"name,omitempty" protobuf:"...,name=..."``) next to each ``generated.proto``:
  JSON names that differ, embedded structs JSON inlines, scalars whose zero JSON still writes (Go pointers
  and fields without ``omitempty``), and named slice types protobuf wraps in ``items``.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import pprint
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

HERE = Path(__file__).resolve().parent
SCALAR_TYPES = {t for t in range(1, 19)} - {descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                                            descriptor_pb2.FieldDescriptorProto.TYPE_GROUP}
_STRUCT = re.compile(r"^type (\w+) struct \{\s*$")
_NAMED_SLICE = re.compile(r"^type (\w+) \[\](\w+)\s*$")
_FIELD = re.compile(r"^\t(?:(\w+)\s+)?(\S+)\s+`([^`]*)`")
_TAG = re.compile(r'(\w+):"([^"]*)"')


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _stable_protos(api: Path) -> list[str]:
    """``k8s.io/api/<group>/v<N>/generated.proto`` for the stable versions (what kubectl sends by default)."""
    return sorted(f"k8s.io/api/{p.relative_to(api).as_posix()}" for p in api.glob("*/*/generated.proto")
                  if re.fullmatch(r"v\d+", p.parent.name))


def _descriptor_set(api: Path, apimachinery: Path, files: list[str]) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "k8s.io"
        root.mkdir()
        (root / "api").symlink_to(api.resolve())
        (root / "apimachinery").symlink_to(apimachinery.resolve())
        out = Path(tmp) / "set.binpb"
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp}", "--include_imports",
                        f"--descriptor_set_out={out}", *files], check=True, capture_output=True)
        return out.read_bytes()


def _go_structs(package_dir: Path) -> tuple[dict[str, list[tuple[str | None, str, dict[str, str]]]], set[str]]:
    """The Go structs (name -> [(field name or None if embedded, Go type, tags)]) and named slice types."""
    structs: dict[str, list[tuple[str | None, str, dict[str, str]]]] = {}
    slices: set[str] = set()
    for path in sorted(package_dir.glob("*.go")):
        if path.name.endswith("_test.go"):
            continue
        current: list | None = None
        for line in path.read_text().splitlines():
            if current is None:
                if m := _STRUCT.match(line):
                    current = structs.setdefault(m.group(1), [])
                elif m := _NAMED_SLICE.match(line):
                    slices.add(m.group(1))
                continue
            if line.startswith("}"):
                current = None
            elif m := _FIELD.match(line):
                current.append((m.group(1), m.group(2), dict(_TAG.findall(m.group(3)))))
    return structs, slices


def _gofields(api: Path, apimachinery: Path, fds: descriptor_pb2.FileDescriptorSet) -> dict[str, dict]:
    json_names: dict[str, dict[str, str]] = {}
    inline: dict[str, list[str]] = {}
    keep_zero: dict[str, list[str]] = {}
    wrappers: list[str] = []
    for f in fds.file:
        base = api if f.name.startswith("k8s.io/api/") else apimachinery
        package_dir = base.joinpath(*Path(f.name).parts[2:-1])  # k8s.io/<repo>/<package>/generated.proto
        structs, slices = _go_structs(package_dir)
        for msg in f.message_type:
            full = f"{f.package}.{msg.name}"
            if msg.name in slices and [x.name for x in msg.field] == ["items"]:
                wrappers.append(full)
            fields = {x.name: x for x in msg.field}
            for go_name, go_type, tags in structs.get(msg.name, []):
                if "protobuf" not in tags:
                    continue
                embedded = go_type.lstrip("*").rsplit(".", 1)[-1]
                proto = dict(kv.split("=", 1) for kv in tags["protobuf"].split(",") if "=" in kv).get("name") \
                    or _lower_first(go_name or embedded)  # go-to-protobuf names an untagged field after the Go one
                if proto not in fields:
                    continue
                json_tag = tags.get("json")
                opts = (json_tag or "").split(",")
                if go_name is None and opts[0] in ("", "-") and json_tag is not None and opts[0] != "-":
                    inline.setdefault(full, []).append(proto)
                    continue
                if go_name is None and json_tag is None:
                    inline.setdefault(full, []).append(proto)  # embedded, untagged: Go's JSON promotes its fields
                    continue
                name = opts[0] or go_name
                if name != proto and opts[0] != "-":
                    json_names.setdefault(full, {})[proto] = name
                if fields[proto].type in SCALAR_TYPES and fields[proto].label != fields[proto].LABEL_REPEATED \
                        and (go_type.startswith("*") or "omitempty" not in opts):
                    keep_zero.setdefault(full, []).append(proto)
    return {"JSON_NAMES": json_names, "INLINE": {k: sorted(v) for k, v in inline.items()},
            "KEEP_ZERO": {k: sorted(v) for k, v in keep_zero.items()}, "LIST_WRAPPERS": sorted(wrappers)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--api", type=Path, required=True, help="a checkout of github.com/kubernetes/api")
    ap.add_argument("--apimachinery", type=Path, required=True, help="a checkout of github.com/kubernetes/apimachinery")
    ap.add_argument("--tag", required=True, help="the release tag both checkouts are at, e.g. v0.37.0-beta.0")
    args = ap.parse_args(argv)
    files = _stable_protos(args.api)
    raw = _descriptor_set(args.api, args.apimachinery, files)
    fds = descriptor_pb2.FileDescriptorSet.FromString(raw)
    protoc = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "--version"], capture_output=True,
                            text=True, check=True).stdout.strip()
    source = (f"# Generated by runbook_lib/lab/kubernetes/protobuf/generate.py (do not edit) from\n"
              f"# github.com/kubernetes/api and github.com/kubernetes/apimachinery at {args.tag}\n"
              f"# (Apache-2.0, The Kubernetes Authors), compiled by {protoc} (grpcio-tools).\n")
    blob = base64.b64encode(gzip.compress(raw, mtime=0)).decode()
    lines = [blob[i:i + 100] for i in range(0, len(blob), 100)]
    (HERE / "schemas.py").write_text(
        '"""Kubernetes\' official protobuf schemas as one FileDescriptorSet (gzip, base64)."""\n\n' + source +
        f"\nTAG = {args.tag!r}\nFILES = {pprint.pformat([f.name for f in fds.file], width=110)}\n"
        "FILE_DESCRIPTOR_SET = (\n" + "".join(f'    "{x}"\n' for x in lines) + ")\n")
    tables = _gofields(args.api, args.apimachinery, fds)
    body = "".join(f"\n{k} = {pprint.pformat(v, width=110, compact=True)}\n" for k, v in tables.items())
    (HERE / "gofields.py").write_text(
        '"""How Go\'s JSON encoding of the Kubernetes types differs from their protobuf schemas (from the Go tags)."""\n\n'
        + source + body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
