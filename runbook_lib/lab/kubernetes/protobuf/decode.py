"""Kubernetes' protobuf request bodies decoded into the JSON object the same request would have carried as JSON.

client-go sends built-in kinds as ``application/vnd.kubernetes.protobuf``: the magic ``k8s\\x00`` and a
``runtime.Unknown`` whose ``raw`` is the kind's message (k8s.io/apimachinery/pkg/runtime/serializer/protobuf,
``Serializer.Decode``). The messages are read with the protobuf library from Kubernetes' own schemas
(:mod:`.schemas`); the JSON follows Go's encoding of the same structs: their json names and inlined embedded
structs, zero scalars left out unless Go writes them (:mod:`.gofields`), and the types with their own JSON form
(Time, MicroTime, Duration, Quantity, IntOrString, RawExtension, FieldsV1).
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
from datetime import UTC, datetime
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from ..types import ApiError
from . import gofields, schemas

MAGIC = b"k8s\x00"  # protoEncodingPrefix: "k8s" and encoding style 0 (a runtime.Unknown follows)
PROTOBUF = "application/vnd.kubernetes.protobuf"
CBOR = "application/cbor"
CBOR_SELF_DESCRIBED = b"\xd9\xd9\xf7"  # the tag client-go's CBOR serializer starts every body with
ACCEPTED = "application/json, application/yaml, application/vnd.kubernetes.protobuf (built-in kinds)"
_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
_OMIT = object()  # a zero value Go's JSON leaves out


@functools.cache
def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    fds = descriptor_pb2.FileDescriptorSet.FromString(gzip.decompress(base64.b64decode(schemas.FILE_DESCRIPTOR_SET)))
    for f in fds.file:  # protoc writes a file after the files it imports
        pool.AddSerializedFile(f.SerializeToString())
    return pool


@functools.cache
def message_class(full_name: str) -> type[Message] | None:
    """The protobuf class of a message in Kubernetes' schemas (None: no such message)."""
    try:
        return message_factory.GetMessageClass(_pool().FindMessageTypeByName(full_name))
    except KeyError:
        return None


def message_name(api_version: str, kind: str) -> str:
    """The schema message of a kind: ``apps/v1`` Deployment is ``k8s.io.api.apps.v1.Deployment``.

    k8s.io/api keeps each group under its first DNS label (``rbac.authorization.k8s.io`` in ``rbac``); the
    options kinds every group serves (DeleteOptions, ...) are meta/v1's.
    """
    group, _, version = api_version.rpartition("/")
    name = f"k8s.io.api.{group.split('.')[0] or 'core'}.{version}.{kind}"
    if message_class(name) is None and message_class(f"{_META}.{kind}") is not None:
        return f"{_META}.{kind}"
    return name


def media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def is_protobuf(body: bytes, content_type: str) -> bool:
    return media_type(content_type) == PROTOBUF or body.startswith(MAGIC)


def as_json(body: bytes, content_type: str, api_version: str = "", kind: str = "") -> bytes:
    """The request body as JSON or YAML bytes: protobuf decoded, JSON and YAML as sent, CBOR refused (415).

    ``api_version`` and ``kind`` stand in for an envelope that names none (the URL's kind, as the API server).
    """
    if not body:
        return body  # no body (a DELETE without options): nothing to decode, whatever the Content-Type
    if is_protobuf(body, content_type):
        return json.dumps(to_object(body, api_version, kind)).encode()
    if media_type(content_type).endswith("cbor") or body.startswith(CBOR_SELF_DESCRIBED):
        raise ApiError(415, "UnsupportedMediaType",
                       f"the body of the request was in an unknown format - {media_type(content_type) or CBOR} is "
                       f"not served by the lab{f' (kind {kind})' if kind else ''}; accepted media types include: "
                       f"{ACCEPTED}")
    return body


def to_object(body: bytes, api_version: str = "", kind: str = "") -> dict:
    """A protobuf body (``k8s\\x00`` + runtime.Unknown) as the JSON object of its kind."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "BadRequest", "provided data does not appear to be a protobuf message, expected "
                                          f"prefix {list(MAGIC)}")
    if len(body) == len(MAGIC):
        raise ApiError(400, "BadRequest", "empty body")
    envelope = _parse(_UNKNOWN, body[len(MAGIC):], "runtime.Unknown envelope")
    meta = envelope.typeMeta
    api_version, kind = meta.apiVersion or api_version, meta.kind or kind
    if envelope.contentEncoding or envelope.contentType not in ("", PROTOBUF):
        raise ApiError(415, "UnsupportedMediaType",
                       f"the body of the request was in an unknown format - the protobuf envelope of kind "
                       f"{kind or '?'} holds contentType {envelope.contentType!r} contentEncoding "
                       f"{envelope.contentEncoding!r}; the lab takes only the protobuf message itself")
    if not kind:
        raise ApiError(400, "BadRequest", "Object 'Kind' is missing in the protobuf envelope")
    if not api_version:
        raise ApiError(400, "BadRequest", f"Object 'apiVersion' is missing in the protobuf envelope of kind {kind}")
    name = message_name(api_version, kind)
    if message_class(name) is None:
        raise ApiError(415, "UnsupportedMediaType",
                       f"the body of the request was in an unknown format - {PROTOBUF} is not supported for kind "
                       f"{kind} ({api_version}): Kubernetes' schemas have no message {name}; send it as "
                       "application/json or application/yaml")
    obj = _value(_parse(name, envelope.raw, f"{kind} ({api_version})"))
    return {"apiVersion": api_version, "kind": kind, **(obj if isinstance(obj, dict) else {})}


def _parse(name: str, data: bytes, what: str) -> Message:
    cls = message_class(name)
    assert cls is not None
    try:
        return cls.FromString(data)
    except DecodeError as exc:
        raise ApiError(400, "BadRequest", f"the body of the request is not a valid Kubernetes protobuf message ({what}): "
                                          f"{exc}") from exc


def _value(msg: Message) -> Any:
    """One message as Go's JSON encoding writes it (``_OMIT`` for a zero value JSON leaves out)."""
    desc: Descriptor = msg.DESCRIPTOR
    special = _SPECIAL.get(desc.full_name)
    if special is not None:
        return special(msg)
    if desc.full_name in gofields.LIST_WRAPPERS:
        return [_element(desc.fields_by_name["items"], v) for v in msg.items]  # type: ignore[attr-defined]
    full = desc.full_name
    names, inline = gofields.JSON_NAMES.get(full, {}), gofields.INLINE.get(full, ())
    keep_zero = gofields.KEEP_ZERO.get(full, ())
    out: dict[str, Any] = {}
    for field, value in msg.ListFields():  # proto2: only the fields the sender wrote
        if field.name in inline:
            out.update(_value(value))
            continue
        if _is_map(field):
            entry = field.message_type.fields_by_name["value"]
            v: Any = {k: _element(entry, x) for k, x in value.items()}
        elif field.is_repeated:
            v = [_element(field, x) for x in value]
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            v = _value(value)
        elif not value and field.name not in keep_zero:
            continue  # a non-pointer Go field with omitempty: protobuf writes its zero, JSON does not
        else:
            v = _element(field, value)
        if v is not _OMIT:
            out[names.get(field.name, field.name)] = v
    return out


def _element(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        v = _value(value)
        return None if v is _OMIT else v
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()  # Go's JSON writes []byte as base64
    return value


def _is_map(field: FieldDescriptor) -> bool:
    return field.is_repeated and field.message_type is not None and field.message_type.GetOptions().map_entry


def _time(msg: Any) -> Any:
    """metav1.Time: RFC 3339 in seconds; the zero time is an empty message (time_proto.go) and JSON omits it."""
    if not msg.HasField("seconds"):
        return _OMIT
    return datetime.fromtimestamp(msg.seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(msg: Any) -> Any:
    """metav1.MicroTime: RFC 3339 with microseconds (RFC3339Micro)."""
    if not msg.HasField("seconds"):
        return _OMIT
    at = datetime.fromtimestamp(msg.seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{at}.{msg.nanos // 1000:06d}Z"


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()``: 1h2m3.5s, 1.5ms, 0s."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _decimal(ns, size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _decimal(rest, 1_000_000_000) + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _decimal(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0") if unit > 1 else ""
    return f"{whole}.{digits}" if digits else str(whole)


def _raw_json(raw: bytes, what: str) -> Any:
    if not raw:
        return _OMIT
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "BadRequest", f"the protobuf body's {what} is not JSON: {exc}") from exc


def _int_or_string(msg: Any) -> Any:
    return msg.strVal if msg.type == 1 else msg.intVal


#: messages with their own JSON form (their Go types implement json.Marshaler)
_SPECIAL = {
    f"{_META}.Time": _time,
    f"{_META}.MicroTime": _micro_time,
    f"{_META}.Duration": lambda msg: go_duration(msg.duration),
    f"{_META}.FieldsV1": lambda msg: _raw_json(msg.Raw, "managedFields entry"),
    "k8s.io.apimachinery.pkg.api.resource.Quantity": lambda msg: msg.string,
    "k8s.io.apimachinery.pkg.api.resource.QuantityValue": lambda msg: msg.string,
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
    "k8s.io.apimachinery.pkg.runtime.RawExtension": lambda msg: _raw_json(msg.raw, "embedded object (RawExtension)"),
}
