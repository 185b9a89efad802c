"""Kubernetes protobuf request bodies, built with the protobuf library's classes for the official schemas, decode
into the JSON object Go's encoding of the same struct writes."""

from __future__ import annotations

import base64
import json

import pytest

from runbook_lib.lab.kubernetes.protobuf import decode, gofields, schemas
from runbook_lib.lab.kubernetes.types import ApiError


def _cls(name: str):
    cls = decode.message_class(name)
    assert cls is not None, name
    return cls


def envelope(api_version: str, kind: str, raw: bytes, **extra: str) -> bytes:
    """``k8s\\x00`` + runtime.Unknown, as client-go's protobuf serializer writes it."""
    unknown = _cls("k8s.io.apimachinery.pkg.runtime.Unknown")(raw=raw, **extra)
    unknown.typeMeta.apiVersion, unknown.typeMeta.kind = api_version, kind
    return decode.MAGIC + unknown.SerializeToString()


def test_the_schemas_are_kubernetes_own_and_name_their_source() -> None:
    assert schemas.TAG.startswith("v0.") and "k8s.io/api/core/v1/generated.proto" in schemas.FILES
    for kind in ("core.v1.Namespace", "core.v1.ConfigMap", "core.v1.Secret", "core.v1.Pod", "core.v1.Service",
                 "core.v1.PersistentVolumeClaim", "apps.v1.Deployment", "batch.v1.Job",
                 "authorization.v1.SelfSubjectAccessReview", "policy.v1.Eviction"):
        assert decode.message_class(f"k8s.io.api.{kind}") is not None
    # Go's JSON names that are not the protobuf field's name (checked against the Go struct tags)
    assert gofields.JSON_NAMES["k8s.io.api.networking.v1.IngressClassParametersReference"] == {"aPIGroup": "apiGroup"}


def test_message_names_follow_the_group_and_version() -> None:
    assert decode.message_name("v1", "Namespace") == "k8s.io.api.core.v1.Namespace"
    assert decode.message_name("rbac.authorization.k8s.io/v1", "Role") == "k8s.io.api.rbac.v1.Role"
    assert decode.message_name("apps/v1", "DeleteOptions") == "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions"


def test_a_deployment_decodes_with_go_json_names_pointers_and_special_types() -> None:
    dep = _cls("k8s.io.api.apps.v1.Deployment")()
    dep.metadata.name, dep.metadata.namespace = "web", "default"
    dep.metadata.labels["app"] = "web"
    dep.metadata.creationTimestamp.SetInParent()  # Go's zero Time: an empty message, which JSON leaves out
    dep.metadata.generateName = ""  # a non-pointer string: protobuf writes "", Go's JSON (omitempty) does not
    dep.spec.replicas = 0  # *int32: the zero is the sender's, and kept
    dep.spec.selector.matchLabels["app"] = "web"
    dep.spec.strategy.rollingUpdate.maxSurge.type = 1
    dep.spec.strategy.rollingUpdate.maxSurge.strVal = "25%"
    dep.spec.strategy.rollingUpdate.maxUnavailable.intVal = 1
    pod = dep.spec.template.spec
    pod.terminationGracePeriodSeconds = 0
    c = pod.containers.add(name="nginx", image="nginx:1.29", imagePullPolicy="")
    c.resources.limits["memory"].string = "64Mi"
    c.ports.add(containerPort=80)
    c.livenessProbe.handler.httpGet.port.intVal = 8080  # ProbeHandler is inlined in Probe's JSON
    vol = pod.volumes.add(name="cfg")
    vol.volumeSource.configMap.localObjectReference.name = "settings"  # both inlined
    obj = decode.to_object(envelope("apps/v1", "Deployment", dep.SerializeToString()))
    assert obj == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                 "template": {"spec": {
                     "terminationGracePeriodSeconds": 0,
                     "volumes": [{"name": "cfg", "configMap": {"name": "settings"}}],
                     "containers": [{"name": "nginx", "image": "nginx:1.29", "ports": [{"containerPort": 80}],
                                     "resources": {"limits": {"memory": "64Mi"}},
                                     "livenessProbe": {"httpGet": {"port": 8080}}}]}}}}


def test_bytes_times_raw_extensions_and_list_wrappers() -> None:
    secret = _cls("k8s.io.api.core.v1.Secret")()
    secret.metadata.name = "s"
    secret.metadata.creationTimestamp.seconds = 1_700_000_000
    secret.data["k"] = b"\x00v"
    obj = decode.to_object(envelope("v1", "Secret", secret.SerializeToString()))
    assert obj["data"] == {"k": base64.b64encode(b"\x00v").decode()}
    assert obj["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20Z"

    review = _cls("k8s.io.api.authorization.v1.SubjectAccessReview")()
    review.spec.user = "bob"
    review.spec.extra["scopes"].items.extend(["a", "b"])  # Go's []string type: protobuf wraps it in items
    review.spec.resourceAttributes.verb = "get"
    obj = decode.to_object(envelope("authorization.k8s.io/v1", "SubjectAccessReview", review.SerializeToString()))
    assert obj["spec"] == {"user": "bob", "extra": {"scopes": ["a", "b"]}, "resourceAttributes": {"verb": "get"}}

    event = _cls("k8s.io.api.events.v1.Event")()
    event.eventTime.seconds, event.eventTime.nanos = 1_700_000_000, 123_456_000
    obj = decode.to_object(envelope("events.k8s.io/v1", "Event", event.SerializeToString()))
    assert obj["eventTime"] == "2023-11-14T22:13:20.123456Z"

    rev = _cls("k8s.io.api.apps.v1.ControllerRevision")(revision=2)
    rev.data.raw = json.dumps({"spec": {"x": 1}}).encode()
    obj = decode.to_object(envelope("apps/v1", "ControllerRevision", rev.SerializeToString()))
    assert obj["data"] == {"spec": {"x": 1}} and obj["revision"] == 2


@pytest.mark.parametrize(("ns", "text"), [(0, "0s"), (500, "500ns"), (1_500, "1.5µs"), (1_500_000, "1.5ms"),
                                          (90_000_000_000, "1m30s"), (3_723_500_000_000, "1h2m3.5s"),
                                          (3_600_000_000_000, "1h0m0s"), (-2_000_000_000, "-2s")])
def test_durations_print_as_go_does(ns: int, text: str) -> None:
    assert decode.go_duration(ns) == text  # time.Duration.String()


def test_an_envelope_without_a_kind_takes_the_urls() -> None:
    ns = _cls("k8s.io.api.core.v1.Namespace")()
    ns.metadata.name = "x"
    body = envelope("", "", ns.SerializeToString())
    assert decode.as_json(body, decode.PROTOBUF, "v1", "Namespace") == \
        b'{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}'
    with pytest.raises(ApiError) as err:
        decode.to_object(body)
    assert err.value.code == 400 and "Kind" in str(err.value.status())


@pytest.mark.parametrize(("body", "code", "words"), [
    (b"k8s\x00\x0a\x03abc", 400, "not a valid Kubernetes protobuf message"),  # truncated envelope
    (b"k8s\x00", 400, "empty body"),
    (b'{"kind": "Namespace"}', 400, "does not appear to be a protobuf message"),  # JSON sent as protobuf
])
def test_broken_protobuf_bodies_are_400(body: bytes, code: int, words: str) -> None:
    with pytest.raises(ApiError) as err:
        decode.as_json(body, decode.PROTOBUF)
    assert err.value.code == code and words in err.value.status()["message"]


def test_a_truncated_object_inside_a_good_envelope_is_400() -> None:
    cm = _cls("k8s.io.api.core.v1.ConfigMap")()
    cm.metadata.name = "c"
    cm.data["a"] = "1" * 50
    with pytest.raises(ApiError) as err:
        decode.to_object(envelope("v1", "ConfigMap", cm.SerializeToString()[:-10]))
    assert err.value.code == 400 and "ConfigMap (v1)" in err.value.status()["message"]


def test_encodings_the_lab_does_not_take_are_415_naming_kind_and_media_type() -> None:
    with pytest.raises(ApiError) as err:
        decode.as_json(envelope("example.com/v1", "Widget", b""), decode.PROTOBUF)
    msg = err.value.status()["message"]
    assert err.value.code == 415 and "kind Widget (example.com/v1)" in msg and decode.PROTOBUF in msg
    with pytest.raises(ApiError) as err:
        decode.as_json(envelope("v1", "ConfigMap", b"", contentEncoding="gzip"), decode.PROTOBUF)
    assert err.value.code == 415 and "gzip" in err.value.status()["message"]
    with pytest.raises(ApiError) as err:
        decode.as_json(b"\xd9\xd9\xf7\xa0", "application/cbor", "v1", "ConfigMap")
    msg = err.value.status()["message"]
    assert err.value.code == 415 and "application/cbor" in msg and "ConfigMap" in msg
    assert decode.as_json(b'{"a": 1}', "application/json") == b'{"a": 1}'  # JSON and YAML pass as sent


def test_the_go_tag_tables_name_only_messages_and_fields_of_the_schemas() -> None:
    for table in (gofields.JSON_NAMES, gofields.INLINE, gofields.KEEP_ZERO):
        for message, fields in table.items():
            cls = _cls(message)
            assert set(fields) <= set(cls.DESCRIPTOR.fields_by_name), message
    for message in gofields.LIST_WRAPPERS:
        assert list(_cls(message).DESCRIPTOR.fields_by_name) == ["items"]
    assert "replicas" in gofields.KEEP_ZERO["k8s.io.api.apps.v1.DeploymentSpec"]  # *int32 in Go
    assert "imagePullPolicy" not in gofields.KEEP_ZERO["k8s.io.api.core.v1.Container"]  # string, omitempty


def test_an_empty_body_passes_whatever_its_content_type() -> None:
    assert decode.as_json(b"", decode.PROTOBUF) == b""  # a DELETE without options
