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


def test_documents_missing_or_held_with_other_content_are_found_by_their_key() -> None:
    current = machineconfig.split_documents(CONFIG)
    eph = {"apiVersion": "v1alpha1", "kind": "VolumeConfig", "name": "EPHEMERAL", "provisioning": {"maxSize": "100GiB"}}
    user = {"apiVersion": "v1alpha1", "kind": "UserVolumeConfig", "name": "linstor-storage"}
    assert machineconfig.documents_to_patch(current, [eph, user]) == [eph, user]
    assert machineconfig.documents_to_patch([*current[:1], eph, user], [eph, user]) == []
    assert machineconfig.documents_to_patch(current, [current[1]]) == []


def test_bad_config_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="talosctl"):
        machineconfig.split_documents("a: [")
    with pytest.raises(ParseError):
        machineconfig.split_documents("- a\n- b\n")
