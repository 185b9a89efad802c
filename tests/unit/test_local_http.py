"""The plain-HTTP clients for this machine's endpoints refuse anything but http:// before connecting."""

from __future__ import annotations

import httpx
import pytest

from runbook_lib import local_http


@pytest.mark.parametrize("url", ["https://127.0.0.1:6443/lab/v1/status", "https://figures/png"])
def test_https_is_refused_before_any_connection(url):
    # the unit layer refuses sockets: reaching a connection here would fail with LayerViolation instead
    with local_http.client() as c, pytest.raises(httpx.UnsupportedProtocol, match="plain http://"):
        c.get(url)


def test_no_proxy_from_the_environment(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("ALL_PROXY", "http://proxy.invalid:3128")
    with local_http.client() as c:
        assert not c._mounts  # httpx mounts one proxy transport per proxy variable it trusts
