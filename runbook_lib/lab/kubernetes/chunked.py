"""HTTP/1.1 chunked responses: a watch or a followed log sends its body as it happens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def start(handler: Any, content_type: str) -> Callable[[bytes], None]:
    """Send a 200 with a chunked body of ``content_type``; returns the function that sends one chunk."""
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()

    def chunk(payload: bytes) -> None:
        handler.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        handler.wfile.flush()

    return chunk
