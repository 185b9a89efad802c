"""httpx clients for the plain-HTTP endpoints of this machine: the lab's control API and the figure server.

A default ``httpx.Client`` loads the CA bundle when it is made, whether or not a request ever uses TLS: about
80 ms per client on a quiet 2-core machine, and one client per call. These endpoints speak http:// only, over
loopback or a Unix socket, so their clients skip it, refuse any other scheme, and ignore proxy settings (a proxy
for 127.0.0.1 or a socket would be wrong).
"""

from __future__ import annotations

from typing import Any

import httpx


class PlainHTTPTransport(httpx.HTTPTransport):
    """An ``HTTPTransport`` for http:// only: no TLS context to build, and an https:// URL is refused."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(verify=False, **kwargs)  # no request through it uses TLS (handle_request refuses https)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"{request.url}: this client serves plain http:// endpoints of this "
                                            "machine only")
        return super().handle_request(request)


def client(*, uds: str | None = None, **kwargs: Any) -> httpx.Client:
    """A client for http:// URLs on this machine (``uds``: through that Unix socket)."""
    return httpx.Client(transport=PlainHTTPTransport(uds=uds), trust_env=False, **kwargs)


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request to a plain-HTTP endpoint of this machine, like ``httpx.request``."""
    with client() as c:
        return c.request(method, url, **kwargs)
