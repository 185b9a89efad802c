"""Secret masking and machine-configuration document merging."""

from __future__ import annotations

import pytest

from runbook_lib import machineconfig
from runbook_lib.errors import ParseError
from runbook_lib.redact import MASK, Redactor


def test_redactor_masks_values_everywhere() -> None:
    r = Redactor(["s3cr3t-value", "ab"])  # two-character values are ignored on purpose
    assert r.text("token=s3cr3t-value;ab") == f"token={MASK};ab"
    data = {"cmd": ["--token", "s3cr3t-value"], "linstor_passphrase": "x", "secrets": {"a": "b"}, "n": 1}
    assert r.deep(data) == {"cmd": ["--token", MASK], "linstor_passphrase": MASK, "secrets": {"a": MASK}, "n": 1}


def test_redactor_learns_kubeconfig_credentials() -> None:
    r = Redactor()
    r.add_from_mapping({"users": [{"name": "u", "user": {"token": "abcdef123456"}}],
                        "contexts": {"lab": {"key": "LS0tLS1CRUdJTiBFQ", "endpoints": ["127.0.0.1:1"]}}})
    assert r.text("abcdef123456 LS0tLS1CRUdJTiBFQ 127.0.0.1:1") == f"{MASK} {MASK} 127.0.0.1:1"


CONFIG = """version: v1alpha1
machine:
  type: controlplane
---
apiVersion: v1alpha1
kind: VolumeConfig
name: EPHEMERAL
provisioning:
  maxSize: 50GiB
"""


def test_merge_replaces_same_document_and_appends_new() -> None:
    current = machineconfig.split_documents(CONFIG)
    eph = {"apiVersion": "v1alpha1", "kind": "VolumeConfig", "name": "EPHEMERAL", "provisioning": {"maxSize": "100GiB"}}
    user = {"apiVersion": "v1alpha1", "kind": "UserVolumeConfig", "name": "linstor-storage"}
    merged = machineconfig.merge_documents(current, [eph, user])
    assert merged[0] == current[0] and merged[1] == eph and merged[2] == user
    assert machineconfig.missing_or_different(merged, [eph, user]) == []
    assert machineconfig.missing_or_different(current, [eph, user]) == [eph, user]
    assert machineconfig.split_documents(machineconfig.dump_documents(merged)) == merged


def test_bad_config_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="talosctl"):
        machineconfig.split_documents("a: [")
    with pytest.raises(ParseError):
        machineconfig.split_documents("- a\n- b\n")
