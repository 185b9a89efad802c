"""No secret leaves the kernel (issue 14, item 4): the mechanisms, with real subprocesses.

The end-to-end scan of a real run's outputs is tests/test_secrets_in_outputs.py.
"""

from __future__ import annotations

import json

from runbook_lib.params import merge_secrets, parse_params, split_secrets
from runbook_lib.redact import Redactor, move_secret_bearing
from runbook_lib.steps.nb02_extensions_and_upgrade import factory_host

SECRET = "kernel-only-S3cret-99"




def test_a_secret_reused_in_any_parameter_travels_with_the_secrets() -> None:
    raw = {"secrets": {"token_a": SECRET}, "kubeconfig": f"/home/op/{SECRET}.yaml",
           "bench": {"install": f"curl -H 'X: {SECRET}' | sh", "iterations": 2},
           "extensions": ["siderolabs/drbd", "siderolabs/zfs"]}
    values = parse_params(raw).secret_values()
    public, secret = move_secret_bearing(*split_secrets(raw), values)
    assert SECRET not in json.dumps(public)  # what papermill writes into the notebook
    assert public["bench"] == {"iterations": 2} and public["extensions"] == raw["extensions"]
    assert merge_secrets(public, secret) == raw


def test_a_urls_userinfo_is_a_secret_and_never_reaches_a_node() -> None:
    params = parse_params({"factory_url": "https://robot:p%40ss-W0rd-1@images.example.com:8443"})
    values = params.secret_values()
    assert "p@ss-W0rd-1" in values and "p%40ss-W0rd-1" in values
    assert params.redacted()["factory_url"] == "https://***@images.example.com:8443"
    # the installer image goes into every node's machine configuration: host and port only
    assert factory_host(params.factory_url) == "images.example.com:8443"
    redactor = Redactor(values)
    assert redactor.text("GET https://robot:p%40ss-W0rd-1@images.example.com:8443/schematics failed") == \
        "GET https://***@images.example.com:8443/schematics failed"
