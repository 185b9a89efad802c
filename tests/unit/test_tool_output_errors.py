"""Malformed tool output: every parser raises ``ParseError`` naming the tool (and the field), nothing else.

``talosctl`` resource streams and ``version``, ``helm status -o json``, LINSTOR's REST views and
client, and fio's JSON are each fed truncated, garbled and structurally wrong versions of output in
their real formats (hypothesis), plus explicit cases that must name the field that broke. A parser
may accept odd-but-readable input; what it may never do is raise ``KeyError``, ``TypeError``,
``AttributeError``, ``JSONDecodeError`` or ``OverflowError`` at the operator.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runbook_lib.bench import parse_fio
from runbook_lib.errors import ParseError
from runbook_lib.helm import deployed_chart_version, parse_status
from runbook_lib.linstor import resources_frame, storage_pools_frame
from runbook_lib.talos import parse_resources, parse_version
from tests.unit.test_linstor_frames import _pools, _tiebreaker_resources
from tests.unit.test_talos_parse import JSON_STREAM, YAML_STREAM

FIO_SAMPLE = (Path(__file__).resolve().parents[1] / "data" / "fio" / "randrw_70_30_psync.json").read_text()
TALOS_VERSION = """Client:
\tTag:         v1.12.7
\tSHA:         2f8fd2a7
\tBuilt:
\tGo version:  go1.25.5
\tOS/Arch:     linux/amd64
Server:
\tNODE:        10.5.0.2
\tTag:         v1.12.6
\tSHA:         b2a3c4d5
\tBuilt:
\tGo version:  go1.25.5
\tOS/Arch:     linux/amd64
\tEnabled:     RBAC
"""
# `helm status -o json` of a deployed release (helm v3: pkg/release.Release, chart metadata inlined).
HELM_STATUS = {
    "name": "piraeus",
    "info": {"first_deployed": "2026-03-01T10:00:00Z", "last_deployed": "2026-03-01T10:00:00Z", "deleted": "",
             "description": "Install complete", "status": "deployed"},
    "chart": {"metadata": {"name": "piraeus", "version": "2.10.2", "appVersion": "v2.10.2", "apiVersion": "v2"}},
    "config": {"installCRDs": True},
    "version": 1,
    "namespace": "piraeus-datastore",
}

FIRST_RESOURCE = json.loads(JSON_STREAM.split("\n}\n")[0] + "\n}")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any JSON value, including the awkward ones: huge integers, NaN/inf, empty containers, nesting.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path (tuple of keys/indexes) inside a JSON document, the root excluded."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


@st.composite
def mutated(draw: st.DrawFn, original: Any) -> Any:
    """``original`` with one place changed: a key removed, or a value replaced by any JSON value."""
    doc = copy.deepcopy(original)
    paths = list(_paths(doc))
    path = draw(st.sampled_from(paths))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return doc


@st.composite
def garbled(draw: st.DrawFn, text: str) -> str:
    """``text`` truncated, or with a stretch of it replaced by random characters."""
    cut = draw(st.integers(min_value=0, max_value=len(text)))
    if draw(st.booleans()):
        return text[:cut]
    end = draw(st.integers(min_value=cut, max_value=min(len(text), cut + 12)))
    return text[:cut] + draw(st.text(max_size=12)) + text[end:]


def _only_parse_errors(tool: str, parse: Callable[[Any], Any], data: Any) -> ParseError | None:
    """Run ``parse``; success is fine, a ParseError must name ``tool``; anything else fails the test."""
    try:
        parse(data)
    except ParseError as err:
        assert err.tool == tool, err
        assert str(err).startswith(f"could not parse {tool} output: "), err
        if err.field is not None:
            assert err.field in str(err), err
        return err
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number" if math.isfinite(value) else "non-finite"  # no tool writes NaN or Infinity in JSON
    return "null" if value is None else type(value).__name__


def same_shape(doc: Any, original: Any, optional: Callable[[str], bool] = lambda key: False) -> bool:
    """``doc`` could be the tool's output: the keys of ``original`` present (those ``optional`` names may be
    missing), every value of the same JSON type as the original's.

    A null in the original could have been anything; extra keys are allowed (a newer tool adds fields);
    a list may be shorter or longer, each item shaped like the original's item at that place (or its first).
    """
    if original is None:
        return True
    if doc is None and optional(""):
        return True  # a null where the format lets the key be absent: read as absent
    if _json_type(doc) != _json_type(original):
        return False
    if isinstance(original, dict):
        return all(same_shape(doc[k], v, optional) if k in doc else optional(k) for k, v in original.items())
    if isinstance(original, list) and original:
        return all(same_shape(item, original[min(i, len(original) - 1)], optional) for i, item in enumerate(doc))
    return True


def same_result(a: Any, b: Any) -> bool:
    if isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame):
        return a.equals(b) and a.attrs == b.attrs
    return repr(a) == repr(b)


def refused_unless_valid(tool: str, parse: Callable[[Any], Any], data: Any, original: Any,
                         decode: Callable[[Any], Any] = lambda d: d, optional: Callable[[str], bool] = lambda k: False,
                         ) -> None:
    """``parse(data)`` raises a ParseError naming ``tool``, unless ``data`` is genuinely valid output.

    Valid means: it decodes (``decode``; None when it does not) into a document shaped like ``original``
    (see :func:`same_shape`), or the parser reads exactly what it reads from ``original`` (the change
    was in a field it ignores). Anything else that parses is garbage the parser accepted.
    """
    if _only_parse_errors(tool, parse, data) is not None:
        return
    decoded = decode(data)
    if decoded is not None and same_shape(decoded, decode(original), optional):
        return
    assert same_result(parse(data), parse(original)), f"{tool} parser accepted garbage: {_difference(decoded, decode(original))} in {data!r}"


def _difference(doc: Any, original: Any, path: str = "") -> str:
    """Where ``doc`` first leaves ``original``'s shape (for the failure message)."""
    if original is None or doc is None:
        return f"{path or '(top)'}: {doc!r}"
    if _json_type(doc) != _json_type(original):
        return f"{path or '(top)'}: {_json_type(original)} -> {doc!r}"
    if isinstance(original, dict):
        for k, v in original.items():
            if k not in doc:
                return f"{path}.{k} missing"  # (or optional: then a later key)
            if not same_shape(doc[k], v):
                return _difference(doc[k], v, f"{path}.{k}")
    if isinstance(original, list) and original:
        for i, item in enumerate(doc):
            if not same_shape(item, original[min(i, len(original) - 1)]):
                return _difference(item, original[min(i, len(original) - 1)], f"{path}[{i}]")
    return f"{path or '(top)'}: same shape, other values"


def json_stream(text: Any) -> list | None:
    """The JSON documents of a ``talosctl -o json`` stream, or None when it is not one."""
    if not isinstance(text, str):
        return None
    decoder, docs, i = json.JSONDecoder(), [], 0
    try:
        while text[i:].strip():
            i += len(text[i:]) - len(text[i:].lstrip())
            doc, i = decoder.raw_decode(text, i)
            docs.append(doc)
    except ValueError:
        return None
    return docs


def yaml_stream(text: Any) -> list | None:
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None] if isinstance(text, str) else None
    except yaml.YAMLError:
        return None


def talos_stream(text: Any) -> list | None:
    """What a Talos resource stream must hold for the parser (its docstring): per resource its node, a
    ``metadata.id`` and a ``spec`` (the other metadata fields are not read; each type's spec is its own).
    Output of whitespace only is no resource at all, tabs included (PyYAML refuses a lone tab as a token)."""
    if isinstance(text, str) and not text.strip(" \t\r\n"):
        return []
    docs = json_stream(text) if isinstance(text, str) and text.lstrip().startswith("{") else yaml_stream(text)
    if docs is None or not all(isinstance(d, dict) for d in docs):
        return docs
    return [{"node": d.get("node", ""),  # talosctl leaves it out for a single endpoint; the parser reads it as ""
             "metadata": {"id": _talos_id(d["metadata"]["id"])} if isinstance(d.get("metadata"), dict)
             and "id" in d["metadata"] else d.get("metadata"), **({"spec": {}} if "spec" in d else {})} for d in docs]


def _talos_id(rid: Any) -> Any:
    """A numeric ID is talosctl's re-typing of a string ID (the parser's docstring): valid, read as its text."""
    return str(rid) if isinstance(rid, int | float) and not isinstance(rid, bool) else rid


def json_document(text: Any) -> Any:
    """The JSON document in ``text`` (after any warning lines a tool prints first), or None."""
    if not isinstance(text, str) or "{" not in text:
        return None
    try:
        return json.loads(text[text.index("{"):])
    except ValueError:
        return None


# Keys the parsers let be absent (or null, read as absent): there the fuzz requires only that a value of
# the wrong JSON type, or a non-finite number, is refused.
# - LINSTOR: its OpenAPI spec (rest_v1_openapi.yaml) requires no key of a Resource or its layers and only
#   storage_pool_name and provider_kind of a StoragePool; the frames read a missing optional one as NaN/None.
# - fio: stat.c (show_thread_status_json) writes every key, but the parser reads a missing one as NaN (and
#   clat_percentiles=0 really leaves out the percentiles), so absence is accepted, not refused.
LINSTOR_REQUIRED = frozenset({"storage_pool_name", "provider_kind"})


def linstor_pool_optional(key: str) -> bool:
    return key not in LINSTOR_REQUIRED


def fio_optional(key: str) -> bool:
    return True


VERSION_TAG = re.compile(r"v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?")  # Talos release tags (semver with a leading v)


def version_sections(text: Any) -> dict | None:
    """``talosctl version`` read independently of the parser: {section: {field: value}}, when its tags are versions."""
    if not isinstance(text, str):
        return None
    sections: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        if line.strip() in ("Client:", "Server:"):
            current = sections.setdefault(line.strip()[:-1], {})
        elif current is not None and ":" in line and line.startswith("\t"):
            key, _, value = line.strip().partition(":")
            current[key] = value.strip()
    tags = {name: s.get("Tag", "") for name, s in sections.items()}
    valid = "Client" in tags and all(VERSION_TAG.fullmatch(tag) for tag in tags.values())
    return {name: {"Tag": tag} for name, tag in tags.items()} if valid else None  # the tags are what it reports


# --------------------------------------------------------------------------- talosctl


@FUZZ
@given(st.one_of(garbled(JSON_STREAM), garbled(YAML_STREAM), st.text(max_size=200)))
@example("\t")
@example(" \x1f")
def test_talosctl_resources_garbled_text(text: str) -> None:
    original = JSON_STREAM if text.lstrip().startswith("{") else YAML_STREAM
    refused_unless_valid("talosctl", parse_resources, text, original, talos_stream)


@FUZZ
@given(st.lists(mutated(FIRST_RESOURCE), min_size=1, max_size=3))
def test_talosctl_resources_wrong_structure(resources: list) -> None:
    text = "\n".join(json.dumps(r, indent=4) for r in resources)
    refused_unless_valid("talosctl", parse_resources, text, json.dumps(FIRST_RESOURCE, indent=4), talos_stream)


@FUZZ
@given(st.one_of(garbled(TALOS_VERSION), st.text(max_size=200)))
def test_talosctl_version_garbled(text: str) -> None:
    # `talosctl version --client` prints no Server section
    refused_unless_valid("talosctl", parse_version, text, TALOS_VERSION, version_sections, lambda key: key == "Server")


@pytest.mark.parametrize(("text", "field"), [
    ('{"metadata": {"id": "x"}, "spec": {}, "node": 7}', "resources[0].node"),
    ('{"metadata": {"id": ["x"]}, "spec": {}}', "resources[0].metadata.id"),
    ('{"metadata": {"id": "a"}, "spec": {}}\n{"metadata": "b", "spec": {}}', "resources[1].metadata.id"),
    ('{"metadata": {"id": "a"}}', "resources[0].spec"),
    ("[1]", "resources[0]"),
    ("Client:\n\tSHA: abc\n", "Client.Tag"),
])
def test_talosctl_errors_name_the_field(text: str, field: str) -> None:
    parse = parse_version if text.startswith("Client") else parse_resources
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.tool == "talosctl" and info.value.field == field and field in str(info.value)


def test_talosctl_truncated_json_says_where() -> None:
    with pytest.raises(ParseError, match=r"talosctl output: invalid JSON at line \d+, column \d+.*truncated"):
        parse_resources(JSON_STREAM[:-40])


# --------------------------------------------------------------------------- helm


def _status_and_version(text: str) -> str | None:
    return deployed_chart_version(parse_status(text))


@FUZZ
@given(st.one_of(garbled(json.dumps(HELM_STATUS, indent=4)), mutated(HELM_STATUS).map(json.dumps)))
def test_helm_status_malformed(text: str) -> None:
    refused_unless_valid("helm", _status_and_version, text, json.dumps(HELM_STATUS), json_document)


@pytest.mark.parametrize(("doc", "field"), [
    ([], "(top level)"),
    ({"name": "piraeus"}, "info"),
    ({"info": "deployed"}, "info"),
    ({"info": {}}, "info.status"),
    ({"info": {"status": "deployed"}}, "chart"),
    ({"info": {"status": "deployed"}, "chart": {"metadata": None}}, "chart.metadata"),
    ({"info": {"status": "deployed"}, "chart": {"metadata": {"version": 2}}}, "chart.metadata.version"),
])
def test_helm_errors_name_the_field(doc: Any, field: str) -> None:
    with pytest.raises(ParseError) as info:
        _status_and_version(json.dumps(doc))
    assert info.value.tool == "helm" and info.value.field == field


def test_helm_status_reads_the_deployed_version() -> None:
    assert deployed_chart_version(parse_status(json.dumps(HELM_STATUS))) == "2.10.2"
    failed = {**HELM_STATUS, "info": {**HELM_STATUS["info"], "status": "failed"}}
    assert deployed_chart_version(parse_status(json.dumps(failed))) is None
    with pytest.raises(ParseError, match="helm output: `helm status -o json` is not JSON"):
        parse_status('WARNING: Kubernetes configuration file is group-readable\n{"name": "x"}')


# --------------------------------------------------------------------------- LINSTOR views


@FUZZ
@given(mutated(_pools()))
def test_linstor_storage_pools_wrong_structure(pools: list) -> None:
    refused_unless_valid("linstor", storage_pools_frame, pools, _pools(), optional=linstor_pool_optional)


@FUZZ
@given(mutated(_tiebreaker_resources()))
def test_linstor_resources_wrong_structure(resources: list) -> None:
    refused_unless_valid("linstor", resources_frame, resources, _tiebreaker_resources(), optional=lambda key: True)


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda ps: ps[1].update(free_capacity=2**62), "pools[1].free_capacity"),
    (lambda ps: ps[1].update(total_capacity=2**70), "pools[1].total_capacity"),
    (lambda ps: ps[1].update(free_capacity="882894848"), "pools[1].free_capacity"),
    (lambda ps: ps[2].pop("provider_kind"), "pools[2].provider_kind"),
    (lambda ps: ps[1].update(static_traits={"SupportsSnapshots": "maybe"}), "pools[1].static_traits.SupportsSnapshots"),
    (lambda ps: ps[4].update(reports=[{"message": 3}]), "pools[4].reports[0].message"),
])
def test_linstor_pool_errors_name_the_field(mutate: Callable, field: str) -> None:
    pools = _pools()
    mutate(pools)
    with pytest.raises(ParseError) as info:
        storage_pools_frame(pools)
    assert info.value.tool == "linstor" and info.value.field == field and field in str(info.value)


def test_linstor_resource_promotion_score_beyond_64_bits() -> None:
    resources = _tiebreaker_resources()
    resources[1]["layer_object"]["drbd"]["promotion_score"] = 2**64
    with pytest.raises(ParseError) as info:
        resources_frame(resources)
    assert info.value.field == "resources[1].layer_object.drbd.promotion_score"


# --------------------------------------------------------------------------- LINSTOR client over real HTTP










# --------------------------------------------------------------------------- fio


@FUZZ
@given(garbled(FIO_SAMPLE))
def test_fio_garbled_text(text: str) -> None:
    refused_unless_valid("fio", parse_fio, text, FIO_SAMPLE, json_document, fio_optional)


@FUZZ
@given(mutated(json.loads(FIO_SAMPLE)))
def test_fio_wrong_structure(doc: dict) -> None:
    refused_unless_valid("fio", parse_fio, json.dumps(doc), FIO_SAMPLE, json_document, fio_optional)


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda d: d["jobs"][0]["read"].update(iops="fast"), "jobs[0].read.iops"),
    (lambda d: d["jobs"][0]["read"].pop("iops"), "jobs[0].read.iops"),
    (lambda d: d["jobs"][0]["write"].update(bw_bytes=10**400), "jobs[0].write.bw_bytes"),
    (lambda d: d["jobs"][0]["write"].update(total_ios=2**64), "jobs[0].write.total_ios"),
    (lambda d: d["jobs"][0].update(jobname=None), "jobs[0].jobname"),
    (lambda d: d["jobs"][0]["read"].update(clat_ns=[]), "jobs[0].read.clat_ns"),
    (lambda d: d["jobs"][0]["read"]["clat_ns"].update(percentile={"fifty": 1}), "jobs[0].read.clat_ns.percentile"),
    (lambda d: d.update(jobs={}), "jobs"),
])
def test_fio_errors_name_the_field(mutate: Callable, field: str) -> None:
    doc = json.loads(FIO_SAMPLE)
    mutate(doc)
    with pytest.raises(ParseError) as info:
        parse_fio(json.dumps(doc))
    assert info.value.tool == "fio" and info.value.field == field and field in str(info.value)
