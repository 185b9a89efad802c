"""Rendering of the volume documents and Talos's validation rules.

Conformance: the rendered documents validate against the real Talos machine-config JSON
schema (``../shared/reference/talos/config.schema.*.json``); the rules the schema does not
enforce are checked by :mod:`runbook_lib.volume_rules` with Talos's own wording.
"""

from __future__ import annotations

import jsonschema
import pytest

from runbook_lib.manifests import volume_documents
from runbook_lib.params import parse_params
from runbook_lib.volume_rules import validate_documents
from tests.reference import talos_schema_def

SCHEMA_DEFS = {"VolumeConfig": "block.VolumeConfigV1Alpha1", "UserVolumeConfig": "block.UserVolumeConfigV1Alpha1"}


def docs_for(version: str = "v1.10.9", **storage) -> list[dict]:
    """The documents for a node on ``version`` (a user volume before Talos v1.11: these tests' subject)."""
    return volume_documents(parse_params({"storage": storage} if storage else {}).storage, version)


def test_before_v1_11_the_documents_render_the_corrected_article_layout() -> None:
    eph, user = docs_for()
    assert eph == {"apiVersion": "v1alpha1", "kind": "VolumeConfig", "name": "EPHEMERAL",
                   "provisioning": {"maxSize": "100GiB"}}
    assert user["kind"] == "UserVolumeConfig" and user["name"] == "linstor-storage"
    assert user["provisioning"] == {"diskSelector": {"match": "system_disk"}, "minSize": "200GiB"}
    assert validate_documents([eph, user], "v1.10.9") == []


@pytest.mark.reference
@pytest.mark.parametrize("version", ["v1.10.9", "v1.11.6", "v1.12.11", "v1.13.9"])
def test_documents_validate_against_real_talos_schema(version: str) -> None:
    for doc in docs_for("v1.10.9", max_size="300GiB", filesystem="ext4"):
        jsonschema.Draft202012Validator(talos_schema_def(version, SCHEMA_DEFS[doc["kind"]])).validate(doc)


@pytest.mark.reference
def test_schema_rejects_what_we_never_render() -> None:
    validator = jsonschema.Draft202012Validator(talos_schema_def("v1.12.11", SCHEMA_DEFS["UserVolumeConfig"]))
    bad = {**docs_for()[1], "provisioning": {"minsize": "1GiB"}}
    assert list(validator.iter_errors(bad))


def test_rules_the_schema_does_not_enforce() -> None:
    eph, user = docs_for()
    long_name = {**user, "name": "x" * 35}
    assert validate_documents([long_name], "v1.12.7") == [
        "UserVolumeConfig 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx': name must be between 1 and 34 characters long"]
    bad_chars = {**user, "name": "linstor_storage"}
    assert "can only contain" in validate_documents([bad_chars], "v1.12.7")[0]
    no_selector = {**user, "provisioning": {"minSize": "1GiB"}}
    assert validate_documents([no_selector], "v1.12.7") == [
        "UserVolumeConfig 'linstor-storage': disk selector is required"]
    bad_cel = {**user, "provisioning": {**user["provisioning"], "diskSelector": {"match": "disk.transport =="}}}
    assert "disk selector is invalid" in validate_documents([bad_cel], "v1.12.7")[0]
    inverted = {**user, "provisioning": {**user["provisioning"], "minSize": "2TB", "maxSize": "1TB"}}
    assert validate_documents([inverted], "v1.12.7") == [
        "UserVolumeConfig 'linstor-storage': min size is greater than max size"]
    assert "UserVolumeConfig needs Talos v1.10" in validate_documents([user], "v1.9.6")[0]
    state = {**eph, "name": "STATE"}
    assert "only ['EPHEMERAL', 'IMAGECACHE'] volumes are supported" in validate_documents([state], "v1.10.9")[0]
    assert validate_documents([state], "v1.11.6") == []
