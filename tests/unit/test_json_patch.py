"""RFC 6902 in the lab, one implementation for Talos and the API server (both apply patches with
evanphx/json-patch's ``Apply``: no missing parent is created, a failed patch changes nothing)."""

from __future__ import annotations

import pytest

from runbook_lib.lab import json_patch
from runbook_lib.lab.kubernetes.patches import json_patch as kube_json_patch
from runbook_lib.lab.kubernetes.types import ApiError
from runbook_lib.lab.talos.machine_config import apply_config_patches

# RFC 6902 appendix A, a few of its examples
EXAMPLES = [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"foo": "bar", "baz": "qux"}),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}], {"baz": "boo", "foo": "bar"}),
    ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}], {"foo": ["bar", ["abc", "def"]]}),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
]


@pytest.mark.parametrize(("doc", "ops", "expected"), EXAMPLES)
def test_rfc6902_appendix_examples(doc: dict, ops: list, expected: dict) -> None:
    before = repr(doc)
    assert json_patch.apply(doc, ops) == expected
    assert repr(doc) == before  # the input is never changed


@pytest.mark.parametrize(("ops", "message"), [
    ([{"op": "add", "path": "/a/b/c", "value": 1}], "add operation does not apply: doc is missing path: /a/b/c"),
    ([{"op": "remove", "path": "/x"}], "remove operation does not apply: doc is missing path: /x"),
    ([{"op": "replace", "path": "/x", "value": 1}], "replace operation does not apply: doc is missing path: /x"),
    ([{"op": "move", "from": "/x", "path": "/y"}], "move operation does not apply: doc is missing from path: /x"),
    ([{"op": "test", "path": "/a", "value": 2}], "testing value /a failed"),
    ([{"op": "frobnicate", "path": "/a"}], "Unexpected kind: frobnicate"),
    ([{"path": "/a"}], "Unexpected kind: None"),
    ({"op": "add"}, "a JSON patch is a list of operations"),
])
def test_a_patch_that_does_not_apply_names_the_operation_and_changes_nothing(ops, message: str) -> None:
    doc = {"a": {}}
    with pytest.raises(json_patch.PatchFailed, match=message):
        json_patch.apply(doc, [{"op": "add", "path": "/b", "value": 1}] + ops if isinstance(ops, list) else ops)
    assert doc == {"a": {}}


def test_talos_creates_no_missing_parent_and_says_so_as_talosctl_does() -> None:
    docs = [{"version": "v1alpha1", "machine": {"type": "worker"}}]
    assert apply_config_patches(docs, ['[{"op": "add", "path": "/machine/network", "value": {"hostname": "n1"}}]']) \
        == [{"version": "v1alpha1", "machine": {"type": "worker", "network": {"hostname": "n1"}}}]
    with pytest.raises(ValueError, match="^failure applying rfc6902 patches to talos machine config: add operation "
                                         "does not apply: doc is missing path: /machine/kernel/modules"):
        apply_config_patches(docs, ['[{"op": "add", "path": "/machine/kernel/modules", "value": []}]'])


def test_the_api_server_answers_422_for_a_patch_that_does_not_apply() -> None:
    with pytest.raises(ApiError) as info:
        kube_json_patch({"spec": {}}, [{"op": "replace", "path": "/spec/replicas", "value": 2}])
    assert info.value.code == 422 and "replace operation does not apply" in str(info.value.status())
