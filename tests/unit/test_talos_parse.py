"""``parse_resources`` and ``parse_version`` on talosctl's real output shapes.

The shapes follow talosctl's printers (``cmd/talosctl/cmd/talos/output/{json,yaml}.go``):
``-o json`` is a stream of 4-space-indented objects with sorted keys whose scalars were
re-typed through YAML (numeric IDs become numbers, empty label values null); ``-o yaml``
separates resources with ``---`` (none before the first).
"""

from __future__ import annotations

import json

import pytest

from runbook_lib.errors import ParseError
from runbook_lib.talos import parse_resources, parse_version

JSON_STREAM = """{
    "metadata": {
        "created": "2026-03-01T10:00:00Z",
        "id": "u-linstor-storage",
        "labels": {
            "talos.dev/user-volume": null
        },
        "namespace": "runtime",
        "owner": "block.VolumeManagerController",
        "phase": "running",
        "type": "VolumeStatuses.block.talos.dev",
        "updated": "2026-03-01T10:00:05Z",
        "version": 3
    },
    "node": "10.5.0.2",
    "spec": {
        "filesystem": "xfs",
        "location": "/dev/nvme0n1p5",
        "phase": "ready",
        "prettySize": "393 GB",
        "size": 392652652544,
        "type": "partition"
    }
}
{
    "metadata": {
        "id": 0,
        "namespace": "runtime",
        "type": "ExtensionStatuses.runtime.talos.dev",
        "version": 1
    },
    "node": "10.5.0.3",
    "spec": {
        "image": "000.sqsh",
        "metadata": {
            "name": "drbd",
            "version": "9.2.16-v1.12.7"
        }
    }
}
"""

YAML_STREAM = """node: 10.5.0.2
metadata:
    namespace: runtime
    type: VolumeStatuses.block.talos.dev
    id: EPHEMERAL
    version: 2
    phase: running
spec:
    phase: ready
    size: 107374182400
---
node: 10.5.0.3
metadata:
    namespace: runtime
    type: VolumeStatuses.block.talos.dev
    id: u-linstor-storage
    version: 1
    phase: running
spec:
    phase: failed
    errorMessage: 'error creating partition: error allocating partition: partition size must be greater than sector size'
"""


def test_json_stream_of_concatenated_objects() -> None:
    items = parse_resources(JSON_STREAM)
    assert [i["node"] for i in items] == ["10.5.0.2", "10.5.0.3"]
    assert items[0]["spec"]["location"] == "/dev/nvme0n1p5"
    assert items[1]["metadata"]["id"] == "0"  # re-typed to a number by talosctl, an ID is a string
    assert items[0]["metadata"]["labels"] == {"talos.dev/user-volume": None}


def test_yaml_documents() -> None:
    items = parse_resources(YAML_STREAM)
    assert [i["metadata"]["id"] for i in items] == ["EPHEMERAL", "u-linstor-storage"]
    assert items[1]["spec"]["errorMessage"].startswith("error creating partition")


def test_empty_output_is_no_resources() -> None:
    assert parse_resources("") == []


def test_json_and_yaml_agree() -> None:
    items = parse_resources(YAML_STREAM)
    as_json = "".join(json.dumps(i, indent=4, sort_keys=True) + "\n" for i in items)
    assert parse_resources(as_json) == items


@pytest.mark.parametrize("text, needle", [
    ('{"metadata": {"id": "x"}}', "no 'spec'"),
    ('{"metadata": {}, "spec": {}}', "metadata.id"),
    ('{"metadata": {"id": "x"}, "spec": {}} {"meta', "invalid JSON"),
    ("node: [", "invalid YAML"),
    ("- 1\n- 2\n", "not a mapping"),
])
def test_malformed_output_names_the_tool_and_field(text: str, needle: str) -> None:
    with pytest.raises(ParseError) as exc:
        parse_resources(text)
    assert exc.value.tool == "talosctl" and needle in str(exc.value)


def test_version_output() -> None:
    text = ("Client:\n\tTag:         v1.12.7\n\tSHA:         abc\n\tBuilt:       \n\tGo version:  go1.25\n"
            "\tOS/Arch:     linux/amd64\nServer:\n\tNODE:        10.5.0.2\n\tTag:         v1.12.6\n")
    assert parse_version(text) == {"client": "v1.12.7", "server": "v1.12.6"}
    with pytest.raises(ParseError):
        parse_version("nothing here")
